/* A TCP proxy that forwards one byte per write, each drained (so each byte
 * is its own segment): the peers on either side see each other's flights a
 * byte at a time, and a TLS handshake parks once per byte. test-tls.c runs
 * a whole handshake through it; the TLS handshake sweep of test-io-sweep.c
 * interrupts one side after a given byte, through on_byte.
 *
 * Serve byte_proxy_handler with a byte_proxy_t as its argument (loom_serve):
 * each client it accepts is connected to 127.0.0.1:upstream. */
#ifndef LOOM_TESTS_BYTE_PROXY_H
#define LOOM_TESTS_BYTE_PROXY_H

#include <stddef.h>

#include "loom.h"

typedef struct byte_proxy byte_proxy_t;
struct byte_proxy {
  int upstream;                /* the server's port */
  size_t to_client, to_server; /* bytes forwarded each way */
  /* Called after each byte forwarded, with that direction's count so far;
   * it may suspend, and that direction forwards nothing meanwhile. NULL:
   * nothing to do. */
  void (*on_byte)(byte_proxy_t *px, int towards_client, size_t n);
  void *arg; /* for on_byte */
};

/* One direction of one connection. */
typedef struct {
  byte_proxy_t *px;
  loom_stream_t *from, *to;
  int towards_client;
} byte_pipe_t;

/* Forwards until from ends or to fails, then passes the end on. */
static inline int byte_proxy_pump(void *arg) {
  byte_pipe_t *p = arg;
  char b;
  while (loom_read(p->from, &b, 1) == 1) {
    size_t *n = p->towards_client ? &p->px->to_client : &p->px->to_server;
    if (loom_write(p->to, &b, 1) || loom_drain(p->to)) break;
    ++*n;
    if (p->px->on_byte) p->px->on_byte(p->px, p->towards_client, *n);
  }
  loom_shutdown_write(p->to);
  return 0;
}

/* A loom_serve handler (arg: the byte_proxy_t): towards the server in a
 * task of its own, towards the client in the handler's. */
static inline int byte_proxy_handler(loom_stream_t *s, void *arg) {
  byte_proxy_t *px = arg;
  loom_stream_t *up;
  if (loom_tcp_connect(&up, "127.0.0.1", px->upstream) == 0) {
    byte_pipe_t a = {px, s, up, 0}, b = {px, up, s, 1};
    loom_task_t *ta;
    if (loom_spawn(&ta, byte_proxy_pump, &a) == 0) {
      byte_proxy_pump(&b);
      loom_join(ta, NULL);
    }
    loom_close(up);
  }
  loom_close(s);
  return 0;
}

#endif
