/* http_hello: an HTTP/1.1 "Hello, World!" server, written the
 * straightforward way: one task per connection reads each request head with
 * loom_read_until and answers it with one loom_write.
 *
 * It is the server of the benchmarks against nginx, Node.js and Go
 * (bench/realload/run.sh), and the shape a user would write first:
 *
 *     for (;;) {
 *         n = loom_read_until(s, "\r\n\r\n", 4, head, sizeof head);
 *         ... parse head ...
 *         loom_write(s, reply, len);
 *     }
 *
 * What it does of HTTP/1.1 (RFC 9112), and no more:
 * - keep-alive: a connection serves requests until the client closes it,
 *   sends "Connection: close", or speaks HTTP/1.0 without
 *   "Connection: keep-alive";
 * - pipelining: requests sent back to back are answered in order, since one
 *   task reads them one after the other;
 * - a request that arrives in pieces (even byte by byte) is simply waited
 *   for: loom_read_until returns only once the blank line has come;
 * - a bounded head: the stream's read limit is HEAD_MAX, so a head without
 *   its blank line within HEAD_MAX bytes gets 431 and a close, and a client
 *   cannot make the server buffer more;
 * - a malformed request (request line, header line, missing Host in
 *   HTTP/1.1, Transfer-Encoding, which it does not implement) gets 400 and a
 *   close: after a request it cannot parse, the server cannot know where
 *   the next one starts;
 * - a body announced by Content-Length (up to BODY_MAX) is read and
 *   discarded; HEAD gets the headers without the body.
 *
 * Usage:
 *     http_hello [PORT]      serve on 127.0.0.1:PORT (default 8080; 0 picks a
 *                            free port, printed) until Ctrl-C
 *     http_hello --selftest  serve on a free port, run clients that check
 *                            keep-alive, pipelining, a request split byte by
 *                            byte and bad requests, report, close
 *
 * Try it with `curl -v http://127.0.0.1:8080/`. Serving, it prints only
 * "serving on 127.0.0.1:PORT" (a line per request would be the benchmark's
 * bottleneck). The self-test's output:
 *
 *     serving on 127.0.0.1:41523 (self-test: 5 clients)
 *     keep-alive: 3 requests answered on one connection, then Connection: close honoured
 *     pipelining: 16 requests in one write answered in order
 *     split: 2 requests sent byte by byte answered
 *     bad request: 400 Bad Request, then the server closed
 *     oversized head: 431 Request Header Fields Too Large, then the server closed
 *     server: 5 connections, 24 requests answered (2 with an error)
 *     server closed
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <loom.h>

#include "common/http_selftest.h" /* GET, http_selftest_keep_alive, ... */
#include "common/selftest.h"      /* selftest_run, SELFTEST_PASS, ... */
#include "common/server_log.h"    /* serve_until_cancelled, main() */

#define DEFAULT_PORT 8080
#define HEAD_MAX 8192       /* request line and headers, blank line included */
#define HEAD_SMALL 1024     /* what most heads fit in (read_head) */
#define BODY_MAX (1u << 20) /* a larger Content-Length gets 413 */

#define HELLO "Hello, World!"
#define HELLO_HEADERS            \
  "HTTP/1.1 200 OK\r\n"          \
  "Content-Type: text/plain\r\n" \
  "Content-Length: 13\r\n"
/* The four answers to a good request: kept whole, so that each is one
 * loom_write of a constant. */
static const char ok_keep[] = HELLO_HEADERS "\r\n" HELLO;
static const char ok_close[] = HELLO_HEADERS "Connection: close\r\n\r\n" HELLO;
static const char head_keep[] = HELLO_HEADERS "\r\n";
static const char head_close[] = HELLO_HEADERS "Connection: close\r\n\r\n";

#define ERROR_REPLY(status, text)                                             \
  "HTTP/1.1 " status "\r\nContent-Type: text/plain\r\nContent-Length: " #text \
  "\r\nConnection: close\r\n\r\n"
static const char bad_request[] = ERROR_REPLY("400 Bad Request", 12) "Bad Request\n";
static const char too_large[] = ERROR_REPLY("413 Content Too Large",
                                            18) "Content Too Large\n";
