/* loom TLS: TLS streams on OpenSSL (asyncio's ssl=, start_tls and
 * start_server(ssl=...)). See docs/tls.md.
 *
 * A TLS stream is a loom stream: once the handshake is done, every stream
 * function (loom_read, loom_read_line, loom_read_until, loom_read_exactly,
 * loom_read_all, the limits, loom_write, loom_writev, loom_flush,
 * loom_drain, loom_shutdown_write, loom_close, loom_abort) works on it
 * unchanged, on the plaintext. OpenSSL runs over memory BIOs: loom keeps
 * the socket, so the handshake and every read and write honour
 * cancellation and scopes as plain TCP does (a handshake timeout is a
 * timeout scope around loom_tls_start or loom_tls_connect).
 *
 * Optional: built when OpenSSL is found (CMake option LOOM_WITH_TLS), as
 * the library libloom-tls (pkg-config loom-tls, CMake loom::tls), and
 * included on its own, not by <loom.h>:
 *
 *   #include <loom.h>
 *   #include <loom/tls.h>
 *
 * Errors: negative codes as everywhere in loom. A certificate that does not
 * verify is LOOM_ETLSVERIFY, any other TLS failure (a bad record, a
 * handshake alert, a peer speaking something else) LOOM_ETLS, and a peer
 * that closes the connection without TLS's close_notify LOOM_ETLSTRUNC,
 * for a truncation attack and a clean end cannot be told apart otherwise
 * (loom_tls_opts_t.allow_truncation turns it into EOF, for peers that
 * never send close_notify). loom_tls_last_error names the reason in
 * OpenSSL's words ("certificate has expired", "hostname mismatch",
 * "unable to get local issuer certificate"...).
 */
#ifndef LOOM_TLS_H
#define LOOM_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "export.h"
#include "net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A TLS context: an SSL_CTX with its settings, shared by many streams. */
typedef struct loom_tls_ctx_s loom_tls_ctx_t; /* opaque, heap */

/* loom_tls_opts_t.verify */
enum {
  LOOM_TLS_VERIFY_DEFAULT = 0, /* clients: verify the server (certificate
                                  chain and host name); servers: as
                                  verify_client says */
  LOOM_TLS_VERIFY_PEER = 1,    /* verify the peer (clients: the same as
                                  the default) */
  LOOM_TLS_VERIFY_NONE = 2     /* accept any certificate: an explicit,
                                  dangerous choice, never a default */
};

/* loom_tls_opts_t.verify_client (servers) */
enum {
  LOOM_TLS_CLIENT_NONE = 0,     /* do not ask for a client certificate */
  LOOM_TLS_CLIENT_OPTIONAL = 1, /* ask; verify one if sent */
  LOOM_TLS_CLIENT_REQUIRE = 2   /* ask, and fail the handshake without one */
};

typedef struct {
  /* The certificate (chain, PEM) and its private key: a server's, or a
   * client's for mutual TLS. NULL: none. */
  const char *cert_file, *key_file;
  /* Trusted CAs (PEM file, or a hashed directory). Both NULL: the system
   * store (SSL_CTX_set_default_verify_paths). A server verifying client
   * certificates uses these too. */
  const char *ca_file, *ca_path;
  int verify;        /* LOOM_TLS_VERIFY_*: 0 is verify-on for clients */
  int verify_client; /* servers: LOOM_TLS_CLIENT_* */
  /* ALPN, comma-separated in preference order ("h2,http/1.1"): what a
   * client offers, what a server accepts (the server picks the first of
   * its own list the client offers; no overlap fails the handshake only
   * if alpn_required). NULL: no ALPN. */
  const char *alpn;
  int alpn_required;
  /* OpenSSL cipher strings: TLS 1.2 (SSL_CTX_set_cipher_list) and TLS 1.3
   * (SSL_CTX_set_ciphersuites). NULL: OpenSSL's defaults. */
  const char *ciphers, *ciphersuites;
  /* Lowest and highest protocol version (TLS1_2_VERSION, TLS1_3_VERSION
   * from <openssl/ssl.h>, i.e. 0x0303, 0x0304); 0: TLS 1.2 / the highest. */
  int min_version, max_version;
  /* A peer that closes the TCP connection without close_notify reads as
   * EOF instead of LOOM_ETLSTRUNC. */
  int allow_truncation;
  /* loom_tls_serve: how long a connection may take to complete its
   * handshake before it is dropped; 0: 60 s (asyncio's default). */
  uint64_t handshake_timeout_ms;
  /* Clients: sessions kept for resumption, by host and port (0: 256;
   * SIZE_MAX: none). Servers keep OpenSSL's session cache and tickets. */
  size_t session_cache;
  /* close (loom_close): how long the stream waits, without its caller,
   * for its close_notify to be written before the socket closes; 0: 1 s. */
  uint64_t close_timeout_ms;
} loom_tls_opts_t;

/* A context for clients (server = 0) or servers (server = 1). opts NULL:
 * all defaults (a client verifying against the system store). Fails with
 * LOOM_ETLS (a certificate or key that does not load, a key that does not
 * match; loom_tls_last_error(NULL) says which), UV_EINVAL, UV_ENOMEM.
 * Needs no runtime. */
