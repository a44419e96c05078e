/* The runtime's inbox: the one way into a runtime from another thread.
 *
 * A mutex-protected FIFO of messages and one uv_async_t per runtime,
 * created on first use (loom__inbox_get). Any thread may post; the
 * runtime's thread runs each message's callback from the async handle's
 * callback, in posting order. The inbox is reference-counted and outlives
 * its runtime: a thread that kept a reference gets LOOM_ECLOSED from
 * loom__inbox_post once the runtime has closed, never a freed pointer.
 *
 *   other thread                          runtime's thread
 *   loom__inbox_post(ib, m) --lock-->  [ m1 m2 ... ] --async--> m->run(m, 0)
 *                                       closed at shutdown: m->run(m, LOOM_ECLOSED)
 *
 * The async handle is unreferenced, so an inbox never keeps loom_run or a
 * host loop alive by itself; loom__inbox_hold marks a message the runtime
 * must wait for (an offload job in flight, a task awaiting a future), and
 * while any is held the handle is referenced and the runtime does not
 * finish its shutdown. The API is in inbox.h; the public layers built on it
 * are futures (sync/future.c), thread-safe entry (core/remote.c), offload
 * (io/offload.c) and the cross-runtime channel.
 */
#ifndef LOOM_CORE_INBOX_H
#define LOOM_CORE_INBOX_H

#include <sched.h>
#include <stdatomic.h>
#include <uv.h>

typedef struct loom_s loom_t;
typedef struct loom__msg_s loom__msg_t;
typedef struct loom__inbox_s loom__inbox_t;

/* A message: embedded in the sender's own struct (no allocation by the
 * inbox). Once loom__inbox_post has returned 0, `run` is called exactly
 * once, on the runtime's thread:
 *   status 0            the runtime is alive; loom__inbox_rt() gives it;
 *   status LOOM_ECLOSED the runtime closed before the message ran (only
 *                       free what the message holds).
 * When post returns an error, `run` is never called. `run` may free m. */
struct loom__msg_s {
  loom__msg_t *next; /* the inbox's FIFO link */
  void (*run)(loom__msg_t *m, int status);
};

struct loom__inbox_s {
  uv_mutex_t mu;
  loom__msg_t *head, *tail; /* under mu: posted, not yet run */
  loom_t *rt;               /* under mu: NULL once the runtime closed */
  uv_async_t *async;        /* rt's handle; sent under mu only */
  int signalled;            /* under mu: an async send is on its way */
  int spinning;             /* under mu: the runtime's thread is looking at
                               `posted` (inbox.c's on_prepare): a post need
                               not send the async handle (a system call,
                               and another for the runtime to read it) */
  uv_thread_t thread;       /* the runtime's thread */
  _Atomic int posted;       /* messages may be queued: the spin's cheap look */
  uint64_t spin_until;      /* the runtime's thread: hrtime to spin until */
  uint64_t spin_ns;         /* the runtime's thread: a spin asked for since
                               the loop last looked (loom__inbox_expect_soon),
                               its deadline still to set */
  /* The runtime's one spin policy (loom__spin_wait), for every wait of
   * its thread for another (offload replies, channel hand-offs). */
  struct loom__spin_s {
    uint32_t skip, fails, backoff;
    uint32_t yield_first; /* spins left that yield at once */
  } spin;
  _Atomic long refs;
  _Atomic long senders; /* references held for other threads that may
                           still post (loom_remote_t) */
  int waiting;          /* the runtime's thread: async referenced until
                           the next message (loom__inbox_expect) */
};

/* On rt's thread: rt's inbox, made on first use, with one more reference
 * for the caller. 0, UV_ENOMEM, or LOOM_ECLOSED once rt's shutdown has
 * closed its handles. */
