/* http_head: asks a web server for a page's headers (an HTTP HEAD request)
 * and prints them, while a CPU-bound task computes a sum in the same
 * thread, giving the thread up every so often so the headers get printed
 * as soon as they arrive.
 *
 * A protocol demonstration, as the tutorial's stream2.py is: the request
 * is written by hand over a TCP stream. For real HTTP (TLS, redirects,
 * HTTP/2) use libcurl on loom (loom/http.h, docs/http.md; the example
 * https_get).
 *
 * Ports stream2.py (the tutorial "asyncio first steps"):
 *
 *     async def print_http_headers(url):
 *         url = urllib.parse.urlsplit(url)
 *         reader, writer = await asyncio.open_connection(url.hostname, 80)
 *         query = (f"HEAD {url.path or '/'} HTTP/1.0\r\n"
 *                  f"Host: {url.hostname}\r\n"
 *                  f"\r\n")
 *         writer.write(query.encode('latin-1'))
 *         while True:
 *             line = await reader.readline()
 *             if not line:
 *                 break
 *             line = line.decode('latin1').rstrip()
 *             if line:
 *                 print(f'HTTP header> {line}')
 *         writer.close()                  # ignore the body, close the socket
 *
 *     async def cpu_work():
 *         x = 0
 *         for i in range(1000000):
 *             x += i
 *             if i % 100000 == 0:
 *                 print(x)
 *                 await asyncio.sleep(0.01)
 *
 *     async def main(url):
 *         task1 = asyncio.create_task(print_http_headers(url))
 *         task2 = asyncio.create_task(cpu_work())
 *         await task1
 *         await task2
 *
 * loom_tcp_connect is open_connection, loom_read_line is readline: each
 * gives the thread up until the network has answered, and cpu_work runs
 * meanwhile. cpu_work's loom_sleep(10) is the point of the original: a task
 * that never suspends keeps every other task waiting, so the headers could
 * not be printed before the whole sum was done (VB6's DoEvents, says the
 * article). Where the headers show up among the sums depends on how fast
 * the server answers; the first line is always the sum 0, printed while
 * the connection is being made.
 *
 * Departures: only http:// URLs (loom has no TLS, so no https); the Host
 * header carries the port when it is not 80, as HTTP requires; and main
 * ends with a summary (the header count, the sum, and how many progress
 * lines came while the request was in flight). The tests run the
 * self-test, and the URL form against Python's http.server
 * (tests/run-with-http-server.sh).
 *
 * Usage:
 *     http_head URL          e.g. http_head http://example.com/
 *     http_head --selftest   ask a tiny HTTP responder started in this
 *                            process on 127.0.0.1 (it answers after 35 ms,
 *                            as a distant server might)
 *
 * Output of the self-test (the port varies, and so may the place of the
 * headers among the sums):
 *
 *     HTTP responder on 127.0.0.1:41523 (self-test: it answers after 35 ms)
 *     0
 *     5000050000
 *     20000100000
 *     45000150000
 *     HTTP header> HTTP/1.0 200 OK
 *     HTTP header> Server: loom-selftest
 *     HTTP header> Content-Type: text/plain
 *     HTTP header> Content-Length: 13
 *     80000200000
 *     ...                                   (4 more sums)
 *     405000450000
 *     headers: 4 lines, the first "HTTP/1.0 200 OK"
 *     cpu_work: x = 499999500000, 10 progress lines (4 while waiting for the headers)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <loom.h>

#include "common/url.h" /* url_t, parse_url(): shared with http_get.c */

#define SELFTEST_LATENCY_MS 35 /* how long the self-test responder "thinks" */

/* ---- the two tasks ----------------------------------------------------------------- */

/* What the two tasks share, in main's frame. */
typedef struct {
  url_t url;
  int cpu_lines;        /* progress lines cpu_work has printed so far */
  int cpu_lines_before; /* how many of them came before the first header */
  int nheaders;         /* header lines printed */
  char first[128];      /* the first of them: the status line */
  uint64_t x;           /* cpu_work's result */
} demo_t;

/* Connects, sends the request, prints what comes back. Returns 0 or an
 * error. */
static int head_request(demo_t *d, loom_stream_t **sp) {
  const url_t *u = &d->url;
  int rc = loom_tcp_connect(sp, u->host, u->port);
  if (rc < 0) return rc;
  loom_stream_t *s = *sp;

  char query[1400];
  int v6 = strchr(u->host, ':') != NULL;
  int n;
  if (u->port == 80)
    n = snprintf(query, sizeof query, "HEAD %s HTTP/1.0\r\nHost: %s%s%s\r\n\r\n", u->path,
                 v6 ? "[" : "", u->host, v6 ? "]" : "");
  else
    n = snprintf(query, sizeof query, "HEAD %s HTTP/1.0\r\nHost: %s%s%s:%d\r\n\r\n",
                 u->path, v6 ? "[" : "", u->host, v6 ? "]" : "", u->port);
  if (n < 0 || (size_t)n >= sizeof query) return UV_EINVAL;
  rc = loom_write(s, query, (size_t)n);
  if (rc < 0) return rc;

  for (;;) {
    char line[1024];
    /* A line, its "\r\n" included; at EOF, what is left (0: nothing).
     * UV_ENOBUFS if a header is longer than the buffer. */
    ssize_t len = loom_read_line(s, line, sizeof line);
    if (len < 0) return (int)len;
    if (len == 0) return 0; /* the server closed: the response is complete */
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' ||
                       line[len - 1] == ' ' || line[len - 1] == '\t'))
      line[--len] = '\0';
    if (len == 0) continue; /* the blank line that ends the headers */
    if (d->nheaders++ == 0) {
      snprintf(d->first, sizeof d->first, "%.*s", (int)sizeof d->first - 1, line);
      d->cpu_lines_before = d->cpu_lines;
    }
    printf("HTTP header> %s\n", line);
  }
}

