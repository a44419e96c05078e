/* Barrier (asyncio.Barrier). Each arrival takes the next index of the cycle;
 * the last one releases the others with success and starts a new cycle at
 * once, so the barrier can be reused immediately. reset breaks the current
 * cycle (its waiters get LOOM_EBROKEN) and abort breaks the barrier for good.
 *
 * Misuse answers with UV_EINVAL: a NULL barrier, 0 parties or more than
 * INT_MAX (wait returns the arrival index as an int, and a larger one would
 * read as an error code), and a barrier never initialised (zero-filled) or
 * whose init failed.
 */
#include <limits.h>

#include "sync/internal.h"

int loom_barrier_init(loom_barrier_t *barrier, unsigned parties) {
  if (!barrier) return UV_EINVAL;
  int ok = parties != 0 && parties <= (unsigned)INT_MAX;
  /* parties 0: every later wait fails with UV_EINVAL */
  *loom__sync_of(barrier) = (loom__barrier_t){.parties = ok ? parties : 0};
  return ok ? 0 : UV_EINVAL;
}

int loom_barrier_wait(loom_barrier_t *barrier) {
  loom__barrier_t *b = barrier ? loom__sync_of(barrier) : NULL;
  if (!b || b->parties == 0) return UV_EINVAL;
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  if (b->broken) return LOOM_EBROKEN;
  unsigned index = b->count++;
  if (b->count == b->parties) {
    b->count = 0;
    loom__wq_wake_all(&b->waiters, 0);
    return (int)index;
  }
  loom__wnode_t n;
  loom__wait_on(&n.w, LOOM__W_BARRIER, b);
  rc = loom__wq_wait(&b->waiters, &n, self, 0);
  if (rc == 0) return (int)index; /* the cycle completed: that stands */
  if (rc != LOOM_EBROKEN && b->count > 0) b->count--; /* left the cycle */
  return rc;
}

int loom_barrier_reset(loom_barrier_t *barrier) {
  if (!barrier) return UV_EINVAL;
  loom__barrier_t *b = loom__sync_of(barrier);
  loom__wq_wake_all(&b->waiters, LOOM_EBROKEN);
  b->count = 0;
  return 0;
}

int loom_barrier_abort(loom_barrier_t *barrier) {
  if (!barrier) return UV_EINVAL;
  loom__sync_of(barrier)->broken = 1;
  return loom_barrier_reset(barrier);
}

unsigned loom_barrier_n_waiting(const loom_barrier_t *barrier) {
  return barrier ? loom__sync_of(barrier)->count : 0;
}

int loom_barrier_broken(const loom_barrier_t *barrier) {
  return barrier ? loom__sync_of(barrier)->broken : 0;
}
