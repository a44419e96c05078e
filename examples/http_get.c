/* http_get: fetches several URLs at once with a tiny HTTP/1.1 client, at
 * most two at a time, retrying with exponential backoff when a connection
 * fails.
 *
 * A protocol demonstration: it speaks plain HTTP/1.1 over loom's TCP
 * streams so that every step shows. A real client uses libcurl on loom
 * (loom/http.h, docs/http.md; the examples https_get and fetch_many).
 *
 * Ports two examples of the tutorial "Async I/O patterns", which
 * use aiohttp; here the HTTP is written out on loom's streams. "Limiting
 * concurrency (Semaphore)":
 *
 *     semaphore = asyncio.Semaphore(3)
 *
 *     async def limited_fetch(session, url):
 *         async with semaphore:
 *             async with session.get(url) as resp:
 *                 return url, resp.status
 *
 *     async def main(urls):
 *         async with aiohttp.ClientSession() as session:
 *             tasks = [limited_fetch(session, u) for u in urls]
 *             results = await asyncio.gather(*tasks)
 *             print(results)
 *
 * and "error handling and retry strategy":
 *
 *     async def fetch_with_retry(session, url, retries=3):
 *         for attempt in range(1, retries + 1):
 *             try:
 *                 async with session.get(url) as resp:
 *                     resp.raise_for_status()
 *                     return await resp.text()
 *             except Exception as e:
 *                 if attempt == retries:
 *                     raise
 *                 await asyncio.sleep(0.5 * attempt + random.random())
 *
 * Every URL gets a task (loom_gather_map is asyncio.gather), and each
 * attempt takes one of the semaphore's permits: at most two requests are
 * in flight, whatever the number of URLs. A fetch that fails to connect (or
 * loses its connection, or gets no answer within 10 s: a timeout scope
 * bounds each attempt) is retried up to 3 times, after 100, 200 and 400 ms.
 * It gives its permit back while it waits, so that a dead server does not
 * hold up the fetches that can proceed.
 *
 * Departures: retries are for failures to talk to the server, not for
 * HTTP errors (a 404 is an answer; raise_for_status is left out, as curl
 * does without -f); there are 3 retries after the first attempt (the
 * original's retries=3 is 3 attempts in all); and the backoff is exact (no
 * random jitter), so the output is the same on every run. The body is
 * counted, not kept. Retries are reported as they happen; the results come
 * once every fetch is done, in the order the URLs were given.
 *
 * The HTTP: one request per connection ("Connection: close"); the body is
 * delimited by chunked transfer coding, Content-Length, or the server's
 * close, in that order of precedence (RFC 9112 §6.3). Redirects are not
 * followed, and there is no https (loom has no TLS).
 *
 * Usage:
 *     http_get [--limit N] URL...    fetch http://host[:port][/path] URLs,
 *                                    N at a time (default 2)
 *
 * The exit status is 0 if every URL got an answer (whatever its HTTP
 * status), 1 if any could not be fetched. Its test runs it against Python's
 * http.server on 127.0.0.1 (tests/run-with-http-server.sh), plus a port
 * where nothing listens. Output:
 *
 *     fetching 5 URLs, at most 2 at a time
 *     http://127.0.0.1:40001/: connection refused; retry 1 of 3 in 100 ms
 *     http://127.0.0.1:40001/: connection refused; retry 2 of 3 in 200 ms
 *     http://127.0.0.1:40001/: connection refused; retry 3 of 3 in 400 ms
 *     http://127.0.0.1:35871/hello.txt: HTTP/1.0 200 OK, 12 bytes
 *     http://127.0.0.1:40001/: failed after 4 attempts: connection refused
 *     http://127.0.0.1:35871/big.bin: HTTP/1.0 200 OK, 200000 bytes
 *     http://127.0.0.1:35871/chunked: HTTP/1.1 200 OK, 5000 bytes (chunked)
 *     http://127.0.0.1:35871/missing.txt: HTTP/1.0 404 File not found, 335 bytes
 *     4 of 5 URLs fetched; 2 requests in flight at most (limit 2)
 *     total: 0.7 s
 *
 * The total is the dead server's: its 100 + 200 + 400 ms of backoff, while
 * the other four fetches were done within the first few milliseconds.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <loom.h>

#include "common/url.h" /* url_t, parse_url(): shared with http_head.c */

