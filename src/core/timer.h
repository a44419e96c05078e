/* The runtime's timers: deadlines in loop time (ms), driven by a single
 * uv_timer_t armed for the earliest one (timer.c).
 *
 * A timer is embedded in whatever waits for it (a sleeping task's frame, a
 * wait's state, a task record for its scopes' deadlines), so arming one
 * allocates nothing and cannot fail, and a million sleeping tasks cost no
 * memory beyond their frames. Timers fire in the order of their deadlines,
 * then of the order they were armed in, so equal deadlines fire
 * first-come first.
 *
 * Timers of the same deadline share a *bucket*: a circular list in arming
 * order whose first timer (the leader) stands for all of them in a min-heap
 * of leaders (src/util/heap.h), keyed by (deadline, leader's seq). A
 * million tasks sleeping the same number of milliseconds make a few
 * thousand buckets, and arming, firing or disarming one of them is O(1):
 * a lookup in a small table of the newest bucket per deadline, an append, or
 * an unlink (a leader that goes hands its place in the heap to the next
 * timer of its bucket). A timer whose seq is older than its bucket's last
 * (a scope's deadline set earlier, armed now) starts a bucket of its own;
 * the heap merges buckets of equal deadlines by seq, so the order holds.
 *
 *   heap of leaders:   [d=100 s=1] -> s=4 -> s=9      (one bucket)
 *                       /       \
 *            [d=101 s=2]         [d=250 s=3] -> s=5
 *
 * A timer must be disarmed (fired, or removed) before the memory holding it
 * is reused: the heap's and the buckets' links run through the timers.
 */
#ifndef LOOM_CORE_TIMER_H
#define LOOM_CORE_TIMER_H

#include <stddef.h>
#include <stdint.h>

#include "../util/heap.h"

typedef struct loom_s loom_t;
typedef struct loom__timer_s loom__timer_t;

struct loom__timer_s {
  loom__heap_node_t node;          /* in the heap while it leads its bucket;
                                  all NULL otherwise */
  loom__timer_t *next, *prev;      /* its bucket, circular, in seq order;
                                  NULL while not armed */
  uint64_t deadline;               /* loop time, ms */
  uint64_t seq;                    /* arming order: ties fire in it */
  void (*fire)(loom__timer_t *tm); /* called once the deadline is due,
                                      after the timer was disarmed */
};

/* Buckets remembered per deadline, by deadline modulo this. */
#define LOOM__TIMER_RECENT 64

typedef struct loom__timers_s {
  loom__heap_t heap;                         /* bucket leaders */
  size_t n;                                  /* armed timers */
  loom__timer_t *recent[LOOM__TIMER_RECENT]; /* a leader per slot, or NULL:
                                                the newest bucket armed for
                                                a deadline of that slot */
} loom__timers_t;

/* Arms tm (whose `fire` is set) for `deadline`. tm must not be armed. */
void loom__timer_add(loom_t *rt, loom__timer_t *tm, uint64_t deadline);
/* Arms tm like loom__timer_add, but ties with equal deadlines fire in the
 * order of `seq`, taken earlier from loom__timer_next_seq: a deadline that
 * waits for its turn in a shared timer (a task's scope timer) keeps the
 * place it had when it was set. */
void loom__timer_add_seq(loom_t *rt, loom__timer_t *tm, uint64_t deadline, uint64_t seq);
/* A place in the arming order, for loom__timer_add_seq. */
uint64_t loom__timer_next_seq(loom_t *rt);
/* Disarms tm, which must be armed. */
void loom__timer_remove(loom_t *rt, loom__timer_t *tm);
/* The runtime is being freed: lets go of the ticker (tick.c). */
void loom__timers_close(loom_t *rt);
/* Debug check for a task that has ended: no armed timer may lie in
 * [lo, hi), the memory of its stack. Reads no timer in that range. Skipped
 * while more than 256 timers are armed (it walks them all). */
void loom__timers_check_none_in(loom_t *rt, const void *lo, const void *hi);

#endif
