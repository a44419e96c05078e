/* The core's internal structures: runtime, task, waiter.
 *
 * Every suspension in loom goes through one primitive, the waiter: a task
 * starts an operation, parks on a loom__waiter_t and switches to the
 * scheduler; whoever completes the operation calls loom__wake, which records
 * the result and makes the task ready. Cancellation and scope timeouts
 * interrupt a parked task the same way for every kind of wait: the waiter's
 * `cancel` hook unhooks it from its source, then it is woken with the error.
 * Timers are in timer.h, the private layout of scopes in scope.h.
 */
#ifndef LOOM_CORE_INTERNAL_H
#define LOOM_CORE_INTERNAL_H

#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../fiber/fiber.h"
#include "../fiber/stack.h"
#include "assert.h"
#include "../util/container.h"
#include "../util/demand.h"
#include "../util/list.h"
#include "handle.h"
#include "inbox.h"
#include "introspect.h"
#include "module-api.h"
#include "loom.h"
#include "scope.h"
#include "timer.h"
#include "wq.h"

typedef struct loom__waiter_s loom__waiter_t;
typedef struct loom__watch_s loom__watch_t;
typedef struct loom__hook_s loom__hook_t;

struct loom__waiter_s {
  loom_task_t *task;                 /* the parked task */
  void (*cancel)(loom__waiter_t *w); /* unhooks the wait from its source
                                        when interrupted; NULL if none */
  int result;                        /* what loom__park returns */
  int shielded;                      /* 1: cancellation does not interrupt */
  /* What the task waits for, for dumps (introspect.h): set by the park
   * site with loom__wait_on, `since` by loom__park. Never read on a hot
   * path. */
  const void *obj; /* the object (lock, stream, task...), or a value */
  uint32_t kind;   /* LOOM__W_*; 0: unknown */
  uint32_t since;  /* loop time (ms, low 32 bits) the wait began */
};

/* Someone interested in a task's end (join, gather, wait, a group). The
 * callback runs in the scheduler right after the task has ended. */
struct loom__watch_s {
  loom__link_t link; /* on the task's watcher list */
  void (*done)(loom__watch_t *w, loom_task_t *t);
  int linked; /* on it (unwatch is then a no-op) */
};

/* Something a task has opened that must follow the task's cancellation and
 * scopes (a task group), and be cleaned up if the task ends with it open. */
struct loom__hook_s {
  loom__link_t link;                /* on the task's hook list */
  void (*poked)(loom__hook_t *h);   /* the task was cancelled or a scope
                                       of it expired */
  void (*exiting)(loom__hook_t *h); /* the task ends with the hook set */
};

/* An I/O object (stream, listener, server, UDP socket) that the runtime
 * closes if the program leaves it open: shutdown walks this list once every
 * task has ended (runtime.c). Embedded in the object; on the list from
 * creation until its memory is freed. */
typedef struct loom__io_s loom__io_t;
struct loom__io_s {
  loom__link_t link; /* on the runtime's list */
  const char *what;  /* "stream", "listener", ...: reports */
  /* Closes it for shutdown. force 0: as its own close would (a stream
   * flushes what is queued first); returns 1 if the program had left it
   * open, 0 if it was closing already. force 1: at once, dropping unsent
   * data; returns 1 if that dropped anything. */
  int (*close)(loom__io_t *o, int force);
};

/* LOOM__PROBE is no task's: the state of the record a dump hangs on rt->prev
 * to have a parked task unwind its own stack (sched.c, loom__landed). */
enum { LOOM__READY = 1, LOOM__RUNNING, LOOM__PARKED, LOOM__DONE, LOOM__PROBE };

/* A task's record lives apart from its stack, in a runtime's cache of
 * records (records.c), and the stack is bound to it only while it runs or
 * waits: from its first switch-in to its end (spawn.c says why). Until then
 * fiber.stack_lo is NULL and the task holds a reservation in the stack
 * pool.
 *
 * The fields a switch, a task's end and a join read come first, in three
 * cache lines; what only a spawn writes comes next, and what rarer paths
 * read after that, on lines a spawn does not touch. In batches of thousands
 * of tasks every line of a record is a cache miss at every visit (spawn,
 * run, end, join), so the lines are few.
 */
