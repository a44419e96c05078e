/* channel: items handed from a task of one runtime to a task of another,
 * each runtime on its own thread, through a loom_channel_t. The figure is
 * the wall-clock time per item, producer start to consumer end.
 *
 *   channel1     capacity 1: every item is a hand-off between the threads
 *                (the consumer is usually parked, so most items cost a
 *                cross-thread wake-up)
 *   channel128   capacity 128: the producer runs ahead until the channel
 *                is full; a wake-up serves many items
 *   local1       capacity 1, both tasks on one runtime (one thread): what
 *                Go's capacity-1 figure is once its scheduler has put both
 *                goroutines on one P, a hand-off is a task switch. Not
 *                the target's shape (not run by default), its floor.
 *   bare1        no loom: two plain threads hand a counter to each other
 *                through one atomic word, each waiting with a short
 *                pausing spin, then sched_yield (not run by default): the
 *                floor of a one-item hand-off between two threads on this
 *                machine, which no channel between runtimes can beat.
 *
 * The consumer checks that items come out in order. Each run starts two
 * threads, each with loom_run. They are not pinned, unless
 * LOOM_CHANNEL_CPUS="C,P" is set: the consumer's thread then runs on CPU C
 * only and the producer's on CPU P (so that on a machine shared with other
 * programs the two never share one CPU); the figure is then named
 * loom-pinned.
 * LOOM_CHANNEL_ITEMS=N runs each shape once with N items, no calibration:
 * a fixed amount of work for perf stat or strace -c (system calls and
 * context switches per item, which stay put on a loaded machine).
 * Peer (bench/channel.sh): peers/channel.go, the same two shapes with a Go
 * channel between two goroutines at GOMAXPROCS=2.
 * Target (docs/benchmarks.md): per item <= the Go channel's.
 */
#define _GNU_SOURCE /* pthread_setaffinity_np */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "loom.h"

typedef struct {
  size_t capacity;
  int local; /* both tasks on one runtime */
  int bare;  /* no loom: a flag between two threads */
  loom_channel_t *ch;
  uint64_t n;
  int bad;
} shape_t;

static _Noreturn void die(const char *what) {
  fprintf(stderr, "bench-channel: %s\n", what);
  exit(1);
}

static int producer(void *arg) {
  shape_t *s = arg;
  for (uint64_t i = 1; i <= s->n; i++)
    if (loom_channel_put(s->ch, (void *)(uintptr_t)i)) return -1;
  return 0;
}

static int consumer(void *arg) {
  shape_t *s = arg;
  for (uint64_t i = 1; i <= s->n; i++) {
    void *item;
    if (loom_channel_get(s->ch, &item)) return -1;
    if ((uintptr_t)item != i) s->bad = 1;
  }
  return 0;
}

static int local_main(void *arg) {
  loom_task_t *t[2];
  if (loom_spawn(&t[0], consumer, arg) || loom_spawn(&t[1], producer, arg)) return -1;
  int status[2];
  if (loom_join(t[0], &status[0]) || loom_join(t[1], &status[1])) return -1;
  return status[0] || status[1] ? -1 : 0;
}

typedef struct {
  loom_fn fn;
  shape_t *s;
  int status;
  int cpu; /* to run on, or -1 */
} side_t;

