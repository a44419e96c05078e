/* Event (asyncio.Event). set() takes every current waiter off the queue and
 * wakes it with success, so a clear() that follows before they run cannot
 * strand them. A NULL event is answered with UV_EINVAL (is_set: 0). */
#include "sync/internal.h"

int loom_event_init(loom_event_t *event) {
  if (!event) return UV_EINVAL;
  *loom__sync_of(event) = (loom__event_t){.set = 0};
  return 0;
}

int loom_event_set(loom_event_t *event) {
  if (!event) return UV_EINVAL;
  loom__event_t *e = loom__sync_of(event);
  e->set = 1;
  loom__wq_wake_all(&e->waiters, 0);
  return 0;
}

int loom_event_clear(loom_event_t *event) {
  if (!event) return UV_EINVAL;
  loom__sync_of(event)->set = 0;
  return 0;
}

int loom_event_is_set(const loom_event_t *event) {
  return event ? loom__sync_of(event)->set : 0;
}

int loom_event_wait(loom_event_t *event) {
  if (!event) return UV_EINVAL;
  loom__event_t *e = loom__sync_of(event);
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc || e->set) return rc;
  loom__wnode_t n;
  loom__wait_on(&n.w, LOOM__W_EVENT, event);
  rc = loom__wq_wait(&e->waiters, &n, self, 0);
  /* Woken by set but cancelled before running: the cancellation wins, as
   * in asyncio; there is nothing to pass on. */
  return rc ? rc : loom__check(self);
}