struct loom_task_s {
  /* hot */
  loom_task_t *next_ready; /* ready FIFO link */
  loom_t *rt;
  loom_fn fn;
  void *arg;
  loom__link_t alive_link; /* on the runtime's unfinished tasks */
  loom__waiter_t *wait;    /* the wait it is parked on, or NULL */
  loom__list_t watchers;   /* loom__watch_t: told when it ends */
  loom__list_t hooks;      /* loom__hook_t: groups it has open */
  loom_scope_t *scope;     /* innermost open scope, or NULL */
  loom_task_t *ahead;      /* a hint: the record the spawn LOOM__AHEAD after
                           this one was to take (anyone's by now), or NULL */
  uint32_t slot;           /* its slot in rt->handles */
  int status;              /* fn's return value once DONE */
  uint8_t state;           /* LOOM__READY ... LOOM__DONE */
  uint8_t cancelled;       /* cancellation requested (sticky) */
  uint8_t detached;        /* nobody will join it */
  uint8_t consumed;        /* handle taken by join or detach */
  uint8_t is_main;         /* loom_run's main task */
  uint8_t quiet;           /* detached, but failures are someone
                          else's to report (group children) */
  uint8_t scope_armed;     /* scope_timer is in the heap */
  uint8_t system;          /* one of loom's own tasks (introspect.h) */
  loom__fiber_t fiber;     /* context + stack bounds (its hot part
                          first, its report fields last); its
                          stack_lo is NULL while no stack is bound,
                          and stack_size then the size asked for */
  /* cold, but written by every spawn: beside the fiber's report fields,
   * which a spawn writes anyway (records come from malloc, 16-byte aligned,
   * so the lines are counted roughly) */
  void *owner;                       /* the group it belongs to, or NULL */
  loom_scope_t *kept_scope;          /* innermost open scope stored outside
                                        the task's stack (static, heap) */
  void *spawn_pc;                    /* where it was spawned (a return
                                        address), or NULL */
  uint64_t parent_id;                /* the task that spawned it, 0: none */
  char name[LOOM_TASK_NAME_MAX + 1]; /* "" until named or asked for;
                                        a spawn writes name[0] only */
  /* Cold and left alone by a spawn: a group sets them when it takes the
   * task in (group.c), and nothing reads them before. */
  loom__watch_t member;     /* the owner's watch on this task */
  loom__link_t member_link; /* on the owner's list of members */
  /* Last: only a task with a timeout scope touches it. */
  loom__timer_t scope_timer; /* the earliest deadline of its open
                                scopes (scope.c) */
};

/* Free task records, kept for the next spawns (records.c). */
typedef struct loom__records_s {
  loom_task_t **free;   /* LIFO: free[nfree - 1] goes next */
  size_t nfree, cap;    /* records in it, and room */
  size_t live;          /* records handed out and not yet freed */
  loom__demand_t d;     /* how many free ones may stay */
  const int64_t *clock; /* the runtime's coarse pass clock */
} loom__records_t;

