/* The runtime's timers (timer.h): one intrusive min-heap of deadlines,
 * ordered by (deadline, arming order), driven by a single uv_timer_t armed
 * for the earliest deadline. A sleeping task costs a heap node in its own
 * frame instead of a libuv handle that would need closing, and arming or
 * disarming never allocates.
 */
#include "internal.h"

static int before(const loom__heap_node_t *a, const loom__heap_node_t *b) {
  const loom__timer_t *x = loom__container_of(a, const loom__timer_t, node);
  const loom__timer_t *y = loom__container_of(b, const loom__timer_t, node);
  return x->deadline < y->deadline || (x->deadline == y->deadline && x->seq < y->seq);
}

static loom__timer_t *earliest(loom_t *rt) {
  loom__heap_node_t *n = loom__heap_min(&rt->timers);
  return n ? loom__container_of(n, loom__timer_t, node) : NULL;
}

static void on_timer(uv_timer_t *h);

/* Points the uv timer at the earliest deadline, or stops it: it must not
 * keep the loop alive, or fire late, for a deadline that is gone. */
static void arm(loom_t *rt) {
  loom__timer_t *first = earliest(rt);
  if (!first) {
    uv_timer_stop(&rt->timer);
    return;
  }
  uint64_t now = uv_now(rt->loop), d = first->deadline;
  uv_timer_start(&rt->timer, on_timer, d > now ? d - now : 0, 0);
}

static void on_timer(uv_timer_t *h) {
  loom_t *rt = h->data;
  uint64_t now = uv_now(rt->loop);
  loom__timer_t *tm;
  while ((tm = earliest(rt)) && tm->deadline <= now) {
    loom__timer_remove(rt, tm); /* re-arms for the next deadline */
    tm->fire(tm);
  }
}

void loom__timer_add_seq(loom_t *rt, loom__timer_t *tm, uint64_t deadline, uint64_t seq) {
  tm->deadline = deadline;
  tm->seq = seq;
  loom__heap_insert(&rt->timers, &tm->node, before);
  if (earliest(rt) == tm) arm(rt);
}

void loom__timer_add(loom_t *rt, loom__timer_t *tm, uint64_t deadline) {
  loom__timer_add_seq(rt, tm, deadline, rt->timer_seq++);
}

uint64_t loom__timer_next_seq(loom_t *rt) { return rt->timer_seq++; }

void loom__timer_remove(loom_t *rt, loom__timer_t *tm) {
  int was_first = earliest(rt) == tm;
  loom__assert(was_first || tm->node.parent, "removing a timer that is not in the heap");
  loom__heap_remove(&rt->timers, &tm->node, before);
  if (was_first) arm(rt);
}

void loom__timers_close(loom_t *rt) { loom__tick_release(rt); }

#if defined(LOOM_DEBUG) && LOOM_DEBUG
/* Walks the subtree at n; a node's address is checked before it is read. */
static void check_none_in(const loom__heap_node_t *n, const char *lo, const char *hi) {
  if (!n) return;
  loom__assert((const char *)n < lo || (const char *)n >= hi,
               "a task ended with a timer armed in its stack");
  check_none_in(n->left, lo, hi);
  check_none_in(n->right, lo, hi);
}
#endif

void loom__timers_check_none_in(loom_t *rt, const void *lo, const void *hi) {
#if defined(LOOM_DEBUG) && LOOM_DEBUG
  /* A walk of every armed timer at every task end: bounded, so that debug
   * builds of programs with many sleepers stay linear. The tests' runtimes
   * keep far fewer timers than this and are always checked. */
  if (rt->timers.n <= 256) check_none_in(loom__heap_min(&rt->timers), lo, hi);
#else
  (void)rt, (void)lo, (void)hi;
#endif
}
