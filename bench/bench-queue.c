/* queue: items handed from a producer task to a consumer task through a
 * loom_queue_t (FIFO), in three shapes. The figure is the time per item.
 *
 *   queue    unbounded; the producer yields after every put, so the consumer
 *            is always waiting in loom_queue_get when an item arrives: each
 *            item is a hand-off (put wakes the getter, yield, get, park:
 *            two task switches and one yield per item)
 *   queue1   maxsize 1: the producer parks on every second put until the
 *            consumer has taken the item (two task switches per item)
 *   queue64  maxsize 64: the producer fills the queue and parks, the consumer
 *            drains it and parks (two task switches per 64 items)
 *
 * The consumer is spawned first, so it is the one waiting when the first
 * item comes, and checks that items come out in order. A run of the first
 * shape with checks on first makes sure the queue is empty after every
 * yield of the producer, i.e. that every item really was handed over.
 * Peers (run by bench/run.sh): peers/queue.go (channels: unbuffered,
 * capacity 1 and 64, GOMAXPROCS=1) and peers/queues.py (asyncio.Queue,
 * unbounded and maxsize 1 and 64, on uvloop), in the same three shapes.
 * Target (docs/benchmarks.md): <= 60 ns per item.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-run.h"
#include "bench.h"
#include "loom.h"

typedef struct {
  size_t maxsize; /* 0: unbounded */
  int yield_each; /* the producer yields after every put */
  int check;      /* the producer checks the queue is empty after a yield */
  loom_queue_t q;
  uint64_t n;
} shape_t;

static _Noreturn void die(const char *what) {
  fprintf(stderr, "bench-queue: %s\n", what);
  exit(1);
}

static int producer(void *arg) {
  shape_t *s = arg;
  loom_queue_t *q = &s->q;
  for (uint64_t i = 1; i <= s->n; i++) {
    if (loom_queue_put(q, (void *)(uintptr_t)i)) return -1;
    if (s->yield_each) {
      if (loom_yield()) return -1;
      if (s->check && loom_queue_size(q) != 0) return -2; /* not handed over */
    }
  }
  return 0;
}

static int consumer(void *arg) {
  shape_t *s = arg;
  loom_queue_t *q = &s->q;
  for (uint64_t i = 1; i <= s->n; i++) {
    void *item;
    if (loom_queue_get(q, &item)) return -1;
    if ((uintptr_t)item != i) return -3; /* out of order */
  }
  return 0;
}

static uint64_t run_queue(void *ctx, uint64_t n) {
  shape_t *s = ctx;
  if (loom_queue_init(&s->q, s->maxsize, LOOM_QUEUE_FIFO, NULL))
    die("loom_queue_init failed");
  s->n = n;
  loom_task_t *c, *p;
  int sc, sp;
  uint64_t t0 = bench_now_ns();
  if (loom_spawn(&c, consumer, s) || loom_spawn(&p, producer, s)) die("spawn failed");
  loom_join(c, &sc);
  loom_join(p, &sp);
  uint64_t ns = bench_now_ns() - t0;
  if (sp == -2) die("an item was not handed over at once");
  if (sc == -3) die("items out of order");
  if (sc || sp) die("a put or get failed");
  if (loom_queue_destroy(&s->q)) die("loom_queue_destroy failed");
  return ns;
}

enum { UNBOUNDED, MAX1, MAX64, NSHAPES };

static shape_t shapes[NSHAPES] = {
    [UNBOUNDED] = {.maxsize = 0, .yield_each = 1},
    [MAX1] = {.maxsize = 1},
    [MAX64] = {.maxsize = 64},
};
static const char *names[NSHAPES] = {"queue", "queue1", "queue64"};
static bench_result_t results[NSHAPES];
static int selected[NSHAPES];

static int bench_main(void *arg) {
  (void)arg;
  shape_t *u = &shapes[UNBOUNDED];
  u->check = 1;
  run_queue(u, 100000);
  u->check = 0;
  for (int i = 0; i < NSHAPES; i++)
    if (selected[i]) results[i] = bench_measure(run_queue, &shapes[i], 1);
  return 0;
}

/* bench-queue [queue|queue1|queue64 ...]: all three by default. */
int main(int argc, char **argv) {
  for (int i = 0; i < NSHAPES; i++) selected[i] = argc < 2;
  for (int a = 1; a < argc; a++) {
    int i = 0;
    while (i < NSHAPES && strcmp(argv[a], names[i]) != 0) i++;
    if (i == NSHAPES) {
      fprintf(stderr, "usage: bench-queue [queue|queue1|queue64 ...]\n");
      return 2;
    }
    selected[i] = 1;
  }
  bench_run("bench-queue", bench_main, NULL);
  for (int i = 0; i < NSHAPES; i++)
    if (selected[i]) bench_print(names[i], "loom", &results[i], "ns/item");
  for (int i = 0; i < NSHAPES; i++)
    if (selected[i]) bench_target(names[i], results[i].median, "loom", 60, "ns/item");
  return 0;
}