struct loom_s {
  uv_loop_t *loop;
  uv_check_t check;                     /* runs the scheduler after each poll */
  uv_idle_t idle;                       /* active while tasks are ready: the
                                           loop then polls without blocking */
  uv_timer_t timer;                     /* fires the earliest loom timer */
  uv_async_t sigint;                    /* loom_run only: SIGINT -> cancel main */
  loom__fiber_t sched;                  /* the thread's stack while tasks run */
  loom_task_t *current;                 /* running task, NULL in the scheduler */
  loom_task_t *ready_head, *ready_tail; /* the next round */
  loom_task_t *round_head;              /* the rest of the current round */
  loom_task_t *ready_mark;              /* ready_tail when the last pass ended
                                           (tasks after it were woken since) */
  loom_task_t *prev;                    /* switched away from; see landed */
  int rounds;                           /* rounds chained in this pass */
  int64_t pass_clock;                   /* coarse clock (ns) at the pass's start */
  uint32_t pass_tick;                   /* loom__tick the pass runs in; once
                                           it differs, the pass must end */
  unsigned tick_epoch;                  /* uses the ticker (tick.c); 0: no */
  int pass_ended;                       /* the pass ends at the next switch */
  int last_cut;                         /* the last pass ran out of time */
  int round_mask;                       /* rounds between coarse clock reads - 1 */
  uint64_t long_pass_at;                /* loop time a pass last ran long */
  loom__list_t alive;                   /* loom_task_t: unfinished tasks */
  size_t nalive;
  loom__hslot_t *handles;                /* tasks' and heap objects' handles
                                            (handle.h) */
  uint32_t nhandles, handles_cap, hfree; /* hfree: slot + 1, 0 = none */
  loom__timers_t timers;                 /* armed timers (timer.h) */
  uint64_t timer_seq;                    /* arming order, for ties */
  loom__stack_pool_t stacks;
  loom__records_t records; /* free task records */
  size_t stack_size;       /* default for new tasks */
  uint64_t next_id;
  loom_task_t *main; /* loom_run's main task while alive */
  int main_status;
  int idle_active;
  int in_pass;              /* inside the scheduler pass */
  int closing;              /* shutdown begun: tasks born cancelled */
  loom__link_t sigint_link; /* loom_run: on the SIGINT registry */
  int open_handles;         /* handles still to close at shutdown */
  int shutdown_requested;   /* loom_shutdown called (or loom_run done) */
  int has_sigint;           /* sigint handle initialised */
  loom__list_t io;          /* loom__io_t: open I/O objects */
  loom__list_t flush;       /* streams holding gathered output, handed
                                    to libuv when tasks stop running
                                    (io/stream.c, loom__io_flush) */
  uv_timer_t grace;         /* shutdown: bounds the final flush */
  uint64_t grace_ms;
  int io_closing;  /* shutdown has closed the I/O objects */
  int *run_status; /* loom_run: where main's status goes */
  void (*shutdown_cb)(void *data);
  void *shutdown_data;
  void *altstack;                  /* alternate signal stack we installed */
  loom__inbox_t *inbox;            /* messages from other threads, made on first
                             use (inbox.c); NULL until then */
  uv_async_t inbox_async;          /* the inbox's wake-up; open while inbox is */
  uv_prepare_t inbox_spin;         /* looks at the inbox before the loop sleeps
                              while a short reply is due (inbox.c) */
  long holds;                      /* messages the runtime must wait for
                             (loom__inbox_hold) */
  struct loom_executor_s *offload; /* the default offload executor, made
                                       on first use (io/offload.c) */
  size_t offload_threads;          /* its size from loom_config_t; 0: the
                                      environment's or the default */
  loom__stats_t stats;             /* counters for loom_stats_get
                                      (introspect.h) */
  void *spawn_pc;                  /* a public spawn's caller, for the
                                      next loom__spawn to take */
  struct loom__debug_s *debug;     /* names, dump signal (dump.c); NULL
                                      until first used */
  /* Debug mode (debug-mode.c): NULL while it is off. */
  struct loom__debug_mode_s *debug_mode;
};

/* The runtime whose scheduler pass is running on this thread. */
LOOM__MODULE_API extern LOOM__TLS loom_t *loom__tls_rt;
/* The runtime attached on this thread by loom_init (host code's view). */
LOOM__MODULE_API extern LOOM__TLS loom_t *loom__tls_home;

/* The runtime a handle may be looked up in from the calling thread. */
static inline loom_t *loom__handle_rt(void) {
  return loom__tls_rt ? loom__tls_rt : loom__tls_home;
}

/* The calling thread is rt's own: one of its tasks runs, or host code on
 * the thread it was attached to. What only that thread may do (signal it,
 * spawn and cancel its tasks) checks this. */
static inline int loom__on_own_thread(const loom_t *rt) {
  return rt == loom__tls_rt || rt == loom__tls_home;
}

/* The live slot behind handle h in rt's table, or NULL (handle.h). A handle
 * whose low half is 0 gives slot UINT32_MAX, never below nhandles. */
static inline loom__hslot_t *loom__handle_slot(loom_t *rt, const void *h) {
  uint64_t v = (uint64_t)(uintptr_t)h;
  uint32_t slot = (uint32_t)v - 1u;
  if (!rt || slot >= rt->nhandles) return NULL;
  loom__hslot_t *s = &rt->handles[slot];
  return s->obj && s->gen == (uint32_t)(v >> 32) ? s : NULL;
}

