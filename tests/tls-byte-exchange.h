/* A TLS exchange through the byte-by-byte proxy (byte-proxy.h): a client
 * task connects through the proxy and sends "byte\n"; the server, a
 * handshake on a plain accepted stream, echoes it back. Each side's
 * handshake thus sees its peer's flights a byte at a time and parks once
 * per byte. test-tls.c checks the whole exchange; the TLS handshake sweep
 * of test-io-sweep.c interrupts one side's handshake at each of those
 * parks, through the handshake and on_byte hooks.
 *
 * Fill in the contexts (and the hooks), call tls_byte_exchange from a
 * task, read the results. */
#ifndef LOOM_TESTS_TLS_BYTE_EXCHANGE_H
#define LOOM_TESTS_TLS_BYTE_EXCHANGE_H

#include "byte-proxy.h"
#include "loom.h"
#include "loom/tls.h"

typedef struct tls_byte_exchange tls_byte_exchange_t;
struct tls_byte_exchange {
  loom_tls_ctx_t *sctx, *cctx;
  /* Each side's handshake: the client's connects *s to 127.0.0.1:port,
   * the server's starts TLS on *s. NULL: tls_byte_handshake. */
  int (*handshake)(tls_byte_exchange_t *x, int is_client, loom_stream_t **s, int port);
  byte_proxy_t px; /* px.on_byte and px.arg may be set */
  void *arg;       /* for the hooks */
  /* out */
  int rc_client, rc_server; /* each side's handshake */
  int rc_line;              /* the client's read of the echo */
  int handled;              /* server handlers past their handshake */
  char line[32];            /* what came back */
  int port;                 /* the proxy's */
};

/* The plain handshakes, the client verifying "localhost". */
static inline int tls_byte_handshake(tls_byte_exchange_t *x, int is_client,
                                     loom_stream_t **s, int port) {
  return is_client ? loom_tls_connect(s, "127.0.0.1", port, x->cctx, "localhost")
                   : loom_tls_start(*s, x->sctx, 1, NULL);
}

static inline int tls_byte_shake(tls_byte_exchange_t *x, int is_client, loom_stream_t **s,
                                 int port) {
  return (x->handshake ? x->handshake : tls_byte_handshake)(x, is_client, s, port);
}

static inline int tls_byte_client(void *arg) {
  tls_byte_exchange_t *x = arg;
  loom_stream_t *s = NULL;
  x->rc_client = tls_byte_shake(x, 1, &s, x->port);
  if (x->rc_client == 0) {
    loom_write(s, "byte\n", 5);
    x->rc_line = (int)loom_read_line(s, x->line, sizeof(x->line));
    loom_close(s);
  }
  return 0;
}

static inline int tls_byte_server(loom_stream_t *s, void *arg) {
  tls_byte_exchange_t *x = arg;
  x->rc_server = tls_byte_shake(x, 0, &s, 0);
  if (x->rc_server == 0) {
    x->handled++;
    char line[32];
    ssize_t n = loom_read_line(s, line, sizeof(line));
    if (n > 0) loom_write(s, line, (size_t)n);
  }
  loom_close(s);
  return 0;
}

/* The server, the proxy in front of it, and the client, joined; both
 * servers closed. 0, or the error that kept the server from starting. */
static inline int tls_byte_exchange(tls_byte_exchange_t *x) {
  loom_server_t *srv, *prx;
  int rc = loom_serve(&srv, "127.0.0.1", 0, tls_byte_server, x, NULL);
  if (rc) return rc;
  x->px.upstream = loom_server_port(srv);
  if (loom_serve(&prx, "127.0.0.1", 0, byte_proxy_handler, &x->px, NULL) == 0) {
    x->port = loom_server_port(prx);
    loom_task_t *t;
    if (loom_spawn(&t, tls_byte_client, x) == 0) loom_join(t, NULL);
    loom_server_close(prx, 1000);
  }
  loom_server_close(srv, 1000);
  return 0;
}

#endif