#define DEFAULT_LIMIT 2
#define MAX_RETRIES 3            /* after the first attempt */
#define BACKOFF_MS 100           /* before the first retry; doubled for each next */
#define ATTEMPT_TIMEOUT_MS 10000 /* one attempt, connect to last byte */

/* ---- one HTTP exchange ---------------------------------------------------------------- */

/* One URL: set up by main, filled in by its task. */
typedef struct {
  struct limiter_s *lim;
  const char *url;
  int error;             /* out: 0, or why it could not be fetched */
  int attempts;          /* out */
  char status_line[128]; /* out: "HTTP/1.0 200 OK" */
  size_t body_bytes;     /* out */
  int chunked;           /* out: the body came in chunks */
} fetch_t;

/* Reads one line of the response head (or of the chunk framing), without
 * its "\r\n". Returns its length (0: a blank line) or an error: UV_EOF if
 * the connection ended first, UV_ENOBUFS if it is longer than cap - 1. */
static ssize_t read_http_line(loom_stream_t *s, char *buf, size_t cap) {
  ssize_t n = loom_read_until(s, "\n", 1, buf, cap);
  if (n < 0) return n;
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
  return n;
}

/* Reads and counts exactly n bytes of body. */
static int count_bytes(loom_stream_t *s, unsigned long long n, size_t *count) {
  char buf[16384];
  while (n > 0) {
    ssize_t got = loom_read(s, buf, n < sizeof buf ? (size_t)n : sizeof buf);
    if (got < 0) return (int)got;
    if (got == 0) return UV_EOF; /* shorter than announced */
    n -= (unsigned long long)got;
    *count += (size_t)got;
  }
  return 0;
}

/* Reads and counts the body up to the server's close. */
static int count_to_eof(loom_stream_t *s, size_t *count) {
  char buf[16384];
  ssize_t got;
  while ((got = loom_read(s, buf, sizeof buf)) > 0) *count += (size_t)got;
  return (int)got;
}

/* Parses an unsigned number in `base` that must be the whole of [p, end of
 * digits) and be followed by one of `after` (or the string's end). */
static int parse_number(const char *p, int base, const char *after,
                        unsigned long long *out) {
  if (!(base == 16 ? isxdigit((unsigned char)*p) : isdigit((unsigned char)*p)))
    return UV_EPROTO; /* strtoull would take blanks and signs */
  char *end;
  errno = 0;
  *out = strtoull(p, &end, base);
  if (errno || (*end && !strchr(after, *end))) return UV_EPROTO;
  return 0;
}

/* Reads and counts a chunked body: "<hex size>[;ext]\r\n<data>\r\n" ...,
 * then "0\r\n", trailer fields and a blank line. */
static int count_chunked(loom_stream_t *s, size_t *count) {
  char line[1024];
  for (;;) {
    ssize_t n = read_http_line(s, line, sizeof line);
    if (n < 0) return (int)n;
    unsigned long long size;
    int rc = parse_number(line, 16, "; \t", &size);
    if (rc < 0) return rc;
    if (size == 0) break;
    rc = count_bytes(s, size, count);
    if (rc < 0) return rc;
    n = read_http_line(s, line, sizeof line); /* the data's "\r\n" */
    if (n < 0) return (int)n;
    if (n > 0) return UV_EPROTO;
  }
  for (;;) { /* trailer fields, up to the blank line */
    ssize_t n = read_http_line(s, line, sizeof line);
    if (n <= 0) return (int)n;
  }
}

/* Whether a Transfer-Encoding value ends with "chunked" ("gzip, chunked"). */
static int ends_chunked(const char *v) {
  size_t n = strlen(v);
  while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
  return n >= 7 && strncasecmp(v + n - 7, "chunked", 7) == 0 &&
         (n == 7 || v[n - 8] == ',' || v[n - 8] == ' ' || v[n - 8] == '\t');
}