static inline int loom__handle_new(loom_t *rt, int kind, void *obj, void **out) {
  uint32_t i;
  if (rt->hfree) {
    i = rt->hfree - 1;
    rt->hfree = rt->handles[i].next_free;
  } else {
    if (rt->nhandles == rt->handles_cap && loom__handles_grow(rt)) return UV_ENOMEM;
    i = rt->nhandles++;
    rt->handles[i].gen = 1;
  }
  rt->handles[i].obj = obj;
  rt->handles[i].kind = (uint32_t)kind;
  *out = (void *)(uintptr_t)(((uint64_t)rt->handles[i].gen << 32) | (i + 1u));
  return 0;
}

static inline void loom__handle_free_slot(loom_t *rt, uint32_t slot) {
  loom__hslot_t *s = &rt->handles[slot];
  s->obj = NULL;
  s->gen++; /* every copy of its handle is stale from now on */
  s->next_free = rt->hfree;
  rt->hfree = slot + 1;
}

static inline void *loom__handle_get(loom_t *rt, const void *h, int kind) {
  loom__hslot_t *s = loom__handle_slot(rt ? rt : loom__handle_rt(), h);
  return s && s->kind == (uint32_t)kind ? s->obj : NULL;
}

static inline void *loom__handle_at(loom_t *rt, uint32_t slot, int kind) {
  loom__hslot_t *s = &rt->handles[slot];
  return s->obj && s->kind == (uint32_t)kind ? s->obj : NULL;
}

static inline loom_task_t *loom__self(void) {
  loom_t *rt = loom__tls_rt;
  return rt ? rt->current : NULL;
}

LOOM__MODULE_API int loom__scope_check(loom_task_t *t);
/* The check as seen from scope s outward (s NULL: the task's top level):
 * what a gather or group opened in s must obey. */
int loom__check_from(loom_task_t *t, loom_scope_t *s);

/* 0 if the running task may suspend, else the error every suspending call
 * returns now: LOOM_ENOTASK, UV_ECANCELED, or UV_ETIMEDOUT for an expired
 * scope. Without scopes, one load and a test. */
static inline int loom__check(loom_task_t *t) {
  if (!t) return LOOM_ENOTASK;
  if (t->scope) return loom__scope_check(t);
  return t->cancelled ? UV_ECANCELED : 0;
}

/* A task waiting in a loom__wq_t (sync primitives). Lives in the waiting
 * task's frame. */
typedef struct loom__wnode_s {
  loom__waiter_t w;
  loom__link_t link; /* on q */
  loom__wq_t *q;     /* the queue it is on, NULL once off */
  uintptr_t data;    /* the primitive's (barrier index) */
} loom__wnode_t;

/* wq.c: FIFO wait queues. loom__wq_wait parks the calling task on q until a
 * waker takes it off with loom__wq_wake_one/all (returning the result the
 * waker gave), or until it is interrupted (it then leaves the queue and
 * returns UV_ECANCELED / UV_ETIMEDOUT). shielded: not interruptible. */
static inline int loom__wq_wait(loom__wq_t *q, loom__wnode_t *n, loom_task_t *self,
                                int shielded);
void loom__wq_on_interrupt(loom__waiter_t *w); /* takes the node off */
loom__wnode_t *loom__wq_wake_first(loom__wq_t *q, int result);
/* The uncontended release paths call this with nobody waiting: no call. */
static inline loom__wnode_t *loom__wq_wake_one(loom__wq_t *q, int result) {
  return q->waiting.head ? loom__wq_wake_first(q, result) : NULL;
}
size_t loom__wq_wake_all(loom__wq_t *q, int result);
static inline int loom__wq_empty(const loom__wq_t *q) {
  return loom__list_empty(&q->waiting);
}

/* sched.c */
void loom__make_ready(loom_task_t *t);
LOOM__MODULE_API void loom__suspend(loom_task_t *t, int last);
/* Binds a stack to t, which has none yet (its first switch-in). */
void loom__task_bind(loom_task_t *t);
/* Task records (records.c). */
void loom__records_init(loom__records_t *r, const int64_t *clock);
void loom__records_destroy(loom__records_t *r);
loom_task_t *loom__record_new(loom__records_t *r);
void loom__record_free(loom__records_t *r, loom_task_t *t);
void loom__records_idle(loom__records_t *r);
/* How many spawns ahead of a task the record its hint names is. */
#define LOOM__AHEAD 8
/* Fetches the first `bytes` of the record t's hint names, if any (spawn,
 * a task's start and a join each read a different prefix). A hint: nothing
 * is read through it. */
