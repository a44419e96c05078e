/* The runtime's inbox (inbox.h): messages from other threads.
 *
 * Posting takes the inbox's mutex, appends, and sends the async handle if
 * no send is already on its way; the send happens under the mutex, so the
 * runtime cannot close (and free) the handle between the check that it is
 * open and the send. The runtime's thread takes the whole list at once and
 * runs it outside the mutex, so a message may post again without deadlock.
 */
#define _GNU_SOURCE /* sched_getaffinity */
#include <sched.h>
#include <stdlib.h>

#include "internal.h"

#ifdef LOOM_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#endif

static void drain(loom_t *rt) {
  loom__inbox_t *ib = rt->inbox;
  uv_mutex_lock(&ib->mu);
  loom__msg_t *m = ib->head;
  ib->head = ib->tail = NULL;
  ib->signalled = 0;
  atomic_store_explicit(&ib->posted, 0, memory_order_relaxed);
  uv_mutex_unlock(&ib->mu);
  if (ib->waiting) { /* the message loom_run waited for has come */
    ib->waiting = 0;
    if (!rt->holds) uv_unref((uv_handle_t *)&rt->inbox_async);
  }
  while (m) {
    loom__msg_t *next = m->next; /* run may free m */
    m->run(m, 0);
    m = next;
  }
  /* A message may have ended the last wait of a runtime shutting down. */
  loom__maybe_close(rt);
}

static void on_async(uv_async_t *h) { drain(h->data); }

static int posted(void *ib) {
  return atomic_load_explicit(&((loom__inbox_t *)ib)->posted, memory_order_relaxed);
}

int loom__spin_ok(void) {
  static _Atomic int ok = -1;
  int v = atomic_load_explicit(&ok, memory_order_relaxed);
  if (v < 0) {
    v = uv_available_parallelism() > 1;
#ifdef LOOM_HAVE_VALGRIND
    /* Valgrind runs one thread at a time: a spin for another thread only
     * burns the time slice that thread needs to answer. */
    if (RUNNING_ON_VALGRIND) v = 0;
#endif
    atomic_store_explicit(&ok, v, memory_order_relaxed);
  }
  return v;
}

int loom__spin_can_yield(void) {
  static LOOM__TLS int can = -1;
  if (can < 0) {
    cpu_set_t set;
    can = sched_getaffinity(0, sizeof(set), &set) != 0 || CPU_COUNT(&set) > 1;
  }
  return can;
}

/* The loop is about to poll. If nothing is ready (the poll would sleep)
 * and a message is due, look at the inbox until it comes or the time is
 * up; a message found is run here, and the tasks it wakes make the poll
 * not block. While this thread looks (ib->spinning, under the mutex), a
 * post does not send the async handle: the message costs no system call on
 * either side. Whatever was posted by the time it stops looking is run
 * before it lets the loop sleep. */
static void on_prepare(uv_prepare_t *h) {
  loom_t *rt = h->data;
  loom__inbox_t *ib = rt->inbox;
  if (!rt->holds) {
    ib->spin_ns = 0;
    uv_prepare_stop(h);
    return;
  }
  if (rt->idle_active) return; /* tasks are ready: the poll will not sleep */
  uint64_t now = uv_hrtime();
  if (ib->spin_ns) { /* asked for since the last look: from now on */
    if (now + ib->spin_ns > ib->spin_until) ib->spin_until = now + ib->spin_ns;
    ib->spin_ns = 0;
  }
  if (now >= ib->spin_until) {
    uv_prepare_stop(h);
    return;
  }
  if (!loom__spin_try(&ib->spin)) return;
  uv_mutex_lock(&ib->mu);
  ib->spinning = 1;
  uv_mutex_unlock(&ib->mu);
  loom__spin_wait(&ib->spin, ib->spin_until > now ? ib->spin_until - now : 0, posted, ib);
  uv_mutex_lock(&ib->mu);
  ib->spinning = 0;
  int found = ib->head != NULL; /* a post may have come after the last look */
  uv_mutex_unlock(&ib->mu);
  if (!found) loom__spin_done(&ib->spin, 0);
  if (found) drain(rt);
}

void loom__inbox_expect_soon(loom_t *rt, uint64_t ns) {
  if (!loom__spin_ok()) return;
  loom__inbox_t *ib = rt->inbox;
  if (ns > ib->spin_ns) ib->spin_ns = ns;
  if (!uv_is_active((uv_handle_t *)&rt->inbox_spin))
    uv_prepare_start(&rt->inbox_spin, on_prepare);
}

