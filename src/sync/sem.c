/* Semaphore and bounded semaphore (asyncio.Semaphore, BoundedSemaphore).
 * FIFO with no queue jumping: while anyone waits, a newcomer waits too, and a
 * release hands its permit straight to the longest waiter. Misuse answers
 * with a code: UV_EINVAL for a NULL semaphore, UV_EOVERFLOW for a release
 * past the bound (or past UINT_MAX). */
#include "sync/internal.h"

static int init(loom_sem_t *sem, unsigned value, int bounded) {
  if (!sem) return UV_EINVAL;
  *loom__sync_of(sem) = (loom__sem_t){.value = value, .bound = value, .bounded = bounded};
  return 0;
}

int loom_sem_init(loom_sem_t *sem, unsigned value) { return init(sem, value, 0); }
int loom_sem_init_bounded(loom_sem_t *sem, unsigned value) { return init(sem, value, 1); }

unsigned loom_sem_value(const loom_sem_t *sem) {
  return sem ? loom__sync_of(sem)->value : 0;
}

/* Whether an acquire would wait. */
static int must_wait(const loom__sem_t *s) {
  return s->value == 0 || !loom__wq_empty(&s->waiters);
}

int loom_sem_locked(const loom_sem_t *sem) {
  return sem && must_wait(loom__sync_of(sem));
}

int loom_sem_try_acquire(loom_sem_t *sem) {
  if (!sem) return UV_EINVAL;
  loom__sem_t *s = loom__sync_of(sem);
  if (must_wait(s)) return UV_EAGAIN;
  s->value--;
  return 0;
}

static int release(loom__sem_t *s) {
  if (loom__wq_wake_one(&s->waiters, 0)) return 0; /* handed over */
  if (s->bounded ? s->value >= s->bound : s->value == (unsigned)-1) return UV_EOVERFLOW;
  s->value++;
  return 0;
}

/* The wait, out of line: its node's frame stays off the fast path. */
static __attribute__((noinline)) int sem_wait_slow(loom__sem_t *s, loom_task_t *self) {
  loom__wnode_t n;
  loom__wait_on(&n.w, LOOM__W_SEM, s);
  int rc = loom__wq_wait(&s->waiters, &n, self, 0);
  if (rc) return rc; /* interrupted while queued: no permit taken */
  if ((rc = loom__check(self)) != 0) {
    release(s); /* granted, but we must go: pass it on */
    return rc;
  }
  return 0;
}

int loom_sem_acquire(loom_sem_t *sem) {
  if (!sem) return UV_EINVAL;
  loom__sem_t *s = loom__sync_of(sem);
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  /* must_wait, spelt out: so written, gcc -O3 keeps the uncontended path
   * a straight fall-through; with !must_wait(s) it put the slow call
   * first. */
  if (s->value != 0 && loom__wq_empty(&s->waiters)) {
    s->value--;
    return 0;
  }
  return sem_wait_slow(s, self);
}

int loom_sem_release(loom_sem_t *sem) {
  if (!sem) return UV_EINVAL;
  return release(loom__sync_of(sem));
}