static inline void loom__prefetch_ahead(const loom_task_t *t, size_t bytes) {
  if (t->ahead)
    for (size_t off = 0; off < bytes; off += 64)
      __builtin_prefetch((const char *)t->ahead + off, 1);
}
/* Whether t holds a stack: from its first switch-in to its end. */
static inline int loom__task_has_stack(const loom_task_t *t) {
  return t->fiber.stack_lo != NULL;
}
/* Switches out until woken; returns the waker's result. Inline, like
 * loom__wq_wait: every call level between a waiting call and the switch is
 * one more return to mispredict on the way back (docs/fiber.md). */
static inline int loom__park(loom__waiter_t *w) {
  loom_task_t *t = w->task;
  loom__assert(t->state == LOOM__RUNNING && !t->wait,
               "parking a task that is already parked (or not running)");
  t->wait = w;
  w->since = (uint32_t)t->rt->loop->time;
  t->state = LOOM__PARKED;
  loom__suspend(t, 0);
  return w->result;
}

static inline int loom__wq_wait(loom__wq_t *q, loom__wnode_t *n, loom_task_t *self,
                                int shielded) {
  loom__assert(!loom__list_contains(&q->waiting, &n->link),
               "linking a wait node that is already linked");
  n->w.task = self;
  n->w.cancel = loom__wq_on_interrupt;
  n->w.result = 0;
  n->w.shielded = shielded;
  n->q = q;
  loom__list_push_back(&q->waiting, &n->link);
  return loom__park(&n->w);
}
void loom__landed(loom_t *rt);
/* The return addresses of parked or ready task t's stack, innermost first,
 * from t itself: t is resumed just long enough to unwind its own stack
 * with backtrace() (backtrace.c decides when that is safe). */
int loom__probe_backtrace(loom_task_t *t, void **pcs, int max);
LOOM__MODULE_API void loom__wake(loom__waiter_t *w, int result);
/* Like loom__wake, but from a libuv callback outside the scheduler's pass
 * the task runs at once, until it next suspends, and the call returns then
 * (inside a task or a pass it only wakes). For I/O completions whose data
 * the task is about to use: it finds it still in cache, as a callback would
 * (docs/scheduler.md). The caller must not touch anything the task may have
 * freed. */
LOOM__MODULE_API void loom__wake_now(loom__waiter_t *w, int result);
void loom__interrupt(loom_task_t *t, int err);
/* Interrupts t's wait if its scopes or cancellation now say it must end. */
void loom__poke(loom_task_t *t);
void loom__on_check(uv_check_t *h);
void loom__on_idle(uv_idle_t *h);
/* Hands every stream's gathered output to libuv (io/stream.c). Called
 * when tasks stop running, before the loop polls again: at the end of a
 * pass and after a task run from a libuv callback (loom__wake_now). */
void loom__io_flush(loom_t *rt);

/* task.c: a task's handle and name. loom__task_of(rt, h): the task behind
 * handle h, or NULL if it is stale or not a task's (rt NULL: as for
 * loom__handle_get). */
static inline loom_task_t *loom__task_of(loom_t *rt, const loom_task_t *h) {
  return loom__handle_get(rt, h, LOOM__H_TASK);
}
static inline loom_task_t *loom__handle_of(const loom_task_t *t) {
  const loom__hslot_t *s = &t->rt->handles[t->slot];
  return (loom_task_t *)(uintptr_t)(((uint64_t)s->gen << 32) | (t->slot + 1u));
}
/* Makes every copy of t's handle stale; t keeps its slot (detach). */
void loom__task_handle_renew(loom_task_t *t);
/* "task-<id>" until the task is named. */
const char *loom__task_name(loom_task_t *t);

/* watch.c */
void loom__watch(loom_task_t *t, loom__watch_t *w,
                 void (*done)(loom__watch_t *w, loom_task_t *t));
void loom__unwatch(loom_task_t *t, loom__watch_t *w);
void loom__hook(loom_task_t *t, loom__hook_t *h);
void loom__unhook(loom_task_t *t, loom__hook_t *h);
/* The task has ended: takes each watcher off and calls it. */
void loom__notify_watchers(loom_task_t *t);
/* Waits until *remaining is 0; completions wake w. If the wait is
 * interrupted, abort(ctx) is called once (it cancels what is awaited) and the
 * wait goes on, deaf to interruptions. Returns the interruption or 0. */
