/* Futures (include/loom/future.h): a one-shot cell resolved from anywhere.
 *
 * The state moves once, PENDING -> SETTING -> DONE, by compare-and-swap, so
 * of two racing resolutions exactly one wins and the other gets LOOM_EDONE;
 * status and value are written between the two steps and published by the
 * release store of DONE. Tasks wait on a wait queue that only the runtime's
 * thread touches: a resolution on that thread wakes them directly, one from
 * elsewhere posts the future's own message to the runtime's inbox (a future
 * is resolved once, so one message suffices) and the runtime wakes them.
 * Threads blocked in loom_future_wait sleep on a condition variable; the
 * resolver takes the mutex only when one is registered (the `sleepers`
 * count and the state are both sequentially consistent, so either the
 * resolver sees the sleeper or the sleeper sees DONE).
 *
 * Each waiting task takes a reference and an inbox hold: the future cannot
 * be freed under it, and loom_run does not mistake a wait for another
 * thread for a deadlock.
 */
#include <stdlib.h>

#include "sync/future.h"

enum { PENDING, SETTING, DONE };

struct loom_future_s {
  _Atomic int state; /* PENDING, SETTING, DONE */
  int status;        /* once DONE */
  void *value;       /* once DONE */
  _Atomic long refs;
  _Atomic int sleepers; /* threads in loom_future_wait */
  loom__inbox_t *ib;    /* the runtime's inbox (a reference) */
  loom__wq_t waiters;   /* tasks; the runtime's thread only */
  loom__msg_t wake;     /* posted by a resolution from elsewhere */
  loom_task_t *task;    /* the task whose status it carries, while it
                           runs (loom_remote_spawn): cancelling the future
                           cancels it. The runtime's thread only. */
  uv_mutex_t mu;        /* for sleepers */
  uv_cond_t cv;
};

int loom__future_make(loom__inbox_t *ib, loom_future_t **out) {
  loom_future_t *f = calloc(1, sizeof(*f));
  if (!f) return UV_ENOMEM;
  if (uv_mutex_init(&f->mu)) {
    free(f);
    return UV_ENOMEM;
  }
  if (uv_cond_init(&f->cv)) {
    uv_mutex_destroy(&f->mu);
    free(f);
    return UV_ENOMEM;
  }
  atomic_init(&f->state, PENDING);
  atomic_init(&f->refs, 1);
  atomic_init(&f->sleepers, 0);
  loom__inbox_retain(ib);
  f->ib = ib;
  *out = f;
  return 0;
}

int loom_future_new(loom_future_t **out) {
  if (!out) return UV_EINVAL;
  loom_t *rt = loom__handle_rt();
  if (!rt) return LOOM_ENOTASK;
  loom__inbox_t *ib;
  int rc = loom__inbox_get(rt, &ib);
  if (rc) return rc;
  rc = loom__future_make(ib, out);
  loom__inbox_release(ib);
  return rc;
}

loom_future_t *loom_future_retain(loom_future_t *f) {
  if (f) atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
  return f;
}

void loom_future_release(loom_future_t *f) {
  if (!f || atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1) return;
  loom__inbox_release(f->ib);
  uv_cond_destroy(&f->cv);
  uv_mutex_destroy(&f->mu);
  free(f);
}

/* On the runtime's thread, once f is resolved. */
static void wake_waiters(loom_future_t *f) {
  loom__wq_wake_all(&f->waiters, 0);
  if (f->task && f->status == UV_ECANCELED) loom__cancel(f->task);
}

/* The runtime's side of a resolution from elsewhere. At shutdown
 * (LOOM_ECLOSED) no task is left to wake. */
static void on_wake(loom__msg_t *m, int status) {
  loom_future_t *f = loom__container_of(m, loom_future_t, wake);
  if (status == 0) wake_waiters(f);
  loom_future_release(f);
}

void loom__future_bind_task(loom_future_t *f, loom_task_t *t) { f->task = t; }

