/* TLS streams on OpenSSL, over memory BIOs (the design of uvloop's SSL
 * protocol): loom keeps the socket, OpenSSL only ever sees bytes.
 *
 * A TLS stream is the TCP (or Unix, or pipe) stream it was, with a layer on
 * it (io.h's loom__rsource_t): the stream's buffering, readers, writers,
 * limits, gathering and close are the ones every stream has, and the layer
 * stands between them and the socket.
 *
 *   reading:  socket --uv_read (bounce buffer)--> rbio --SSL_read--> the
 *             stream's own buffer or its reader's (the stream's alloc
 *             and read callbacks, called as libuv would call them)
 *   writing:  the stream's try_write/write --SSL_write--> wbio --> one
 *             uv_try_write or uv_write of the records on the socket
 *
 * The raw socket is read while the stream wants bytes (its reader waits)
 * or a handshake runs, so a slow reader still stops the socket being read.
 * The bounce buffer is the thread's: every byte read goes into the rbio
 * within the callback that read it. Bytes the layer writes itself
 * (handshake messages, alerts, session tickets, close_notify) are counted
 * in the stream's queue (loom__stream_wrote), so that drain and close wait
 * for them.
 *
 * The handshake runs in the calling task (loom_tls_start): SSL_do_handshake,
 * write what it produced, and when it wants more, park until the socket
 * brings some. Cancellation and timeout scopes interrupt that park like any
 * other; the stream is then broken (t->fatal) and should be closed.
 *
 *   tls_t lives until the stream has closed (close hook: s = NULL), its two
 *   handles' close callbacks have run, and no write of its own is in flight.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "io/io.h"
#include "loom/scope.h"
#include "loom/tls.h"

#define OWN_BOUNCE (16u * 1024u + 512u) /* one record and its overhead */
#define READ_HINT (64u * 1024u)
#define HANDSHAKE_TIMEOUT_MS 60000u
#define CLOSE_TIMEOUT_MS 1000u
#define SESSION_CACHE 256u
#define ERRLEN 256

/* ---- contexts ------------------------------------------------------------------ */

typedef struct sess_s {
  struct sess_s *next;
  SSL_SESSION *sess;
  char key[];
} sess_t;

typedef struct cert_s {
  struct cert_s *next;
  X509 *x;
  EVP_PKEY *key;
  STACK_OF(X509) * chain;
  char name[];
} cert_t;

typedef struct serve_s {
  struct serve_s *next;
  loom_tls_ctx_t *ctx;
  loom_handler_fn fn;
  void *arg;
} serve_t;

struct loom_tls_ctx_s {
  SSL_CTX *ssl;
  atomic_int refs; /* the user's, and one per stream */
  int server;
  int allow_trunc;
  int alpn_required;
  unsigned char *alpn; /* wire format */
  size_t alpn_len;
  uint64_t hs_timeout, close_timeout;
  pthread_mutex_t mu; /* sessions and serves: streams of several runtimes */
  size_t sess_max, sess_n;
  sess_t *sess; /* most recent first */
  cert_t *certs;
  serve_t *serves;
  loom_tls_sni_fn sni_fn;
  void *sni_arg;
};

static int ex_idx = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;
static void ex_init(void) { ex_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL); }

static LOOM__TLS char thread_err[ERRLEN];

/* OpenSSL's words for what just failed: the verification result if there
 * is one, else the first error on the thread's queue (which is emptied). */
static void describe(char *out, SSL *ssl, int fallback) {
  long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
  unsigned long e = ERR_get_error();
  if (v != X509_V_OK) {
    snprintf(out, ERRLEN, "certificate verify failed: %s",
             X509_verify_cert_error_string(v));
  } else if (e) {
    ERR_error_string_n(e, out, ERRLEN);
  } else {
    snprintf(out, ERRLEN, "%s", loom_strerror(fallback));
  }
  ERR_clear_error();
  memcpy(thread_err, out, ERRLEN);
}

