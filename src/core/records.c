/* Task records: a per-runtime cache of free ones.
 *
 * A task's record lives apart from its stack (spawn.c says why), so a spawn
 * needs one: taken from this cache, LIFO, the most recently freed first,
 * still in cache; malloc only when it is empty. How many free records stay
 * follows demand (util/demand.h): the most records in use per second, at
 * least LOOM__RECORDS_WARM, so repeated bursts allocate nothing and an idle
 * runtime gives them back, a step at a time at its idle points.
 *
 * The cache is an array rather than a list through the records: a spawn
 * knows, without reading any record, which one the spawn LOOM__AHEAD after
 * it will take, fetches it now and leaves its address in the task as a
 * hint for the task's start and its join (batches start and are joined in
 * spawn order, and each record is a miss to memory past a few thousand).
 */
#include <stddef.h>
#include <stdlib.h>

#include "internal.h"

#define LOOM__RECORDS_WARM 1024 /* free records always kept */
#define LOOM__RECORDS_WINDOW_NS ((int64_t)1000000000)
#define LOOM__RECORDS_IDLE_STEP 256 /* freed per idle point at most */

loom_task_t *loom__record_new(loom__records_t *r) {
  loom_task_t *t;
  if (r->nfree) {
    t = r->free[--r->nfree];
    t->ahead = r->nfree >= LOOM__AHEAD ? r->free[r->nfree - LOOM__AHEAD] : NULL;
    /* The lines a spawn writes, of the record LOOM__AHEAD spawns from now. */
    loom__prefetch_ahead(t, offsetof(loom_task_t, name) + 1);
  } else if ((t = malloc(sizeof(*t)))) {
    t->ahead = NULL;
  } else {
    return NULL;
  }
  loom__demand_used(&r->d, ++r->live);
  return t;
}

/* Keeps t if the array has room or can be given some. */
static int keep_one(loom__records_t *r, loom_task_t *t) {
  if (r->nfree == r->cap) {
    size_t cap = r->cap ? 2 * r->cap : 64;
    loom_task_t **a = realloc(r->free, cap * sizeof(*a));
    if (!a) return 0; /* then freed: a cache may always say no */
    r->free = a;
    r->cap = cap;
  }
  r->free[r->nfree++] = t;
  return 1;
}

void loom__record_free(loom__records_t *r, loom_task_t *t) {
  r->live--;
  /* Under the keep, the common case: kept, and the demand window rolls at
   * the next free beyond it or at an idle point. */
  if (r->nfree < r->d.keep && r->nfree < r->cap) {
    r->free[r->nfree++] = t;
    return;
  }
  int64_t now = r->clock ? *r->clock : 0;
  /* Counted as still in use, as the stack pool counts a stack at its put. */
  int keep = loom__demand_may_keep(&r->d, now, r->live + 1, r->nfree, LOOM__RECORDS_WARM,
                                   LOOM__RECORDS_WINDOW_NS);
  if (!keep || !keep_one(r, t)) free(t);
}

/* Gives back from the top of the cache, the most recently freed: a record
 * costs no system call, so which ones go matters less than for stacks. */
void loom__records_idle(loom__records_t *r) {
  int64_t now = r->clock ? *r->clock : 0;
  loom__demand_idle(&r->d, now, r->live, LOOM__RECORDS_WARM, LOOM__RECORDS_WINDOW_NS);
  for (int i = 0; i < LOOM__RECORDS_IDLE_STEP && r->nfree > r->d.keep; i++)
    free(r->free[--r->nfree]);
}

void loom__records_init(loom__records_t *r, const int64_t *clock) {
  *r = (loom__records_t){.d = {.keep = LOOM__RECORDS_WARM}, .clock = clock};
}

void loom__records_destroy(loom__records_t *r) {
  while (r->nfree) free(r->free[--r->nfree]);
  free(r->free);
  r->free = NULL;
  r->cap = 0;
}
