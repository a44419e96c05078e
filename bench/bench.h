/* Shared helpers of the C benchmarks: a clock, calibration, repetitions and
 * the result line every benchmark (C, Go or Python) prints:
 *
 *   <bench> <impl> <value> <unit>  (free text)
 *
 * bench/run.sh reads the first four fields of such lines; everything after
 * them is for people. A figure is the median of BENCH_REPS runs, each sized
 * by calibration to take about BENCH_TARGET_S seconds.
 */
#ifndef LOOM_BENCH_H
#define LOOM_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define BENCH_REPS 5
#define BENCH_TARGET_S 0.15

static inline uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Peak resident set size of the process so far, in bytes. */
static inline uint64_t bench_maxrss(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)ru.ru_maxrss * 1024u; /* Linux: KiB */
}

/* A workload: performs n operations and returns the elapsed nanoseconds. */
typedef uint64_t (*bench_fn)(void *ctx, uint64_t n);

typedef struct {
  double median; /* ns per operation */
  double min;
  uint64_t n; /* operations per run */
  int reps;
} bench_result_t;

static int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Finds n such that one run takes about `target_s` (the calibration runs
 * double as warm-up), then takes the median of `reps` runs. `quantum` keeps
 * n a multiple of a batch size (1 for none). */
static inline bench_result_t bench_measure(bench_fn fn, void *ctx, uint64_t quantum) {
  double target_s = BENCH_TARGET_S;
  const char *env = getenv("LOOM_BENCH_TARGET_S");
  if (env && atof(env) > 0) target_s = atof(env);
  int reps = BENCH_REPS;
  env = getenv("LOOM_BENCH_REPS");
  if (env && atoi(env) > 0 && atoi(env) <= 101) reps = atoi(env);

  uint64_t n = quantum > 1024 ? quantum : 1024;
  uint64_t ns;
  for (;;) {
    ns = fn(ctx, n);
    if (ns >= target_s * 1e9 / 8 || n >= (UINT64_C(1) << 40)) break;
    n *= 2;
  }
  double scale = target_s * 1e9 / (double)(ns ? ns : 1);
  n = (uint64_t)((double)n * scale);
  n = (n + quantum - 1) / quantum * quantum;
  if (n < quantum) n = quantum;

  double per[101];
  for (int i = 0; i < reps; i++) per[i] = (double)fn(ctx, n) / (double)n;
  qsort(per, (size_t)reps, sizeof(per[0]), bench_cmp_double);
  bench_result_t r = {.median = per[reps / 2], .min = per[0], .n = n, .reps = reps};
  return r;
}

static inline void bench_print(const char *bench, const char *impl,
                               const bench_result_t *r, const char *unit) {
  printf("%-6s %-18s %10.1f %-10s (median of %d runs of %llu; min %.1f)\n", bench, impl,
         r->median, unit, r->reps, (unsigned long long)r->n, r->min);
  fflush(stdout);
}

/* "ratio" lines: how many times slower `peer` is than loom. */
static inline void bench_ratio(const char *bench, const char *peer, double loom,
                               double other) {
  printf("ratio  %-6s %s/loom = %.2fx\n", bench, peer, other / loom);
  fflush(stdout);
}

/* "target" lines: loom's figure against the design target. */
static inline void bench_target(const char *bench, double value, const char *op,
                                double target, const char *unit) {
  printf("target %-6s %s %.2f %s (target <= %g %s): %s\n", bench, op, value, unit, target,
         unit, value <= target ? "met" : "NOT MET");
  fflush(stdout);
}

#endif
