/* yield: two tasks yielding to each other through the scheduler.
 *
 * Inside loom_run, the main task spawns two tasks that each call loom_yield()
 * n/2 times, then joins them. With two ready tasks, every yield hands the
 * thread to the other task, so one yield = one task-to-task hand-off through
 * the ready queue (two fiber switches, via the scheduler's stack).
 * Peers (run by bench/run.sh): peers/yield.go, peers/yield.py.
 * Target (docs/benchmarks.md): <= 40 ns per yield.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench-run.h"
#include "bench.h"
#include "loom.h"

static int yielder(void *arg) {
  uint64_t n = *(uint64_t *)arg;
  for (uint64_t i = 0; i < n; i++)
    if (loom_yield() != 0) return -1;
  return 0;
}

static uint64_t run_yield(void *ctx, uint64_t n) {
  (void)ctx;
  uint64_t each = n / 2;
  loom_task_t *a, *b;
  int sa, sb;
  uint64_t t0 = bench_now_ns();
  if (loom_spawn(&a, yielder, &each) || loom_spawn(&b, yielder, &each)) {
    fprintf(stderr, "bench-yield: spawn failed\n");
    exit(1);
  }
  loom_join(a, &sa);
  loom_join(b, &sb);
  uint64_t ns = bench_now_ns() - t0;
  if (sa || sb) {
    fprintf(stderr, "bench-yield: a yield failed\n");
    exit(1);
  }
  return ns;
}

static int bench_main(void *arg) {
  bench_result_t *r = arg;
  *r = bench_measure(run_yield, NULL, 2);
  return 0;
}

int main(void) {
  bench_result_t r;
  bench_run("bench-yield", bench_main, &r);
  bench_print("yield", "loom", &r, "ns/yield");
  bench_target("yield", r.median, "loom", 40, "ns/yield");
  return 0;
}
