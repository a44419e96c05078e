/* https_hello: an HTTPS "Hello, World!" server, written the straightforward
 * way: one task per connection reads each request head with
 * loom_read_until and answers it with one loom_write, over TLS.
 *
 * It is the server of the TLS benchmarks against nginx (bench/tls/run.sh),
 * and differs from a plain HTTP server only in how it listens, as asyncio's
 * start_server(..., ssl=ctx) does: a TLS context made once from the
 * certificate and key (loom_tls_ctx_new), and loom_tls_serve instead of
 * loom_serve. Each connection's handshake is done (within a timeout)
 * before the handler runs; the handler reads and writes the plaintext with
 * the very calls a plain server uses, and loom_close sends TLS's
 * close_notify. Clients whose handshake fails (a plain-text client, one
 * that does not trust the certificate) are dropped without running it.
 *
 * Of HTTP/1.1 it does what http_hello.c does, in fewer lines: keep-alive
 * until the client closes, sends "Connection: close" or speaks HTTP/1.0
 * without "Connection: keep-alive"; pipelined requests answered in order;
 * a head that arrives in pieces waited for; a head longer than HEAD_MAX
 * answered 431, a malformed request (or a body: Content-Length other than
 * 0, Transfer-Encoding) 400, each followed by a close.
 *
 * Usage:
 *     https_hello CERT KEY [PORT]      serve on 127.0.0.1:PORT (default 8443;
 *                                      0 picks a free port, printed) until
 *                                      Ctrl-C
 *     https_hello --selftest CERT KEY CA
 *                                      serve on a free port, run TLS clients
 *                                      that trust CA (and two that fail),
 *                                      report, close
 *
 * Try it with `curl --cacert ca.pem https://localhost:8443/`. Serving, it
 * prints only "serving on 127.0.0.1:PORT". The self-test's output:
 *
 *     serving on 127.0.0.1:41523 (self-test: 6 clients)
 *     keep-alive: TLSv1.3; 3 requests answered on one connection, then Connection: close honoured
 *     pipelining: 8 requests in one write answered in order
 *     split: 2 requests sent byte by byte answered
 *     bad request: 400 Bad Request, then the server closed
 *     unknown CA: the client refused the server: certificate verify failed (...)
 *     plain text: no HTTP answer to a request without TLS, connection closed
 *     server: 4 connections, 15 requests answered (1 with an error)
 *     server closed
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <loom.h>
#include <loom/tls.h>

#include "common/http_selftest.h" /* GET, http_selftest_keep_alive, ... */
#include "common/selftest.h"      /* selftest_run_on, SELFTEST_PASS, ... */

#define DEFAULT_PORT 8443
#define HEAD_MAX 4096 /* request line and headers, blank line included */

#define HELLO_HEADERS            \
  "HTTP/1.1 200 OK\r\n"          \
  "Content-Type: text/plain\r\n" \
  "Content-Length: 13\r\n"
static const char ok_keep[] = HELLO_HEADERS "\r\nHello, World!";
static const char ok_close[] = HELLO_HEADERS "Connection: close\r\n\r\nHello, World!";
static const char bad_request[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
static const char too_large[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                "Content-Length: 0\r\nConnection: close\r\n\r\n";

typedef struct {
  int connections; /* handshakes completed: handlers run */
  int requests;    /* answered, errors included */
  int errors;      /* answered 4xx */
} server_t;

/* ---- the handler -------------------------------------------------------------- */

/* 1 if the header line [p, end) is `name: value` with value holding tok
 * (one token of a comma-separated list, in any case). */
static int header_has(const char *p, const char *end, const char *name, const char *tok) {
  size_t nlen = strlen(name), tlen = strlen(tok);
  if ((size_t)(end - p) <= nlen || strncasecmp(p, name, nlen) != 0 || p[nlen] != ':')
    return 0;
  for (p += nlen + 1; p < end;) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) p++;
    const char *t = p;
    while (p < end && *p != ',' && *p != ' ' && *p != '\t') p++;
    if ((size_t)(p - t) == tlen && strncasecmp(t, tok, tlen) == 0) return 1;
  }
  return 0;
}