LOOM_EXTERN int loom_tls_ctx_new(loom_tls_ctx_t **ctx, int server,
                                 const loom_tls_opts_t *opts);
/* Lets go of the context. Streams and servers still using it keep it
 * alive until they end. */
LOOM_EXTERN void loom_tls_ctx_free(loom_tls_ctx_t *ctx);
/* The SSL_CTX *, for any setting loom does not wrap (set before the first
 * handshake that uses it). */
LOOM_EXTERN void *loom_tls_ctx_ssl_ctx(loom_tls_ctx_t *ctx);
/* Servers: one more certificate, served to clients whose SNI matches
 * server_name exactly (or "*.example.com": a single leading label). The
 * opts' certificate stays the default for other names and clients without
 * SNI. Like loom_tls_ctx_set_sni, it configures the context: call it
 * before the context serves handshakes, not while it does (the handshakes
 * read the list without a lock). */
LOOM_EXTERN int loom_tls_ctx_add_cert(loom_tls_ctx_t *ctx, const char *server_name,
                                      const char *cert_file, const char *key_file);

/* Servers: choose a context by the SNI name a client sent (asyncio's
 * sni_callback): fn(server_name, arg) runs during the handshake, outside
 * any task (it must not suspend), and returns the context whose
 * certificate to serve, or NULL for this one's (and its
 * loom_tls_ctx_add_cert names). A returned context must outlive the
 * connections it serves (free it after the server); its certificate and
 * key are what it changes: the verification and ALPN settings stay this
 * context's. Not called for clients that send no SNI. */
typedef loom_tls_ctx_t *(*loom_tls_sni_fn)(const char *server_name, void *arg);
LOOM_EXTERN int loom_tls_ctx_set_sni(loom_tls_ctx_t *ctx, loom_tls_sni_fn fn, void *arg);

/* Upgrades an open stream in place (start_tls, STARTTLS): runs the
 * handshake as a client (server = 0; server_hostname is sent as SNI and,
 * unless verification is off, checked against the certificate; an IP
 * address is checked as one) or as a server, under the caller's scopes.
 * The stream must be a TCP, Unix or pipe stream with no other task reading
 * or writing it; bytes it buffered already but were not read (the peer's
 * first handshake bytes) are taken as the start of the handshake. Returns
 * 0 with the stream now carrying TLS, or an error: LOOM_ETLSVERIFY,
 * LOOM_ETLS, UV_EOF / LOOM_ETLSTRUNC (the peer closed), UV_ECANCELED,
 * UV_ETIMEDOUT (a timeout scope), UV_EBUSY (already TLS, or in use),
 * UV_ENOMEM. After an error the stream is broken: close it. */
LOOM_EXTERN int loom_tls_start(loom_stream_t *s, loom_tls_ctx_t *ctx, int server,
                               const char *server_hostname);
/* TCP connect to host:port, then the client handshake; server_hostname
 * NULL: host. On failure nothing is left open. */
LOOM_EXTERN int loom_tls_connect(loom_stream_t **s, const char *host, int port,
                                 loom_tls_ctx_t *ctx, const char *server_hostname);

/* A TLS server: loom_serve whose connections complete the server handshake
 * (within opts' handshake_timeout_ms) before handler runs with the TLS
 * stream. Connections whose handshake fails are closed without running the
 * handler, quietly (a scanner or a plain-text client is no error of the
 * server's). Free ctx only after closing the server: the server's handler
 * record lives in it. */
LOOM_EXTERN int loom_tls_serve(loom_server_t **srv, const char *host, int port,
                               loom_tls_ctx_t *ctx, loom_handler_fn handler, void *arg,
                               const loom_server_opts_t *opts);

/* Whether s carries TLS (1), not (0), or UV_EBADF. */
LOOM_EXTERN int loom_tls_is_tls(loom_stream_t *s);
/* The ALPN protocol agreed on, or NULL (none, not TLS). Valid while s is. */
LOOM_EXTERN const char *loom_tls_alpn(loom_stream_t *s);
/* The SNI name the client sent (servers), or NULL. */
LOOM_EXTERN const char *loom_tls_server_name(loom_stream_t *s);
/* The negotiated version ("TLSv1.3"), or NULL. */
LOOM_EXTERN const char *loom_tls_version(loom_stream_t *s);
/* 1 if the handshake resumed a session, 0 if not. */
LOOM_EXTERN int loom_tls_session_reused(loom_stream_t *s);
/* The stream's SSL *, or NULL. */
LOOM_EXTERN void *loom_tls_ssl(loom_stream_t *s);
/* OpenSSL's words for the last TLS failure of s, or, for s NULL, of the
 * calling thread (a failed loom_tls_connect or loom_tls_ctx_new, whose
 * stream is gone). "" when there was none. Valid until the next TLS call
 * on the same thread or stream. */
LOOM_EXTERN const char *loom_tls_last_error(loom_stream_t *s);

#ifdef __cplusplus
}
#endif
#endif /* LOOM_TLS_H */
