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
 *
 * A suspending task hands the thread straight to the next task of the round
 * (one switch, not two through the scheduler's stack), and the last task of
 * a round starts the next round itself when the pass may chain one. What a
 * switch leaves to do on the far side (checking the previous task's canary,
 * reaping it if it ended) is done by whoever lands: loom__landed.
 */
#include <time.h>

#include "internal.h"

/* Rounds of a pass when they are quick. Back to libuv means an epoll_wait
 * system call (a few µs here); after every 64 rounds, as before, it cost two
 * tasks handing items back and forth a fifth of their time. The clock still
 * sends the pass back after one tick, however many rounds that is. */
#define LOOM__MAX_ROUNDS 1024

LOOM__TLS loom_t *loom__tls_rt;

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

static long coarse_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return ts.tv_nsec ^ (long)ts.tv_sec;
}

/* Makes the ready queue the current round, if the pass may chain one more
 * round without polling I/O. */
static int next_round(loom_t *rt) {
  if (!rt->ready_head || ++rt->rounds >= LOOM__MAX_ROUNDS) return 0;
  if ((rt->rounds & 3) == 0 && coarse_now() != rt->pass_clock) return 0;
  rt->round_head = rt->ready_head;
  rt->ready_head = rt->ready_tail = NULL;
  return 1;
}

/* The next task of the round, or NULL when the pass must return to libuv. */
static loom_task_t *pick(loom_t *rt) {
  if (!rt->round_head && !next_round(rt)) return NULL;
  loom_task_t *t = rt->round_head;
  rt->round_head = t->next_ready;
  return t;
}

/* Bookkeeping for the task we switched away from, done on the new stack. */
void loom__landed(loom_t *rt) {
  loom_task_t *prev = rt->prev;
  if (!prev) return;
  rt->prev = NULL;
  if (!loom__fiber_canary_ok(&prev->fiber))
    loom__fiber_overflow(&prev->fiber, ", canary overwritten");
  if (prev->state == LOOM__DONE) loom__task_finished(rt, prev);
}

/* Gives the thread up: to the next task of the round, or to the scheduler.
 * Returns when t runs again. `last`: t has ended and never runs again. */
void loom__suspend(loom_task_t *t, int last) {
  loom_t *rt = t->rt;
  loom_task_t *next = pick(rt);
  if (next == t) { /* t is alone: it keeps the thread */
    t->state = LOOM__RUNNING;
    return;
  }
  rt->prev = t;
  rt->current = next;
  loom__fiber_t *to = &rt->sched;
  if (next) {
    next->state = LOOM__RUNNING;
    to = &next->fiber;
  }
  if (last) loom__fiber_switch_last(&t->fiber, to);
  loom__fiber_switch(&t->fiber, to);
  loom__landed(rt);
}

/* Records the result for w's task, unless it was already woken (or
 * interrupted): returns whether it did. */
static int take_wake(loom__waiter_t *w, int result) {
  loom_task_t *t = w->task;
  if (t->wait != w) return 0;
  t->wait = NULL;
  w->result = result;
  return 1;
}

/* Runs t from the loop's own stack until it hands the thread back. */
static void run_from_loop(loom_t *rt, loom_task_t *t) {
  rt->current = t;
  t->state = LOOM__RUNNING;
  loom__fiber_switch(&rt->sched, &t->fiber);
  /* Back when t found nothing left to hand the thread to. */
  rt->current = NULL;
  loom__landed(rt);
}

void loom__wake(loom__waiter_t *w, int result) {
  if (take_wake(w, result)) loom__make_ready(w->task);
}

void loom__wake_now(loom__waiter_t *w, int result) {
  loom_task_t *t = w->task;
  loom_t *rt = t->rt;
  if (!take_wake(w, result)) return;
  if (rt->in_pass || rt->current) { /* inside a task or a pass: queue it */
    loom__make_ready(t);
    return;
  }
  loom_t *outer = loom__tls_rt;
  loom__tls_rt = rt;
  /* Outside a pass the round is empty; with the round count at its cap, the
   * task's next suspension finds no next round and switches straight back
   * here. The pass resets the count when it starts. */
  rt->rounds = LOOM__MAX_ROUNDS;
  run_from_loop(rt, t);
  loom__tls_rt = outer;
  loom__maybe_close(rt);
}

void loom__interrupt(loom_task_t *t, int err) {
  loom__waiter_t *w = t->wait;
  if (!w || w->shielded) return;
  if (w->cancel) w->cancel(w);
  loom__wake(w, err);
}

void loom__on_check(uv_check_t *h) {
  loom_t *rt = h->data;
  loom_t *outer = loom__tls_rt;
  loom__tls_rt = rt;
  rt->in_pass = 1;
  rt->rounds = 0;
  rt->pass_clock = coarse_now();
  rt->round_head = rt->ready_head;
  rt->ready_head = rt->ready_tail = NULL;
  loom_task_t *t;
  while ((t = pick(rt)) != NULL) run_from_loop(rt, t);
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
