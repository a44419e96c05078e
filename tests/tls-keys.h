/* A certificate for the shared sweeps' TLS scenarios (test-io-sweep.c,
 * test-faults.c), made in the process with OpenSSL: a self-signed P-256
 * certificate for localhost and 127.0.0.1 and its key, written as PEM into
 * a temporary directory. Clients trust it as their CA file, so the
 * handshakes verify as real ones do, and no openssl tool is needed. */
#ifndef LOOM_TESTS_TLS_KEYS_H
#define LOOM_TESTS_TLS_KEYS_H

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "loom/tls.h"

typedef struct {
  char dir[64], cert[96], key[96];
  loom_tls_ctx_t *server, *client;
} tls_keys_t;

static inline int tls_keys_write(tls_keys_t *k, EVP_PKEY *pk, X509 *x) {
  FILE *fc = fopen(k->cert, "w"), *fk = fopen(k->key, "w");
  int ok = fc && fk && PEM_write_X509(fc, x) == 1 &&
           PEM_write_PrivateKey(fk, pk, NULL, NULL, 0, NULL, NULL) == 1;
  if (fc) fclose(fc);
  if (fk) fclose(fk);
  return ok ? 0 : -1;
}

/* The certificate and key files: 0 or -1. */
static inline int tls_keys_files(tls_keys_t *k) {
  snprintf(k->dir, sizeof(k->dir), "/tmp/loom-keys-XXXXXX");
  if (!mkdtemp(k->dir)) return -1;
  snprintf(k->cert, sizeof(k->cert), "%s/cert.pem", k->dir);
  snprintf(k->key, sizeof(k->key), "%s/key.pem", k->dir);
  EVP_PKEY *pk = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  int rc = -1;
  if (pk && x) {
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
    X509_set_pubkey(x, pk);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
                                              "DNS:localhost,IP:127.0.0.1");
    X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "CA:TRUE");
    if (san && bc && X509_add_ext(x, san, -1) && X509_add_ext(x, bc, -1) &&
        X509_sign(x, pk, EVP_sha256()) > 0)
      rc = tls_keys_write(k, pk, x);
    X509_EXTENSION_free(san);
    X509_EXTENSION_free(bc);
  }
  X509_free(x);
  EVP_PKEY_free(pk);
  return rc;
}

/* A server and a client context on those files: 0, or loom_tls_ctx_new's
 * error. session_cache: the client's (0: the default; SIZE_MAX: none). */
static inline int tls_keys_ctx(tls_keys_t *k, size_t session_cache) {
  loom_tls_opts_t so = {.cert_file = k->cert, .key_file = k->key};
  loom_tls_opts_t co = {.ca_file = k->cert, .session_cache = session_cache};
  int rc = loom_tls_ctx_new(&k->server, 1, &so);
  return rc ? rc : loom_tls_ctx_new(&k->client, 0, &co);
}

static inline void tls_keys_ctx_free(tls_keys_t *k) {
  loom_tls_ctx_free(k->server);
  loom_tls_ctx_free(k->client);
  k->server = k->client = NULL;
}

/* The files and both contexts: 0 or -1. */
static inline int tls_keys_make(tls_keys_t *k) {
  return tls_keys_files(k) || tls_keys_ctx(k, 0) ? -1 : 0;
}

/* Frees the contexts and removes the files. */
static inline void tls_keys_free(tls_keys_t *k) {
  tls_keys_ctx_free(k);
  unlink(k->cert);
  unlink(k->key);
  rmdir(k->dir);
}

#endif
