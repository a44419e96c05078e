/* The runtime's timers (timer.h): buckets of equal deadlines, their leaders
 * in one intrusive min-heap ordered by (deadline, arming order), driven by
 * a single uv_timer_t armed for the earliest deadline. A sleeping task
 * costs a timer in its own frame instead of a libuv handle that would need
 * closing, and arming or disarming never allocates.
 *
 * Measured before buckets (one heap node per timer): a million tasks
 * sleeping 2 s spent 28% of the run's CPU time in the heap, each arming
 * and firing walking ~20 levels of pointers spread over a million stacks.
 */
#include "internal.h"

static int before(const loom__heap_node_t *a, const loom__heap_node_t *b) {
  const loom__timer_t *x = loom__container_of(a, const loom__timer_t, node);
  const loom__timer_t *y = loom__container_of(b, const loom__timer_t, node);
  return x->deadline < y->deadline || (x->deadline == y->deadline && x->seq < y->seq);
}

static loom__timer_t *earliest(loom_t *rt) {
  loom__heap_node_t *n = loom__heap_min(&rt->timers.heap);
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
  uint64_t now = uv_now(rt->loop), hr = uv_hrtime();
  loom__timer_t *tm;
  while ((tm = earliest(rt)) && tm->deadline <= now) {
    loom__timer_remove(rt, tm); /* re-arms for the next deadline */
    /* Loop time is hrtime in whole ms: how late, to the clock's precision. */
    loom__stats_late(rt, hr > tm->deadline * 1000000 ? hr - tm->deadline * 1000000 : 0);
    tm->fire(tm);
  }
}

static loom__timer_t **recent(loom_t *rt, uint64_t deadline) {
  return &rt->timers.recent[deadline % LOOM__TIMER_RECENT];
}

void loom__timer_add_seq(loom_t *rt, loom__timer_t *tm, uint64_t deadline, uint64_t seq) {
  tm->deadline = deadline;
  tm->seq = seq;
  rt->timers.n++;
  loom__timer_t **slot = recent(rt, deadline);
  loom__timer_t *b = *slot;
  if (b && b->deadline == deadline && b->prev->seq < seq) {
    /* Behind the last of its bucket: no heap operation. */
    tm->node = (loom__heap_node_t){0};
    tm->next = b;
    tm->prev = b->prev;
    b->prev->next = tm;
    b->prev = tm;
    return;
  }
  tm->next = tm->prev = tm;
  loom__heap_insert(&rt->timers.heap, &tm->node, before);
  *slot = tm;
  if (earliest(rt) == tm) arm(rt);
}

void loom__timer_add(loom_t *rt, loom__timer_t *tm, uint64_t deadline) {
  loom__timer_add_seq(rt, tm, deadline, rt->timer_seq++);
}

uint64_t loom__timer_next_seq(loom_t *rt) { return rt->timer_seq++; }

void loom__timer_remove(loom_t *rt, loom__timer_t *tm) {
  loom__assert(tm->next, "removing a timer that is not in the heap");
  loom__heap_t *heap = &rt->timers.heap;
  rt->timers.n--;
  loom__timer_t *next = tm->next;
  int was_first = loom__heap_min(heap) == &tm->node;
  if (!was_first && !tm->node.parent) { /* not a leader: an unlink */
    next->prev = tm->prev;
    tm->prev->next = next;
    tm->next = tm->prev = NULL;
    return;
  }
  loom__timer_t **slot = recent(rt, tm->deadline);
  if (next == tm) { /* the last of its bucket */
    loom__heap_remove(heap, &tm->node, before);
    if (*slot == tm) *slot = NULL;
  } else { /* the next of its bucket leads it now */
    next->prev = tm->prev;
    tm->prev->next = next;
    loom__heap_replace(heap, &tm->node, &next->node, before);
    if (*slot == tm) *slot = next;
  }
  tm->next = tm->prev = NULL;
  /* The uv timer stays right while the earliest deadline is the same. */
  if (was_first && (next == tm || earliest(rt) != next)) arm(rt);
}

void loom__timers_close(loom_t *rt) { loom__tick_release(rt); }

#if defined(LOOM_DEBUG) && LOOM_DEBUG
static void check_one(const loom__timer_t *tm, const char *lo, const char *hi) {
  loom__assert((const char *)tm + sizeof(*tm) <= lo || (const char *)tm >= hi,
               "a task ended with a timer armed in its stack");
}

/* Walks the subtree at n and each leader's bucket; a timer's address is
 * checked before it is read. */
static void check_none_in(const loom__heap_node_t *n, const char *lo, const char *hi) {
  if (!n) return;
  const loom__timer_t *lead = loom__container_of(n, const loom__timer_t, node);
  check_one(lead, lo, hi);
  for (const loom__timer_t *tm = lead->next; tm != lead; tm = tm->next)
    check_one(tm, lo, hi);
  check_none_in(n->left, lo, hi);
  check_none_in(n->right, lo, hi);
}
#endif

void loom__timers_check_none_in(loom_t *rt, const void *lo, const void *hi) {
#if defined(LOOM_DEBUG) && LOOM_DEBUG
  /* A walk of every armed timer at every task end: bounded, so that debug
   * builds of programs with many sleepers stay linear. The tests' runtimes
   * keep far fewer timers than this and are always checked. */
  if (rt->timers.n <= 256) check_none_in(loom__heap_min(&rt->timers.heap), lo, hi);
#else
  (void)rt, (void)lo, (void)hi;
#endif
}
