/* The HTTP client (loom/http.h) against real servers on 127.0.0.1 only: an
 * nginx started next to this program by tests/run-with-nginx.sh (static
 * files over HTTP and HTTPS, a test CA made with `openssl req`; ports and
 * paths in LOOM_NGINX_*), and loom's own servers (loom_serve) for what
 * nginx will not do on demand: a slow answer, a redirect chain, garbage, a
 * connection closed without a reply, a chunked body of unknown size.
 *
 * Without nginx at run time (LOOM_NGINX_SKIP), the tests that need it
 * report SKIPPED with the reason: ctest then lists the test as skipped,
 * not passed. The tests on loom's own servers run in any case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"
#include "loom/http.h"

#ifdef LOOM_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#endif

static int nginx_port, nginx_tls_port;
static const char *nginx_ca, *nginx_root;

/* Skips the test, saying why, unless the nginx is there. */
static int need_nginx(void) {
  const char *why = getenv("LOOM_NGINX_SKIP");
  if (why && *why) {
    print_message("SKIPPED: %s\n", why);
    return 0;
  }
  const char *port = getenv("LOOM_NGINX_PORT");
  const char *tls = getenv("LOOM_NGINX_TLS_PORT");
  nginx_ca = getenv("LOOM_NGINX_CA");
  nginx_root = getenv("LOOM_NGINX_ROOT");
  if (!port || !tls || !nginx_ca || !nginx_root) {
    print_message("SKIPPED: LOOM_NGINX_PORT is not set (run through "
                  "tests/run-with-nginx.sh)\n");
    return 0;
  }
  nginx_port = atoi(port);
  nginx_tls_port = atoi(tls);
  return 1;
}

static void nginx_url(char *buf, size_t cap, const char *path) {
  snprintf(buf, cap, "http://127.0.0.1:%d%s", nginx_port, path);
}

/* ---- loom's own test server -------------------------------------------------
 *
 *   /slow        says it got the request (slow_seen), then waits 30 s
 *   /r/<n>       302 to /r/<n-1>; /r/0 answers "done\n"
 *   /garbage     a reply that is not HTTP
 *   /nothing     closes the connection without a reply
 *   /chunked/<n> n bytes of 'c', chunked: no size announced
 *   /drip        announces 10 bytes, sends 5, then waits 30 s
 *   /short       announces 10 bytes, sends 5 and closes
 * Every reply closes its connection. */

static loom_event_t slow_seen;
static int handled;

static int say(loom_stream_t *s, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return loom_write(s, buf, (size_t)n);
}

