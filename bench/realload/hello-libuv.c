/* hello-libuv: the callback-style libuv HTTP/1.1 "Hello, World!" server of
 * the real-load benchmark (bench/realload/run.sh), written as a careful C
 * programmer would, the peer that examples/http_hello.c is measured against:
 *
 * - one input buffer per connection, inside the connection's own struct:
 *   alloc_cb hands out its free tail, so reading never allocates, and a
 *   head that arrives in pieces simply stays there until its blank line
 *   comes;
 * - every complete request head in what was read is answered into one
 *   output buffer, and the answers go out with one uv_try_write: pipelined
 *   requests cost one system call per read, not one per request (the
 *   batching by hand that a straightforward loom handler does not do);
 * - if the kernel does not take it all, reading pauses and the rest goes
 *   out with uv_write from the same buffer; reading resumes from the write
 *   callback;
 * - keep-alive unless "Connection: close" (or HTTP/1.0 without
 *   keep-alive); a malformed request line gets 400 and a close, a head over
 *   IN_MAX bytes 431 and a close.
 *
 *   hello-libuv [PORT]     (0 or nothing: any free port)
 *
 * Listens on 127.0.0.1 and prints "serving on 127.0.0.1:PORT".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "../uv-server.h"

#define IN_MAX 8192
/* Every request is at least 18 bytes ("GET / HTTP/1.0\r\n\r\n") and every
 * answer at most 160: the answers to one buffer of requests always fit. */
#define OUT_MAX (IN_MAX / 18 * 160)

#define HELLO_HEADERS \
  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
static const char ok_keep[] = HELLO_HEADERS "\r\nHello, World!";
static const char ok_close[] = HELLO_HEADERS "Connection: close\r\n\r\nHello, World!";
static const char bad_request[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n"
    "Connection: close\r\n\r\nBad Request\n";
static const char too_large[] =
    "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
    "Connection: close\r\n\r\n";

typedef struct {
  uv_tcp_t tcp; /* first: the handle's address is the connection's */
  uv_write_t wreq;
  int close_after; /* close once the answers are out */
  size_t inlen, outlen;
  char in[IN_MAX];
  char out[OUT_MAX];
} conn_t;

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  conn_t *c = (conn_t *)h;
  (void)hint;
  *buf = uv_buf_init(c->in + c->inlen, (unsigned)(IN_MAX - c->inlen));
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void write_cb(uv_write_t *req, int status) {
  conn_t *c = req->data;
  if (status < 0 || c->close_after) {
    uv_close((uv_handle_t *)&c->tcp, uvs_on_close);
    return;
  }
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

static int is_tchar(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* The answer to the head h[0..n) (ending in "\r\n\r\n"); sets *closep. */
static const char *answer(const char *h, size_t n, int *closep) {
  const char *p = h, *end = h + n - 2;
  while (p < end && is_tchar(*p)) p++;
  if (p == h || *p++ != ' ') goto bad;
  const char *t = p;
  while (p < end && (unsigned char)*p > ' ') p++;
  if (p == t || *p++ != ' ') goto bad;
  if (end - p < 10 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') ||
      p[8] != '\r' || p[9] != '\n')
    goto bad;
  int http10 = p[7] == '0', close_tok = 0, keep_tok = 0;
  for (p += 10; p < end;) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) goto bad;
    if ((size_t)(eol - p) > 11 && strncasecmp(p, "connection:", 11) == 0) {
      for (const char *q = p + 11; q + 5 <= eol; q++) {
        if (strncasecmp(q, "close", 5) == 0) close_tok = 1;
        if (q + 10 <= eol && strncasecmp(q, "keep-alive", 10) == 0) keep_tok = 1;
      }
    }
    p = eol + 1;
  }
  *closep = http10 ? !keep_tok || close_tok : close_tok;
  return *closep ? ok_close : ok_keep;
bad:
  *closep = 1;
  return bad_request;
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = (conn_t *)st;
  (void)buf;
  if (uvs_read_none(st, nread)) return;
  c->inlen += (size_t)nread;
  size_t at = 0;
  c->outlen = 0;
  while (!c->close_after) {
    const char *h = c->in + at;
    const char *e = NULL;
    for (size_t i = 0; i + 4 <= c->inlen - at; i++)
      if (h[i] == '\r' && memcmp(h + i, "\r\n\r\n", 4) == 0) {
        e = h + i + 4;
        break;
      }
    if (!e) break;
    const char *a = answer(h, (size_t)(e - h), &c->close_after);
    size_t alen = strlen(a);
    memcpy(c->out + c->outlen, a, alen);
    c->outlen += alen;
    at = (size_t)(e - c->in);
  }
  memmove(c->in, c->in + at, c->inlen - at);
  c->inlen -= at;
  if (!c->close_after && c->inlen == IN_MAX) {
    memcpy(c->out + c->outlen, too_large, strlen(too_large));
    c->outlen += strlen(too_large);
    c->close_after = 1;
  }
  if (c->outlen == 0) return;

  if (uvs_send(st, &c->wreq, uv_buf_init(c->out, (unsigned)c->outlen), write_cb) &&
      c->close_after)
    uv_close((uv_handle_t *)st, uvs_on_close);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  conn_t *c = uvs_accept(server, sizeof(*c));
  if (!c) return;
  c->inlen = c->outlen = 0;
  c->close_after = 0;
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

int main(int argc, char **argv) {
  uv_tcp_t server;
  int port = uvs_listen(&server, "hello-libuv", argc > 1 ? atoi(argv[1]) : 0,
                        on_connection);
  printf("serving on 127.0.0.1:%d\n", port);
  fflush(stdout);
  return uv_run(uvs_loop, UV_RUN_DEFAULT);
}
