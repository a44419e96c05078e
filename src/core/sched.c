/* The scheduler: the ready queue, parking and waking, and the pass that runs
 * ready tasks.
 *
 * One scheduler pass runs from the runtime's uv_check callback, on the
 * thread's own stack, right after libuv has polled for I/O. A pass runs
 * *rounds*: each round takes the whole ready queue as it stands and runs each
 * task once, until it suspends; tasks made ready during a round (by a yield,
 * a spawn, a wake-up) wait for the next round. The pass goes back to libuv
 * to poll I/O and fire timers once time has moved on, checked at every task
 * switch: the ticker's counter (tick.c: one load and a compare) has moved,
 * or, while the ticker is not running, the coarse monotonic clock (read
 * every 4th round, without a system call) has. Quick rounds chain, up to
 * LOOM__MAX_ROUNDS of them. So a task that yields in a loop costs a context
 * switch, not an epoll_wait, per yield, and however long the tasks run
 * between their suspensions, I/O and timers wait at most for the running
 * task to suspend plus a millisecond (a few rounds until a pass has first
 * been seen to run long and the ticker starts). A pass cut short mid-round
 * leaves the rest of the round to run first in the next pass.
 * docs/scheduler.md walks through one loop iteration.
 *
 * A suspending task hands the thread straight to the next task of the round
 * (one switch, not two through the scheduler's stack), and the last task of
 * a round starts the next round itself when the pass may chain one. What a
 * switch leaves to do on the far side (checking the previous task's canary,
 * reaping it if it ended) is done by whoever lands: loom__landed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <execinfo.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* Frames a probed task unwinds at most (a dump prints up to MAX_FRAMES,
 * 48, of them; the rest are room for the frames above the task's). */
#define LOOM__PROBE_FRAMES 64

/* Rounds of a pass when they are quick. Back to libuv means an epoll_wait
 * system call (a few µs here); after every 64 rounds, as before, it cost two
 * tasks handing items back and forth a fifth of their time. Time still
 * sends the pass back after one tick, however many rounds that is. */
#define LOOM__MAX_ROUNDS 1024

LOOM__TLS loom_t *loom__tls_rt;

void loom__on_idle(uv_idle_t *h) { (void)h; }

/* The ready queue is a singly linked FIFO (t->next_ready) rather than a
 * list of util/list.h: a task is only ever appended and taken from the
 * front, never unlinked from the middle, so the back links would be pure
 * cost. Measured with list.h: 155 instructions per yield instead of 128
 * (callgrind, two tasks yielding 100,000 times each), 42 ns instead of
 * 39 ns on bench-yield (best of 9). */
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

/* The coarse monotonic clock in ns: one kernel tick of resolution (a few
 * ms), read from the vDSO without a system call. */
static int64_t coarse_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline uint32_t tick_now(void) {
  return atomic_load_explicit(&loom__tick, memory_order_relaxed);
}

/* Ends the pass at the next switch, whoever asks (the task that suspends,
 * or the check callback's loop): the pass's tick is made one that is not
 * the current one, and the tick only moves forward. */
static void end_pass(loom_t *rt) {
  rt->pass_tick = tick_now() - 1;
  rt->pass_ended = 1;
}

/* The pass ran long: it ends, and the ticker is asked for (started, or
 * kept from parking), so the next long task is caught at its own switch.
 * (loom__tick_want also gives debug mode the report of a slow task that
 * has just suspended: debug-mode.c sends its next switch this way.) */
static void pass_ran_long(loom_t *rt) {
  end_pass(rt);
  rt->long_pass_at = uv_now(rt->loop);
  loom__tick_want(rt);
}

/* Off the fast path: the tick or the coarse clock moved during the pass,
 * or end_pass was called. A pass that ran over a millisecond (against the
 * loop's clock, which libuv set after polling; 2 whole ms apart) wants the
 * ticker; a short one that merely straddled a tick does not, so that I/O
 * and quick yields alone never start it, or let it park. */
static void time_is_up(loom_t *rt) {
  if (rt->pass_ended) return;
  if (uv_hrtime() / 1000000 - uv_now(rt->loop) >= 2)
    pass_ran_long(rt);
  else
    end_pass(rt);
}

/* Makes the ready queue the current round, if the pass may chain one more
 * round without polling I/O. The coarse clock is read every 4th round, or
 * every round while passes have been running long lately (rounds are then
 * long, the read is cheap beside them): the ticker is not running until a
 * pass has been seen to run long, and a ticker thread starved of CPU by a
 * loaded machine may tick late. */
static int next_round(loom_t *rt) {
  if (!rt->ready_head || ++rt->rounds >= LOOM__MAX_ROUNDS) return 0;
  if ((rt->rounds & rt->round_mask) == 0 && coarse_now() != rt->pass_clock) {
    time_is_up(rt);
    return 0;
  }
  rt->round_head = rt->ready_head;
  rt->ready_head = rt->ready_tail = NULL;
  return 1;
}

