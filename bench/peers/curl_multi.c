/* http peer: the downloads of bench-http.c on libcurl's own event loop.
 *
 *   curl_multi URL [N [ROUNDS]]
 *
 * The loop libcurl's documentation recommends: each round adds N new easy
 * handles to one multi handle (default 1000), then curl_multi_perform and
 * curl_multi_poll until none runs, reading the finished ones with
 * curl_multi_info_read. Bodies go to memory, as loom_http_get's do. The
 * multi handle lives across rounds, so its connection cache is reused as
 * loom's is. Prints the median round time per download, in bench.h's
 * format. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct {
  char *data;
  size_t len, cap;
} body_t;

static size_t sink(char *d, size_t size, size_t n, void *ud) {
  body_t *b = ud;
  size_t k = size * n;
  if (b->len + k + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + k + 1) cap *= 2;
    char *nd = realloc(b->data, cap);
    if (!nd) return 0;
    b->data = nd;
    b->cap = cap;
  }
  memcpy(b->data + b->len, d, k);
  b->len += k;
  b->data[b->len] = '\0';
  return k;
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ((double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec) * 1e9 +
         ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int one_round(CURLM *m, const char *url, int n) {
  body_t *bodies = calloc((size_t)n, sizeof(*bodies));
  for (int i = 0; i < n; i++) {
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* The options loom_http_get sets, so both send the same request. */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)1 << 24);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &bodies[i]);
    curl_easy_setopt(e, CURLOPT_PRIVATE, &bodies[i]);
    curl_multi_add_handle(m, e);
  }
  int running = 1, failed = 0;
  while (running) {
    curl_multi_perform(m, &running);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left))) {
      if (msg->msg != CURLMSG_DONE) continue;
      long status = 0;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
      if (msg->data.result != CURLE_OK || status != 200) failed++;
      CURL *e = msg->easy_handle;
      curl_multi_remove_handle(m, e);
      curl_easy_cleanup(e);
    }
    if (running) curl_multi_poll(m, NULL, 0, 1000, NULL);
  }
  for (int i = 0; i < n; i++) free(bodies[i].data);
  free(bodies);
  return failed;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s URL [N [ROUNDS]]\n", argv[0]);
    return 2;
  }
  const char *url = argv[1];
  int n = argc > 2 ? atoi(argv[2]) : 1000;
  int rounds = argc > 3 ? atoi(argv[3]) : 20;
  if (n < 1 || rounds < 1) return 2;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURLM *m = curl_multi_init();
  double *per = calloc((size_t)rounds, sizeof(double));
  int failed = one_round(m, url, n); /* warm-up: opens the connections */
  double c0 = cpu_ns();
  for (int r = 0; r < rounds; r++) {
    double t0 = now_ns();
    failed += one_round(m, url, n);
    per[r] = (now_ns() - t0) / n;
  }
  double cpu = cpu_ns() - c0;
  curl_multi_cleanup(m);
  curl_global_cleanup();
  if (failed) {
    fprintf(stderr, "curl_multi: %d downloads failed\n", failed);
    return 1;
  }
  qsort(per, (size_t)rounds, sizeof(double), cmp);
  double med = per[rounds / 2] / 1000.0, mn = per[0] / 1000.0;
  printf("http   %-18s %10.1f %-10s (median of %d rounds of %d concurrent downloads; "
         "min %.1f; %.0f downloads/s; cpu %.1f us/dl; libcurl %s)\n",
         "curl_multi_poll", med, "us/dl", rounds, n, mn, 1e6 / med,
         cpu / 1000.0 / ((double)n * rounds),
         curl_version_info(CURLVERSION_NOW)->version);
  free(per);
  return 0;
}