static const char head_too_large[] = ERROR_REPLY("431 Request Header Fields Too Large",
                                                 32) "Request Header Fields Too Large\n";

/* The server's state, shared by its connection handlers (one thread: no
 * locks). */
typedef struct {
  int connections;
  int requests; /* answered, errors included */
  int errors;   /* answered 4xx */
} server_t;

/* ---- parsing ------------------------------------------------------------------------- */

/* What the server needs to know of one request. */
typedef struct {
  int head_only;         /* HEAD: no body in the answer */
  int keep_alive;        /* the connection goes on after the answer */
  size_t content_length; /* body bytes that follow the head */
  const char *error;     /* not NULL: the answer to send, then close */
} request_t;

/* RFC 9110's tchar: the characters of a method or a header name, letters,
 * digits and !#$%&'*+-.^_`|~, as a bitmap of the 128 ASCII characters (a
 * test per byte of every header name: a strchr there costs more than the
 * rest of the parse). */
static int is_tchar(char c) {
  static const uint32_t map[4] = {0x00000000, 0x03ff6cfa, 0xc7fffffe, 0x57ffffff};
  unsigned char u = (unsigned char)c;
  return u < 128 && (map[u >> 5] >> (u & 31) & 1);
}

/* 1 if the comma-separated list v (len bytes) holds the token tok, in any
 * case: "Connection: keep-alive, Upgrade". */
static int has_token(const char *v, size_t len, const char *tok) {
  size_t tlen = strlen(tok);
  size_t i = 0;
  while (i < len) {
    while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    size_t start = i;
    while (i < len && v[i] != ',') i++;
    size_t end = i;
    while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t')) end--;
    if (end - start == tlen && strncasecmp(v + start, tok, tlen) == 0) return 1;
  }
  return 0;
}

/* Parses the head in h (n bytes, ending in "\r\n\r\n", NUL-terminated).
 * Lines end in CRLF; a lone CR or LF anywhere is an error, as is anything
 * this server does not implement. */
static request_t parse_head(const char *h, size_t n) {
  request_t r = {.keep_alive = 1};
  const char *end = h + n - 2; /* the final CRLF: the blank line */
  const char *p = h;

  /* The request line: METHOD SP TARGET SP HTTP/1.x CRLF. */
  const char *m = p;
  while (p < end && is_tchar(*p)) p++;
  if (p == m || *p != ' ') goto bad;
  r.head_only = p - m == 4 && memcmp(m, "HEAD", 4) == 0;
  const char *t = ++p;
  while (p < end && (unsigned char)*p > ' ' && *p != 0x7f) p++;
  if (p == t || *p != ' ') goto bad;
  p++;
  if (end - p < 10 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') ||
      p[8] != '\r' || p[9] != '\n')
    goto bad;
  int http10 = p[7] == '0';
  p += 10;

  /* The header lines: NAME ":" OWS VALUE OWS CRLF. */
  int host = 0, keep_alive = 0, conn_close = 0, have_length = 0;
  while (p < end) {
    const char *name = p;
    while (p < end && is_tchar(*p)) p++;
    if (p == name || *p != ':') goto bad; /* no space before the colon */
    size_t nlen = (size_t)(p - name);
    p++;
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    const char *v = p;
    /* The value ends at its CR (memchr finds it many bytes at a time);
     * a lone LF before it, or a CR without its LF, is an error. */
    const char *cr = memchr(p, '\r', (size_t)(end - p));
    p = cr ? cr : end;
    if (memchr(v, '\n', (size_t)(p - v)) != NULL) goto bad;
    if (p >= end || p[1] != '\n') goto bad;
    const char *vend = p;
    while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t')) vend--;
    size_t vlen = (size_t)(vend - v);
    p += 2;

    if (nlen == 4 && strncasecmp(name, "host", 4) == 0) {
      host++;
    } else if (nlen == 10 && strncasecmp(name, "connection", 10) == 0) {
      conn_close |= has_token(v, vlen, "close");
      keep_alive |= has_token(v, vlen, "keep-alive");
    } else if (nlen == 17 && strncasecmp(name, "transfer-encoding", 17) == 0) {
      goto bad; /* chunked bodies are not implemented */
    } else if (nlen == 14 && strncasecmp(name, "content-length", 14) == 0) {
      /* Digits only; a second Content-Length is refused rather than
       * guessed at (request smuggling). */
      size_t len = 0;
      if (vlen == 0 || have_length) goto bad;
      for (size_t i = 0; i < vlen; i++) {
        if (v[i] < '0' || v[i] > '9') goto bad;
        len = len * 10 + (size_t)(v[i] - '0');
        if (len > BODY_MAX) {
          r.error = too_large;
          r.keep_alive = 0;
          return r;
        }
      }
      have_length = 1;
      r.content_length = len;
    }
  }
  if (!http10 && host != 1) goto bad; /* HTTP/1.1 requires exactly one Host */
  r.keep_alive = http10 ? keep_alive && !conn_close : !conn_close;
  return r;

bad:
  r.error = bad_request;
  r.keep_alive = 0;
  return r;
}