/* The next task to run, or NULL when the pass must return to libuv. The
 * tick is compared at every switch, not every round: a round of CPU-bound
 * tasks can take far longer than a tick. A pass cut short mid-round
 * resumes that round first next time (loom__on_check). */
static loom_task_t *take_next(loom_t *rt) {
  if (!rt->round_head && !next_round(rt)) return NULL;
  loom_task_t *t = rt->round_head;
  rt->round_head = t->next_ready;
  return t;
}

static loom_task_t *pick(loom_t *rt) {
  if (tick_now() != rt->pass_tick) {
    time_is_up(rt);
    return NULL;
  }
  return take_next(rt);
}

/* A dump's question to a parked task: its backtrace, please. The dump
 * (loom__probe_backtrace) hangs `as` on rt->prev and switches to the task;
 * the task lands where it parked, in loom__landed, whose test for an ended
 * task (state >= LOOM__DONE: the same one compare) catches `as`; it unwinds
 * its own stack there, with the unwind tables (no frame pointers needed),
 * and switches straight back. Nothing else sees the visit: no switch is
 * counted, rt->current never moves. */
typedef struct {
  loom_task_t as;      /* state LOOM__PROBE; guard_lo set, so the canary
                          check passes */
  loom_task_t *target; /* the task asked */
  loom__fiber_t back;  /* the dump's own context while it waits */
  void **pcs;
  int max, n;
} probe_t;

/* On the probed task's stack, inside its loom__landed. `ra` is where that
 * landed returns to: the frames from there out are the task's. The task
 * parks here until it is resumed for good; a later dump's question lands
 * here too (this is where the task's context was last saved) and is
 * answered by the loop, at the same depth: were it handed to loom__landed
 * again, every probe would leave a frame on the task's stack, the next
 * backtrace would start with it and the free stack would shrink by a
 * frame a probe. */
__attribute__((noinline, cold)) static void probe_answer(loom_t *rt, loom_task_t *as,
                                                         void *ra) {
  for (;;) {
    probe_t *p = loom__container_of(as, probe_t, as);
    void *buf[LOOM__PROBE_FRAMES];
    int n = backtrace(buf, LOOM__PROBE_FRAMES), i = 0, k = 0;
    while (i < n && buf[i] != ra) i++;
    if (i == n) i = n > 1 ? 1 : 0; /* not found: leave out this function */
    while (i < n && k < p->max) p->pcs[k++] = buf[i++];
    p->n = k;
    loom__fiber_t *self = &p->target->fiber, *back = &p->back;
    loom__fiber_switch(self, back); /* p is gone once this returns */
    as = rt->prev;
    if (!as || as->state != LOOM__PROBE) break;
    rt->prev = NULL; /* another question: the same answer, from here */
  }
  /* Resumed for good, by a real switch: its bookkeeping is still due. */
  loom__landed(rt);
}

/* What landed rarely finds: a task that has ended, or a dump's question.
 * Out of line, so that landed stays small enough to inline into
 * loom__suspend with a single compare for both. */
__attribute__((noinline)) static void landed_rare(loom_t *rt, loom_task_t *prev,
                                                  void *ra) {
  if (prev->state == LOOM__DONE)
    loom__task_finished(rt, prev);
  else
    probe_answer(rt, prev, ra);
}

int loom__probe_backtrace(loom_task_t *t, void **pcs, int max) {
  loom_t *rt = t->rt;
  probe_t p;
  memset(&p.back, 0, sizeof(p.back));
  p.as.state = LOOM__PROBE;
  p.as.fiber.guard_lo = &p;
  p.target = t;
  p.pcs = pcs;
  p.max = max;
  p.n = 0;
  loom_task_t *prev = rt->prev;
  loom__fiber_t *running = loom__fiber_current();
  rt->prev = &p.as;
  loom__fiber_switch(&p.back, &t->fiber);
  rt->prev = prev;
  loom__fiber_running = running;
  return p.n;
}

/* Bookkeeping for the task we switched away from, done on the new stack. */
void loom__landed(loom_t *rt) {
  loom_task_t *prev = rt->prev;
  if (!prev) return;
  rt->prev = NULL;
  if (!loom__fiber_canary_ok(&prev->fiber))
    loom__fiber_overflow(&prev->fiber, ", canary overwritten");
  if (prev->state >= LOOM__DONE) landed_rare(rt, prev, __builtin_return_address(0));
}

/* Gives the thread up: to the next task of the round, or to the scheduler.
 * Returns when t runs again. `last`: t has ended and never runs again. */
