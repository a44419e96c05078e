/* loom signals: tasks that wait for POSIX signals (SIGTERM, SIGHUP,
 * SIGUSR1...), asyncio's loop.add_signal_handler. See docs/signal.md.
 *
 * A watcher (loom_signal_t) catches one or more signal numbers from the
 * moment it is opened until it is closed. Deliveries are counted per signal
 * number while nobody waits, so a signal that arrives before the wait is
 * not lost: the next loom_signal_wait returns it at once. The kernel itself
 * merges a signal raised again before the process has caught the first one
 * (standard signals are not queued), so a count may be lower than the
 * number of kill() calls, never higher.
 *
 * Opening a watcher takes the signal over for the whole process, through
 * libuv's uv_signal_t; closing the last watcher of a signal gives it back:
 * the disposition it had before (a handler, SIG_IGN, SIG_DFL) is restored.
 * Under loom_run that includes SIGINT: while a watcher holds it, Ctrl-C is
 * the program's to handle (loom_run no longer cancels the main task); once
 * closed, loom_run's handling is back. SIGPIPE, which loom ignores, is
 * ignored again after a watcher of it closes.
 *
 * A raw libuv uv_signal_t does not do this: when the last one of a signal
 * stops, libuv sets SIG_DFL. A raw SIGINT watcher therefore replaces
 * loom_run's SIGINT handling while it runs, and once closed leaves Ctrl-C
 * killing the process with no clean-up. Use loom_signal_open instead.
 *
 * Handles are checked tokens like streams: a call on a closed watcher
 * returns UV_EBADF, never touches freed memory; NULL gives UV_EINVAL. A
 * watcher left open when the runtime shuts down is closed and reported.
 */
#ifndef LOOM_SIGNAL_H
#define LOOM_SIGNAL_H

#include "core.h"
#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_signal_s loom_signal_t; /* opaque, heap */

/* A handler task's body: called with the signal number of each delivery,
 * one delivery at a time. Returning 0 keeps handling; anything else ends
 * the handler task with that status. */
typedef int (*loom_signal_fn)(int signum, void *arg);

/* Opens a watcher of `signum` in the calling task's runtime and starts
 * catching it at once. Does not suspend. Errors: UV_EINVAL (NULL sig, a
 * number out of range, SIGKILL, SIGSTOP, or a fault signal: SIGSEGV,
 * SIGBUS, SIGILL, SIGFPE, which cannot be waited for), LOOM_ENOTASK outside
 * a task, UV_ENOMEM. */
LOOM_EXTERN int loom_signal_open(loom_signal_t **sig, int signum);

/* Adds `signum` to what the watcher catches (a watcher of SIGTERM and
 * SIGINT, say). Adding a number it has already is a no-op. Does not
 * suspend. Errors: as loom_signal_open, and UV_EBADF for a closed watcher. */
LOOM_EXTERN int loom_signal_add(loom_signal_t *sig, int signum);

/* Waits for a delivery and consumes it: returns the signal number (> 0).
 * Returns at once if one is pending; with several pending, the lowest
 * signal number first, as the kernel delivers them. Several tasks may wait
 * on one watcher: each delivery wakes one of them, first come first served
 * (to have every task see every delivery, give each its own watcher).
 * While a task waits, the watcher keeps the loop alive; otherwise it does
 * not. Errors: UV_ECANCELED, UV_ETIMEDOUT (a timeout scope), LOOM_ENOTASK,
 * UV_EINVAL, UV_EBADF (closed, also while waiting). */
LOOM_EXTERN int loom_signal_wait(loom_signal_t *sig);

/* Deliveries of `signum` caught and not yet consumed by a wait (0 if the
 * watcher does not catch it). Does not suspend. UV_EINVAL, UV_EBADF. */
LOOM_EXTERN int loom_signal_pending(loom_signal_t *sig, int signum);

/* Spawns a handler task: it waits on the watcher and calls fn(signum, arg)
 * for each delivery, in order, until fn returns nonzero, the watcher is
 * closed (the task then ends with status 0) or the task is cancelled
 * (UV_ECANCELED; loom_run cancels it when main returns). Deliveries that
 * arrive while fn runs are counted and handled next. `task` NULL makes the
 * handler detached; otherwise cancel or join it like any task. Errors:
 * UV_EINVAL (NULL sig or fn), UV_EBADF, LOOM_ENOTASK, LOOM_ECLOSED,
 * UV_ENOMEM. */
LOOM_EXTERN int loom_signal_handle(loom_signal_t *sig, loom_task_t **task,
                                   loom_signal_fn fn, void *arg);

/* Stops catching and gives the signals back (see above); tasks waiting on
 * the watcher wake with UV_EBADF. Deliveries still pending are dropped.
 * Does not suspend. Errors: UV_EINVAL, UV_EBADF (closed already). */
LOOM_EXTERN int loom_signal_close(loom_signal_t *sig);

#ifdef __cplusplus
}
#endif

#endif /* LOOM_SIGNAL_H */
