/* lock: loom_lock_t and loom_sem_t, uncontended and contended.
 *
 *   lock     one task: loom_lock_acquire + loom_lock_release of a free lock
 *   sem      one task: loom_sem_acquire + loom_sem_release of a semaphore
 *            of value 1
 *   lock100  a lock passed around 100 tasks. The main task takes the lock,
 *            spawns the 100 tasks and yields once, so that all of them queue
 *            on the lock; then it releases it. Each task loops: acquire,
 *            count, release. As the lock is FIFO and a release hands it to
 *            the longest waiter, the releasing task finds it taken when it
 *            loops and queues again: every acquisition is a hand-off to
 *            another task (checked: each acquirer differs from the previous
 *            holder), and costs one task switch.
 *
 * The figures are ns per acquire+release pair, and ns per hand-off.
 * Peers (run by bench/run.sh): peers/lock.go (sync.Mutex, a buffered
 * channel as semaphore, a channel of capacity 1 as a FIFO lock for lock100;
 * GOMAXPROCS=1) and peers/locks.py (asyncio.Lock, asyncio.Semaphore, on
 * uvloop).
 * Target (docs/benchmarks.md): <= 10 ns per uncontended acquire+release pair.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-run.h"
#include "bench.h"
#include "loom.h"

#define NTASKS 100

static _Noreturn void die(const char *what) {
  fprintf(stderr, "bench-lock: %s\n", what);
  exit(1);
}

static uint64_t run_lock(void *ctx, uint64_t n) {
  loom_lock_t *l = ctx;
  uint64_t t0 = bench_now_ns();
  for (uint64_t i = 0; i < n; i++)
    if (loom_lock_acquire(l) || loom_lock_release(l)) die("lock failed");
  return bench_now_ns() - t0;
}

static uint64_t run_sem(void *ctx, uint64_t n) {
  loom_sem_t *s = ctx;
  uint64_t t0 = bench_now_ns();
  for (uint64_t i = 0; i < n; i++)
    if (loom_sem_acquire(s) || loom_sem_release(s)) die("semaphore failed");
  return bench_now_ns() - t0;
}

/* ---- lock100 ------------------------------------------------------------ */

static struct {
  loom_lock_t lock;
  uint64_t each;     /* acquisitions per task */
  uint64_t count;    /* acquisitions */
  uint64_t handoffs; /* acquisitions by another task than the last holder */
  intptr_t holder;
} ho;

static int contender(void *arg) {
  intptr_t id = (intptr_t)arg;
  for (uint64_t i = 0; i < ho.each; i++) {
    if (loom_lock_acquire(&ho.lock)) return -1;
    ho.count++;
    ho.handoffs += ho.holder != id;
    ho.holder = id;
    if (loom_lock_release(&ho.lock)) return -1;
  }
  return 0;
}

static loom_task_t *handles[NTASKS];

static uint64_t run_handoff(void *ctx, uint64_t n) {
  (void)ctx;
  loom_lock_init(&ho.lock);
  /* n is a multiple of NTASKS, except in bench_measure's first calibration
   * runs: round up, and scale the time to n below. */
  ho.each = (n + NTASKS - 1) / NTASKS;
  ho.count = ho.handoffs = 0;
  ho.holder = -1;
  uint64_t t0 = bench_now_ns();
  if (loom_lock_acquire(&ho.lock)) die("lock failed");
  for (intptr_t i = 0; i < NTASKS; i++)
    if (loom_spawn(&handles[i], contender, (void *)i)) die("spawn failed");
  if (loom_yield()) die("yield failed"); /* they all queue on the lock */
  if (loom_lock_release(&ho.lock)) die("release failed");
  if (loom_gather(handles, NTASKS, NULL, 0)) die("a task failed");
  uint64_t ns = bench_now_ns() - t0;
  uint64_t total = ho.each * NTASKS;
  if (ho.count != total) die("lost acquisitions");
  if (ho.handoffs != total) die("an acquisition was not a hand-off");
  return (uint64_t)((double)ns * (double)n / (double)total);
}

static const char *names[] = {"lock", "sem", "lock100"};
static bench_result_t results[3];
static int selected[3];

static int bench_main(void *arg) {
  (void)arg;
  loom_lock_t l;
  loom_lock_init(&l);
  if (selected[0]) results[0] = bench_measure(run_lock, &l, 1);
  loom_sem_t s;
  loom_sem_init(&s, 1);
  if (selected[1]) results[1] = bench_measure(run_sem, &s, 1);
  if (selected[2]) results[2] = bench_measure(run_handoff, NULL, NTASKS);
  return 0;
}

/* bench-lock [lock|sem|lock100 ...]: all three by default. */
int main(int argc, char **argv) {
  static const char *units[] = {"ns/pair", "ns/pair", "ns/handoff"};
  for (int i = 0; i < 3; i++) selected[i] = argc < 2;
  for (int a = 1; a < argc; a++) {
    int i = 0;
    while (i < 3 && strcmp(argv[a], names[i]) != 0) i++;
    if (i == 3) {
      fprintf(stderr, "usage: bench-lock [lock|sem|lock100 ...]\n");
      return 2;
    }
    selected[i] = 1;
  }
  bench_run("bench-lock", bench_main, NULL);
  for (int i = 0; i < 3; i++)
    if (selected[i]) bench_print(names[i], "loom", &results[i], units[i]);
  for (int i = 0; i < 2; i++)
    if (selected[i]) bench_target(names[i], results[i].median, "loom", 10, "ns/pair");
  return 0;
}