static void *side_main(void *p) {
  side_t *side = p;
  if (side->cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(side->cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
      die("pthread_setaffinity_np failed (LOOM_CHANNEL_CPUS)");
  }
  side->status = side->s->bare ? side->fn(side->s) : loom_run(side->fn, side->s);
  return NULL;
}

/* LOOM_CHANNEL_CPUS="C,P": the consumer's and the producer's CPUs. */
static int cpus[2] = {-1, -1};

static inline void pause_cpu(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* bare1: turn is 2i when item i is the producer's to hand, 2i + 1 when it
 * is the consumer's to take. */
static _Atomic uint64_t turn;

static int bare_side(void *arg, uint64_t me) {
  shape_t *s = arg;
  for (uint64_t i = me; i < 2 * s->n; i += 2) {
    for (unsigned spins = 0; atomic_load_explicit(&turn, memory_order_acquire) != i;)
      if (++spins < 256)
        pause_cpu();
      else
        sched_yield();
    atomic_store_explicit(&turn, i + 1, memory_order_release);
  }
  return 0;
}

static int bare_producer(void *arg) { return bare_side(arg, 0); }
static int bare_consumer(void *arg) { return bare_side(arg, 1); }

/* Runs the consumer c and the producer p on a thread each; returns the ns
 * from before the threads are created to after both are joined. */
static uint64_t run_sides(side_t *c, side_t *p) {
  pthread_t tc, tp;
  uint64_t t0 = bench_now_ns();
  if (pthread_create(&tc, NULL, side_main, c) || pthread_create(&tp, NULL, side_main, p))
    die("pthread_create failed");
  pthread_join(tp, NULL);
  pthread_join(tc, NULL);
  return bench_now_ns() - t0;
}

static uint64_t run_channel(void *ctx, uint64_t n) {
  shape_t *s = ctx;
  s->n = n;
  if (s->bare) {
    atomic_store(&turn, 0);
    side_t c = {bare_consumer, s, -1, cpus[0]}, p = {bare_producer, s, -1, cpus[1]};
    return run_sides(&c, &p);
  }
  if (loom_channel_new(&s->ch, s->capacity)) die("loom_channel_new failed");
  if (s->local) {
    uint64_t t0 = bench_now_ns();
    if (loom_run(local_main, s)) die("a put or get failed");
    uint64_t ns = bench_now_ns() - t0;
    if (s->bad) die("items out of order");
    loom_channel_release(s->ch);
    return ns;
  }
  side_t c = {consumer, s, -1, cpus[0]}, p = {producer, s, -1, cpus[1]};
  uint64_t ns = run_sides(&c, &p);
  if (c.status || p.status) die("a put or get failed");
  if (s->bad) die("items out of order");
  loom_channel_release(s->ch);
  return ns;
}

enum { CAP1, CAP128, LOCAL1, BARE1, NSHAPES };
static shape_t shapes[NSHAPES] = {[CAP1] = {.capacity = 1},
                                  [CAP128] = {.capacity = 128},
                                  [LOCAL1] = {.capacity = 1, .local = 1},
                                  [BARE1] = {.capacity = 1, .bare = 1}};
static const char *names[NSHAPES] = {"channel1", "channel128", "local1", "bare1"};

static const char *impl(int shape) {
  if (shapes[shape].bare) return cpus[0] >= 0 ? "threads-pinned" : "threads";
  return cpus[0] >= 0 ? "loom-pinned" : "loom";
}

/* bench-channel [channel1|channel128|local1|bare1 ...]: the first two by
 * default. */
int main(int argc, char **argv) {
  int selected[NSHAPES];
  for (int i = 0; i < NSHAPES; i++) selected[i] = argc < 2 && i < LOCAL1;
  const char *pin = getenv("LOOM_CHANNEL_CPUS");
  if (pin && *pin && sscanf(pin, "%d,%d", &cpus[0], &cpus[1]) != 2) {
    fprintf(stderr, "bench-channel: LOOM_CHANNEL_CPUS is \"C,P\" (two CPU numbers)\n");
    return 2;
  }
  for (int a = 1; a < argc; a++) {
    int i = 0;
    while (i < NSHAPES && strcmp(argv[a], names[i]) != 0) i++;
    if (i == NSHAPES) {
      fprintf(stderr, "usage: bench-channel [channel1|channel128|local1|bare1 ...]\n");
      return 2;
    }
    selected[i] = 1;
  }
  const char *items = getenv("LOOM_CHANNEL_ITEMS");
  uint64_t fixed = items ? strtoull(items, NULL, 10) : 0;
  for (int i = 0; i < NSHAPES; i++) {
    if (!selected[i]) continue;
    if (fixed) {
      uint64_t ns = run_channel(&shapes[i], fixed);
      bench_result_t r = {(double)ns / (double)fixed, (double)ns / (double)fixed, fixed,
                          1};
      bench_print(names[i], impl(i), &r, "ns/item");
      continue;
    }
    bench_result_t r = bench_measure(run_channel, &shapes[i], 1);
    bench_print(names[i], impl(i), &r, "ns/item");
  }
  return 0;
}
