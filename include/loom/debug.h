/* loom debugging: seeing inside a running program. See docs/debugging.md.
 *
 * A task dump lists every task a runtime has: its id, name and state
 * (running, ready, parked, or finished but not yet joined), what a parked
 * task waits for in words ("lock 'accounts' (0x...)", "read on stream
 * 127.0.0.1:5000", "join of task 7", "sleep until +250 ms") and since when,
 * the task that spawned it or the group it belongs to (the dump prints the
 * tasks as a tree), where it was spawned, and a backtrace of its suspended
 * stack. As text for people, as JSON for tools.
 *
 * Under loom_run, SIGQUIT (Ctrl-\) writes the dump to stderr and the
 * program goes on running (Go dumps its goroutines and exits; a loom
 * program that wants Ctrl-\ to quit turns the dump off); loom_dump_signal picks another signal
 * or turns it off, and so does the environment variable LOOM_DUMP_SIGNAL (a
 * number, or 0 for off). A loom_signal_t watcher the program opens on that
 * signal takes it over while it is open, as for SIGINT.
 *
 * A parked task's backtrace is taken by the task itself: the dump resumes
 * it for a moment, it unwinds its own stack with the unwind tables (no
 * frame pointers needed) and switches straight back, unseen by anything
 * else. Where that is not safe (docs/debugging.md) frame pointers are
 * walked over its saved context instead, bounded to its stack: code built
 * without them gives shorter backtraces there, never garbage or a crash.
 * Function names come from each
 * object's symbol table (static functions too, no -rdynamic needed); a
 * stripped one shows as program+offset, which addr2line resolves.
 *
 * Every function here is called from a task of the runtime or from the
 * thread that owns it (host code after loom_init); rt NULL means the
 * calling thread's runtime. They never suspend. A dump from any other
 * thread is refused (UV_EINVAL): it reads the runtime's task lists and
 * resumes its parked tasks, which only the runtime's thread may do.
 */
#ifndef LOOM_DEBUG_H
#define LOOM_DEBUG_H

#include <stdint.h>

#include "core.h"
#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- stats -------------------------------------------------------------- */

/* What handles_by_kind counts: the runtime's open objects of each kind. */
enum {
  LOOM_STAT_STREAM = 0, /* TCP, pipe and TTY streams */
  LOOM_STAT_LISTENER,   /* listening sockets (loom_listen) */
  LOOM_STAT_SERVER,     /* servers (loom_serve) */
  LOOM_STAT_UDP,        /* UDP sockets */
  LOOM_STAT_GROUP,      /* open task groups */
  LOOM_STAT_TASK,       /* task handles not yet joined or detached */
  LOOM_STAT_SIGNAL,     /* signal watchers */
  LOOM_STAT_FD,         /* foreign file descriptors watched (loom_fd_*) */
  LOOM_STAT_PROCESS,    /* child processes */
  LOOM_STAT_FILE,       /* open files */
  LOOM_STAT_DIR,        /* open directory streams */
  LOOM_STAT_TIMER,      /* armed timers (sleeps, timeouts) */
  LOOM_STAT_KINDS
};

/* Buckets of timer_late_hist, by how late a timer fired against its
 * deadline: < 0.1 ms, < 1, < 2, < 5, < 10, < 50, < 100, >= 100 ms. */
#define LOOM_STAT_LATE_BUCKETS 8

typedef struct {
  uint64_t tasks_live;        /* tasks not yet ended */
  uint64_t tasks_peak;        /* the most tasks_live has been */
  uint64_t tasks_spawned;     /* tasks ever spawned */
  uint64_t switches;          /* task activations (a lone task's yield, which
                                 keeps the thread, counts too) */
  uint64_t passes;            /* scheduler passes (one per loop iteration) */
  uint64_t timer_late_max_us; /* worst lateness of a fired timer */
  uint64_t timer_late_hist[LOOM_STAT_LATE_BUCKETS];
  uint64_t stacks_mapped;                    /* task stacks mapped (in use or cached) */
  uint64_t stacks_cached;                    /* of them, free (kept for reuse, or
                                                promised to tasks not started) */
  uint64_t bytes_read;                       /* received by streams and UDP sockets */
  uint64_t bytes_written;                    /* taken by loom_write(v), loom_udp_send */
  uint32_t handles_by_kind[LOOM_STAT_KINDS]; /* LOOM_STAT_* */
} loom_stats_t;