static int handler(loom_stream_t *s, void *arg) {
  (void)arg;
  char req[2048];
  ssize_t n = loom_read_until(s, "\r\n\r\n", 4, req, sizeof(req));
  if (n < 0) return loom_close(s), 0;
  handled++;
  char path[256] = "";
  sscanf(req, "%*s %255s", path);
  int k;
  if (strcmp(path, "/slow") == 0) {
    loom_event_set(&slow_seen);
    loom_sleep(30000);
  } else if (sscanf(path, "/r/%d", &k) == 1) {
    if (k > 0)
      say(s,
          "HTTP/1.1 302 Found\r\nLocation: /r/%d\r\nContent-Length: 0\r\n"
          "Connection: close\r\n\r\n",
          k - 1);
    else
      say(s, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\ndone\n");
  } else if (strcmp(path, "/garbage") == 0) {
    say(s, "this is not HTTP at all\r\n\r\n");
  } else if (strcmp(path, "/nothing") == 0) {
  } else if (sscanf(path, "/chunked/%d", &k) == 1) {
    say(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    char chunk[1024];
    memset(chunk, 'c', sizeof(chunk));
    while (k > 0) {
      int m = k < (int)sizeof(chunk) ? k : (int)sizeof(chunk);
      say(s, "%x\r\n", m);
      loom_write(s, chunk, (size_t)m);
      loom_write(s, "\r\n", 2);
      k -= m;
    }
    say(s, "0\r\n\r\n");
  } else if (strcmp(path, "/short") == 0) {
    say(s, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n01234");
  } else if (strcmp(path, "/drip") == 0) {
    say(s, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n01234");
    loom_flush(s);
    loom_sleep(30000);
  } else {
    say(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  }
  loom_close(s);
  return 0;
}

static loom_server_t *srv;
static int srv_port;

static int server_start(void) {
  loom_event_init(&slow_seen);
  handled = 0;
  int rc = loom_serve(&srv, "127.0.0.1", 0, handler, NULL, NULL);
  if (rc == 0) srv_port = loom_server_port(srv);
  return rc;
}

static void srv_url(char *buf, size_t cap, const char *path) {
  snprintf(buf, cap, "http://127.0.0.1:%d%s", srv_port, path);
}

static CURL *easy_for(const char *url) {
  CURL *e = curl_easy_init();
  if (!e) return NULL;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  return e;
}

/* A write callback that drops the body and counts it. */
static size_t count_body(char *d, size_t size, size_t n, void *ud) {
  (void)d;
  *(size_t *)ud += size * n;
  return size * n;
}

typedef struct {
  long rc[24];
  long code[24];
  long status[16];
  size_t len[16];
  uint64_t ms[16];
  char body[16][64];
} rec_t;
static rec_t r;

/* A GET of url, recorded at index i: the result, the status, libcurl's
 * code, the length and the start of the body (the body is freed). */
static void get_rec(int i, const char *url, size_t cap) {
  loom_http_body_t b;
  r.rc[i] = loom_http_get(url, cap, &b);
  r.status[i] = b.status;
  r.code[i] = b.code;
  r.len[i] = b.len;
  if (b.data) snprintf(r.body[i], sizeof(r.body[i]), "%s", b.data);
  free(b.data);
}

/* ---- bad arguments, outside a task ----------------------------------------- */

static int main_bad_args(void *arg) {
  (void)arg;
  CURLcode code = CURLE_OK;
  loom_http_body_t b;
  loom_http_resp_t *resp = (loom_http_resp_t *)&b;
  char buf[8];
  r.rc[0] = loom_http_perform(NULL, &code);
  r.code[0] = code;
  r.rc[1] = loom_http_get(NULL, 10, &b);
  r.rc[2] = loom_http_get("http://127.0.0.1:1/", 10, NULL);
  r.rc[3] = loom_http_fetch(NULL, 10, &b);
  r.rc[4] = loom_http_open(NULL, NULL, NULL);
  r.rc[5] = loom_http_open(&resp, NULL, NULL);
  r.len[5] = resp == NULL;
  r.rc[6] = loom_http_read(NULL, buf, sizeof(buf));
  r.rc[7] = loom_http_close(NULL);
  r.rc[8] = loom_http_result(NULL);
  r.len[8] = loom_http_easy(NULL) == NULL;
  /* A URL libcurl cannot parse, a scheme it does not know. */
  r.rc[9] = loom_http_get("http://[::1", 10, &b);
  r.code[9] = b.code;
  r.rc[10] = loom_http_get("nosuch://x/", 10, &b);
  r.code[10] = b.code;
  /* The same handle twice at once: the second is refused. */
  CURL *e = easy_for("http://127.0.0.1:1/");
  r.len[11] = loom_http_multi() != NULL;
  curl_multi_add_handle(loom_http_multi(), e);
  r.rc[11] = loom_http_perform(e, NULL);
  curl_multi_remove_handle(loom_http_multi(), e);
  curl_easy_cleanup(e);
  return 0;
}

static void test_bad_arguments(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  CURL *e = curl_easy_init();
  loom_http_body_t b;
  assert_loom_err(loom_http_perform(e, NULL), LOOM_ENOTASK);
  assert_loom_err(loom_http_get("http://127.0.0.1:1/", 10, &b), LOOM_ENOTASK);
  assert_null(b.data);
  assert_null(loom_http_multi());
  curl_easy_cleanup(e);
  assert_loom_ok(loom_run(main_bad_args, NULL));
  assert_loom_err(r.rc[0], UV_EINVAL);
  assert_int_equal(r.code[0], CURLE_ABORTED_BY_CALLBACK);
  for (int i = 1; i <= 7; i++) assert_loom_err(r.rc[i], UV_EINVAL);
  assert_true(r.len[5]);
  assert_int_equal(r.rc[8], CURLE_BAD_FUNCTION_ARGUMENT);
  assert_true(r.len[8]);
  assert_loom_err(r.rc[9], UV_EINVAL);
  assert_int_equal(r.code[9], CURLE_URL_MALFORMAT);
  assert_loom_err(r.rc[10], UV_EINVAL);
  assert_int_equal(r.code[10], CURLE_UNSUPPORTED_PROTOCOL);
  assert_true(r.len[11]);
  assert_loom_err(r.rc[11], UV_EBUSY);
  assert_int_equal(loom_http_err(CURLE_OK), 0);
  assert_loom_err(loom_http_err(CURLE_OPERATION_TIMEDOUT), UV_ETIMEDOUT);
  assert_loom_err(loom_http_err(CURLE_PEER_FAILED_VERIFICATION), LOOM_EHTTP);
}

/* ---- nginx: a GET, HTTPS with the test CA --------------------------------- */

static int main_get(void *arg) {
  (void)arg;
  char url[256];
  loom_http_body_t b;
  nginx_url(url, sizeof(url), "/hello.txt");
  get_rec(0, url, 1024);
  nginx_url(url, sizeof(url), "/no/such/file");
  get_rec(1, url, 1 << 20);
  /* A redirect chain, followed. */
  nginx_url(url, sizeof(url), "/redirect/5");
  get_rec(2, url, 1024);
  /* Over the cap: nginx announces the size. */
  nginx_url(url, sizeof(url), "/big.bin");
  r.rc[3] = loom_http_get(url, 1 << 20, &b);
  r.code[3] = b.code;
  r.len[3] = b.data == NULL;
  /* HTTPS and HTTP/2, verified against the test CA. */
  snprintf(url, sizeof(url), "https://localhost:%d/hello.txt", nginx_tls_port);
  CURL *e = easy_for(url);
  curl_easy_setopt(e, CURLOPT_CAINFO, nginx_ca);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  r.rc[4] = loom_http_fetch(e, 1024, &b);
  r.status[4] = b.status;
  if (b.data) snprintf(r.body[4], sizeof(r.body[4]), "%s", b.data);
  free(b.data);
  long ver = 0;
  curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &ver);
  r.len[4] = (size_t)ver;
  curl_easy_cleanup(e);
  /* The same without the test CA: the system store does not know it. */
  e = easy_for(url);
  char err[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, err);
  CURLcode code;
  size_t got = 0;
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, count_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &got);
  r.rc[5] = loom_http_perform(e, &code);
  r.code[5] = code;
  r.len[5] = got;
  snprintf(r.body[5], sizeof(r.body[5]), "%.63s", err);
  curl_easy_cleanup(e);
  return 0;
}

static void test_nginx_get(void **state) {
  (void)state;
  if (!need_nginx()) skip();
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(main_get, NULL));
  assert_loom_ok(r.rc[0]);
  assert_int_equal(r.status[0], 200);
  assert_int_equal(r.len[0], 14);
  assert_string_equal(r.body[0], "Hello, World!\n");
  assert_loom_ok(r.rc[1]);
  assert_int_equal(r.status[1], 404);
  assert_loom_ok(r.rc[2]);
  assert_int_equal(r.status[2], 200);
  assert_string_equal(r.body[2], "Hello, World!\n");
  assert_loom_err(r.rc[3], UV_ENOBUFS);
  assert_int_equal(r.code[3], CURLE_FILESIZE_EXCEEDED);
  assert_true(r.len[3]);
  assert_loom_ok(r.rc[4]);
  assert_int_equal(r.status[4], 200);
  assert_string_equal(r.body[4], "Hello, World!\n");
  assert_int_equal(r.len[4], CURL_HTTP_VERSION_2_0);
  assert_loom_err(r.rc[5], LOOM_EHTTP);
  /* 77: a system without a CA store at all cannot verify either. */
  assert_true(r.code[5] == CURLE_PEER_FAILED_VERIFICATION ||
              r.code[5] == CURLE_SSL_CACERT_BADFILE);
  assert_int_equal(r.len[5], 0);
  print_message("unverified peer: %s\n", r.body[5]);
  assert_true(r.body[5][0] != '\0');
}

/* ---- 200 downloads, at most 20 at a time ------------------------------------ */

enum { NDOWN = 200, LIMIT = 20 };
static loom_sem_t sem;
static int inflight, max_inflight, bad, ok;

static int download_one(void *arg) {
  int i = (int)(intptr_t)arg;
  char url[256], path[64], want[32];
  snprintf(path, sizeof(path), "/small/%d.txt", i);
  nginx_url(url, sizeof(url), path);
  int rc = loom_sem_acquire(&sem);
  if (rc) return rc;
  if (++inflight > max_inflight) max_inflight = inflight;
  loom_http_body_t b;
  rc = loom_http_get(url, 4096, &b);
  inflight--;
  loom_sem_release(&sem);
  int n = snprintf(want, sizeof(want), "file %d\n", i);
  if (rc || b.status != 200 || b.len != (size_t)n + 1000 ||
      memcmp(b.data, want, (size_t)n))
    bad++;
  else
    ok++;
  free(b.data);
  return rc;
}

static int main_many(void *arg) {
  (void)arg;
  loom_task_t *t[NDOWN];
  int st[NDOWN];
  loom_sem_init(&sem, LIMIT);
  for (int i = 0; i < NDOWN; i++) loom_spawn(&t[i], download_one, (void *)(intptr_t)i);
  return loom_gather(t, NDOWN, st, 0);
}

static void test_nginx_200_concurrent(void **state) {
  (void)state;
  if (!need_nginx()) skip();
  inflight = max_inflight = bad = ok = 0;
  assert_loom_ok(loom_run(main_many, NULL));
  assert_int_equal(ok, NDOWN);
  assert_int_equal(bad, 0);
  assert_int_equal(max_inflight, LIMIT);
}

/* ---- a 10 MiB body streamed to a file, flat memory ---------------------------- */

/* Peak resident memory (VmHWM) and current (VmRSS), in KiB. */
static long proc_status_kib(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long v = -1;
  size_t kl = strlen(key);
  while (fgets(line, sizeof(line), f))
    if (strncmp(line, key, kl) == 0) v = atol(line + kl + 1);
  fclose(f);
  return v;
}

static int measure_memory(void) {
#ifdef LOOM_HAVE_VALGRIND
  if (RUNNING_ON_VALGRIND) return 0;
#endif
#if defined(__SANITIZE_ADDRESS__)
  return 0;
#else
  return 1;
#endif
}

static char out_path[256];

static int main_stream(void *arg) {
  char url[256];
  nginx_url(url, sizeof(url), "/big.bin");
  if (arg) /* over TLS and HTTP/2: pausing one stream of a connection */
    snprintf(url, sizeof(url), "https://localhost:%d/big.bin", nginx_tls_port);
  CURL *e = easy_for(url);
  if (arg) {
    curl_easy_setopt(e, CURLOPT_CAINFO, nginx_ca);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  }
  loom_http_resp_t *resp;
  CURLcode code;
  r.rc[0] = loom_http_open(&resp, e, &code);
  if (r.rc[0]) return curl_easy_cleanup(e), 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r.status[0]);
  /* Not reading for a while: the transfer must pause, not fill memory. */
  loom_sleep(300);
  curl_off_t got = 0;
  curl_easy_getinfo(e, CURLINFO_SIZE_DOWNLOAD_T, &got);
  r.len[1] = (size_t)got;
  if (arg) {
    /* Another stream of the same connection goes on meanwhile: the pause
     * holds back one stream (HTTP/2 flow control), not the connection. */
    snprintf(url, sizeof(url), "https://localhost:%d/hello.txt", nginx_tls_port);
    CURL *e2 = easy_for(url);
    curl_easy_setopt(e2, CURLOPT_CAINFO, nginx_ca);
    curl_easy_setopt(e2, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e2, CURLOPT_PIPEWAIT, 1L);
    loom_http_body_t b;
    loom_scope_t sc;
    loom_timeout_enter(&sc, 5000);
    r.rc[5] = loom_http_fetch(e2, 1024, &b);
    loom_scope_exit(&sc);
    r.status[5] = b.status;
    long conns = -1;
    curl_easy_getinfo(e2, CURLINFO_NUM_CONNECTS, &conns);
    r.len[5] = (size_t)conns;
    free(b.data);
    curl_easy_cleanup(e2);
  }
  FILE *f = fopen(out_path, "wb");
  char buf[16384];
  ssize_t n;
  size_t total = 0;
  while ((n = loom_http_read(resp, buf, sizeof(buf))) > 0) {
    fwrite(buf, 1, (size_t)n, f);
    total += (size_t)n;
  }
  fclose(f);
  r.rc[2] = n;
  r.len[2] = total;
  r.code[2] = loom_http_result(resp);
  r.rc[3] = loom_http_read(resp, buf, sizeof(buf)); /* still the end */
  r.rc[4] = loom_http_close(resp);
  curl_easy_cleanup(e);
  return 0;
}

static int files_equal(const char *a, const char *b) {
  FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
  int eq = fa && fb;
  char x[65536], y[65536];
  while (eq) {
    size_t na = fread(x, 1, sizeof(x), fa), nb = fread(y, 1, sizeof(y), fb);
    if (na != nb || memcmp(x, y, na)) eq = 0;
    if (na == 0) break;
  }
  if (fa) fclose(fa);
  if (fb) fclose(fb);
  return eq;
}

/* The 10 MiB file streamed to out_path (main_stream; over HTTP/2 with
 * http2 set, and a second request then as a stream of the same
 * connection): what came is nginx's file, and little was taken in while
 * the task was not reading. Over HTTP/1.1, where the process's memory can
 * be measured, the peak resident growth is small too. */
static void check_stream_10mib(int http2) {
  if (!need_nginx()) skip();
  memset(&r, 0, sizeof(r));
  snprintf(out_path, sizeof(out_path), "%s/loom-http-stream-%d.bin",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
  int mem = !http2 && measure_memory();
  long before = 0;
  if (mem) {
    /* Resets the peak (VmHWM) to the current resident size. */
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f || fputs("5", f) < 0) mem = 0;
    if (f && fclose(f) != 0) mem = 0;
    before = proc_status_kib("VmRSS");
  }
  assert_loom_ok(loom_run(main_stream, http2 ? (void *)1 : NULL));
  long peak = mem ? proc_status_kib("VmHWM") : 0;
  char src[512];
  snprintf(src, sizeof(src), "%s/big.bin", nginx_root);
  int eq = files_equal(src, out_path);
  remove(out_path);
  assert_loom_ok(r.rc[0]);
  assert_int_equal(r.status[0], 200);
  print_message("received while not reading: %zu bytes\n", r.len[1]);
  assert_true(r.len[1] < 1024 * 1024);
  assert_int_equal(r.rc[2], 0);
  assert_int_equal(r.len[2], 10 * 1024 * 1024);
  assert_int_equal(r.code[2], CURLE_OK);
  if (!http2) assert_int_equal(r.rc[3], 0);
  assert_loom_ok(r.rc[4]);
  assert_true(eq);
  if (http2) {
    assert_loom_ok(r.rc[5]);
    assert_int_equal(r.status[5], 200);
    assert_int_equal(r.len[5], 0); /* no new connection: a stream of the first */
  }
  if (mem) {
    print_message("peak resident growth: %ld KiB for a 10 MiB body\n", peak - before);
    assert_true(peak - before < 4 * 1024);
  }
}

static void test_nginx_stream_10mib(void **state) {
  (void)state;
  check_stream_10mib(0);
}

static void test_nginx_stream_10mib_http2(void **state) {
  (void)state;
  check_stream_10mib(1);
}

/* ---- a slow server: timeouts, cancellation, the multi stays healthy -------- */

static int perform_slow(void *arg) {
  (void)arg;
  char url[256];
  srv_url(url, sizeof(url), "/slow");
  CURL *e = easy_for(url);
  CURLcode code;
  size_t got = 0;
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, count_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &got);
  int rc = loom_http_perform(e, &code);
  r.code[7] = code;
  curl_easy_cleanup(e);
  return rc;
}

