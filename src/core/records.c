/* Task records: a per-runtime cache of free ones.
 *
 * A task's record lives apart from its stack (spawn.c says why), so a spawn
 * needs one: taken from this cache, LIFO, the most recently freed first,
 * still in cache; malloc only when it is empty. How many free records stay
 * follows demand (util/demand.h): the most records in use per second, at
 * least LOOM__RECORDS_WARM, so repeated bursts allocate nothing and an idle
 * runtime gives them back, a step at a time at its idle points.
 */
#include <stddef.h>
#include <stdlib.h>

#include "internal.h"

#define LOOM__RECORDS_WARM 1024 /* free records always kept */
#define LOOM__RECORDS_WINDOW_NS ((int64_t)1000000000)
#define LOOM__RECORDS_IDLE_STEP 256 /* freed per idle point at most */

loom_task_t *loom__record_new(loom__records_t *r) {
  loom_task_t *t = r->free;
  if (t) {
    r->free = t->next_ready;
    r->nfree--;
    /* The next spawn's record: in a batch, a miss that would wait for the
     * one before it (its link is in it) unless fetched now. */
    if (r->free)
      for (size_t off = 0; off <= offsetof(loom_task_t, name); off += 64)
        __builtin_prefetch((const char *)r->free + off, 1);
  } else if (!(t = malloc(sizeof(*t)))) {
    return NULL;
  }
  loom__demand_used(&r->d, ++r->live);
  return t;
}

void loom__record_free(loom__records_t *r, loom_task_t *t) {
  /* Under the keep, the common case: kept, and the demand window rolls at
   * the next free beyond it or at an idle point. */
  if (r->nfree < r->d.keep) {
    r->live--;
    t->next_ready = r->free;
    r->free = t;
    r->nfree++;
    return;
  }
  int64_t now = r->clock ? *r->clock : 0;
  int keep = loom__demand_may_keep(&r->d, now, r->live, r->nfree, LOOM__RECORDS_WARM,
                                   LOOM__RECORDS_WINDOW_NS);
  r->live--;
  if (!keep) {
    free(t);
    return;
  }
  t->next_ready = r->free;
  r->free = t;
  r->nfree++;
}

/* Gives back from the top of the cache, the most recently freed: a singly
 * linked LIFO has no cheap bottom, and a record costs no system call, so
 * which ones go matters less than for stacks. */
void loom__records_idle(loom__records_t *r) {
  int64_t now = r->clock ? *r->clock : 0;
  loom__demand_idle(&r->d, now, r->live, LOOM__RECORDS_WARM, LOOM__RECORDS_WINDOW_NS);
  for (int i = 0; i < LOOM__RECORDS_IDLE_STEP && r->nfree > r->d.keep; i++) {
    loom_task_t *t = r->free;
    r->free = t->next_ready;
    r->nfree--;
    free(t);
  }
}

void loom__records_init(loom__records_t *r, const int64_t *clock) {
  *r = (loom__records_t){.d = {.keep = LOOM__RECORDS_WARM}, .clock = clock};
}

void loom__records_destroy(loom__records_t *r) {
  while (r->free) {
    loom_task_t *t = r->free;
    r->free = t->next_ready;
    free(t);
  }
  r->nfree = 0;
}
