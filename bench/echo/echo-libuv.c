/* echo-libuv: the callback-style libuv echo server of the echo benchmark,
 * written as a careful C programmer would:
 *
 * - one buffer per connection, inside the connection's own struct: alloc_cb
 *   hands it out, so reading never allocates;
 * - uv_try_write of what was read, straight from that buffer;
 * - if the kernel does not take it all, reading pauses and the rest goes
 *   out with uv_write from the same buffer (no copy, no allocation); reading
 *   resumes from the write callback;
 * - close on EOF or error.
 *
 *   echo-libuv [PORT]     (0 or nothing: any free port)
 *
 * Listens on 127.0.0.1 and prints the port on the first line of stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "../uv-server.h"

#define BUF_SIZE (64 * 1024)

typedef struct {
  uv_tcp_t tcp; /* first: the handle's address is the connection's */
  uv_write_t wreq;
  char buf[BUF_SIZE];
} conn_t;

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  conn_t *c = (conn_t *)h;
  (void)hint;
  *buf = uv_buf_init(c->buf, sizeof(c->buf));
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void write_cb(uv_write_t *req, int status) {
  conn_t *c = req->data;
  if (status < 0) {
    uv_close((uv_handle_t *)&c->tcp, uvs_on_close);
    return;
  }
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = (conn_t *)st;
  if (uvs_read_none(st, nread)) return;
  uvs_send(st, &c->wreq, uv_buf_init(buf->base, (unsigned)nread), write_cb);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  conn_t *c = uvs_accept(server, sizeof(*c));
  if (c) uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

int main(int argc, char **argv) {
  uv_tcp_t server;
  int port = uvs_listen(&server, "echo-libuv", argc > 1 ? atoi(argv[1]) : 0,
                        on_connection);
  printf("%d\n", port);
  fflush(stdout);
  return uv_run(uvs_loop, UV_RUN_DEFAULT);
}