static int main_slow(void *arg) {
  (void)arg;
  char url[256];
  loom_http_body_t b;
  if (server_start()) return -1;
  /* A timeout scope aborts the transfer. */
  srv_url(url, sizeof(url), "/slow");
  loom_scope_t sc;
  uint64_t t0 = loom_now();
  loom_timeout_enter(&sc, 200);
  r.rc[0] = loom_http_get(url, 1024, &b);
  r.rc[1] = loom_scope_exit(&sc);
  r.ms[0] = loom_now() - t0;
  r.code[0] = b.code;
  /* libcurl's own timeout. */
  CURL *e = easy_for(url);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 200L);
  t0 = loom_now();
  r.rc[2] = loom_http_fetch(e, 1024, &b);
  r.ms[2] = loom_now() - t0;
  r.code[2] = b.code;
  curl_easy_cleanup(e);
  /* Cancelled mid-transfer, once the server has the request. */
  loom_event_clear(&slow_seen);
  loom_task_t *t;
  loom_spawn(&t, perform_slow, NULL);
  loom_event_wait(&slow_seen);
  loom_cancel(t);
  int st;
  r.rc[3] = loom_join(t, &st);
  r.rc[4] = st;
  /* The multi handle still serves: a redirect chain on loom's server. */
  srv_url(url, sizeof(url), "/r/4");
  get_rec(5, url, 1024);
  /* Too many redirects. */
  e = easy_for(url);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, 2L);
  r.rc[6] = loom_http_fetch(e, 1024, &b);
  r.code[6] = b.code;
  curl_easy_cleanup(e);
  loom_server_close(srv, 0);
  return 0;
}