int loom__inbox_get(loom_t *rt, loom__inbox_t **out);
/* Any thread: one more / one less reference; the last frees it. */
void loom__inbox_retain(loom__inbox_t *ib);
void loom__inbox_release(loom__inbox_t *ib);
/* Any thread: queues m and wakes the runtime. 0, or LOOM_ECLOSED (the
 * runtime is gone; m is untouched and its callback will not run). */
int loom__inbox_post(loom__inbox_t *ib, loom__msg_t *m);
/* Whether the calling thread is the inbox's runtime's thread (and the
 * runtime is still open): then its state may be touched directly. */
int loom__inbox_on_thread(loom__inbox_t *ib);
/* On rt's thread, with the inbox made: while holds are taken, the inbox
 * keeps rt's loop alive and rt's shutdown waits (a message is due). */
void loom__inbox_hold(loom_t *rt);
void loom__inbox_unhold(loom_t *rt);
/* Any thread: +1 / -1 thread that may post at any time (a loom_remote_t).
 * Such senders do not keep a runtime from shutting down, but while one
 * exists, tasks that wait with nothing else to wake them may be waiting
 * for it: loom_run does not call that a deadlock. */
void loom__inbox_sender(loom__inbox_t *ib, int delta);
/* On rt's thread, when the loop has nothing left to wake rt's waiting
 * tasks: 1 if a sender may still wake them (the inbox then keeps the loop
 * alive until its next message), else 0. */
int loom__inbox_expect(loom_t *rt);
/* How long a runtime with nothing else to do looks for an answer from
 * another thread before its loop sleeps (and how long an idle offload
 * worker looks for its next job): a thread that sleeps costs tens of
 * microseconds to wake on a VM (a futex or an eventfd, and the scheduler),
 * while a running one answers within a microsecond or two. Bounded, so a
 * long wait costs one such spin, and a timer or I/O of the runtime is
 * delayed by at most this much (it spins only when no task is ready). */
#ifndef LOOM__SPIN_NS
#define LOOM__SPIN_NS 20000u
#endif

/* On rt's thread, inbox made: a task of rt has just started waiting for a
 * message from another thread (an offload job's end, a channel's kick)
 * which is expected within about ns. For that long after the loop next
 * finds nothing to run (the clock is read then, not at every wait: a
 * runtime whose tasks wait on each other parks them by the million), when
 * the loop is about to
 * sleep with no task ready, it first looks at the inbox for a while (if
 * the spin policy, rt's inbox->spin, says that pays): a message that comes
 * within microseconds then costs no wake-up of a sleeping thread, and its
 * sender no system call. Only with more than one CPU, and only while rt
 * holds a wait for another thread (loom__inbox_hold). */
void loom__inbox_expect_soon(loom_t *rt, uint64_t ns);
/* Whether spinning can help: more than one CPU to run on, and not under
 * Valgrind (which runs one thread at a time). */
int loom__spin_ok(void);
/* Whether yielding can help the calling thread's spins: it may run on
 * more than one CPU. A thread pinned to one CPU (a runtime per core) never
 * shares it with the thread it waits for, so a yield would only hand the
 * CPU to other programs for a time slice. Cached per thread. */
int loom__spin_can_yield(void);

/* Adaptive spinning: every spin of a runtime's thread for another thread
 * (inbox->spin) and of an executor's workers for jobs (its own) goes
 * through one of these. A spin that keeps failing (the other thread does
 * not get a CPU in time: the machine is loaded) only makes things worse,
 * as it takes a CPU the other side needs. So after two failures in a row
 * the next 16 spins are skipped, then 32, ... up to 1024, between single
 * tries; a success starts afresh. loom__spin_try consumes a skip;
 * loom__spin_may only looks (for a first phase of a spin whose outcome is
 * recorded later). */
