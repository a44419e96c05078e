/* What the callback-style libuv servers of the benchmarks share
 * (bench/echo/echo-libuv.c, bench/realload/hello-libuv.c): listening on
 * 127.0.0.1, accepting a connection into the program's own struct, the
 * end of a read (EOF, error), sending a buffer with uv_try_write and the
 * rest with uv_write, and freeing a connection once closed. Each server
 * keeps its own buffers, alloc and read callbacks: those are what it is
 * measured by.
 *
 * A connection struct starts with its uv_tcp_t, so the handle's address is
 * the connection's (uvs_on_close frees it through the handle).
 */
#ifndef LOOM_BENCH_UV_SERVER_H
#define LOOM_BENCH_UV_SERVER_H

#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

static uv_loop_t *uvs_loop;

static void uvs_on_close(uv_handle_t *h) { free(h); }

/* Accepts a connection on server into a malloc'd struct of size bytes
 * (uninitialised but for its leading uv_tcp_t), with TCP_NODELAY. NULL if
 * the accept failed; the caller initialises its fields and starts
 * reading. */
static inline void *uvs_accept(uv_stream_t *server, size_t size) {
  uv_tcp_t *c = malloc(size);
  if (!c) return NULL;
  uv_tcp_init(uvs_loop, c);
  if (uv_accept(server, (uv_stream_t *)c) < 0) {
    uv_close((uv_handle_t *)c, uvs_on_close);
    return NULL;
  }
  uv_tcp_nodelay(c, 1);
  return c;
}

/* Listens on 127.0.0.1:port (0: any free port) with on_connection, on the
 * default loop (uvs_loop). Returns the port bound, or exits with a message
 * naming prog. */
static inline int uvs_listen(uv_tcp_t *server, const char *prog, int port,
                             uv_connection_cb on_connection) {
  uvs_loop = uv_default_loop();
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_tcp_init(uvs_loop, server);
  int rc = uv_tcp_bind(server, (const struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)server, 1024, on_connection);
  if (rc < 0) {
    fprintf(stderr, "%s: listen: %s\n", prog, uv_strerror(rc));
    exit(1);
  }
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  uv_tcp_getsockname(server, (struct sockaddr *)&ss, &len);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* In a read callback: whether nread ends the read with nothing to handle,
 * 0 (EAGAIN) or negative (EOF or error: the connection is closed). */
static inline int uvs_read_none(uv_stream_t *st, ssize_t nread) {
  if (nread == 0) return 1; /* EAGAIN */
  if (nread < 0) {          /* EOF or error */
    uv_close((uv_handle_t *)st, uvs_on_close);
    return 1;
  }
  return 0;
}

/* Sends out with uv_try_write; if the kernel does not take it all, the
 * rest goes out with uv_write through wreq from the same buffer (no copy,
 * no allocation) and reading stops meanwhile: the buffer holds the rest
 * until it is written, so nothing may be read (or answered) into it.
 * write_cb resumes reading. On an error the connection is closed. Returns
 * 1 when all of out was written at once, else 0. */
static inline int uvs_send(uv_stream_t *st, uv_write_t *wreq, uv_buf_t out,
                           uv_write_cb write_cb) {
  int n = uv_try_write(st, &out, 1);
  if (n >= 0 && (size_t)n == out.len) return 1;
  if (n < 0 && n != UV_EAGAIN) {
    uv_close((uv_handle_t *)st, uvs_on_close);
    return 0;
  }
  if (n > 0) {
    out.base += n;
    out.len -= (unsigned)n;
  }
  uv_read_stop(st);
  wreq->data = st;
  if (uv_write(wreq, st, &out, 1, write_cb) < 0)
    uv_close((uv_handle_t *)st, uvs_on_close);
  return 0;
}

#endif