/* The first CRLF in [p, end): the head has one at least, its last two
 * bytes (memchr, not strstr: a NUL byte in a head must not hide it). */
static const char *find_crlf(const char *p, const char *end) {
  for (;;) {
    const char *cr = memchr(p, '\r', (size_t)(end - p));
    if (cr[1] == '\n') return cr;
    p = cr + 1;
  }
}

/* The answer to the head h (n bytes, ending in "\r\n\r\n"), and whether
 * the connection goes on after it (*keep). */
static const char *answer(const char *h, size_t n, int *keep) {
  const char *end = h + n - 2; /* the blank line's CRLF */
  const char *eol = find_crlf(h, end + 2);
  /* METHOD SP TARGET SP HTTP/1.x: two spaces, then the version. */
  const char *sp1 = memchr(h, ' ', (size_t)(eol - h));
  const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
  *keep = 0;
  if (!sp1 || sp1 == h || !sp2 || sp2 == sp1 + 1 || eol - sp2 != 9 ||
      strncmp(sp2 + 1, "HTTP/1.", 7) != 0 || (sp2[8] != '0' && sp2[8] != '1'))
    return bad_request;
  int http10 = sp2[8] == '0', conn_close = 0, conn_keep = 0;
  for (const char *p = eol + 2; p < end; p = eol + 2) {
    eol = find_crlf(p, end + 2);
    if (header_has(p, eol, "connection", "close")) conn_close = 1;
    if (header_has(p, eol, "connection", "keep-alive")) conn_keep = 1;
    /* No bodies here: a request with one cannot be answered without
     * reading it, and this server does not. */
    if (header_has(p, eol, "transfer-encoding", "chunked") ||
        (strncasecmp(p, "content-length:", 15) == 0 &&
         !header_has(p, eol, "content-length", "0")))
      return bad_request;
  }
  *keep = http10 ? conn_keep && !conn_close : !conn_close;
  return *keep ? ok_keep : ok_close;
}

/* handle_https: runs in a task of its own for each connection once its
 * handshake is done, owns s, which reads and writes plaintext. */
static int handle_https(loom_stream_t *s, void *arg) {
  server_t *srv = arg;
  srv->connections++;
  /* The read limit bounds how much a head may buffer: past HEAD_MAX bytes
   * without a blank line, loom_read_until returns UV_ENOBUFS. */
  int rc = loom_stream_set_limit(s, HEAD_MAX);
  char head[HEAD_MAX + 1];
  int keep = 1;
  while (rc >= 0 && keep) {
    ssize_t n = loom_read_until(s, "\r\n\r\n", 4, head, sizeof head);
    const char *reply;
    if (n == UV_ENOBUFS) {
      reply = too_large;
      keep = 0;
    } else if (n < 0) {
      /* UV_EOF: the client is done (close_notify). Anything else is the
       * connection's error. */
      rc = n == UV_EOF ? 0 : (int)n;
      break;
    } else {
      reply = answer(head, (size_t)n, &keep);
    }
    /* One write per answer: one TLS record. */
    rc = loom_write(s, reply, strlen(reply));
    srv->requests++;
    srv->errors += reply == bad_request || reply == too_large;
  }
  /* close_notify and what was written go out before the TCP close. */
  loom_close(s);
  /* A client gone without close_notify (LOOM_ETLSTRUNC), a reset, the
   * server closing: the connection's business, not the server's. */
  (void)rc;
  return 0;
}

/* ---- serving ----------------------------------------------------------------------- */

static const char *cert_file, *key_file, *ca_file;
static int port = DEFAULT_PORT;