int loom__inbox_get(loom_t *rt, loom__inbox_t **out) {
  loom__inbox_t *ib = rt->inbox;
  if (!ib) {
    if (rt->open_handles) return LOOM_ECLOSED; /* closing its handles */
    ib = calloc(1, sizeof(*ib));
    if (!ib) return UV_ENOMEM;
    if (uv_mutex_init(&ib->mu)) {
      free(ib);
      return UV_ENOMEM;
    }
    int rc = uv_async_init(rt->loop, &rt->inbox_async, on_async);
    if (rc) {
      uv_mutex_destroy(&ib->mu);
      free(ib);
      return rc;
    }
    rt->inbox_async.data = rt;
    uv_unref((uv_handle_t *)&rt->inbox_async);
    uv_prepare_init(rt->loop, &rt->inbox_spin); /* cannot fail */
    rt->inbox_spin.data = rt;
    uv_unref((uv_handle_t *)&rt->inbox_spin);
    ib->rt = rt;
    ib->async = &rt->inbox_async;
    ib->thread = uv_thread_self();
    atomic_init(&ib->refs, 1); /* the runtime's */
    rt->inbox = ib;
  } else if (!ib->rt) {
    return LOOM_ECLOSED;
  }
  loom__inbox_retain(ib);
  *out = ib;
  return 0;
}

void loom__inbox_retain(loom__inbox_t *ib) {
  atomic_fetch_add_explicit(&ib->refs, 1, memory_order_relaxed);
}

void loom__inbox_release(loom__inbox_t *ib) {
  if (atomic_fetch_sub_explicit(&ib->refs, 1, memory_order_acq_rel) != 1) return;
  uv_mutex_destroy(&ib->mu);
  free(ib);
}

int loom__inbox_post(loom__inbox_t *ib, loom__msg_t *m) {
  m->next = NULL;
  uv_mutex_lock(&ib->mu);
  if (!ib->rt) {
    uv_mutex_unlock(&ib->mu);
    return LOOM_ECLOSED;
  }
  if (ib->tail)
    ib->tail->next = m;
  else
    ib->head = m;
  ib->tail = m;
  atomic_store_explicit(&ib->posted, 1, memory_order_relaxed);
  if (!ib->signalled && !ib->spinning) {
    ib->signalled = 1;
    uv_async_send(ib->async);
  }
  uv_mutex_unlock(&ib->mu);
  return 0;
}

int loom__inbox_on_thread(loom__inbox_t *ib) {
  uv_thread_t self = uv_thread_self();
  if (!uv_thread_equal(&self, &ib->thread)) return 0;
  /* On the runtime's thread nobody else writes rt: no lock needed. */
  return ib->rt != NULL;
}

void loom__inbox_hold(loom_t *rt) {
  if (rt->holds++ == 0 && !rt->inbox->waiting) uv_ref((uv_handle_t *)&rt->inbox_async);
}

void loom__inbox_unhold(loom_t *rt) {
  loom__assert(rt->holds > 0, "inbox hold count underflow");
  if (--rt->holds == 0 && !rt->inbox->waiting) uv_unref((uv_handle_t *)&rt->inbox_async);
}

void loom__inbox_sender(loom__inbox_t *ib, int delta) {
  atomic_fetch_add_explicit(&ib->senders, delta, memory_order_relaxed);
}

int loom__inbox_expect(loom_t *rt) {
  loom__inbox_t *ib = rt->inbox;
  if (!ib || !atomic_load_explicit(&ib->senders, memory_order_relaxed)) return 0;
  if (!ib->waiting && !rt->holds) uv_ref((uv_handle_t *)&rt->inbox_async);
  ib->waiting = 1;
  return 1;
}

void loom__inbox_close(loom_t *rt) {
  loom__inbox_t *ib = rt->inbox;
  if (!ib) return;
  uv_mutex_lock(&ib->mu);
  loom__msg_t *m = ib->head;
  ib->head = ib->tail = NULL;
  ib->rt = NULL; /* posts fail from now on */
  uv_mutex_unlock(&ib->mu);
  while (m) {
    loom__msg_t *next = m->next;
    m->run(m, LOOM_ECLOSED);
    m = next;
  }
  rt->inbox = NULL;
  loom__inbox_release(ib);
}
