/* The scheduler: the ready queue, parking and waking, and the pass that runs
 * ready tasks.
 *
 * One scheduler pass runs from the runtime's uv_check callback, on the
 * thread's own stack, right after libuv has polled for I/O. A pass runs
 * *rounds*: each round takes the whole ready queue as it stands and runs each
 * task once, until it suspends; tasks made ready during a round (by a yield,
 * a spawn, a wake-up) wait for the next round. Between rounds the pass goes
 * back to libuv to poll I/O and fire timers, unless the round was quick: a
 * pass may chain up to LOOM__MAX_ROUNDS rounds while the coarse monotonic
 * clock (a few ms of resolution, read without a system call) has not moved.
 * So a task that yields in a loop costs a context switch, not an epoll_wait,
 * per yield, and still cannot keep I/O and timers waiting for more than one
 * clock tick. docs/scheduler.md walks through one loop iteration.
 */
#include <time.h>

#include "internal.h"

#define LOOM__MAX_ROUNDS 64

__thread loom_t *loom__tls_rt;

void loom__on_idle(uv_idle_t *h) { (void)h; }

void loom__make_ready(loom_task_t *t) {
  loom_t *rt = t->rt;
  t->state = LOOM__READY;
  t->next_ready = NULL;
  if (rt->ready_tail)
    rt->ready_tail->next_ready = t;
  else
    rt->ready_head = t;
  rt->ready_tail = t;
  if (!rt->idle_active && !rt->in_pass) {
    uv_idle_start(&rt->idle, loom__on_idle);
    rt->idle_active = 1;
  }
}

int loom__park(loom__waiter_t *w) {
  loom_task_t *t = w->task;
  t->wait = w;
  t->state = LOOM__PARKED;
  loom__fiber_switch(&t->fiber, &t->rt->sched);
  return w->result;
}

void loom__wake(loom__waiter_t *w, int result) {
  loom_task_t *t = w->task;
  if (t->wait != w) return; /* already woken (or interrupted) */
  t->wait = NULL;
  w->result = result;
  loom__make_ready(t);
}

void loom__interrupt(loom_task_t *t, int err) {
  loom__waiter_t *w = t->wait;
  if (!w || w->shielded) return;
  if (w->cancel) w->cancel(w);
  loom__wake(w, err);
}

static void run_one(loom_t *rt, loom_task_t *t) {
  rt->current = t;
  t->state = LOOM__RUNNING;
  loom__fiber_switch(&rt->sched, &t->fiber);
  rt->current = NULL;
  if (!loom__fiber_canary_ok(&t->fiber))
    loom__fiber_overflow(&t->fiber, ", canary overwritten");
  if (t->state == LOOM__DONE) loom__task_finished(rt, t);
}

static long coarse_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return ts.tv_nsec ^ (long)ts.tv_sec;
}

void loom__on_check(uv_check_t *h) {
  loom_t *rt = h->data;
  loom_t *outer = loom__tls_rt;
  loom__tls_rt = rt;
  rt->in_pass = 1;
  long start = coarse_now();
  for (int round = 0; rt->ready_head; round++) {
    if (round > 0 && (round >= LOOM__MAX_ROUNDS || coarse_now() != start))
      break;
    loom_task_t *t = rt->ready_head;
    rt->ready_head = rt->ready_tail = NULL;
    while (t) {
      loom_task_t *next = t->next_ready;
      run_one(rt, t);
      t = next;
    }
  }
  rt->in_pass = 0;
  if (rt->ready_head && !rt->idle_active) {
    uv_idle_start(&rt->idle, loom__on_idle);
    rt->idle_active = 1;
  } else if (!rt->ready_head && rt->idle_active) {
    uv_idle_stop(&rt->idle);
    rt->idle_active = 0;
  }
  loom__tls_rt = outer;
  loom__maybe_close(rt);
}
