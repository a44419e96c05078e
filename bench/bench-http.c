/* http: 1,000 concurrent HTTP downloads from a local nginx, libcurl on loom.
 *
 *   bench-http URL [N [ROUNDS]]
 *
 * Each round spawns N tasks (default 1000) that each GET URL into memory
 * with loom_http_get (a new easy handle per download, as a program doing
 * `session.get` would), all at once, and waits for them all (gather). The
 * runtime's one multi handle keeps the connections, so after the warm-up
 * round every download reuses one. The figure is the median round time
 * over ROUNDS rounds (default 20), per download; the notes add the CPU time
 * (user + system) per download over the timed rounds, steadier than the
 * wall clock on a shared machine. Peers (bench/run-http.sh):
 * peers/curl_multi.c, the same downloads on libcurl's own curl_multi_poll
 * loop, and peers/http_fetch.py, asyncio streams without aiohttp. */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "loom.h"
#include "loom/http.h"

typedef struct {
  const char *url;
  int n, rounds;
  double *per; /* ns per download, per round */
  double cpu;  /* CPU time (user + system) of the timed rounds, ns */
  int failed;
  size_t bytes;
} ctx_t;

static ctx_t ctx;

static int download(void *arg) {
  (void)arg;
  loom_http_body_t b;
  int rc = loom_http_get(ctx.url, 1 << 24, &b);
  if (rc || b.status != 200) ctx.failed++;
  ctx.bytes += b.len;
  free(b.data);
  return 0;
}

static int round_of(void) {
  loom_task_t **t = malloc(sizeof(*t) * (size_t)ctx.n);
  if (!t) return UV_ENOMEM;
  for (int i = 0; i < ctx.n; i++)
    if (loom_spawn(&t[i], download, NULL)) exit(1);
  int rc = loom_gather(t, (size_t)ctx.n, NULL, 0);
  free(t);
  return rc;
}

/* The process's CPU time so far (user + system), ns. */
static double cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ((double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec) * 1e9 +
         ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e3;
}

static int bench_main(void *arg) {
  (void)arg;
  int rc = round_of(); /* warm-up: opens the connections */
  double c0 = cpu_ns();
  for (int r = 0; rc == 0 && r < ctx.rounds; r++) {
    uint64_t t0 = bench_now_ns();
    rc = round_of();
    ctx.per[r] = (double)(bench_now_ns() - t0) / ctx.n;
  }
  ctx.cpu = cpu_ns() - c0;
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s URL [N [ROUNDS]]\n", argv[0]);
    return 2;
  }
  ctx.url = argv[1];
  ctx.n = argc > 2 ? atoi(argv[2]) : 1000;
  ctx.rounds = argc > 3 ? atoi(argv[3]) : 20;
  if (ctx.n < 1 || ctx.rounds < 1) return 2;
  ctx.per = calloc((size_t)ctx.rounds, sizeof(double));
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = loom_run(bench_main, NULL);
  curl_global_cleanup();
  if (rc || ctx.failed) {
    fprintf(stderr, "bench-http: %s, %d downloads failed\n", loom_strerror(rc),
            ctx.failed);
    return 1;
  }
  qsort(ctx.per, (size_t)ctx.rounds, sizeof(double), bench_cmp_double);
  double med = ctx.per[ctx.rounds / 2] / 1000.0, mn = ctx.per[0] / 1000.0;
  printf("http   %-18s %10.1f %-10s (median of %d rounds of %d concurrent downloads; "
         "min %.1f; %.0f downloads/s; cpu %.1f us/dl; libcurl %s)\n",
         "loom+libcurl", med, "us/dl", ctx.rounds, ctx.n, mn, 1e6 / med,
         ctx.cpu / 1000.0 / ((double)ctx.n * ctx.rounds),
         curl_version_info(CURLVERSION_NOW)->version);
  free(ctx.per);
  return 0;
}