static void test_slow_timeout_cancel(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(main_slow, NULL));
  assert_loom_err(r.rc[0], UV_ETIMEDOUT);
  assert_loom_err(r.rc[1], UV_ETIMEDOUT);
  assert_int_equal(r.code[0], CURLE_ABORTED_BY_CALLBACK);
  assert_true(r.ms[0] >= 150 && r.ms[0] < 5000);
  assert_loom_err(r.rc[2], UV_ETIMEDOUT);
  assert_int_equal(r.code[2], CURLE_OPERATION_TIMEDOUT);
  assert_true(r.ms[2] >= 150 && r.ms[2] < 5000);
  assert_loom_ok(r.rc[3]);
  assert_loom_err(r.rc[4], UV_ECANCELED);
  assert_int_equal(r.code[7], CURLE_ABORTED_BY_CALLBACK);
  assert_loom_ok(r.rc[5]);
  assert_int_equal(r.status[5], 200);
  assert_string_equal(r.body[5], "done\n");
  assert_loom_err(r.rc[6], UV_ELOOP);
  assert_int_equal(r.code[6], CURLE_TOO_MANY_REDIRECTS);
}

/* ---- broken servers, caps, refused connections ------------------------------- */

static int read_one(void *arg) {
  char buf[64];
  return (int)loom_http_read(arg, buf, sizeof(buf));
}