/* A server context from the certificate and key; says why on failure. */
static int server_ctx(loom_tls_ctx_t **ctx) {
  loom_tls_opts_t opts = {.cert_file = cert_file, .key_file = key_file};
  int rc = loom_tls_ctx_new(ctx, 1, &opts);
  if (rc < 0)
    fprintf(stderr, "https_hello: %s: %s\n", loom_strerror(rc),
            loom_tls_last_error(NULL));
  return rc;
}

static int serve(void) {
  loom_tls_ctx_t *ctx;
  int rc = server_ctx(&ctx);
  if (rc < 0) return rc;
  server_t srv = {0};
  loom_server_t *server;
  rc = loom_tls_serve(&server, "127.0.0.1", port, ctx, handle_https, &srv, NULL);
  if (rc < 0) {
    fprintf(stderr, "https_hello: cannot serve on 127.0.0.1:%d: %s\n", port,
            loom_strerror(rc));
    loom_tls_ctx_free(ctx);
    return rc;
  }
  printf("serving on 127.0.0.1:%d\n", loom_server_port(server));
  fflush(stdout);
  /* Until Ctrl-C, which cancels this task: the server then closes, and
   * its handlers end before the context goes. */
  rc = loom_server_serve_forever(server);
  printf("server closed\n");
  loom_tls_ctx_free(ctx);
  return rc == UV_ECANCELED ? 0 : rc;
}

/* ---- the self-test ---------------------------------------------------------------- */

typedef selftest_client_t client_t;
static loom_tls_ctx_t *trusting;   /* clients that trust CA */
static loom_tls_ctx_t *untrusting; /* the system's store only */

/* The client's handshake on s, verifying the server against CA. */
static int start_tls(client_t *c, loom_stream_t *s) {
  int rc = loom_tls_start(s, trusting, 0, "localhost");
  if (rc < 0)
    return SELFTEST_FAIL(c, "handshake: %s (%s)", loom_strerror(rc),
                         loom_tls_last_error(s));
  return 1;
}

static int check_keep_alive(client_t *c, loom_stream_t *s) {
  if (!start_tls(c, s) || !http_selftest_keep_alive(c, s, ok_keep, ok_close)) return 0;
  return SELFTEST_PASS(
      c, "%s; 3 requests answered on one connection, then Connection: close honoured",
      loom_tls_version(s));
}

static int check_pipelining(client_t *c, loom_stream_t *s) {
  if (!start_tls(c, s)) return 0;
  char req[1024], want[1024];
  size_t rlen = 0, wlen = 0;
  for (int i = 0; i < 8; i++) {
    const char *q = i == 7 ? GET_CLOSE("/last") : GET("/p");
    const char *a = i == 7 ? ok_close : ok_keep;
    rlen = http_selftest_append(req, rlen, q);
    wlen = http_selftest_append(want, wlen, a);
  }
  if (!selftest_exchange_to_close(c, s, req, want)) return 0;
  return SELFTEST_PASS(c, "8 requests in one write answered in order");
}

/* Two requests sent byte by byte: each byte its own TLS record, so the
 * server's reads see the heads in pieces. */
static int check_split(client_t *c, loom_stream_t *s) {
  if (!start_tls(c, s) || !http_selftest_split(c, s, ok_keep, ok_close)) return 0;
  return SELFTEST_PASS(c, "2 requests sent byte by byte answered");
}

static int check_bad(client_t *c, loom_stream_t *s) {
  if (!start_tls(c, s)) return 0;
  if (!selftest_exchange_to_close(c, s, "NOT HTTP\r\n\r\n", bad_request)) return 0;
  return SELFTEST_PASS(c, "400 Bad Request, then the server closed");
}

/* A client that verifies against the system's store only: it must refuse
 * the test CA's certificate, and say why. */
static int check_unknown_ca(client_t *c, loom_stream_t *s) {
  int rc = loom_tls_start(s, untrusting, 0, "localhost");
  if (rc != LOOM_ETLSVERIFY)
    return SELFTEST_FAIL(c, "handshake: %s, not a verification failure",
                         loom_strerror(rc));
  return SELFTEST_PASS(c, "the client refused the server: %s (%s)", loom_strerror(rc),
                       loom_tls_last_error(s));
}