static void ctx_unref(loom_tls_ctx_t *c) {
  if (atomic_fetch_sub(&c->refs, 1) != 1) return;
  SSL_CTX_free(c->ssl);
  while (c->sess) {
    sess_t *n = c->sess->next;
    SSL_SESSION_free(c->sess->sess);
    free(c->sess);
    c->sess = n;
  }
  while (c->certs) {
    cert_t *n = c->certs->next;
    X509_free(c->certs->x);
    EVP_PKEY_free(c->certs->key);
    sk_X509_pop_free(c->certs->chain, X509_free);
    free(c->certs);
    c->certs = n;
  }
  while (c->serves) {
    serve_t *n = c->serves->next;
    free(c->serves);
    c->serves = n;
  }
  free(c->alpn);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* "h2,http/1.1" -> "\x02h2\x08http/1.1" */
static int alpn_wire(const char *list, unsigned char **out, size_t *len) {
  size_t n = strlen(list);
  unsigned char *w = malloc(n + 1);
  if (!w) return UV_ENOMEM;
  size_t o = 0;
  const char *p = list;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if (l == 0 || l > 255) {
      free(w);
      return UV_EINVAL;
    }
    w[o++] = (unsigned char)l;
    memcpy(w + o, p, l);
    o += l;
    p += l + (e ? 1 : 0);
  }
  if (o == 0) {
    free(w);
    return UV_EINVAL;
  }
  *out = w;
  *len = o;
  return 0;
}

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg) {
  loom_tls_ctx_t *c = arg;
  (void)ssl;
  unsigned char *o = NULL;
  if (SSL_select_next_proto(&o, outlen, c->alpn, (unsigned)c->alpn_len, in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = o;
    return SSL_TLSEXT_ERR_OK;
  }
  return c->alpn_required ? SSL_TLSEXT_ERR_ALERT_FATAL : SSL_TLSEXT_ERR_NOACK;
}

static int name_matches(const char *pattern, const char *name) {
  if (strcasecmp(pattern, name) == 0) return 1;
  if (pattern[0] == '*' && pattern[1] == '.') {
    const char *dot = strchr(name, '.');
    return dot && dot != name && strcasecmp(pattern + 1, dot) == 0;
  }
  return 0;
}

static int on_servername(SSL *ssl, int *alert, void *arg) {
  loom_tls_ctx_t *c = arg;
  (void)alert;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_NOACK;
  if (c->sni_fn) {
    loom_tls_ctx_t *other = c->sni_fn(name, c->sni_arg);
    if (other && other != c) {
      if (!other->server || !SSL_set_SSL_CTX(ssl, other->ssl))
        return SSL_TLSEXT_ERR_ALERT_FATAL;
      return SSL_TLSEXT_ERR_OK;
    }
  }
  for (cert_t *e = c->certs; e; e = e->next)
    if (name_matches(e->name, name)) {
      if (SSL_use_cert_and_key(ssl, e->x, e->key, e->chain, 1) != 1)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
      return SSL_TLSEXT_ERR_OK;
    }
  return SSL_TLSEXT_ERR_OK; /* the default certificate */
}

static int on_new_session(SSL *ssl, SSL_SESSION *sess);

static int ctx_fail(loom_tls_ctx_t *c, int rc) {
  describe(thread_err, NULL, rc);
  ctx_unref(c);
  return rc;
}

int loom_tls_ctx_new(loom_tls_ctx_t **out, int server, const loom_tls_opts_t *opts) {
  static const loom_tls_opts_t none;
  if (!out) return UV_EINVAL;
  *out = NULL;
  if (!opts) opts = &none;
  if (opts->verify < 0 || opts->verify > LOOM_TLS_VERIFY_NONE ||
      opts->verify_client < 0 || opts->verify_client > LOOM_TLS_CLIENT_REQUIRE)
    return UV_EINVAL;
  pthread_once(&ex_once, ex_init);
  thread_err[0] = 0;
  loom_tls_ctx_t *c = calloc(1, sizeof(*c));
  if (!c) return UV_ENOMEM;
  atomic_init(&c->refs, 1);
  pthread_mutex_init(&c->mu, NULL);
  c->server = !!server;
  c->allow_trunc = opts->allow_truncation;
  c->alpn_required = opts->alpn_required;
  c->hs_timeout = opts->handshake_timeout_ms ? opts->handshake_timeout_ms
                                             : HANDSHAKE_TIMEOUT_MS;
  c->close_timeout = opts->close_timeout_ms ? opts->close_timeout_ms : CLOSE_TIMEOUT_MS;
  c->sess_max = opts->session_cache == SIZE_MAX ? 0
                : opts->session_cache           ? opts->session_cache
                                                : SESSION_CACHE;
  ERR_clear_error();
  c->ssl = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!c->ssl) return ctx_fail(c, UV_ENOMEM);
  SSL_CTX *x = c->ssl;
  /* No renegotiation (a DoS lever, and a stream cannot pause its reads for
   * one), no compression (CRIME). */
  SSL_CTX_set_options(x, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE);
  /* An idle connection holds no record buffers (as nginx sets it): 1,000
   * idle TLS connections would otherwise hold ~34 KiB each. */
  SSL_CTX_set_mode(x, SSL_MODE_RELEASE_BUFFERS);
  if (!SSL_CTX_set_min_proto_version(
          x, opts->min_version ? opts->min_version : TLS1_2_VERSION) ||
      (opts->max_version && !SSL_CTX_set_max_proto_version(x, opts->max_version)))
    return ctx_fail(c, UV_EINVAL);
  if (opts->ciphers && !SSL_CTX_set_cipher_list(x, opts->ciphers))
    return ctx_fail(c, LOOM_ETLS);
  if (opts->ciphersuites && !SSL_CTX_set_ciphersuites(x, opts->ciphersuites))
    return ctx_fail(c, LOOM_ETLS);
  if (opts->cert_file) {
    if (SSL_CTX_use_certificate_chain_file(x, opts->cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(x, opts->key_file ? opts->key_file : opts->cert_file,
                                    SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(x) != 1)
      return ctx_fail(c, LOOM_ETLS);
  } else if (server) {
    snprintf(thread_err, ERRLEN, "a server needs cert_file and key_file");
    ctx_unref(c);
    return UV_EINVAL;
  }
  int verify_peer = server ? opts->verify_client != LOOM_TLS_CLIENT_NONE
                           : opts->verify != LOOM_TLS_VERIFY_NONE;
  if (opts->ca_file || opts->ca_path) {
    if (SSL_CTX_load_verify_locations(x, opts->ca_file, opts->ca_path) != 1)
      return ctx_fail(c, LOOM_ETLS);
    if (server && opts->ca_file) {
      STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(opts->ca_file);
      if (names) SSL_CTX_set_client_CA_list(x, names);
    }
  } else if (verify_peer && SSL_CTX_set_default_verify_paths(x) != 1) {
    return ctx_fail(c, LOOM_ETLS);
  }
  int mode = SSL_VERIFY_NONE;
  if (verify_peer) mode = SSL_VERIFY_PEER;
  if (server && opts->verify_client == LOOM_TLS_CLIENT_REQUIRE)
    mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(x, mode, NULL);
  if (opts->alpn) {
    int rc = alpn_wire(opts->alpn, &c->alpn, &c->alpn_len);
    if (rc) return ctx_fail(c, rc);
    if (server)
      SSL_CTX_set_alpn_select_cb(x, on_alpn, c);
    else if (SSL_CTX_set_alpn_protos(x, c->alpn, (unsigned)c->alpn_len) != 0)
      return ctx_fail(c, UV_ENOMEM);
  }
  if (server) {
    /* Sessions resumed across this context's servers; the id context
     * lets a session with a verified client certificate resume. */
    static const unsigned char sid[] = "loom";
    SSL_CTX_set_session_id_context(x, sid, sizeof(sid) - 1);
    SSL_CTX_set_tlsext_servername_callback(x, on_servername);
    SSL_CTX_set_tlsext_servername_arg(x, c);
  } else if (c->sess_max) {
    SSL_CTX_set_session_cache_mode(
        x, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(x, on_new_session);
  }
  *out = c;
  return 0;
}

void loom_tls_ctx_free(loom_tls_ctx_t *c) {
  if (c) ctx_unref(c);
}

void *loom_tls_ctx_ssl_ctx(loom_tls_ctx_t *c) { return c ? c->ssl : NULL; }

int loom_tls_ctx_add_cert(loom_tls_ctx_t *c, const char *name, const char *cert_file,
                          const char *key_file) {
  if (!c || !name || !cert_file || !c->server) return UV_EINVAL;
  size_t n = strlen(name);
  cert_t *e = calloc(1, sizeof(*e) + n + 1);
  if (!e) return UV_ENOMEM;
  memcpy(e->name, name, n + 1);
  ERR_clear_error();
  /* The file's first certificate, then its chain. */
  BIO *b = BIO_new_file(cert_file, "r");
  e->x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
  e->chain = sk_X509_new_null();
  X509 *more;
  while (e->x && e->chain && (more = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
    sk_X509_push(e->chain, more);
  ERR_clear_error(); /* the end of the file */
  BIO_free(b);
  b = BIO_new_file(key_file ? key_file : cert_file, "r");
  e->key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  if (!e->x || !e->key || !e->chain || X509_check_private_key(e->x, e->key) != 1) {
    describe(thread_err, NULL, LOOM_ETLS);
    X509_free(e->x);
    EVP_PKEY_free(e->key);
    if (e->chain) sk_X509_pop_free(e->chain, X509_free);
    free(e);
    return LOOM_ETLS;
  }
  pthread_mutex_lock(&c->mu);
  e->next = c->certs;
  c->certs = e;
  pthread_mutex_unlock(&c->mu);
  return 0;
}

int loom_tls_ctx_set_sni(loom_tls_ctx_t *c, loom_tls_sni_fn fn, void *arg) {
  if (!c || !c->server) return UV_EINVAL;
  c->sni_fn = fn;
  c->sni_arg = arg;
  return 0;
}

/* ---- streams ------------------------------------------------------------------ */

typedef struct {
  loom_stream_t *s; /* NULL once the stream has closed */
  loom_tls_ctx_t *ctx;
  SSL *ssl;
  BIO *rbio, *wbio;
  uv_idle_t idle;   /* hands buffered plaintext to a reader that starts */
  uv_timer_t timer; /* bounds close's wait for close_notify to go out */
  int handles;      /* of the two, not closed yet */
  int inflight;     /* writes of our own records in flight */
  int delivering;   /* inside deliver */
  int handshaking;  /* a task runs the handshake */
  int hs_done;
  loom__waiter_t *hs_waiter;
  int active;      /* the stream wants bytes */
  int reading_raw; /* uv_read_start on the socket */
  int raw_eof;     /* the peer closed the TCP connection */
  int raw_err;     /* the socket failed */
  int fatal;       /* the TLS session failed: every read and write says so */
  uv_alloc_cb alloc;
  uv_read_cb read;
  char *sess_key; /* client session cache key ("name:port") */
  char *bounce;   /* raw reads, if the runtime's bounce buffer is not ours */
  char alpn[256]; /* the protocol agreed on, or "" */
  char err[ERRLEN];
} tls_t;

/* A write of records on the socket: the stream's (user, cb), or the
 * layer's own (n bytes counted in the stream's queue). */
typedef struct {
  uv_write_t req;
  loom_stream_t *s;
  tls_t *t;
  uv_write_t *user;
  uv_write_cb cb;
  size_t n;
  char data[];
} creq_t;

static void maybe_free(tls_t *t) {
  if (t->s || t->handles || t->inflight || t->delivering || t->handshaking) return;
  SSL_free(t->ssl); /* and its BIOs */
  ctx_unref(t->ctx);
  free(t->sess_key);
  free(t->bounce);
  free(t);
}

static void on_handle_closed(uv_handle_t *h) {
  tls_t *t = h->data;
  t->handles--;
  maybe_free(t);
}

static tls_t *tls_of(loom_stream_t *s) { return s->src_data; }

/* Whether a failure now is the peer's certificate's: during the
 * handshake, with verification on (with it off, OpenSSL still records a
 * result, which failed nothing). */
static int verify_failed(tls_t *t) {
  return !t->hs_done && (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) &&
         SSL_get_verify_result(t->ssl) != X509_V_OK;
}

static void fail(tls_t *t, int rc) {
  if (!t->fatal) {
    t->fatal = rc;
    describe(t->err, verify_failed(t) ? t->ssl : NULL, rc);
  }
}

/* The TLS failure code for what OpenSSL just reported. */
static int ssl_failure(tls_t *t) {
  return verify_failed(t) ? LOOM_ETLSVERIFY : LOOM_ETLS;
}

static void on_own_write(uv_write_t *req, int status) {
  creq_t *c = loom__container_of(req, creq_t, req);
  tls_t *t = c->t;
  t->inflight--;
  if (c->user)
    c->cb(c->user, status);
  else
    loom__stream_wrote(c->s, c->n, status);
  free(c);
  maybe_free(t);
}

/* Writes what OpenSSL has put in the wbio, from byte skip on, in c (room
 * for cap bytes) if it fits, else in a request of its own. user NULL: the
 * layer's own bytes, counted in the stream's queue. */
static int send_records(tls_t *t, uv_write_t *user, uv_write_cb cb, size_t skip,
                        creq_t *c, size_t cap) {
  loom_stream_t *s = t->s;
  char *p;
  long have = BIO_get_mem_data(t->wbio, &p);
  size_t n = have > 0 && (size_t)have > skip ? (size_t)have - skip : 0;
  if (c && n > cap) {
    free(c);
    c = NULL;
  }
  if (n == 0) {
    (void)BIO_reset(t->wbio);
    free(c);
    return user ? UV_EINVAL : 0; /* cannot happen for user: bytes were written */
  }
  if (!c) c = malloc(sizeof(*c) + n);
  if (!c) {
    (void)BIO_reset(t->wbio);
    return UV_ENOMEM;
  }
  memcpy(c->data, p + skip, n);
  (void)BIO_reset(t->wbio);
  c->s = s;
  c->t = t;
  c->user = user;
  c->cb = cb;
  c->n = user ? 0 : n;
  uv_buf_t b;
  b.base = c->data;
  b.len = n;
  int rc = uv_write(&c->req, &s->u.stream, &b, 1, on_own_write);
  if (rc) {
    free(c);
    return rc;
  }
  t->inflight++;
  s->queued += c->n;
  return 0;
}

/* The layer's own records (handshake, alerts, tickets): written now. A
 * failure breaks the stream's writing. */
static void flush_own(tls_t *t) {
  if (!t->s || BIO_ctrl_pending(t->wbio) == 0) return;
  /* To the kernel at once when nothing is on its way before them: a
   * handshake flight or a close_notify usually goes without a request. */
  size_t done = 0;
  if (!t->inflight) {
    char *p;
    long have = BIO_get_mem_data(t->wbio, &p);
    int rc = uv_try_write(&t->s->u.stream, &(uv_buf_t){.base = p, .len = (size_t)have},
                          1);
    if (rc >= 0) {
      done = (size_t)rc;
    } else if (rc != UV_EAGAIN) {
      (void)BIO_reset(t->wbio);
      if (!t->s->werr) t->s->werr = rc;
      return;
    }
  }
  int rc = send_records(t, NULL, NULL, done, NULL, 0);
  if (rc && !t->s->werr) t->s->werr = rc;
}

static int encrypt(tls_t *t, const uv_buf_t *bufs, unsigned nbufs) {
  if (t->fatal) return t->fatal;
  if (!t->hs_done) return UV_ENOTCONN;
  ERR_clear_error();
  for (unsigned i = 0; i < nbufs; i++) {
    if (bufs[i].len == 0) continue;
    size_t w;
    if (SSL_write_ex(t->ssl, bufs[i].base, bufs[i].len, &w) != 1 || w != bufs[i].len) {
      fail(t, LOOM_ETLS);
      (void)BIO_reset(t->wbio);
      return t->fatal;
    }
  }
  return 0;
}

/* Takes all of bufs, whatever is queued: the records go to the kernel at
 * once if nothing is on its way before them and it takes them, else they
 * are queued behind the others as our own bytes. The stream copies
 * nothing into a request of its own. uv_try_write returns an int: the
 * stream hands at most INT_MAX bytes at a time. */
static int tls_try_write(loom_stream_t *s, const uv_buf_t *bufs, unsigned nbufs) {
  tls_t *t = tls_of(s);
  size_t total = 0;
  for (unsigned i = 0; i < nbufs; i++) total += bufs[i].len;
  if (total > INT_MAX) return UV_EAGAIN; /* tls_write takes any size */
  int rc = encrypt(t, bufs, nbufs);
  if (rc) return rc;
  char *p;
  long have = BIO_get_mem_data(t->wbio, &p);
  size_t done = 0;
  if (have > 0 && !t->inflight) {
    rc = uv_try_write(&s->u.stream, &(uv_buf_t){.base = p, .len = (size_t)have}, 1);
    if (rc < 0 && rc != UV_EAGAIN) {
      (void)BIO_reset(t->wbio);
      return rc;
    }
    done = rc > 0 ? (size_t)rc : 0;
  }
  /* The plaintext is taken whatever the kernel took of its records: the
   * rest of them is queued as our own bytes. */
  rc = send_records(t, NULL, NULL, done, NULL, 0);
  return rc ? rc : (int)total;
}

static int tls_write(uv_write_t *req, loom_stream_t *s, const uv_buf_t *bufs,
                     unsigned nbufs, uv_write_cb cb) {
  tls_t *t = tls_of(s);
  /* The request is allocated before anything is encrypted: without memory
   * the write fails with nothing of it sent, which the stream may report
   * as such (UV_ENOMEM, not sticky); once encrypted, the records must go
   * or the session is lost. Room for the records' overhead (a header, an
   * IV, a MAC or tag and padding: at most 85 bytes in TLS 1.2 CBC). */
  size_t total = 0;
  for (unsigned i = 0; i < nbufs; i++) total += bufs[i].len;
  size_t cap = total + (total / 16384 + 2) * 128;
  creq_t *c = cap > total ? malloc(sizeof(*c) + cap) : NULL;
  if (!c) return UV_ENOMEM;
  int rc = encrypt(t, bufs, nbufs);
  if (rc) {
    free(c);
    return rc;
  }
  return send_records(t, req, cb, 0, c, cap);
}

/* The runtime's bounce buffer (every byte read leaves it within the read
 * callback, into the rbio), or one of the stream's own when a second
 * runtime on the thread has it. Without memory: libuv reports UV_ENOBUFS,
 * which breaks the stream. */
static void raw_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  loom_stream_t *s = h->data;
  tls_t *t = tls_of(s);
  (void)hint;
  buf->base = loom__io_bounce(s->obj.rt);
  buf->len = LOOM__IO_BOUNCE;
  if (!buf->base) {
    if (!t->bounce) t->bounce = malloc(OWN_BOUNCE);
    buf->base = t->bounce;
    buf->len = t->bounce ? OWN_BOUNCE : 0;
  }
}

static void raw_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

/* Reads the socket while someone wants its bytes. */
static void raw_update(tls_t *t) {
  loom_stream_t *s = t->s;
  int want = s && !t->raw_eof && !t->raw_err && !t->fatal &&
             (t->handshaking || t->active);
  if (want && !t->reading_raw) {
    int rc = uv_read_start(&s->u.stream, raw_alloc, raw_read);
    if (rc)
      t->raw_err = rc;
    else
      t->reading_raw = 1;
  } else if (!want && t->reading_raw) {
    if (s) uv_read_stop(&s->u.stream);
    t->reading_raw = 0;
  }
}

/* Hands plaintext to the stream while it wants it, then the end or an
 * error. Called from libuv callbacks only (the reader may run inside). */
static void deliver(tls_t *t) {
  if (t->delivering) return;
  t->delivering = 1;
  while (t->s && t->active) {
    loom_stream_t *s = t->s;
    uv_handle_t *h = &s->u.handle;
    uv_buf_t b = {.base = NULL, .len = 0};
    if (t->fatal) {
      t->active = 0;
      t->read((uv_stream_t *)h, t->fatal, &b);
      break;
    }
    t->alloc(h, READ_HINT, &b);
    if (!b.base || b.len == 0) { /* a skipped read, or no memory: it stops */
      t->read((uv_stream_t *)h, UV_ENOBUFS, &b);
      continue;
    }
    size_t got = 0;
    ERR_clear_error();
    int r = SSL_read_ex(t->ssl, b.base, b.len, &got);
    if (r == 1) {
      t->read((uv_stream_t *)h, (ssize_t)got, &b);
      continue;
    }
    int e = SSL_get_error(t->ssl, r);
    ssize_t end;
    if (e == SSL_ERROR_WANT_READ) {
      if (!t->raw_eof && !t->raw_err) {
        t->read((uv_stream_t *)h, 0, &b); /* nothing yet: gives b back */
        break;
      }
      if (t->raw_err) {
        end = t->raw_err;
      } else if (t->ctx->allow_trunc) {
        end = UV_EOF;
      } else {
        end = LOOM_ETLSTRUNC;
        snprintf(t->err, ERRLEN, "peer closed the connection without close_notify");
        memcpy(thread_err, t->err, ERRLEN);
      }
    } else if (e == SSL_ERROR_ZERO_RETURN) {
      end = UV_EOF; /* close_notify */
    } else {
      fail(t, ssl_failure(t));
      end = t->fatal;
    }
    t->active = 0;
    t->read((uv_stream_t *)h, end, &b);
    break;
  }
  t->delivering = 0;
  if (t->s) {
    flush_own(t); /* what reading produced: a KeyUpdate's answer, alerts */
    raw_update(t);
  } else {
    maybe_free(t);
  }
}

static void raw_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  loom_stream_t *s = st->data;
  tls_t *t = tls_of(s);
  if (nread > 0) {
    if (BIO_write(t->rbio, buf->base, (int)nread) != (int)nread) t->raw_err = UV_ENOMEM;
  } else if (nread == UV_EOF) {
    t->raw_eof = 1;
  } else if (nread < 0) {
    t->raw_err = nread == UV_ENOBUFS ? UV_ENOMEM : (int)nread;
  } else {
    return;
  }
  if (t->raw_eof || t->raw_err) raw_update(t);
  if (t->handshaking) {
    if (t->hs_waiter) loom__wake_now(t->hs_waiter, 0);
    return;
  }
  deliver(t);
}

static void on_idle(uv_idle_t *h) {
  tls_t *t = h->data;
  uv_idle_stop(h);
  deliver(t);
}

static int tls_start_reading(loom_stream_t *s, uv_alloc_cb alloc, uv_read_cb read) {
  tls_t *t = tls_of(s);
  if (t->handshaking) return UV_EBUSY; /* another task is in loom_tls_start */
  t->alloc = alloc;
  t->read = read;
  t->active = 1;
  raw_update(t);
  /* Plaintext or records read already, or the end: handed over at the
   * loop's next turn, once the reader waits for them. */
  if (SSL_pending(t->ssl) > 0 || BIO_ctrl_pending(t->rbio) > 0 || t->raw_eof ||
      t->raw_err || t->fatal)
    return uv_idle_start(&t->idle, on_idle);
  return 0;
}

static void tls_stop_reading(loom_stream_t *s) {
  tls_t *t = tls_of(s);
  t->active = 0;
  uv_idle_stop(&t->idle);
  raw_update(t);
}

/* Reads and drops what the peer sent that nobody read (a TLS 1.3 server's
 * session tickets, to a client that only wrote): Linux closes a socket
 * with unread bytes by a reset, which throws away what its send buffer
 * still holds, the tail of an upload, and the peer sees ECONNRESET instead
 * of our close_notify. Bounded: a peer still sending is reset all the
 * same. */
static void drop_unread(loom_stream_t *s) {
  uv_os_fd_t fd;
  if (uv_fileno(&s->u.handle, &fd) != 0) return;
  char small[512];
  char *buf = loom__io_bounce(s->obj.rt);
  size_t len = buf ? LOOM__IO_BOUNCE : sizeof(small);
  if (!buf) buf = small;
  for (int i = 0; i < 64; i++)
    if (recv(fd, buf, len, MSG_DONTWAIT) <= 0) break;
}

static void tls_close(loom_stream_t *s) {
  tls_t *t = tls_of(s);
  drop_unread(s);
  if (t->reading_raw) uv_read_stop(&s->u.stream);
  t->reading_raw = 0;
  t->active = 0;
  if (t->hs_waiter) loom__wake(t->hs_waiter, UV_EBADF);
  t->s = NULL;
  uv_close((uv_handle_t *)&t->idle, on_handle_closed);
  uv_close((uv_handle_t *)&t->timer, on_handle_closed);
}

static int tls_shutdown(loom_stream_t *s) {
  tls_t *t = tls_of(s);
  if (t->fatal) return t->fatal;
  if (!t->hs_done) return UV_ENOTCONN;
  ERR_clear_error();
  if (!(SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN)) SSL_shutdown(t->ssl);
  ERR_clear_error();
  flush_own(t);
  return s->werr;
}

static void on_close_timeout(uv_timer_t *h) {
  tls_t *t = h->data;
  if (t->s) loom__stream_close_now(t->s);
}

static void tls_closing(loom_stream_t *s) {
  tls_t *t = tls_of(s);
  if (t->hs_done && !t->fatal && !s->werr &&
      !(SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN)) {
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    ERR_clear_error();
    flush_own(t);
  }
  /* The close waits for its queue: not for long, for a peer that reads
   * nothing would keep it open. */
  if (s->queued > 0)
    uv_timer_start(&t->timer, on_close_timeout, t->ctx->close_timeout, 0);
}

static const loom__rsource_t tls_layer = {
    .start = tls_start_reading,
    .stop = tls_stop_reading,
    .close = tls_close,
    .try_write = tls_try_write,
    .write = tls_write,
    .shutdown = tls_shutdown,
    .closing = tls_closing,
};

/* ---- sessions (clients) ------------------------------------------------------- */

static int on_new_session(SSL *ssl, SSL_SESSION *sess) {
  tls_t *t = SSL_get_ex_data(ssl, ex_idx);
  if (!t || !t->sess_key) return 0;
  loom_tls_ctx_t *c = t->ctx;
  size_t kl = strlen(t->sess_key);
  sess_t *e = malloc(sizeof(*e) + kl + 1);
  if (!e) return 0;
  memcpy(e->key, t->sess_key, kl + 1);
  e->sess = sess; /* returning 1 keeps the reference */
  pthread_mutex_lock(&c->mu);
  /* Replace the key's old session; drop the oldest beyond the cap. */
  sess_t **pp = &c->sess;
  while (*pp) {
    if (strcmp((*pp)->key, e->key) == 0) {
      sess_t *old = *pp;
      *pp = old->next;
      SSL_SESSION_free(old->sess);
      free(old);
      c->sess_n--;
      break;
    }
    pp = &(*pp)->next;
  }
  e->next = c->sess;
  c->sess = e;
  if (++c->sess_n > c->sess_max) {
    pp = &c->sess;
    while ((*pp)->next) pp = &(*pp)->next;
    SSL_SESSION_free((*pp)->sess);
    free(*pp);
    *pp = NULL;
    c->sess_n--;
  }
  pthread_mutex_unlock(&c->mu);
  return 1;
}

static void resume(tls_t *t) {
  loom_tls_ctx_t *c = t->ctx;
  pthread_mutex_lock(&c->mu);
  for (sess_t *e = c->sess; e; e = e->next)
    if (strcmp(e->key, t->sess_key) == 0) {
      SSL_set_session(t->ssl, e->sess);
      break;
    }
  pthread_mutex_unlock(&c->mu);
}

/* ---- the handshake ------------------------------------------------------------- */

typedef struct {
  loom__waiter_t w;
  tls_t *t;
} hwait_t;

static void unhook_handshake(loom__waiter_t *w) {
  loom__container_of(w, hwait_t, w)->t->hs_waiter = NULL;
}

static int handshake(tls_t *t, loom_task_t *self) {
  for (;;) {
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
    if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ) {
      int rc = ssl_failure(t);
      fail(t, rc);
    }
    flush_own(t); /* our flight, or the alert that says why we fail */
    if (t->fatal) return t->fatal;
    if (!t->s) return UV_EBADF;
    if (t->s->werr) return t->s->werr;
    if (e == SSL_ERROR_NONE) return 0;
    /* WANT_READ: the peer's next flight. */
    if (t->raw_err) return t->raw_err;
    if (t->raw_eof) {
      snprintf(t->err, ERRLEN, "peer closed the connection during the handshake");
      memcpy(thread_err, t->err, ERRLEN);
      return UV_EOF;
    }
    int rc = loom__check(self);
    if (rc) return rc;
    raw_update(t);
    if (t->raw_err) return t->raw_err;
    hwait_t hw = {.w = {.task = self, .cancel = unhook_handshake}, .t = t};
    t->hs_waiter = &hw.w;
    rc = loom__park(&hw.w);
    t->hs_waiter = NULL;
    if (rc) return rc;
  }
}

static int is_ip(const char *name) {
  unsigned char buf[16];
  return uv_inet_pton(AF_INET, name, buf) == 0 || uv_inet_pton(AF_INET6, name, buf) == 0;
}

static void take_raw(void *arg, const char *bytes, size_t n) {
  tls_t *t = arg;
  if (BIO_write(t->rbio, bytes, (int)n) != (int)n) t->raw_err = UV_ENOMEM;
}

static int setup_ssl(tls_t *t, int server, const char *host, int port) {
  t->ssl = SSL_new(t->ctx->ssl);
  if (!t->ssl) return UV_ENOMEM;
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (!t->rbio || !t->wbio) {
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    return UV_ENOMEM;
  }
  SSL_set_bio(t->ssl, t->rbio, t->wbio);
  SSL_set_ex_data(t->ssl, ex_idx, t);
  if (server) {
    SSL_set_accept_state(t->ssl);
    return 0;
  }
  SSL_set_connect_state(t->ssl);
  if (host && *host) {
    if (is_ip(host)) {
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) != 1)
        return UV_EINVAL;
    } else if (SSL_set_tlsext_host_name(t->ssl, host) != 1 ||
               SSL_set1_host(t->ssl, host) != 1) {
      return UV_ENOMEM;
    }
    if (t->ctx->sess_max) {
      size_t n = strlen(host) + 16;
      t->sess_key = malloc(n);
      if (!t->sess_key) return UV_ENOMEM;
      snprintf(t->sess_key, n, "%s:%d", host, port);
      resume(t);
    }
  }
  return 0;
}