static int main_broken(void *arg) {
  (void)arg;
  char url[256];
  loom_http_body_t b;
  if (server_start()) return -1;
  srv_url(url, sizeof(url), "/garbage");
  get_rec(0, url, 1024);
  srv_url(url, sizeof(url), "/nothing");
  get_rec(1, url, 1024);
  /* A chunked body over the cap: no size announced, the cap still holds. */
  srv_url(url, sizeof(url), "/chunked/100000");
  r.rc[2] = loom_http_get(url, 50000, &b);
  r.code[2] = b.code;
  r.len[2] = b.data == NULL;
  r.rc[3] = loom_http_get(url, 100000, &b);
  r.len[3] = b.len;
  free(b.data);
  /* A body cut short, read as a stream; a read timed out can be retried. */
  srv_url(url, sizeof(url), "/drip");
  CURL *e = easy_for(url);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 1500L);
  loom_http_resp_t *resp;
  r.rc[4] = loom_http_open(&resp, e, NULL);
  if (r.rc[4] == 0) {
    char buf[64];
    r.rc[5] = loom_http_read(resp, buf, sizeof(buf));
    loom_scope_t sc;
    loom_timeout_enter(&sc, 100);
    r.rc[6] = loom_http_read(resp, buf, sizeof(buf));
    loom_scope_exit(&sc);
    r.rc[7] = loom_http_read(resp, buf, sizeof(buf)); /* libcurl's timeout */
    r.code[7] = loom_http_result(resp);
    loom_http_close(resp);
  }
  curl_easy_cleanup(e);
  /* A body cut short by the server: the open succeeds, the reads hand
   * over what came, then the error. */
  srv_url(url, sizeof(url), "/short");
  e = easy_for(url);
  r.rc[10] = loom_http_open(&resp, e, NULL);
  if (r.rc[10] == 0) {
    char buf[64];
    r.rc[11] = loom_http_read(resp, buf, sizeof(buf));
    r.rc[12] = loom_http_read(resp, buf, sizeof(buf));
    r.code[12] = loom_http_result(resp);
    loom_http_close(resp);
  }
  curl_easy_cleanup(e);
  /* A response another task is blocked reading cannot be closed. */
  srv_url(url, sizeof(url), "/drip");
  e = easy_for(url);
  r.rc[13] = loom_http_open(&resp, e, NULL);
  if (r.rc[13] == 0) {
    char buf[64];
    loom_http_read(resp, buf, sizeof(buf)); /* the 5 bytes */
    loom_task_t *t;
    loom_spawn(&t, read_one, resp);
    loom_yield(); /* it blocks in the read */
    r.rc[14] = loom_http_close(resp);
    loom_cancel(t);
    int st;
    loom_join(t, &st);
    r.rc[15] = st;
    r.rc[16] = loom_http_close(resp);
  }
  curl_easy_cleanup(e);
  /* Nobody listening. */
  loom_listener_t *l;
  loom_tcp_listen(&l, "127.0.0.1", 0, 1);
  int dead = loom_listener_port(l);
  loom_listener_close(l);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/", dead);
  get_rec(8, url, 1024);
  e = easy_for(url);
  r.rc[9] = loom_http_open(&resp, e, NULL);
  curl_easy_cleanup(e);
  loom_server_close(srv, 0);
  return 0;
}

