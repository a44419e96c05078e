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
 * A task of another runtime (not the one the future was made on) waits
 * through a small record on the future's `remote` list, under the mutex:
 * the resolution takes the list and posts each record's message to its
 * task's runtime's inbox, where the task is woken. A task that gives up
 * first takes its record off the list; if the resolution has already taken
 * it, the message is on its way (or will be), and frees the record when it
 * runs on that runtime's thread (`gone`).
 *
 *   runtime A's task              future (mu)            runtime B's task
 *   await: wq of A         <--   resolve   -->   remote: [r] --B's inbox-->
 *                                                         on_remote: wake
 *
 * Each waiting task takes a reference and an inbox hold on its own
 * runtime: the future cannot be freed under it, and loom_run does not
 * mistake a wait for another thread for a deadlock.
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
  uv_mutex_t mu;        /* for sleepers and remote */
  uv_cond_t cv;
  loom__list_t remote; /* remote_t by link: tasks of other runtimes;
                           under mu, taken whole by the resolution */
  _Atomic int nremote; /* remote is not empty (as sleepers) */
};

/* A task of another runtime awaiting f (see above). Allocated: its message
 * may outlive the wait. */
typedef struct {
  loom__waiter_t w;  /* the parked task */
  loom__link_t link; /* on f->remote while linked */
  loom__msg_t msg;   /* to the task's runtime, once f is resolved */
  loom__inbox_t *ib; /* that runtime's inbox (a reference) */
  loom_future_t *f;
  int linked; /* under f->mu: on f->remote */
  int gone;   /* the task's thread only: it stopped waiting; the message
                 frees the record */
} remote_t;

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

static void remote_free(remote_t *r) {
  loom__inbox_release(r->ib);
  free(r);
}

/* On the waiting task's runtime's thread, once f is resolved. */
static void on_remote(loom__msg_t *m, int status) {
  remote_t *r = loom__container_of(m, remote_t, msg);
  if (r->gone) {
    remote_free(r); /* the task has stopped waiting */
    return;
  }
  /* status is 0: the waiting task holds its runtime open. */
  if (status == 0) loom__wake(&r->w, 0); /* the task frees r */
}

int loom__future_resolve(loom_future_t *f, int status, void *value) {
  int expected = PENDING;
  if (!atomic_compare_exchange_strong(&f->state, &expected, SETTING)) return LOOM_EDONE;
  f->status = status;
  f->value = value;
  atomic_store(&f->state, DONE); /* seq_cst: pairs with the two counts */
  if (atomic_load(&f->sleepers) || atomic_load(&f->nremote)) {
    uv_mutex_lock(&f->mu);
    uv_cond_broadcast(&f->cv);
    loom__link_t *l = f->remote.head;
    loom__list_init(&f->remote);
    for (loom__link_t *x = l; x; x = x->next)
      loom__list_entry(x, remote_t, link)->linked = 0;
    uv_mutex_unlock(&f->mu);
    while (l) {
      remote_t *r = loom__list_entry(l, remote_t, link);
      l = l->next;
      /* Refused only once the task's runtime has closed: its task, and
       * with it any use of r, is gone. */
      if (loom__inbox_post(r->ib, &r->msg)) remote_free(r);
    }
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

/* The awaiting task of another runtime gave up: off the list (the task
 * frees the record once woken with the error), or, if the resolution took
 * it already, left to its message. */
static void on_remote_interrupted(loom__waiter_t *w) {
  remote_t *r = loom__container_of(w, remote_t, w);
  loom_future_t *f = r->f;
  uv_mutex_lock(&f->mu);
  int linked = r->linked;
  if (linked) {
    loom__list_remove(&f->remote, &r->link);
    r->linked = 0;
    if (loom__list_empty(&f->remote)) atomic_store(&f->nremote, 0);
  }
  uv_mutex_unlock(&f->mu);
  r->gone = !linked;
}

/* A task of rt awaiting f, which belongs to another runtime (or to one
 * that has ended). */
static int await_remote(loom_future_t *f, loom_task_t *self, loom_t *rt) {
  remote_t *r = calloc(1, sizeof(*r));
  if (!r) return UV_ENOMEM;
  int rc = loom__inbox_get(rt, &r->ib);
  if (rc) {
    free(r);
    return rc;
  }
  r->f = f;
  r->msg.run = on_remote;
  r->w.task = self;
  r->w.cancel = on_remote_interrupted;
  uv_mutex_lock(&f->mu);
  atomic_store(&f->nremote, 1); /* seq_cst: before the look at the state */
  int done = atomic_load(&f->state) == DONE;
  if (!done) {
    loom__list_push_back(&f->remote, &r->link);
    r->linked = 1;
  } else if (loom__list_empty(&f->remote)) {
    atomic_store(&f->nremote, 0);
  }
  uv_mutex_unlock(&f->mu);
  if (done) {
    remote_free(r);
    return 0;
  }
  loom__inbox_hold(rt);
  loom__wait_on(&r->w, LOOM__W_FUTURE, f);
  rc = loom__park(&r->w);
  loom__inbox_unhold(rt);
  if (!r->gone) remote_free(r); /* else its message frees it */
  return rc;
}

int loom_future_await(loom_future_t *f, void **value) {
  if (!f) return UV_EINVAL;
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  loom_t *rt = self->rt;
  if (loom_future_done(f)) return result_of(f, value);
  loom_future_retain(f);
  if (loom__inbox_on_thread(f->ib) && loom__inbox_rt(f->ib) == rt) {
    /* The wait queue is the runtime's: only its own tasks join it. */
    loom__inbox_hold(rt);
    loom__wnode_t n;
    loom__wait_on(&n.w, LOOM__W_FUTURE, f);
    rc = loom__wq_wait(&f->waiters, &n, self, 0);
    loom__inbox_unhold(rt);
  } else {
    rc = await_remote(f, self, rt);
  }
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
  uint64_t deadline = 0;
  if (timeout_ms > 0) {
    /* In nanoseconds, on uv_hrtime's clock; a timeout beyond its range
     * (about 584 years from boot) is as good as none. */
    uint64_t now = uv_hrtime();
    if ((uint64_t)timeout_ms < (UINT64_MAX - now) / 1000000u)
      deadline = now + (uint64_t)timeout_ms * 1000000u;
    else
      timeout_ms = -1;
  }
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