static int start(loom_stream_t *s, loom_tls_ctx_t *ctx, int server, const char *host,
                 loom_task_t *self) {
  if (s->src) return UV_EBUSY;       /* TLS already, or a file */
  int rc = loom_drain(s->obj.token); /* what was written in the clear goes first */
  if (rc) return rc;
  if (s->closing) return UV_EBADF;
  if (s->rerr) return s->rerr;
  int port = 0;
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (s->is_tcp && uv_tcp_getpeername(&s->u.tcp, (struct sockaddr *)&ss, &len) == 0)
    port = loom__addr_port((struct sockaddr *)&ss);
  tls_t *t = calloc(1, sizeof(*t));
  if (!t) return UV_ENOMEM;
  t->ctx = ctx;
  ERR_clear_error();
  rc = setup_ssl(t, server, host, port);
  if (rc == 0) rc = loom__stream_set_layer(s, &tls_layer, t, take_raw, t);
  if (rc) {
    describe(t->err, NULL, rc);
    SSL_free(t->ssl);
    free(t->sess_key);
    free(t);
    return rc;
  }
  atomic_fetch_add(&ctx->refs, 1);
  t->s = s;
  t->raw_eof = s->eof;
  uv_idle_init(s->obj.rt->loop, &t->idle);
  uv_timer_init(s->obj.rt->loop, &t->timer);
  t->idle.data = t->timer.data = t;
  t->handles = 2;
  t->handshaking = 1;
  rc = handshake(t, self);
  t->handshaking = 0;
  if (!t->s) { /* closed by another task meanwhile */
    memcpy(thread_err, t->err, ERRLEN);
    maybe_free(t);
    return rc ? rc : UV_EBADF;
  }
  if (rc == 0) {
    t->hs_done = 1;
    const unsigned char *p;
    unsigned n;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (p && n) {
      memcpy(t->alpn, p, n);
      t->alpn[n] = 0;
    }
  } else {
    if (!t->err[0]) describe(t->err, verify_failed(t) ? t->ssl : NULL, rc);
    memcpy(thread_err, t->err, ERRLEN);
    if (!t->fatal) t->fatal = rc;
  }
  raw_update(t);
  return rc;
}