static void test_broken_servers(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(main_broken, NULL));
  assert_true(r.rc[0] < 0);
  assert_int_not_equal(r.code[0], CURLE_OK);
  assert_loom_err(r.rc[1], UV_EOF);
  assert_int_equal(r.code[1], CURLE_GOT_NOTHING);
  assert_loom_err(r.rc[2], UV_ENOBUFS);
  assert_int_equal(r.code[2], CURLE_WRITE_ERROR);
  assert_true(r.len[2]);
  assert_int_equal(r.len[3], 100000);
  assert_loom_ok(r.rc[4]);
  assert_int_equal(r.rc[5], 5);
  assert_loom_err(r.rc[6], UV_ETIMEDOUT);
  assert_loom_err(r.rc[7], UV_ETIMEDOUT);
  assert_int_equal(r.code[7], CURLE_OPERATION_TIMEDOUT);
  assert_loom_err(r.rc[8], UV_ECONNREFUSED);
  assert_int_equal(r.code[8], CURLE_COULDNT_CONNECT);
  assert_loom_err(r.rc[9], UV_ECONNREFUSED);
  assert_loom_ok(r.rc[10]);
  assert_int_equal(r.rc[11], 5);
  assert_loom_err(r.rc[12], UV_EOF);
  assert_int_equal(r.code[12], CURLE_PARTIAL_FILE);
  assert_loom_ok(r.rc[13]);
  assert_loom_err(r.rc[14], UV_EBUSY);
  assert_loom_err(r.rc[15], UV_ECANCELED);
  assert_loom_ok(r.rc[16]);
}

