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
#include "sync/internal.h"

int loom_cond_init(loom_cond_t *cond, loom_lock_t *lock) {
  if (!cond) return UV_EINVAL;
  loom__cond_t *c = loom__sync_of(cond);
  /* lock NULL: every later call fails with UV_EINVAL */
  *c = (loom__cond_t){.lock = lock ? loom__sync_of(lock) : NULL};
  return lock ? 0 : UV_EINVAL;
}

int loom_cond_wait(loom_cond_t *cond) {
  loom__cond_t *c = cond ? loom__sync_of(cond) : NULL;
  if (!c || !c->lock) return UV_EINVAL;
  loom_task_t *self = loom__self();
  if (!self) return LOOM_ENOTASK;
  if (!c->lock->locked) return UV_EPERM;
  int rc = loom__check(self);
  if (rc) return rc; /* the lock was never let go */
  loom__lock_release(c->lock);
  loom__wnode_t n;
  loom__wait_on(&n.w, LOOM__W_COND, c);
  rc = loom__wq_wait(&c->waiters, &n, self, 0);
  loom__lock_acquire(c->lock, self, 1);
  if (rc == 0 && (rc = loom__check(self)) != 0)
    loom__wq_wake_one(&c->waiters, 0); /* notified, but leaving: pass it on */
  return rc;
}

int loom_cond_wait_for(loom_cond_t *cond, int (*pred)(void *arg), void *arg) {
  if (!cond || !loom__sync_of(cond)->lock || !pred) return UV_EINVAL;
  while (!pred(arg)) {
    int rc = loom_cond_wait(cond);
    if (rc) return rc;
  }
  return 0;
}

/* The condition behind cond if it may be notified now, else NULL with the
 * error in *rc. */
static loom__cond_t *notifiable(loom_cond_t *cond, int *rc) {
  loom__cond_t *c = cond ? loom__sync_of(cond) : NULL;
  *rc = !c || !c->lock ? UV_EINVAL : !c->lock->locked ? UV_EPERM : 0;
  return *rc ? NULL : c;
}

int loom_cond_notify(loom_cond_t *cond, unsigned n) {
  int rc;
  loom__cond_t *c = notifiable(cond, &rc);
  while (c && n-- > 0 && loom__wq_wake_one(&c->waiters, 0)) {}
  return rc;
}

int loom_cond_notify_all(loom_cond_t *cond) {
  int rc;
  loom__cond_t *c = notifiable(cond, &rc);
  if (c) loom__wq_wake_all(&c->waiters, 0);
  return rc;
}
