/* offload: the round trip of a no-op job through a thread.
 *
 * Inside loom_run, one task calls loom_to_thread(noop) n times: each round
 * trip queues the job on the runtime's default executor, wakes a worker,
 * runs the job there, posts its completion to the runtime's inbox, wakes
 * the loop and resumes the task. A second figure runs the same through
 * futures (loom_executor_submit + loom_future_await: run_in_executor).
 * Peers (bench/run.sh): peers/offload.py (asyncio.to_thread under uvloop),
 * peers/offload.go (a goroutine hand-off: go + channel reply).
 * Target (docs/benchmarks.md): >= 10x faster than uvloop's to_thread.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench-run.h"
#include "bench.h"
#include "loom.h"

static int noop(void *arg) {
  (void)arg;
  return 0;
}

static uint64_t run_to_thread(void *ctx, uint64_t n) {
  (void)ctx;
  uint64_t t0 = bench_now_ns();
  for (uint64_t i = 0; i < n; i++) {
    int st;
    if (loom_to_thread(noop, NULL, &st) || st) {
      fprintf(stderr, "bench-offload: a job failed\n");
      exit(1);
    }
  }
  return bench_now_ns() - t0;
}

static uint64_t run_submit(void *ctx, uint64_t n) {
  (void)ctx;
  uint64_t t0 = bench_now_ns();
  for (uint64_t i = 0; i < n; i++) {
    loom_future_t *f;
    if (loom_executor_submit(NULL, noop, NULL, &f) || loom_future_await(f, NULL)) {
      fprintf(stderr, "bench-offload: a job failed\n");
      exit(1);
    }
    loom_future_release(f);
  }
  return bench_now_ns() - t0;
}

typedef struct {
  bench_result_t to_thread, submit;
} results_t;

static int bench_main(void *arg) {
  results_t *r = arg;
  r->to_thread = bench_measure(run_to_thread, NULL, 1);
  r->submit = bench_measure(run_submit, NULL, 1);
  return 0;
}

int main(void) {
  results_t r;
  bench_run("bench-offload", bench_main, &r);
  bench_print("offload", "loom", &r.to_thread, "ns/job");
  bench_print("offload", "loom-future", &r.submit, "ns/job");
  return 0;
}