/* ---- an open interrupted, a response closed early, HTTP/2 in parallel ------ */

static int open_slow(void *arg) {
  CURLcode *code = arg;
  char url[256];
  srv_url(url, sizeof(url), "/slow");
  CURL *e = easy_for(url);
  loom_http_resp_t *resp = (loom_http_resp_t *)e;
  int rc = loom_http_open(&resp, e, code);
  r.len[9] = resp == NULL;
  curl_easy_cleanup(e);
  return rc;
}

enum { NH2 = 20 };
static int h2_ok, h2_multiplexed;

static int get_h2(void *arg) {
  (void)arg;
  char url[256];
  snprintf(url, sizeof(url), "https://127.0.0.1:%d/small/%d.txt", nginx_tls_port,
           h2_ok % 200);
  CURL *e = easy_for(url);
  curl_easy_setopt(e, CURLOPT_CAINFO, nginx_ca);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L); /* wait to share a connection */
  loom_http_body_t b;
  int rc = loom_http_fetch(e, 4096, &b);
  long ver = 0, conns = -1;
  curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &ver);
  curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &conns);
  if (rc == 0 && b.status == 200 && ver == CURL_HTTP_VERSION_2_0) h2_ok++;
  if (conns == 0) h2_multiplexed++; /* used a connection another opened */
  free(b.data);
  curl_easy_cleanup(e);
  return rc;
}

static int main_interrupt(void *arg) {
  (void)arg;
  char url[256];
  if (server_start()) return -1;
  /* An open cancelled while it waits for the body to begin. */
  CURLcode code = CURLE_OK;
  loom_task_t *t;
  loom_spawn(&t, open_slow, &code);
  loom_event_wait(&slow_seen);
  loom_cancel(t);
  int st;
  loom_join(t, &st);
  r.rc[0] = st;
  r.code[0] = code;
  /* An open under a timeout scope. */
  loom_scope_t sc;
  loom_event_clear(&slow_seen);
  loom_timeout_enter(&sc, 100);
  r.rc[1] = open_slow(&code);
  loom_scope_exit(&sc);
  /* 10 MiB, closed after 100 KiB: the transfer is aborted, the multi
   * handle serves the next one. */
  nginx_url(url, sizeof(url), "/big.bin");
  CURL *e = easy_for(url);
  loom_http_resp_t *resp;
  r.rc[2] = loom_http_open(&resp, e, NULL);
  if (r.rc[2] == 0) {
    char buf[4096];
    size_t got = 0;
    while (got < 100 * 1024) {
      ssize_t n = loom_http_read(resp, buf, sizeof(buf));
      if (n <= 0) break;
      got += (size_t)n;
    }
    r.len[2] = got;
    r.rc[3] = loom_http_close(resp);
  }
  curl_easy_cleanup(e);
  nginx_url(url, sizeof(url), "/hello.txt");
  get_rec(4, url, 1024);
  /* HTTP/2 over TLS, 20 at once: streams of one connection. */
  h2_ok = h2_multiplexed = 0;
  loom_task_t *ts[NH2];
  for (int i = 0; i < NH2; i++) loom_spawn(&ts[i], get_h2, NULL);
  r.rc[5] = loom_gather(ts, NH2, NULL, 0);
  loom_server_close(srv, 0);
  return 0;
}

static void test_interrupted_open_and_early_close(void **state) {
  (void)state;
  if (!need_nginx()) skip();
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(main_interrupt, NULL));
  assert_loom_err(r.rc[0], UV_ECANCELED);
  assert_int_equal(r.code[0], CURLE_ABORTED_BY_CALLBACK);
  assert_true(r.len[9]);
  assert_loom_err(r.rc[1], UV_ETIMEDOUT);
  assert_loom_ok(r.rc[2]);
  assert_true(r.len[2] >= 100 * 1024);
  assert_loom_ok(r.rc[3]);
  assert_loom_ok(r.rc[4]);
  assert_int_equal(r.status[4], 200);
  assert_loom_ok(r.rc[5]);
  assert_int_equal(h2_ok, NH2);
  print_message("HTTP/2: %d of %d transfers on a connection another opened\n",
                h2_multiplexed, NH2);
  assert_true(h2_multiplexed >= NH2 / 2);
}

/* ---- the easy handle after loom's calls --------------------------------------- */