/* Sends the request on s and reads the response into f. */
static int exchange(fetch_t *f, const url_t *u, loom_stream_t *s) {
  char req[2048];
  int v6 = strchr(u->host, ':') != NULL;
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\n"
                   "Host: %s%s%s:%d\r\n"
                   "User-Agent: loom-http_get\r\n"
                   "Accept: */*\r\n"
                   "Connection: close\r\n"
                   "\r\n",
                   u->path, v6 ? "[" : "", u->host, v6 ? "]" : "", u->port);
  if (n < 0 || (size_t)n >= sizeof req) return UV_EINVAL;
  int rc = loom_write(s, req, (size_t)n);
  if (rc < 0) return rc;

  /* The status line: "HTTP/1.1 200 OK". */
  char line[8192];
  ssize_t len = read_http_line(s, line, sizeof line);
  if (len < 0) return (int)len;
  unsigned long long code;
  const char *sp = strchr(line, ' ');
  if (strncmp(line, "HTTP/", 5) != 0 || !sp || parse_number(sp + 1, 10, " ", &code) < 0 ||
      code < 100 || code > 999)
    return UV_EPROTO;
  snprintf(f->status_line, sizeof f->status_line, "%.*s", (int)sizeof f->status_line - 1,
           line);

  /* The header fields, up to the blank line. */
  long long content_length = -1;
  int chunked = 0;
  while ((len = read_http_line(s, line, sizeof line)) > 0) {
    char *colon = strchr(line, ':');
    if (!colon) return UV_EPROTO;
    *colon = '\0';
    const char *value = colon + 1 + strspn(colon + 1, " \t");
    if (strcasecmp(line, "Content-Length") == 0) {
      unsigned long long v;
      if (parse_number(value, 10, " \t", &v) < 0 || v > (unsigned long long)INT64_MAX)
        return UV_EPROTO;
      content_length = (long long)v;
    } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
      chunked = ends_chunked(value);
    }
  }
  if (len < 0) return (int)len;

  /* The body (RFC 9112 §6.3): none for 1xx, 204 and 304; else chunked
   * wins over Content-Length, and without either it runs to the close. */
  f->chunked = chunked;
  if (code < 200 || code == 204 || code == 304) return 0;
  if (chunked) return count_chunked(s, &f->body_bytes);
  if (content_length >= 0)
    return count_bytes(s, (unsigned long long)content_length, &f->body_bytes);
  return count_to_eof(s, &f->body_bytes);
}

/* One attempt: connect, exchange, close. */
static int get_once(fetch_t *f, const url_t *u) {
  f->status_line[0] = '\0';
  f->body_bytes = 0;
  f->chunked = 0;
  loom_stream_t *s;
  int rc = loom_tcp_connect(&s, u->host, u->port);
  if (rc < 0) return rc;
  rc = exchange(f, u, s);
  loom_close(s); /* on every path: we are done with this connection */
  return rc;
}

/* Failures worth another attempt: the server could not be reached, or the
 * connection broke or went quiet. Not: a malformed answer (UV_EPROTO), a
 * bad URL, a name that does not resolve, or our own cancellation. */
static int is_transient(int rc) {
  switch (rc) {
  case UV_ECONNREFUSED:
  case UV_ECONNRESET:
  case UV_ECONNABORTED:
  case UV_ETIMEDOUT:
  case UV_ENETUNREACH:
  case UV_EHOSTUNREACH:
  case UV_EPIPE:
  case UV_EOF:
  case UV_EAI_AGAIN: return 1;
  default: return 0;
  }
}

/* ---- the fetch tasks ------------------------------------------------------------------ */

/* What the fetches share: the semaphore and the in-flight counts. */
typedef struct limiter_s {
  loom_sem_t sem;
  int in_flight; /* attempts holding a permit now */
  int peak;      /* the most there ever were */
} limiter_t;

static int fetch(void *p) {
  fetch_t *f = p;
  limiter_t *lim = f->lim;
  url_t u;
  int rc = parse_url(f->url, &u);
  for (int attempt = 1; rc == 0; attempt++) {
    /* async with semaphore, around one attempt: waits (FIFO) for a permit. */
    rc = loom_sem_acquire(&lim->sem);
    if (rc < 0) break; /* cancelled while waiting: no permit to give back */
    if (++lim->in_flight > lim->peak) lim->peak = lim->in_flight;
    loom_scope_t deadline;
    rc = loom_timeout_enter(&deadline, ATTEMPT_TIMEOUT_MS);
    if (rc == 0) {
      rc = get_once(f, &u);
      /* UV_ETIMEDOUT if this attempt's 10 s ran out (the calls inside it
       * have returned UV_ETIMEDOUT already, and the connection is closed). */
      if (loom_scope_exit(&deadline) == UV_ETIMEDOUT) rc = UV_ETIMEDOUT;
    }
    lim->in_flight--;
    int rrc = loom_sem_release(&lim->sem);
    if (rrc < 0 && rc == 0) rc = rrc; /* a release too many: a bug */
    f->attempts = attempt;
    if (rc == 0 || !is_transient(rc) || attempt > MAX_RETRIES) break;

    uint64_t backoff = (uint64_t)BACKOFF_MS << (attempt - 1); /* 100, 200, 400 */
    printf("%s: %s; retry %d of %d in %llu ms\n", f->url, loom_strerror(rc), attempt,
           MAX_RETRIES, (unsigned long long)backoff);
    /* Backing off without a permit: the other fetches go on meanwhile. */
    rc = loom_sleep(backoff);
  }
  f->error = rc;
  /* A failed fetch is a result, reported by main; the task itself failed
   * only if it was cancelled. */
  return rc == UV_ECANCELED ? rc : 0;
}

