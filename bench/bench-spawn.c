/* spawn: spawn + run + join of an empty task, in batches.
 *
 * Inside loom_run, the main task spawns a batch of tasks that return 0 at
 * once, then joins them all, and repeats. The figure is the time per task.
 * The default batch is 1000, as the peers'; `bench-spawn B` measures batches
 * of B. run.sh also reports 100 and 10000, each in a process of its own: the
 * stack pool keeps what earlier batches left behind, so sizes measured one
 * after the other in one process would not be independent.
 * Peers (run by bench/run.sh): peers/spawn.go, peers/spawn.py.
 * Target (docs/benchmarks.md): <= 100 ns per task.
 *
 * A second line, "loom-cpu", gives the same runs in the thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID): on a shared machine it leaves out the time
 * the process was not running, which moves the wall-clock figure by up to
 * 2x from one run to the next.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench-run.h"
#include "bench.h"
#include "loom.h"

static int empty(void *arg) {
  (void)arg;
  return 0;
}

#define CPU_KEPT 128 /* the CPU time of the last runs, per task */

typedef struct {
  uint64_t batch;
  loom_task_t **h;
  double cpu[CPU_KEPT];
  unsigned runs;
} spawn_ctx_t;

static uint64_t cpu_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t run_spawn(void *p, uint64_t n) {
  spawn_ctx_t *c = p;
  uint64_t cpu0 = cpu_now_ns();
  uint64_t t0 = bench_now_ns();
  for (uint64_t done = 0; done < n; done += c->batch) {
    for (uint64_t i = 0; i < c->batch; i++)
      if (loom_spawn(&c->h[i], empty, NULL)) {
        fprintf(stderr, "bench-spawn: spawn failed\n");
        exit(1);
      }
    for (uint64_t i = 0; i < c->batch; i++) {
      int st;
      if (loom_join(c->h[i], &st) || st) {
        fprintf(stderr, "bench-spawn: join failed\n");
        exit(1);
      }
    }
  }
  uint64_t ns = bench_now_ns() - t0;
  c->cpu[c->runs++ % CPU_KEPT] = (double)(cpu_now_ns() - cpu0) / (double)n;
  return ns;
}

/* The CPU-time figure of the runs bench_measure timed: its last r->reps. */
static bench_result_t cpu_result(const spawn_ctx_t *c, const bench_result_t *r) {
  double per[101];
  int reps = r->reps;
  for (int i = 0; i < reps; i++) per[i] = c->cpu[(c->runs - 1 - (unsigned)i) % CPU_KEPT];
  qsort(per, (size_t)reps, sizeof(per[0]), bench_cmp_double);
  return (bench_result_t){
      .median = per[reps / 2], .min = per[0], .n = r->n, .reps = reps};
}

typedef struct {
  spawn_ctx_t c;
  bench_result_t r, cpu;
} args_t;

static int bench_main(void *arg) {
  args_t *a = arg;
  a->c.h = calloc(a->c.batch, sizeof(loom_task_t *));
  if (!a->c.h) return UV_ENOMEM;
  a->r = bench_measure(run_spawn, &a->c, a->c.batch);
  a->cpu = cpu_result(&a->c, &a->r);
  free(a->c.h);
  return 0;
}

int main(int argc, char **argv) {
  args_t a = {.c = {.batch = 1000}};
  if (argc > 1) {
    long b = strtol(argv[1], NULL, 10);
    if (argc > 2 || b < 1 || b > 10000000) {
      fprintf(stderr, "usage: bench-spawn [batch-size]\n");
      return 2;
    }
    a.c.batch = (uint64_t)b;
  }
  bench_run("bench-spawn", bench_main, &a);
  char impl[32], cpu[40];
  if (a.c.batch == 1000) {
    snprintf(impl, sizeof(impl), "loom");
    snprintf(cpu, sizeof(cpu), "loom-cpu");
  } else {
    snprintf(impl, sizeof(impl), "loom(batch=%llu)", (unsigned long long)a.c.batch);
    snprintf(cpu, sizeof(cpu), "loom-cpu(batch=%llu)", (unsigned long long)a.c.batch);
  }
  bench_print("spawn", impl, &a.r, "ns/task");
  bench_print("spawn", cpu, &a.cpu, "ns/task-cpu");
  if (a.c.batch == 1000) bench_target("spawn", a.r.median, "loom", 100, "ns/task");
  return 0;
}