/* loom_http_fetch and loom_http_open point the handle's write callback at
 * loom's own sink or response; once they are over, the handle is back on
 * libcurl's defaults (fwrite to stdout), so performing it again without a
 * callback of one's own writes the body to stdout, not through memory
 * that has gone. stdout is a temporary file meanwhile. */
static int perform_to_stdout(CURL *e, char *out, size_t cap) {
  FILE *tmp = tmpfile();
  if (!tmp) return -1;
  fflush(stdout);
  int saved = dup(1);
  dup2(fileno(tmp), 1);
  int rc = loom_http_perform(e, NULL);
  fflush(stdout);
  dup2(saved, 1);
  close(saved);
  rewind(tmp);
  size_t n = fread(out, 1, cap - 1, tmp);
  out[n] = 0;
  fclose(tmp);
  return rc;
}

static int main_reuse(void *arg) {
  (void)arg;
  if (server_start()) return -1;
  char url[256];
  srv_url(url, sizeof(url), "/r/0");
  CURL *e = easy_for(url);
  loom_http_body_t b;
  r.rc[0] = loom_http_fetch(e, 1024, &b);
  if (b.data) snprintf(r.body[0], sizeof(r.body[0]), "%s", b.data);
  free(b.data);
  r.rc[1] = perform_to_stdout(e, r.body[1], sizeof(r.body[1]));
  /* The same after a response read to its end and closed. */
  loom_http_resp_t *resp;
  r.rc[2] = loom_http_open(&resp, e, NULL);
  if (r.rc[2] == 0) {
    char buf[64];
    ssize_t n;
    while ((n = loom_http_read(resp, buf, sizeof(buf))) > 0) r.len[2] += (size_t)n;
    r.rc[3] = n;
    r.rc[4] = loom_http_close(resp);
    /* A closed response's handle is stale: a clear error, not a use of
     * freed memory. */
    r.rc[5] = loom_http_read(resp, buf, sizeof(buf));
    r.rc[6] = loom_http_close(resp);
    r.code[6] = loom_http_result(resp);
    r.len[6] = loom_http_easy(resp) == NULL;
  }
  r.rc[7] = perform_to_stdout(e, r.body[7], sizeof(r.body[7]));
  curl_easy_cleanup(e);
  loom_server_close(srv, 0);
  return 0;
}

static void test_handle_reuse_and_stale_response(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(main_reuse, NULL));
  assert_loom_ok(r.rc[0]);
  assert_string_equal(r.body[0], "done\n");
  assert_loom_ok(r.rc[1]);
  assert_string_equal(r.body[1], "done\n");
  assert_loom_ok(r.rc[2]);
  assert_int_equal(r.len[2], 5);
  assert_int_equal(r.rc[3], 0);
  assert_loom_ok(r.rc[4]);
  assert_loom_err(r.rc[5], UV_EBADF);
  assert_loom_err(r.rc[6], UV_EBADF);
  assert_int_equal(r.code[6], CURLE_BAD_FUNCTION_ARGUMENT);
  assert_true(r.len[6]);
  assert_loom_ok(r.rc[7]);
  assert_string_equal(r.body[7], "done\n");
}

/* ---- the runtime ends with transfers in flight ---------------------------------- */

static int main_in_flight(void *arg) {
  CURL **easies = arg;
  if (server_start()) return -1;
  /* Detached tasks, mid-transfer when main returns: cancelled, their
   * transfers aborted. */
  for (int i = 0; i < 4; i++) loom_spawn(NULL, perform_slow, NULL);
  /* A response the program leaves open: closed by the shutdown. */
  char url[256];
  srv_url(url, sizeof(url), "/drip");
  easies[0] = easy_for(url);
  loom_http_resp_t *resp;
  r.rc[0] = loom_http_open(&resp, easies[0], NULL);
  while (handled < 5) loom_sleep(5);
  return 0; /* the server too is left to the shutdown */
}

static void test_runtime_ends_in_flight(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  CURL *easies[1] = {NULL};
  harness_expect_leftovers(); /* the response left open */
  assert_loom_ok(loom_run(main_in_flight, easies));
  assert_loom_ok(r.rc[0]);
  curl_easy_cleanup(easies[0]);
}

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_nginx_get),
      cmocka_unit_test(test_nginx_200_concurrent),
      cmocka_unit_test(test_nginx_stream_10mib),
      cmocka_unit_test(test_nginx_stream_10mib_http2),
      cmocka_unit_test(test_slow_timeout_cancel),
      cmocka_unit_test(test_broken_servers),
      cmocka_unit_test(test_interrupted_open_and_early_close),
      cmocka_unit_test(test_runtime_ends_in_flight),
      cmocka_unit_test(test_handle_reuse_and_stale_response),
  };
  int rc = HARNESS_RUN(tests);
  curl_global_cleanup();
  return rc;
}