void loom__suspend(loom_task_t *t, int last) {
  loom_t *rt = t->rt;
  loom_task_t *next = pick(rt);
  if (next == t) { /* t is alone: it keeps the thread */
    /* Counted as a switch all the same: debug mode's watchdog takes a
     * count that stands still for a task that never suspends. (After a
     * compiler barrier: else the compiler shares one load and add with the
     * count below, and every switch pays two instructions more.) */
    __asm__ volatile("" ::: "memory");
    loom__count_switch(rt);
    t->state = LOOM__RUNNING;
    return;
  }
  rt->prev = t;
  loom__count_switch(rt); /* before current moves: debug mode reads both */
  rt->current = next;
  loom__fiber_t *to = &rt->sched;
  if (next) {
    if (LOOM__UNLIKELY(!loom__task_has_stack(next))) loom__task_bind(next);
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
  loom__count_switch(rt);
  rt->current = t;
  t->state = LOOM__RUNNING;
  if (LOOM__UNLIKELY(!loom__task_has_stack(t))) loom__task_bind(t);
  loom__fiber_switch(&rt->sched, &t->fiber);
  /* Back when t found nothing left to hand the thread to. */
  rt->current = NULL;
  loom__landed(rt);
}

void loom__wake(loom__waiter_t *w, int result) {
  loom__assert(w->task->state != LOOM__DONE, "waking a waiter whose task has ended");
  if (take_wake(w, result)) loom__make_ready(w->task);
}

void loom__wake_now(loom__waiter_t *w, int result) {
  loom_task_t *t = w->task;
  loom__assert(t->state != LOOM__DONE, "waking a waiter whose task has ended");
  loom_t *rt = t->rt;
  if (!take_wake(w, result)) return;
  if (rt->in_pass || rt->current) { /* inside a task or a pass: queue it */
    loom__make_ready(t);
    return;
  }
  loom_t *outer = loom__tls_rt;
  loom__tls_rt = rt;
  /* With the pass marked over, the task's next suspension picks nothing
   * (not even what is left of a round a pass cut short) and switches
   * straight back here. The next pass reads the clock afresh. */
  end_pass(rt);
  run_from_loop(rt, t);
  if (rt->flush.head) loom__io_flush(rt); /* before the loop polls again */
  loom__tls_rt = outer;
  loom__maybe_close(rt);
}

void loom__interrupt(loom_task_t *t, int err) {
  loom__waiter_t *w = t->wait;
  if (!w || w->shielded) return;
  if (w->cancel) w->cancel(w);
  loom__wake(w, err);
}

/* Makes the round a pass starts with. After a pass that ran out of time,
 * tasks woken since it ended (by timers and I/O: those after ready_mark)
 * go first, then what is left of the round it cut short, and the tasks
 * that already had their turn and yielded wait for the next round. Else a
 * timer would wait for every CPU-bound task of the round, one pass each,
 * instead of for the one that was running. Otherwise the ready queue is
 * the round, in FIFO order. */
static void start_round(loom_t *rt) {
  if (rt->last_cut) {
    loom_task_t *mark = rt->ready_mark;
    loom_task_t *woken = mark ? mark->next_ready : rt->ready_head;
    if (woken) {
      rt->ready_tail->next_ready = rt->round_head;
      rt->round_head = woken;
      if (mark) {
        mark->next_ready = NULL;
        rt->ready_tail = mark;
      } else {
        rt->ready_head = rt->ready_tail = NULL;
      }
    }
  }
  if (!rt->round_head) {
    rt->round_head = rt->ready_head;
    rt->ready_head = rt->ready_tail = NULL;
  }
}

void loom__on_check(uv_check_t *h) {
  loom_t *rt = h->data;
  loom_t *outer = loom__tls_rt;
  loom__tls_rt = rt;
  rt->in_pass = 1;
  rt->stats.passes++;
  rt->rounds = 0;
  rt->pass_clock = coarse_now();
  rt->pass_tick = tick_now();
  rt->pass_ended = 0;
  rt->round_mask = uv_now(rt->loop) - rt->long_pass_at < 1000 ? 0 : 3;
  start_round(rt);
  /* A pass always runs its first task, whatever the time: else, with the
   * tick moving between here and the first pick (a thread switch under
   * Valgrind, a loaded machine), passes could end one after the other
   * without running anything, and ready tasks would starve. */
  for (loom_task_t *t = take_next(rt); t; t = pick(rt)) run_from_loop(rt, t);
  /* What tasks wrote in small pieces reaches the kernel before the loop
   * polls again: one write system call per stream per pass. */
  if (rt->flush.head) loom__io_flush(rt);
  rt->in_pass = 0;
  rt->last_cut = rt->pass_ended;
  rt->ready_mark = rt->ready_tail;
  int more = rt->ready_head || rt->round_head;
  if (more && !rt->idle_active) {
    uv_idle_start(&rt->idle, loom__on_idle);
    rt->idle_active = 1;
  } else if (!more && rt->idle_active) {
    uv_idle_stop(&rt->idle);
    rt->idle_active = 0;
  }
  /* The loop is about to wait: stacks and records kept for a burst that
   * is over go back here too, not only when tasks end. */
  if (!more) {
    loom__stack_pool_idle(&rt->stacks);
    loom__records_idle(&rt->records);
  }
  if (LOOM__UNLIKELY(rt->debug_mode)) loom__debug_pass_end(rt);
  loom__tls_rt = outer;
  loom__maybe_close(rt);
}