/* ---- the handler -------------------------------------------------------------------- */

/* Reads and drops n body bytes, into buf (cap bytes: the head's small
 * buffer, parsed already; a buffer of its own would make every
 * connection's task touch more stack). */
static int skip_body(loom_stream_t *s, size_t n, char *buf, size_t cap) {
  while (n > 0) {
    size_t k = n < cap ? n : cap;
    int rc = loom_read_exactly(s, buf, k, NULL);
    if (rc < 0) return rc;
    n -= k;
  }
  return 0;
}

/* Reads the next request head into small (HEAD_SMALL bytes), or, if it is
 * longer, into *big (HEAD_MAX + 1 bytes, malloc'd the first time a
 * connection needs it; the caller frees it): *head says which. Most heads
 * are a few hundred bytes, and a buffer of HEAD_MAX on every connection's
 * stack would make each idle connection hold a page more (nginx too reads
 * heads into 1 KiB first, client_header_buffer_size). */
static ssize_t read_head(loom_stream_t *s, char *small, char **big, char **head) {
  *head = small;
  ssize_t n = loom_read_until(s, "\r\n\r\n", 4, small, HEAD_SMALL);
  /* UV_ENOBUFS: the head does not fit small (it stays buffered), or has
   * no end within HEAD_MAX (the stream's limit): the second read says
   * which. */
  if (n != UV_ENOBUFS) return n;
  if (!*big && !(*big = malloc(HEAD_MAX + 1))) return UV_ENOMEM;
  *head = *big;
  return loom_read_until(s, "\r\n\r\n", 4, *big, HEAD_MAX + 1);
}

/* handle_http: runs in a task of its own for each connection, owns s. */
static int handle_http(loom_stream_t *s, void *arg) {
  server_t *srv = arg;
  srv->connections++;
  /* The read limit bounds what the stream buffers, and so how long a head
   * loom_read_until waits for: past HEAD_MAX bytes without a blank line it
   * returns UV_ENOBUFS. */
  int rc = loom_stream_set_limit(s, HEAD_MAX);
  char small[HEAD_SMALL], *big = NULL, *head;
  while (rc >= 0) {
    ssize_t n = read_head(s, small, &big, &head);
    request_t r;
    if (n == UV_ENOBUFS) {
      r = (request_t){.error = head_too_large};
    } else if (n < 0) {
      /* UV_EOF: the client is done (or gave up mid-head: nothing to
       * answer). Anything else is the connection's error. */
      rc = n == UV_EOF ? 0 : (int)n;
      break;
    } else {
      r = parse_head(head, (size_t)n);
    }
    if (!r.error && r.content_length > 0) {
      rc = skip_body(s, r.content_length, small, sizeof small);
      if (rc < 0) break;
    }

    const char *reply;
    if (r.error)
      reply = r.error;
    else if (r.head_only)
      reply = r.keep_alive ? head_keep : head_close;
    else
      reply = r.keep_alive ? ok_keep : ok_close;
    /* One write per answer: the straightforward way. */
    rc = loom_write(s, reply, strlen(reply));
    srv->requests++;
    if (r.error) srv->errors++;
    if (!r.keep_alive) break;
  }
  free(big);
  /* What was written is sent before the close. */
  loom_close(s);
  /* A reset by a client, or the server closing: the connection's error,
   * not the server's. */
  return rc == UV_ECONNRESET || rc == UV_EPIPE || rc == UV_ECANCELED ? 0 : rc;
}