typedef struct loom__spin_s loom__spin_t;
static inline int loom__spin_try(loom__spin_t *s) {
  if (s->skip) {
    s->skip--;
    return 0;
  }
  return loom__spin_ok();
}
static inline int loom__spin_may(const loom__spin_t *s) {
  return !s->skip && loom__spin_ok();
}
static inline void loom__spin_done(loom__spin_t *s, int ok) {
  if (ok) {
    s->fails = s->backoff = 0;
  } else if (++s->fails >= 2) {
    s->fails = 0;
    s->skip = 16u << s->backoff;
    if (s->backoff < 6) s->backoff++;
  }
}
static inline void loom__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Yields that end a spin, once its time on the CPU is up. */
#define LOOM__SPIN_YIELDS 8
/* Spins that yield at once after one that succeeded only by yielding. */
#define LOOM__SPIN_YIELD_FIRST 64
/* A spin that ends later than this after it began has lost its CPU for a
 * while (a time slice of another program, a slow yield): LOOM__SPIN_LATE. */
#define LOOM__SPIN_LATE_NS 1000000u
enum { LOOM__SPIN_READY = 1, LOOM__SPIN_LATE = 2 };

/* The one spin loop: waits until ready(ctx), for at most ns on the CPU
 * (pause instructions), then LOOM__SPIN_YIELDS sched_yield calls.
 * LOOM__SPIN_READY if ready, 0 if not, LOOM__SPIN_LATE if ready but over
 * LOOM__SPIN_LATE_NS after the start: the thread's loop did not run for
 * that long, so a deadline of the spinning task may have passed unseen
 * (its timer has not run), and the task must let the loop run before it
 * takes what it waited for. A success is recorded in s; a failure is left to the
 * caller (loom__spin_done(s, 0)), which may still find what it waited for
 * under a lock, or spin again in another phase. Call it when
 * loom__spin_may(s) (or loom__spin_try) said yes.
 *
 * When the other thread shares this thread's CPU (a loaded machine: more
 * runnable threads than cores), pausing cannot help, as the other side
 * runs only once this one gives the CPU up; the yields then do the job.
 * A spin that succeeds only by yielding makes the next
 * LOOM__SPIN_YIELD_FIRST spins start with the yields (each a system call,
 * which hands the CPU to the other side if it is waiting for this one),
 * bounded by the same time. */
static inline int loom__spin_wait(loom__spin_t *s, uint64_t ns, int (*ready)(void *ctx),
                                  void *ctx) {
  uint64_t start = uv_hrtime(), until = 0;
  int yielding = 0, ok = 0, forced = 0;
  if (s->yield_first && loom__spin_can_yield()) {
    s->yield_first--;
    yielding = forced = 1;
  }
  for (unsigned i = 1;; i++) {
    if (ready(ctx)) {
      ok = 1;
      break;
    }
    if (yielding) {
      sched_yield();
      uint64_t now = uv_hrtime();
      if (!until)
        until = now + ns;
      else if (now >= until && ++yielding > LOOM__SPIN_YIELDS)
        break;
      continue;
    }
    loom__cpu_relax();
    if (i % 32 == 0) {
      uint64_t now = uv_hrtime();
      if (!until)
        until = now + ns;
      else if (now >= until) {
        if (!loom__spin_can_yield()) break;
        yielding = 1;
      }
    }
  }
  if (!ok) return 0;
  /* Only a spin that paused first and still needed the yields says that
   * yielding is what works: one that yielded from the start because of
   * yield_first would say so whatever the load, and the runtime would
   * never pause again (a system call per look on an idle machine, where
   * both threads are on a CPU and pausing answers in a microsecond). */
  if (yielding && !forced && !s->yield_first) s->yield_first = LOOM__SPIN_YIELD_FIRST;
  loom__spin_done(s, 1);
  return uv_hrtime() - start > LOOM__SPIN_LATE_NS ? LOOM__SPIN_LATE : LOOM__SPIN_READY;
}
/* The runtime of an inbox, on its thread (NULL once closed). */
static inline loom_t *loom__inbox_rt(loom__inbox_t *ib) { return ib->rt; }

/* runtime.c: called at shutdown with every task ended and no hold left. */
void loom__inbox_close(loom_t *rt);

#endif