/* ---- main ---------------------------------------------------------------------------- */

typedef struct {
  char **urls;
  int n;
  int limit;
  int failed; /* out: URLs that could not be fetched */
} job_t;

static int http_get_main(void *arg) {
  job_t *job = arg;
  uint64_t t0 = loom_now();
  limiter_t lim = {0};
  /* Bounded, like asyncio.BoundedSemaphore: a release without an acquire
   * would fail instead of silently raising the limit. */
  loom_sem_init_bounded(&lim.sem, (unsigned)job->limit);
  fetch_t *fetches = calloc((size_t)job->n, sizeof *fetches);
  int *statuses = calloc((size_t)job->n, sizeof *statuses);
  if (!fetches || !statuses) {
    free(fetches);
    free(statuses);
    fprintf(stderr, "http_get: out of memory\n");
    return UV_ENOMEM;
  }
  for (int i = 0; i < job->n; i++)
    fetches[i] = (fetch_t){.lim = &lim, .url = job->urls[i]};
  printf("fetching %d URL%s, at most %d at a time\n", job->n, job->n == 1 ? "" : "s",
         job->limit);

  /* asyncio.gather(*tasks): every fetch is a task, all awaited (and, if we
   * are cancelled, all cancelled and awaited) before this returns. */
  int rc = loom_gather_map(fetch, fetches, sizeof fetches[0], (size_t)job->n, statuses,
                           0);
  if (rc < 0) { /* only cancellation fails a fetch task */
    fprintf(stderr, "http_get: %s\n", loom_strerror(rc));
  } else {
    /* The results, in the order the URLs were given. */
    for (int i = 0; i < job->n; i++) {
      const fetch_t *f = &fetches[i];
      if (f->attempts == 0 && (f->error == UV_EINVAL || f->error == UV_EPROTONOSUPPORT)) {
        printf("%s: %s\n", f->url,
               f->error == UV_EINVAL ? "not an http://host[:port][/path] URL"
                                     : "https is not supported (no TLS)");
        job->failed++;
      } else if (f->error < 0) {
        printf("%s: failed after %d attempt%s: %s\n", f->url, f->attempts,
               f->attempts == 1 ? "" : "s", loom_strerror(f->error));
        job->failed++;
      } else {
        printf("%s: %s, %zu bytes%s\n", f->url, f->status_line, f->body_bytes,
               f->chunked ? " (chunked)" : "");
      }
    }
    printf("%d of %d URLs fetched; %d requests in flight at most (limit %d)\n",
           job->n - job->failed, job->n, lim.peak, job->limit);
    printf("total: %.1f s\n", (double)(loom_now() - t0) / 1000.0);
  }
  free(fetches);
  free(statuses);
  return rc;
}

static int usage(void) {
  fprintf(stderr,
          "usage: http_get [--limit N] URL...   fetch http://host[:port][/path] URLs,\n"
          "                                     N at a time (default %d)\n",
          DEFAULT_LIMIT);
  return 2;
}

int main(int argc, char **argv) {
  job_t job = {.urls = argv + 1, .n = argc - 1, .limit = DEFAULT_LIMIT};
  if (argc >= 2 && strcmp(argv[1], "--limit") == 0) {
    char *end;
    errno = 0;
    long v = argc >= 3 ? strtol(argv[2], &end, 10) : 0;
    if (argc < 3 || errno || *end || end == argv[2] || v < 1 || v > 1000) return usage();
    job = (job_t){.urls = argv + 3, .n = argc - 3, .limit = (int)v};
  }
  if (job.n < 1) return usage();
  int rc = loom_run(http_get_main, &job);
  if (rc < 0) {
    fprintf(stderr, "http_get: %s\n", loom_strerror(rc));
    return 1;
  }
  return job.failed ? 1 : 0;
}
