/* Barrier (asyncio.Barrier). Each arrival takes the next index of the cycle;
 * the last one releases the others with success and starts a new cycle at
 * once, so the barrier can be reused immediately. reset breaks the current
 * cycle (its waiters get LOOM_EBROKEN) and abort breaks the barrier for good.
 */
#include "core/internal.h"

int loom_barrier_init(loom_barrier_t *b, unsigned parties) {
  if (!b || parties == 0) return UV_EINVAL;
  b->waiters.head = b->waiters.tail = NULL;
  b->parties = parties;
  b->count = 0;
  b->broken = 0;
  return 0;
}

int loom_barrier_wait(loom_barrier_t *b) {
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
  rc = loom__wq_wait(&b->waiters, &n, self, 0);
  if (rc == 0) return (int)index; /* the cycle completed: that stands */
  if (rc != LOOM_EBROKEN && b->count > 0) b->count--; /* left the cycle */
  return rc;
}

void loom_barrier_reset(loom_barrier_t *b) {
  loom__wq_wake_all(&b->waiters, LOOM_EBROKEN);
  b->count = 0;
}

void loom_barrier_abort(loom_barrier_t *b) {
  b->broken = 1;
  loom_barrier_reset(b);
}

unsigned loom_barrier_n_waiting(const loom_barrier_t *b) { return b->count; }
int loom_barrier_broken(const loom_barrier_t *b) { return b->broken; }
