/* gather: structured waiting on 1,000 empty tasks at a time.
 *
 *   gather  loom_spawn x 1000, then loom_gather of the 1000 handles
 *   group   loom_group_open, loom_group_spawn x 1000, loom_group_wait
 *
 * The figure is the time per task, spawn and run included. Peers (run by
 * bench/run.sh): peers/gather.py, asyncio.gather of 1000 create_task'ed
 * coroutines and an asyncio.TaskGroup of 1000, on uvloop.
 * Target (docs/benchmarks.md): >= 20x faster than uvloop's gather and TaskGroup.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench-run.h"
#include "bench.h"
#include "loom.h"

#define BATCH 1000

static int empty(void *arg) {
  (void)arg;
  return 0;
}

static loom_task_t *handles[BATCH];

static uint64_t run_gather(void *ctx, uint64_t n) {
  (void)ctx;
  uint64_t t0 = bench_now_ns();
  for (uint64_t done = 0; done < n; done += BATCH) {
    for (int i = 0; i < BATCH; i++)
      if (loom_spawn(&handles[i], empty, NULL)) exit(1);
    if (loom_gather(handles, BATCH, NULL, 0)) exit(1);
  }
  return bench_now_ns() - t0;
}

static uint64_t run_group(void *ctx, uint64_t n) {
  (void)ctx;
  uint64_t t0 = bench_now_ns();
  for (uint64_t done = 0; done < n; done += BATCH) {
    loom_group_t *g;
    if (loom_group_open(&g)) exit(1);
    for (int i = 0; i < BATCH; i++)
      if (loom_group_spawn(g, NULL, empty, NULL)) exit(1);
    if (loom_group_wait(g)) exit(1);
  }
  return bench_now_ns() - t0;
}

typedef struct {
  bench_result_t gather, group;
} results_t;

static int bench_main(void *arg) {
  results_t *r = arg;
  r->gather = bench_measure(run_gather, NULL, BATCH);
  r->group = bench_measure(run_group, NULL, BATCH);
  return 0;
}

int main(void) {
  results_t r;
  bench_run("bench-gather", bench_main, &r);
  bench_print("gather", "loom", &r.gather, "ns/task");
  bench_print("group", "loom", &r.group, "ns/task");
  return 0;
}