static int print_http_headers(void *p) {
  demo_t *d = p;
  loom_stream_t *s = NULL;
  int rc = head_request(d, &s);
  /* Ignore the body, if any; close the socket on every path. */
  loom_close(s);
  if (rc < 0)
    fprintf(stderr, "http_head: %s:%d: %s\n", d->url.host, d->url.port,
            loom_strerror(rc));
  return rc;
}

static int cpu_work(void *p) {
  demo_t *d = p;
  uint64_t x = 0;
  for (uint64_t i = 0; i < 1000000; i++) {
    x += i;
    if (i % 100000 == 0) {
      printf("%" PRIu64 "\n", x);
      d->cpu_lines++;
      /* Gives the thread up for 10 ms: the headers task runs now if the
       * server has answered. Without it, this loop would hold the thread
       * until the sum is done. */
      int rc = loom_sleep(10);
      if (rc < 0) return rc; /* cancelled (Ctrl-C) */
    }
  }
  d->x = x;
  return 0;
}

/* ---- the self-test's HTTP responder ---------------------------------------------------- */

/* Answers any request with the same headers (and, unless it is a HEAD, a
 * 13-byte body), after a pause, like a server at the other end of a WAN. */
static int respond(loom_stream_t *s, void *arg) {
  (void)arg;
  char line[1024];
  int is_head = 0, first = 1;
  ssize_t n;
  /* The request's head: lines up to the blank one. */
  while ((n = loom_read_line(s, line, sizeof line)) > 0) {
    if (first) is_head = strncmp(line, "HEAD ", 5) == 0;
    first = 0;
    if (strcmp(line, "\r\n") == 0 || strcmp(line, "\n") == 0) break;
  }
  if (n > 0 && loom_sleep(SELFTEST_LATENCY_MS) == 0) {
    static const char head[] = "HTTP/1.0 200 OK\r\n"
                               "Server: loom-selftest\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 13\r\n"
                               "\r\n";
    static const char body[] = "hello, world\n";
    int rc = loom_write(s, head, sizeof head - 1);
    if (rc == 0 && !is_head) rc = loom_write(s, body, sizeof body - 1);
    if (rc < 0) fprintf(stderr, "http_head: responder: %s\n", loom_strerror(rc));
  } else if (n < 0) {
    fprintf(stderr, "http_head: responder: %s\n", loom_strerror((int)n));
  }
  loom_close(s); /* HTTP/1.0: the close ends the response */
  return 0;
}

/* ---- main ---------------------------------------------------------------------------- */

static int http_head_main(void *arg) {
  const char *url = arg; /* NULL: the self-test */
  demo_t d = {0};
  loom_server_t *responder = NULL;
  int rc;

  if (url) {
    rc = parse_url(url, &d.url);
    if (rc < 0) {
      fprintf(stderr, "http_head: %s: %s\n", url,
              rc == UV_EPROTONOSUPPORT ? "https is not supported (loom has no TLS)"
                                       : "not an http://host[:port][/path] URL");
      return rc;
    }
  } else {
    rc = loom_serve(&responder, "127.0.0.1", 0, respond, NULL, NULL);
    if (rc < 0) {
      fprintf(stderr, "http_head: responder: %s\n", loom_strerror(rc));
      return rc;
    }
    int port = loom_server_port(responder);
    printf("HTTP responder on 127.0.0.1:%d (self-test: it answers after %d ms)\n", port,
           SELFTEST_LATENCY_MS);
    d.url = (url_t){.host = "127.0.0.1", .port = port, .path = "/"};
  }

  /* task1 = create_task(print_http_headers(url)); task2 = create_task(cpu_work()) */
  loom_task_t *tasks[2];
  loom_fn fns[2] = {print_http_headers, cpu_work};
  const char *names[2] = {"print_http_headers", "cpu_work"};
  int n = 0;
  for (; n < 2; n++) {
    rc = loom_spawn(&tasks[n], fns[n], &d);
    if (rc < 0) {
      fprintf(stderr, "http_head: spawn %s: %s\n", names[n], loom_strerror(rc));
      break;
    }
  }
  /* await task1; await task2. Both are joined, whatever happened. */
  for (int i = 0; i < n; i++) {
    int status;
    int jrc = loom_join(tasks[i], &status);
    if (jrc == 0) jrc = status;
    if (jrc < 0 && rc == 0) rc = jrc; /* print_http_headers said why */
  }
  if (responder) {
    int crc = loom_server_close(responder, 1000);
    if (crc < 0 && rc == 0) rc = crc;
  }
  if (rc < 0) return rc;

  printf("headers: %d lines, the first \"%s\"\n", d.nheaders, d.first);
  printf("cpu_work: x = %" PRIu64 ", %d progress lines (%d while waiting for "
         "the headers)\n",
         d.x, d.cpu_lines, d.cpu_lines_before);
  return 0;
}

static int usage(void) {
  fprintf(stderr,
          "usage: http_head URL          print the headers of http://host[:port][/path]\n"
          "       http_head --selftest   ask a responder started in this process\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc != 2) return usage();
  const char *url = strcmp(argv[1], "--selftest") == 0 ? NULL : argv[1];
  int rc = loom_run(http_head_main, (void *)url);
  if (rc < 0) {
    fprintf(stderr, "http_head: %s\n", loom_strerror(rc));
    return 1;
  }
  return 0;
}
