/* scale: N concurrent sleeping tasks (default 1,000,000).
 *
 * Inside loom_run, the main task measures the peak RSS (the baseline), spawns
 * N tasks with default settings (default stack size), each of which waits
 * for a start signal (an event) and then sleeps for `ms` milliseconds
 * (default 1000), and joins them all. The start signal is the Go peer's
 * `start` channel: it is set once every task has been spawned and has run,
 * after main's own 1 ms sleep has let the loop read its clock again. Without
 * it, the tasks would all run in the pass that spawned them, on the loop
 * time that pass began with (libuv caches it per loop iteration), and a
 * 2 s sleep started after seconds of spawning would already be due. The figure is the
 * growth of the peak RSS (getrusage ru_maxrss) over the baseline, divided by
 * N; it includes everything a task costs: its stack pages (its sleep's
 * timer is on its stack), its task record, its handle slot, its entry in
 * the free-stack array, and the benchmark's own 8-byte handle per task. The run also checks that all N were asleep at
 * once, and prints its times.
 *
 *   bench-scale [N [ms]]
 *
 * Peer (run by bench/run.sh): peers/scale.go. Target (docs/benchmarks.md): <= 8 KiB
 * resident per task, and the run finishes.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "loom.h"

typedef struct {
  loom_event_t start;
  uint64_t n, ms;
  uint64_t asleep, max_asleep;
  uint64_t base_rss, peak_rss;
  uint64_t t_spawn_ns, t_asleep_ns, t_total_ns;
  uint64_t t0;
  int failed;
} scale_t;

static int sleeper(void *arg) {
  scale_t *s = arg;
  int rc = loom_event_wait(&s->start);
  if (rc) return rc;
  if (++s->asleep > s->max_asleep) {
    s->max_asleep = s->asleep;
    if (s->max_asleep == s->n) s->t_asleep_ns = bench_now_ns() - s->t0;
  }
  rc = loom_sleep(s->ms);
  s->asleep--;
  return rc;
}

static int bench_main(void *arg) {
  scale_t *s = arg;
  loom_task_t **h = malloc(s->n * sizeof(*h));
  if (!h) return UV_ENOMEM;
  /* The handle array is faulted in after the baseline, so its 8 bytes per
   * task count in the figure (as the slice of handles would in Go). */
  s->base_rss = bench_maxrss();
  s->t0 = bench_now_ns();
  for (uint64_t i = 0; i < s->n; i++) {
    int rc = loom_spawn(&h[i], sleeper, s);
    if (rc) {
      fprintf(stderr, "bench-scale: spawn %llu failed: %s\n", (unsigned long long)i,
              loom_strerror(rc));
      s->failed = 1;
      s->n = i;
      break;
    }
  }
  s->t_spawn_ns = bench_now_ns() - s->t0;
  /* The tasks run up to their wait; the loop reads its clock; go. */
  if (loom_sleep(1) || loom_event_set(&s->start)) s->failed = 1;
  for (uint64_t i = 0; i < s->n; i++) {
    int st;
    if (loom_join(h[i], &st) || st) s->failed = 1;
  }
  s->t_total_ns = bench_now_ns() - s->t0;
  s->peak_rss = bench_maxrss();
  free(h);
  return 0;
}

int main(int argc, char **argv) {
  scale_t s = {0};
  loom_event_init(&s.start);
  s.n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
  s.ms = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000;
  if (s.n == 0) {
    fprintf(stderr, "usage: bench-scale [N [sleep-ms]]\n");
    return 2;
  }
  uint64_t n = s.n;
  uint64_t t0 = bench_now_ns();
  int rc = loom_run(bench_main, &s);
  uint64_t t_run = bench_now_ns() - t0;
  if (rc || s.failed || s.n != n) {
    fprintf(stderr, "bench-scale: run failed (%s)\n",
            rc ? loom_strerror(rc) : "see above");
    return 1;
  }
  double per = (double)(s.peak_rss - s.base_rss) / (double)n;
  printf("scale  %-18s %10.0f %-10s (peak RSS %.1f MiB over a %.1f MiB "
         "baseline, %llu tasks)\n",
         "loom", per, "B/task", (double)(s.peak_rss - s.base_rss) / 1048576.0,
         (double)s.base_rss / 1048576.0, (unsigned long long)n);
  printf("scale  %-18s %10.2f %-10s (spawn %.2f s, all asleep after %.2f s, "
         "joined after %.2f s, %llu ms sleeps; loom_run %.2f s)\n",
         "loom-time", (double)s.t_total_ns / 1e9, "s", s.t_spawn_ns / 1e9,
         s.t_asleep_ns / 1e9, s.t_total_ns / 1e9, (unsigned long long)s.ms, t_run / 1e9);
  printf("# scale: %llu of %llu tasks were asleep at once\n",
         (unsigned long long)s.max_asleep, (unsigned long long)n);
  if (s.max_asleep != n) {
    printf("# scale: WARNING: not all tasks were alive and asleep at once; "
           "use a longer sleep\n");
  }
  bench_target("scale", per / 1024.0, "loom", 8, "KiB/task");
  return 0;
}