int loom_tls_start(loom_stream_t *h, loom_tls_ctx_t *ctx, int server, const char *host) {
  if (!h || !ctx || (server && !ctx->server) || (!server && ctx->server))
    return UV_EINVAL;
  loom_stream_t *s = loom__stream_get(h);
  if (!s) return UV_EBADF;
  loom_task_t *self = loom__self();
  if (!self) return LOOM_ENOTASK;
  int rc = loom__check(self);
  if (rc) return rc;
  thread_err[0] = 0;
  loom__obj_ref(&s->obj);
  rc = start(s, ctx, server, host, self);
  loom__obj_unref(&s->obj);
  return rc;
}

int loom_tls_connect(loom_stream_t **out, const char *host, int port, loom_tls_ctx_t *ctx,
                     const char *server_hostname) {
  if (!out || !host || !ctx || ctx->server) return UV_EINVAL;
  *out = NULL;
  loom_stream_t *s;
  int rc = loom_tcp_connect(&s, host, port);
  if (rc) return rc;
  rc = loom_tls_start(s, ctx, 0, server_hostname ? server_hostname : host);
  if (rc) {
    loom_close(s);
    return rc;
  }
  *out = s;
  return 0;
}

/* ---- servers ------------------------------------------------------------------- */

static int serve_handler(loom_stream_t *s, void *arg) {
  serve_t *sv = arg;
  loom_scope_t sc;
  int rc = loom_timeout_enter(&sc, sv->ctx->hs_timeout);
  if (rc == 0) {
    rc = loom_tls_start(s, sv->ctx, 1, NULL);
    loom_scope_exit(&sc);
  }
  if (rc) {
    /* A client that failed its handshake (a scanner, a wrong CA, a plain
     * HTTP request) is no error of the server's: not logged. */
    loom_close(s);
    return rc == UV_ECANCELED ? rc : 0;
  }
  return sv->fn(s, sv->arg);
}