/* Fills *out. UV_EINVAL if out is NULL, LOOM_ENOTASK if rt is NULL and the
 * calling thread has no runtime. */
LOOM_EXTERN int loom_stats_get(loom_t *rt, loom_stats_t *out);
/* "stream", "listener"... for a LOOM_STAT_* kind; "?" if out of range. */
LOOM_EXTERN const char *loom_stat_kind_name(int kind);

/* ---- dump --------------------------------------------------------------- */

#define LOOM_DUMP_JSON 1u      /* JSON instead of text */
#define LOOM_DUMP_NO_STACKS 2u /* omit backtraces */

/* Writes every live task, then the stats, to file descriptor fd (a blocking
 * or non-blocking one; the dump is written whole before the call returns).
 * Returns 0, or a negative error: UV_EINVAL for a negative fd, unknown
 * flags or a call from a thread that is not rt's, LOOM_ENOTASK without a
 * runtime, the write's (UV_EBADF, UV_EPIPE). */
LOOM_EXTERN int loom_dump(loom_t *rt, int fd, unsigned flags);
/* Writes one task, by the id the dump shows; UV_ENOENT if there is none. */
LOOM_EXTERN int loom_dump_task(loom_t *rt, int fd, uint64_t id, unsigned flags);
/* Cancels the task with that id (as loom_cancel); UV_ENOENT if none. */
LOOM_EXTERN int loom_cancel_id(loom_t *rt, uint64_t id);
/* The signal that makes the runtime dump to stderr: signum 0 turns it off.
 * Under loom_run the default is SIGQUIT (LOOM_DUMP_SIGNAL in the
 * environment overrides it, 0 turning it off); a runtime of loom_init has
 * none until this is called. UV_EINVAL for a bad signal number. */
LOOM_EXTERN int loom_dump_signal(loom_t *rt, int signum);
/* Gives a lock, semaphore, queue, event, condition, barrier, channel,
 * future... a name that dumps print beside its address. The name is
 * copied (at most 31 bytes kept); NULL forgets it. The name belongs to the
 * address: forget it before the object's memory is reused. Works in the
 * calling thread's runtime; LOOM_ENOTASK outside one, UV_EINVAL if obj is
 * NULL. */
LOOM_EXTERN int loom_debug_name(const void *obj, const char *name);

/* ---- debug mode ---------------------------------------------------------- */

/* Debug mode (docs/debug-mode.md): reports tasks that run too long without
 * suspending, locks held too long across suspensions, and tasks never
 * joined nor detached. */
typedef struct {
  uint64_t slow_task_ms; /* 0 = 100 */
  uint64_t lock_hold_ms; /* 0 = 100 */
  int report_unjoined;   /* tasks never joined nor detached */
} loom_debug_opts_t;

/* opts NULL: the defaults. Also on when LOOM_DEBUG=1 is in the environment
 * at the runtime's start. */
LOOM_EXTERN int loom_debug_enable(loom_t *rt, const loom_debug_opts_t *opts);
LOOM_EXTERN int loom_debug_disable(loom_t *rt);
/* 1 if debug mode is on in rt, 0 if not. */
LOOM_EXTERN int loom_debug_enabled(loom_t *rt);

/* More on debug mode: loom_debug_enable and loom_debug_disable are
 * called on the runtime's thread (from a task, or host code after
 * loom_init), rt NULL meaning its runtime; UV_EINVAL from any other
 * thread. Enabling again changes the thresholds. The environment at the
 * runtime's start: LOOM_DEBUG=1 turns it on, LOOM_DEBUG_SLOW_MS and
 * LOOM_DEBUG_LOCK_MS set the thresholds. Reports go to stderr, one write
 * each, prefixed "loom: debug: ". Debug mode runs a watchdog thread per
 * runtime and takes the realtime signal SIGRTMAX-3 (docs/debug-mode.md):
 * the signal that samples a slow task interrupts a blocking system call
 * the task is in (sleep(3), poll(2), a blocking connect return early or
 * with EINTR), so debug mode is for programs whose tasks do not block the
 * thread, which is what it looks for. loom_debug_enabled(NULL) answers
 * for the caller's runtime (0 outside one). */

#ifdef __cplusplus
}
#endif

#endif /* LOOM_DEBUG_H */
