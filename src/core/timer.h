/* The runtime's timers: deadlines in loop time (ms), kept in one intrusive
 * min-heap (src/util/heap.h) and driven by a single uv_timer_t armed for the
 * earliest one (timer.c).
 *
 * A timer is embedded in whatever waits for it (a sleeping task's frame, a
 * wait's state, a task record for its scopes' deadlines), so arming one
 * allocates nothing and cannot fail, and a million sleeping tasks cost no
 * memory beyond their frames. The heap orders timers by deadline, then by
 * the order they were armed in, so equal deadlines fire first-come first.
 *
 * A timer must be disarmed (fired, or removed) before the memory holding it
 * is reused: the heap's links run through the timers themselves.
 */
#ifndef LOOM_CORE_TIMER_H
#define LOOM_CORE_TIMER_H

#include <stdint.h>

#include "../util/heap.h"

typedef struct loom_s loom_t;
typedef struct loom__timer_s loom__timer_t;

struct loom__timer_s {
  loom__heap_node_t node;          /* in the runtime's heap while armed */
  uint64_t deadline;               /* loop time, ms */
  uint64_t seq;                    /* arming order: ties fire in it */
  void (*fire)(loom__timer_t *tm); /* called once the deadline is due,
                                      after the timer has left the heap */
};

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
