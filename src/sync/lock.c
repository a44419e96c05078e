/* Lock (asyncio.Lock): FIFO-fair. A release with waiters hands the lock to
 * the longest waiter directly (it stays locked), so a newcomer cannot barge
 * in between. Misuse answers with a code: UV_EINVAL for a NULL lock,
 * UV_EPERM for releasing a lock that is not held. */
#include "sync/internal.h"

int loom_lock_init(loom_lock_t *lock) {
  if (!lock) return UV_EINVAL;
  loom__lock_t *l = loom__sync_of(lock);
  *l = (loom__lock_t){.locked = 0};
  return 0;
}

int loom_lock_locked(const loom_lock_t *lock) {
  return lock ? loom__sync_of(lock)->locked != 0 : 0;
}

/* Debug mode: the hold is also recorded in debug-mode.c (which reports a lock
 * held across a suspension for too long), and `locked` is LOCKED_TRACKED so that the
 * release, which has no runtime at hand, knows to tell debug-mode.c with a
 * compare of what it reads anyway. */
#define LOCKED_TRACKED 2

static __attribute__((noinline, cold)) int debug_acquired(loom__lock_t *l,
                                                          loom_task_t *self) {
  l->locked = LOCKED_TRACKED;
  l->holder = self->fiber.id;
  loom__debug_lock_acquired(self->rt, l, self);
  return 0;
}

int loom_lock_try_acquire(loom_lock_t *lock) {
  if (!lock) return UV_EINVAL;
  loom__lock_t *l = loom__sync_of(lock);
  if (l->locked) return UV_EAGAIN;
  l->locked = 1;
  loom_task_t *self = loom__self();
  l->holder = self ? self->fiber.id : 0; /* 0: host code */
  if (self && LOOM__UNLIKELY(self->rt->debug_mode)) return debug_acquired(l, self);
  return 0;
}

int loom__lock_acquire(loom__lock_t *l, loom_task_t *self, int shielded) {
  if (!l->locked) {
    if (LOOM__UNLIKELY(self->rt->debug_mode)) return debug_acquired(l, self);
    l->locked = 1;
    l->holder = self->fiber.id;
    return 0;
  }
  loom__wnode_t n;
  loom__wait_on(&n.w, LOOM__W_LOCK, l);
  int rc = loom__wq_wait(&l->waiters, &n, self, shielded);
  if (rc) return rc; /* interrupted while queued: never had the lock */
  if (!shielded && (rc = loom__check(self)) != 0) {
    loom__lock_release(l); /* handed over, but we must go: pass it on */
    return rc;
  }
  /* Handed over by the release: the new holder. */
  if (LOOM__UNLIKELY(self->rt->debug_mode)) return debug_acquired(l, self);
  return 0;
}

/* The wait, out of line: its node's frame stays off the fast path. */
static __attribute__((noinline)) int lock_wait(loom__lock_t *l, loom_task_t *self) {
  return loom__lock_acquire(l, self, 0);
}

int loom_lock_acquire(loom_lock_t *lock) {
  if (!lock) return UV_EINVAL;
  loom__lock_t *l = loom__sync_of(lock);
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  if (!l->locked) {
    /* A tail call, so that the fast path keeps nothing live across it:
     * a few instructions when debug mode is off. The holder is stored
     * beside `locked` (the same cache line), for dumps. */
    if (LOOM__UNLIKELY(self->rt->debug_mode)) return debug_acquired(l, self);
    l->locked = 1;
    l->holder = self->fiber.id;
    return 0;
  }
  return lock_wait(l, self);
}

int loom__lock_release(loom__lock_t *l) {
  /* One compare for both rare cases: not held, or held in debug mode. */
  if (LOOM__UNLIKELY(l->locked != 1)) {
    if (!l->locked) return UV_EPERM;
    loom__debug_lock_released(l); /* LOCKED_TRACKED */
  }
  /* Handed to the longest waiter: it holds the lock from now on, even
   * before it runs. */
  loom__wnode_t *next = loom__wq_wake_one(&l->waiters, 0);
  if (next)
    l->holder = next->w.task->fiber.id;
  else
    l->locked = 0;
  return 0;
}

int loom_lock_release(loom_lock_t *lock) {
  if (!lock) return UV_EINVAL;
  return loom__lock_release(loom__sync_of(lock));
}