int loom_tls_serve(loom_server_t **srv, const char *host, int port, loom_tls_ctx_t *ctx,
                   loom_handler_fn handler, void *arg, const loom_server_opts_t *opts) {
  if (!srv || !ctx || !ctx->server || !handler) return UV_EINVAL;
  serve_t *sv = calloc(1, sizeof(*sv));
  if (!sv) return UV_ENOMEM;
  sv->ctx = ctx;
  sv->fn = handler;
  sv->arg = arg;
  int rc = loom_serve(srv, host, port, serve_handler, sv, opts);
  if (rc) {
    free(sv);
    return rc;
  }
  /* Freed with the context, which must outlive the server. */
  pthread_mutex_lock(&ctx->mu);
  sv->next = ctx->serves;
  ctx->serves = sv;
  pthread_mutex_unlock(&ctx->mu);
  return 0;
}

/* ---- details ---------------------------------------------------------------------- */

static tls_t *tls_get(loom_stream_t *h) {
  loom_stream_t *s = h ? loom__stream_get(h) : NULL;
  return s && s->src == &tls_layer ? s->src_data : NULL;
}

int loom_tls_is_tls(loom_stream_t *h) {
  loom_stream_t *s = h ? loom__stream_get(h) : NULL;
  if (!s) return h ? UV_EBADF : UV_EINVAL;
  return s->src == &tls_layer;
}

const char *loom_tls_alpn(loom_stream_t *h) {
  tls_t *t = tls_get(h);
  return t && t->alpn[0] ? t->alpn : NULL;
}

const char *loom_tls_server_name(loom_stream_t *h) {
  tls_t *t = tls_get(h);
  return t ? SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

const char *loom_tls_version(loom_stream_t *h) {
  tls_t *t = tls_get(h);
  return t && t->hs_done ? SSL_get_version(t->ssl) : NULL;
}

int loom_tls_session_reused(loom_stream_t *h) {
  tls_t *t = tls_get(h);
  return t ? SSL_session_reused(t->ssl) : 0;
}

void *loom_tls_ssl(loom_stream_t *h) {
  tls_t *t = tls_get(h);
  return t ? t->ssl : NULL;
}

const char *loom_tls_last_error(loom_stream_t *h) {
  if (!h) return thread_err;
  tls_t *t = tls_get(h);
  return t ? t->err : thread_err;
}