/* ---- serving ------------------------------------------------------------------------- */

static int serve(int port) {
  server_t srv = {0};
  return serve_until_cancelled("http_hello", "serving", port, handle_http, &srv);
}

/* ---- the self-test ---------------------------------------------------------------- */

/* The clients' checks (common/selftest.h runs them): each takes the
 * connection it is given, and says what it saw in c->outcome. */
typedef selftest_client_t client_t;

/* Three requests, each answered while the connection stays open, then one
 * with Connection: close, after which the server closes. */
static int check_keep_alive(client_t *c, loom_stream_t *s) {
  if (!http_selftest_keep_alive(c, s, ok_keep, ok_close)) return 0;
  return SELFTEST_PASS(
      c, "3 requests answered on one connection, then Connection: close honoured");
}

/* Sixteen requests in one write: fourteen GETs, a HEAD in the middle and a
 * GET with Connection: close last, so that answers out of order would show. */
static int check_pipelining(client_t *c, loom_stream_t *s) {
  char req[2048], want[2048];
  size_t rlen = 0, wlen = 0;
  for (int i = 0; i < 16; i++) {
    const char *q = i == 15  ? GET_CLOSE("/last")
                    : i == 7 ? "HEAD /h HTTP/1.1\r\nHost: localhost\r\n\r\n"
                             : GET("/p");
    const char *a = i == 15 ? ok_close : i == 7 ? head_keep : ok_keep;
    rlen = http_selftest_append(req, rlen, q);
    wlen = http_selftest_append(want, wlen, a);
  }
  if (!selftest_exchange_to_close(c, s, req, want)) return 0;
  return SELFTEST_PASS(c, "16 requests in one write answered in order");
}

/* Two requests sent byte by byte, so that the server's reads see the heads
 * in pieces. */
static int check_split(client_t *c, loom_stream_t *s) {
  if (!http_selftest_split(c, s, ok_keep, ok_close)) return 0;
  return SELFTEST_PASS(c, "2 requests sent byte by byte answered");
}

static int check_bad(client_t *c, loom_stream_t *s) {
  if (!selftest_exchange_to_close(c, s, "NOT HTTP\r\n\r\n", bad_request)) return 0;
  return SELFTEST_PASS(c, "400 Bad Request, then the server closed");
}

/* A head of exactly HEAD_MAX bytes that never ends: the server has read
 * every byte when it answers, so its close sends no reset. */
static int check_oversized(client_t *c, loom_stream_t *s) {
  char *req = malloc(HEAD_MAX + 1);
  if (!req) return 0;
  memset(req, 'a', HEAD_MAX);
  memcpy(req, "GET / HTTP/1.1\r\nX-Long: ", 24);
  req[HEAD_MAX] = 0;
  int ok = selftest_exchange_to_close(c, s, req, head_too_large);
  free(req);
  return ok &&
         SELFTEST_PASS(c, "431 Request Header Fields Too Large, then the server closed");
}

static void print_server(void *arg) {
  const server_t *srv = arg;
  printf("server: %d connections, %d requests answered (%d with an error)\n",
         srv->connections, srv->requests, srv->errors);
}

static int selftest(void) {
  server_t srv = {0};
  client_t clients[] = {
      {.name = "keep-alive", .check = check_keep_alive},
      {.name = "pipelining", .check = check_pipelining},
      {.name = "split", .check = check_split},
      {.name = "bad request", .check = check_bad},
      {.name = "oversized head", .check = check_oversized},
  };
  return selftest_run("http_hello", handle_http, &srv, clients,
                      (int)(sizeof clients / sizeof clients[0]), print_server);
}

/* ---- main -------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  return server_example_main("http_hello", argc, argv, DEFAULT_PORT,
                             "check keep-alive, pipelining, split and bad requests",
                             serve, selftest);
}