int loom__wait_all(loom__waiter_t *w, const size_t *remaining, void (*abort)(void *ctx),
                   void *ctx);

/* spawn.c */
int loom__spawn(loom_t *rt, loom_task_t **out, loom_fn fn, void *arg,
                const loom_task_opts_t *opts, int is_main);
void loom__task_finished(loom_t *rt, loom_task_t *t);
/* Frees a finished task whose handle is gone: handle and stack. */
void loom__release(loom_t *rt, loom_task_t *t);
void loom__reap_unconsumed(loom_t *rt);

/* cancel.c */
void loom__cancel(loom_task_t *t);
void loom__cancel_all(loom_t *rt);

/* tick.c */
/* Milliseconds counted by the ticker thread while some runtime wants it. */
extern _Atomic uint32_t loom__tick;
/* A pass ran past a clock tick: make loom__tick move (starts the ticker). */
void loom__tick_want(loom_t *rt);
/* The runtime is being freed (loom__timers_close calls it). */
void loom__tick_release(loom_t *rt);

/* scope.c */
void loom__scopes_abandon(loom_task_t *t);

/* runtime.c */
void loom__maybe_close_slow(loom_t *rt);
/* Called after every wake-up from the loop: while tasks are alive (almost
 * always) it is a load and a branch, inline. */
static inline void loom__maybe_close(loom_t *rt) {
  if (rt->shutdown_requested && !rt->nalive && !rt->open_handles && !rt->holds)
    loom__maybe_close_slow(rt);
}
LOOM__MODULE_API void loom__io_add(loom_t *rt, loom__io_t *o, const char *what,
                                   int (*close)(loom__io_t *o, int force));
/* Takes o off the list (its memory is about to be freed). */
LOOM__MODULE_API void loom__io_remove(loom_t *rt, loom__io_t *o);

/* Counts a task activation. The debug-mode watchdog reads the count from
 * its own thread, so the store is atomic (relaxed: no data race for
 * ThreadSanitizer). On x86_64 one add to memory does that (its store is a
 * single aligned one; only this thread writes): the atomic store's load,
 * add and store were two instructions more per switch, 2% of a yield. */
static inline void loom__count_switch(loom_t *rt) {
#if defined(__x86_64__) && !defined(LOOM__TSAN)
  __asm__("addq $1, %0" : "+m"(rt->stats.switches));
#else
  __atomic_store_n(&rt->stats.switches, rt->stats.switches + 1, __ATOMIC_RELAXED);
#endif
}

/* ---- debug mode (debug-mode.c) -------------------------------------------
 * Off (rt->debug_mode NULL), it costs the hot paths no call and no clock
 * read: a lock acquisition tests rt->debug_mode, a release compares the
 * lock's state word it has read anyway. The rest hangs off paths that are
 * slow already: a pass that ran long, a pass's end, a lone task's yield,
 * shutdown. The watchdog thread reads rt->stats.switches. */
#define LOOM__UNLIKELY(x) __builtin_expect(!!(x), 0)
/* loom_init: turns debug mode on if LOOM_DEBUG is set (and not "0"). */
void loom__debug_mode_init(loom_t *rt);
/* The runtime is being freed: debug mode off, its thread joined. */
void loom__debug_mode_fini(loom_t *rt);
/* A pass ran long (tick.c, loom__tick_want, from sched.c's pass_ran_long):
 * reports a slow task that has now suspended. */
void loom__debug_time_up(loom_t *rt);
/* The end of a scheduler pass: the invariant sweep (throttled). */
void loom__debug_pass_end(loom_t *rt);
/* Locks (sync/lock.c): taken by t / released (lock marked as tracked). */
void loom__debug_lock_acquired(loom_t *rt, const void *lock, loom_task_t *t);
void loom__debug_lock_released(const void *lock);
/* The unjoined-task report at shutdown: prints t's spawn site if debug
 * mode is on and reports unjoined tasks. */
void loom__debug_unjoined(loom_t *rt, loom_task_t *t);

/* io/offload.c: at shutdown, once no job of rt is in flight, stops and
 * joins the default executor's (idle) threads. */
void loom__offload_close(loom_t *rt);

#endif
