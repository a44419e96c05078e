/* Introspection: what the task dump, the stats, debug mode and the monitor
 * read about tasks (include/loom/debug.h, docs/debugging.md).
 *
 * Wait reasons. Every park site says what its task waits for with
 * loom__wait_on(w, kind, obj) before it parks: two stores into the waiter,
 * which lives in the parking task's frame and whose line the park writes
 * anyway; loom__park adds the loop time (three loads and a store).
 * Nothing reads them but a dump: with the counters, about 1.7% of the
 * instructions of a TCP echo round trip (docs/debugging.md). `obj` is the
 * object waited on (its address is what the dump prints, and the key of
 * loom_debug_name), or a value for the kinds that say so below. A dump
 * dereferences obj only for the kinds marked "deref", whose object
 * provably outlives the wait.
 *
 * Backtraces (backtrace.c): a parked task is resumed for a moment to
 * unwind its own stack (sched.c, loom__probe_backtrace); where that is not
 * safe, the frame pointers of its saved context are walked, never outside
 * its stack. */
#ifndef LOOM_CORE_INTROSPECT_H
#define LOOM_CORE_INTROSPECT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "module-api.h"

enum {
  LOOM__W_UNKNOWN = 0,
  LOOM__W_SLEEP,        /* obj: the deadline (loop ms), a value */
  LOOM__W_LOCK,         /* deref: the loom_lock_t, for its holder (a
                           lock outlives the tasks waiting for it) */
  LOOM__W_SEM,          /* the loom_sem_t */
  LOOM__W_QUEUE_GET,    /* the loom_queue_t */
  LOOM__W_QUEUE_PUT,    /* the loom_queue_t */
  LOOM__W_QUEUE_JOIN,   /* the loom_queue_t */
  LOOM__W_EVENT,        /* the loom_event_t */
  LOOM__W_COND,         /* the loom_cond_t */
  LOOM__W_BARRIER,      /* the loom_barrier_t */
  LOOM__W_CHANNEL_SEND, /* the channel */
  LOOM__W_CHANNEL_RECV, /* the channel */
  LOOM__W_FUTURE,       /* the future */
  /* The I/O kinds: deref, an object whose first member is its libuv
   * handle (stream, listener, UDP socket, foreign fd). */
  LOOM__W_READ,         /* a stream or UDP socket */
  LOOM__W_WRITE,        /* a stream */
  LOOM__W_DRAIN,        /* a stream */
  LOOM__W_ACCEPT,       /* a listener */
  LOOM__W_FD,           /* a foreign fd's watcher */
  LOOM__W_JOIN,         /* deref: the loom_task_t joined */
  LOOM__W_GATHER,       /* obj: how many tasks, a value */
  LOOM__W_WAIT,         /* loom_wait: how many tasks, a value */
  LOOM__W_AS_COMPLETED, /* the iterator */
  LOOM__W_GROUP,        /* the group */
  LOOM__W_THREAD,       /* a job on a thread: the executor, or NULL */
  LOOM__W_PROCESS,      /* deref: the child process, whose first member
                           is its uv_process_t */
  LOOM__W_FILE,         /* deref: the libuv request of a file call
                           (a uv_fs_t, or a uv_work_t on a thread) */
  LOOM__W_SIGNAL,       /* deref: the signal watcher (its numbers) */
  LOOM__W_HTTP,         /* deref: the HTTP transfer, described by the
                           client (it lives in the parked task's frame) */
  LOOM__W_REQ,          /* deref: a libuv request (connect, DNS,
                           shutdown...) */
  LOOM__W_KINDS
};

/* Runtime counters (loom_stats_t gives them out). */
typedef struct {
  uint64_t peak; /* most tasks alive at once, taken when one ends */
  uint64_t switches, passes;
  uint64_t late_max_us;
  uint64_t late_hist[8];
  uint64_t bytes_read, bytes_written;
} loom__stats_t;

/* Says what the waiter's task is about to wait for. Two stores. */
#define loom__wait_on(w, k, o)    \
  do {                            \
    (w)->kind = (k);              \
    (w)->obj = (const void *)(o); \
  } while (0)

struct loom_task_s;
struct loom_s;

/* Adds a fired timer's lateness (ns past its deadline) to the stats. */
void loom__stats_late(struct loom_s *rt, uint64_t late_ns);

/* The kind in a word or two ("lock", "read"...). */
const char *loom__wait_kind_name(unsigned kind);
/* What t waits for, in words ("lock 'accounts' (0x55d0c0)"), into buf.
 * "" if it is not parked. Returns buf. */
char *loom__wait_describe(struct loom_task_s *t, char *buf, size_t n);
/* The same for a caller that has every task of t's runtime in v, sorted by
 * id (the monitor's ps): a lock's holder is found there by binary search,
 * not by a walk of every task per waiter. */
char *loom__wait_describe_in(struct loom_task_s *t, struct loom_task_s **v, size_t nv,
                             char *buf, size_t n);
