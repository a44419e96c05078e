/* Condition (asyncio.Condition), bound to a loom_lock_t.
 *
 * wait releases the lock, waits for a notification, and re-acquires the
 * lock before returning whatever happened: the re-acquisition is shielded
 * from cancellation and timeouts, so the caller always holds the lock again.
 * A waiter notified but interrupted before it ran passes its notification
 * to the next waiter, so notify(1) is never swallowed.
 *
 * Misuse answers with a code: UV_EINVAL for a NULL condition or one bound
 * to no lock (init given NULL, or zero-filled storage never initialised),
 * UV_EPERM for waiting or notifying without the lock held.
 */
#include "core/internal.h"

int loom__lock_acquire(loom_lock_t *l, loom_task_t *self, int shielded);

int loom_cond_init(loom_cond_t *c, loom_lock_t *lock) {
  if (!c) return UV_EINVAL;
  c->waiters.head = c->waiters.tail = NULL;
  c->lock = lock; /* NULL: every later call fails with UV_EINVAL */
  return lock ? 0 : UV_EINVAL;
}

int loom_cond_wait(loom_cond_t *c) {
  if (!c || !c->lock) return UV_EINVAL;
  loom_task_t *self = loom__self();
  if (!self) return LOOM_ENOTASK;
  if (!c->lock->locked) return UV_EPERM;
  int rc = loom__check(self);
  if (rc) return rc; /* the lock was never let go */
  loom_lock_release(c->lock);
  loom__wnode_t n;
  rc = loom__wq_wait(&c->waiters, &n, self, 0);
  loom__lock_acquire(c->lock, self, 1);
  if (rc == 0 && (rc = loom__check(self)) != 0)
    loom__wq_wake_one(&c->waiters, 0); /* notified, but leaving: pass it on */
  return rc;
}

int loom_cond_wait_for(loom_cond_t *c, int (*pred)(void *arg), void *arg) {
  if (!c || !c->lock || !pred) return UV_EINVAL;
  while (!pred(arg)) {
    int rc = loom_cond_wait(c);
    if (rc) return rc;
  }
  return 0;
}

int loom_cond_notify(loom_cond_t *c, unsigned n) {
  if (!c || !c->lock) return UV_EINVAL;
  if (!c->lock->locked) return UV_EPERM;
  while (n-- > 0 && loom__wq_wake_one(&c->waiters, 0)) {
  }
  return 0;
}

int loom_cond_notify_all(loom_cond_t *c) {
  if (!c || !c->lock) return UV_EINVAL;
  if (!c->lock->locked) return UV_EPERM;
  loom__wq_wake_all(&c->waiters, 0);
  return 0;
}