/* A request in plain text: no TLS, so no answer, and the server closes. */
static int check_plain(client_t *c, loom_stream_t *s) {
  int rc = loom_write(s, GET("/"), strlen(GET("/")));
  char *got = NULL;
  size_t len = 0;
  if (rc >= 0) rc = loom_read_all(s, &got, &len, 64 * 1024);
  int answered = got && len >= 5 && memcmp(got, "HTTP/", 5) == 0;
  free(got);
  /* An alert then the close (rc 0), or a reset: either way, closed. */
  if (answered || (rc < 0 && rc != UV_ECONNRESET))
    return SELFTEST_FAIL(c, "%s",
                         answered ? "answered in plain text" : loom_strerror(rc));
  return SELFTEST_PASS(c, "no HTTP answer to a request without TLS, connection closed");
}

static void print_server(void *arg) {
  const server_t *srv = arg;
  printf("server: %d connections, %d requests answered (%d with an error)\n",
         srv->connections, srv->requests, srv->errors);
}

static int selftest(void) {
  loom_tls_opts_t trust = {.ca_file = ca_file};
  loom_tls_ctx_t *ctx = NULL;
  int rc = server_ctx(&ctx);
  if (rc >= 0) rc = loom_tls_ctx_new(&trusting, 0, &trust);
  if (rc >= 0) rc = loom_tls_ctx_new(&untrusting, 0, NULL);
  server_t srv = {0};
  loom_server_t *server = NULL;
  if (rc >= 0)
    rc = loom_tls_serve(&server, "127.0.0.1", 0, ctx, handle_https, &srv, NULL);
  if (rc >= 0) {
    /* The clients at once, each on its own connection (common/selftest.h's
     * runner, over loom_tls_serve). */
    client_t clients[] = {
        {.name = "keep-alive", .check = check_keep_alive},
        {.name = "pipelining", .check = check_pipelining},
        {.name = "split", .check = check_split},
        {.name = "bad request", .check = check_bad},
        {.name = "unknown CA", .check = check_unknown_ca},
        {.name = "plain text", .check = check_plain},
    };
    rc = selftest_run_on("https_hello", server, clients,
                         (int)(sizeof clients / sizeof clients[0]), print_server, &srv);
  } else
    fprintf(stderr, "https_hello: %s %s\n", loom_strerror(rc), loom_tls_last_error(NULL));
  /* After the server: its handlers used the context. */
  if (untrusting) loom_tls_ctx_free(untrusting);
  if (trusting) loom_tls_ctx_free(trusting);
  if (ctx) loom_tls_ctx_free(ctx);
  return rc;
}

/* ---- main -------------------------------------------------------------------------- */

static int main_task(void *arg) { return arg ? selftest() : serve(); }

int main(int argc, char **argv) {
  int test = argc == 5 && strcmp(argv[1], "--selftest") == 0;
  if (!test && (argc < 3 || argc > 4)) {
    fprintf(stderr, "usage: https_hello CERT KEY [PORT]\n"
                    "       https_hello --selftest CERT KEY CA\n");
    return 2;
  }
  cert_file = argv[1 + test];
  key_file = argv[2 + test];
  if (test) ca_file = argv[4];
  if (argc == 4) {
    char *end;
    long p = strtol(argv[3], &end, 10);
    if (*end || p < 0 || p > 65535) {
      fprintf(stderr, "https_hello: bad port '%s'\n", argv[3]);
      return 2;
    }
    port = (int)p;
  }
  int rc = loom_run(main_task, test ? (void *)1 : NULL);
  if (rc < 0 && rc != UV_EPROTO) fprintf(stderr, "https_hello: %s\n", loom_strerror(rc));
  return rc < 0 ? 1 : 0;
}