/* debug-mode.c, for tests: when set, what the watchdog takes for the loop
 * thread's run-queue wait so far (ns, never decreasing) instead of reading
 * it from /proc (a test makes it believe the thread was starved). */
extern uint64_t (*loom__debug_runq_hook)(void);
/* The name loom_debug_name gave obj in rt, or NULL. */
const char *loom__debug_name_of(struct loom_s *rt, const void *obj);
/* The runtime's debug state is freed (runtime shutdown). */
void loom__debug_free(struct loom_s *rt);
/* loom_run: the default dump signal (SIGQUIT, or LOOM_DUMP_SIGNAL). */
void loom__dump_signal_default(struct loom_s *rt);
/* Shutdown: closes the dump signal's handle with cb (its data is rt);
 * returns 1 if it had one, 0 if not (cb is then never called). */
int loom__dump_signal_close(struct loom_s *rt, uv_close_cb cb);

/* The dump of loom_dump (id 0) or loom_dump_task (id), handed to put in
 * pieces instead of written to a descriptor (the monitor's). */
int loom__dump_to(struct loom_s *rt, void (*put)(void *ctx, const char *p, size_t n),
                  void *ctx, uint64_t id, unsigned flags);
/* Marks t as one of loom's own tasks (the monitor's): dumps say so. */
void loom__task_mark_system(struct loom_task_s *t);

/* combinators/group.c: the task that opened group g. */
struct loom_task_s *loom__group_opener(const void *g);
/* io/signal.c: taking a signal from the process and giving it back, the
 * watchers' way, which the dump signal shares so that the two compose;
 * close_cb NULL: stop only. And whether a watcher of rt catches signum. */
int loom__signal_take(uv_signal_t *h, uv_signal_cb cb, int signum);
void loom__signal_give_back(uv_signal_t *h, int signum, uv_close_cb close_cb);
int loom__signal_watched(struct loom_s *rt, int signum);
void loom__signal_describe(const void *w, char *buf, size_t n);

/* What a dump says a LOOM__W_HTTP wait's object is: "GET http://..."
 * into buf, returning buf. The HTTP client is a library of its own
 * (libloom-http) that libloom cannot call, so it hands its describer over
 * with loom__set_http_describe before its first transfer can wait; until
 * then (a program without it) a dump says only "HTTP request". */
typedef char *loom__http_describe_fn(const void *xfer, char *buf, size_t n);
LOOM__MODULE_API void loom__set_http_describe(loom__http_describe_fn *fn);

/* backtrace.c. Return addresses of the suspended stack of a parked or
 * ready task t (at most max; the innermost first; none for a finished task
 * or one that never ran), or of the calling task when t is the one
 * running. Runs on the runtime's thread, with no task of it running but
 * the caller. Returns how many. */
int loom__backtrace_task(struct loom_task_s *t, void **pcs, int max);
/* The frame-pointer walk of a parked or ready task's saved context, which
 * loom__backtrace_task falls back on when it cannot ask the task itself
 * (loom__probe_backtrace): whole only where every frame keeps its frame
 * pointer. */
int loom__backtrace_fp(struct loom_task_s *t, void **pcs, int max);
/* Bytes of stack a parked task must have left below its saved stack
 * pointer to unwind itself: a warm backtrace() and the unwinder used 1.6
 * KiB of stack (5.9 KiB under AddressSanitizer; glibc 2.35, x86_64), the
 * probe's own frames half a KiB more, and an overflow there would be the
 * dump's doing: twice that. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || \
    defined(LOOM__SWITCH_HOOKS)
#define LOOM__PROBE_ROOM ((uintptr_t)16 * 1024)
#else
#define LOOM__PROBE_ROOM ((uintptr_t)8 * 1024)
#endif
/* The frame-pointer walk itself: pc first, then the return addresses of
 * the frame records from fp on, each inside [stack_lo, stack_hi), aligned
 * and above the last. Only reads memory in that range: safe in a signal
 * handler (debug mode walks an interrupted task from the registers of its
 * ucontext). */
int loom__backtrace_from(void *fp, void *pc, const void *stack_lo, const void *stack_hi,
                         void **pcs, int max);

/* symbolize.c. "function+0x1c (libfoo.so)" for return address pc (the call
 * before it is what is looked up), or "0x... (program+0x1234)" without a
 * symbol. Names static and hidden functions too (the object's .symtab).
 * Returns buf. */
char *loom__symbolize(void *pc, char *buf, size_t n);
/* The same for a function's own address (an entry point). */
char *loom__symbolize_fn(void *fn, char *buf, size_t n);
/* Many lookups in a row (a dump): the files read stay mapped in s until
 * loom__syms_close. loom__syms_open may return NULL (no memory): the
 * lookups then work one by one. is_return: pc is a return address. */
typedef struct loom__syms_s loom__syms_t;
loom__syms_t *loom__syms_open(void);
char *loom__syms_name(loom__syms_t *s, void *pc, int is_return, char *buf, size_t n);
void loom__syms_close(loom__syms_t *s);

#endif