int loom__future_resolve(loom_future_t *f, int status, void *value) {
  int expected = PENDING;
  if (!atomic_compare_exchange_strong(&f->state, &expected, SETTING)) return LOOM_EDONE;
  f->status = status;
  f->value = value;
  atomic_store(&f->state, DONE); /* seq_cst: pairs with the sleepers count */
  if (atomic_load(&f->sleepers)) {
    uv_mutex_lock(&f->mu);
    uv_cond_broadcast(&f->cv);
    uv_mutex_unlock(&f->mu);
  }
  if (loom__inbox_on_thread(f->ib)) {
    wake_waiters(f);
  } else {
    /* The message holds a reference until it has run. If the runtime has
     * gone, so have its tasks: nobody is left to wake. */
    loom_future_retain(f);
    f->wake.run = on_wake;
    if (loom__inbox_post(f->ib, &f->wake)) loom_future_release(f);
  }
  return 0;
}

int loom_future_set(loom_future_t *f, void *value) {
  if (!f) return UV_EINVAL;
  return loom__future_resolve(f, 0, value);
}

int loom_future_fail(loom_future_t *f, int err) {
  if (!f || err >= 0) return UV_EINVAL;
  return loom__future_resolve(f, err, NULL);
}

int loom_future_cancel(loom_future_t *f) {
  if (!f) return UV_EINVAL;
  return loom__future_resolve(f, UV_ECANCELED, NULL);
}

static int result_of(const loom_future_t *f, void **value) {
  if (value) *value = f->value;
  return f->status;
}

int loom_future_done(const loom_future_t *f) {
  return f && atomic_load_explicit(&f->state, memory_order_acquire) == DONE;
}

int loom_future_result(const loom_future_t *f, void **value) {
  if (!f) return UV_EINVAL;
  if (!loom_future_done(f)) return UV_EAGAIN;
  return result_of(f, value);
}

int loom_future_await(loom_future_t *f, void **value) {
  if (!f) return UV_EINVAL;
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  loom_t *rt = self->rt;
  /* The wait queue is the runtime's: only its own tasks may join it. */
  if (!loom__inbox_on_thread(f->ib) || loom__inbox_rt(f->ib) != rt) return UV_EINVAL;
  if (loom_future_done(f)) return result_of(f, value);
  loom_future_retain(f);
  loom__inbox_hold(rt);
  loom__wnode_t n;
  loom__wait_on(&n.w, LOOM__W_FUTURE, f);
  rc = loom__wq_wait(&f->waiters, &n, self, 0);
  loom__inbox_unhold(rt);
  /* Woken, then cancelled before it ran: the cancellation wins, and the
   * result stays in the future for whoever asks again. */
  if (!rc) rc = loom__check(self);
  if (!rc) rc = result_of(f, value);
  loom_future_release(f);
  return rc;
}

int loom_future_wait(loom_future_t *f, int64_t timeout_ms, void **value) {
  if (!f) return UV_EINVAL;
  if (loom_future_done(f)) return result_of(f, value);
  if (timeout_ms == 0) return UV_ETIMEDOUT;
  if (loom__inbox_on_thread(f->ib)) return LOOM_EDEADLK;
  uint64_t deadline = timeout_ms > 0 ? uv_hrtime() + (uint64_t)timeout_ms * 1000000u : 0;
  int rc = 0;
  atomic_fetch_add(&f->sleepers, 1);
  uv_mutex_lock(&f->mu);
  while (atomic_load(&f->state) != DONE) {
    if (timeout_ms < 0) {
      uv_cond_wait(&f->cv, &f->mu);
      continue;
    }
    uint64_t now = uv_hrtime();
    if (now >= deadline ||
        uv_cond_timedwait(&f->cv, &f->mu, deadline - now) == UV_ETIMEDOUT) {
      if (atomic_load(&f->state) != DONE) rc = UV_ETIMEDOUT;
      break;
    }
  }
  uv_mutex_unlock(&f->mu);
  atomic_fetch_sub(&f->sleepers, 1);
  return rc ? rc : result_of(f, value);
}
