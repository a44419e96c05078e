/* loom core: the runtime, tasks, sleeping and cancellation.
 *
 * A task is a function `int fn(void *arg)` running on its own stack (a
 * fiber). All tasks of a runtime run on one thread, on one libuv loop; a task
 * gives the thread up only at a suspending call (loom_yield, loom_sleep,
 * loom_join and every blocking-looking call of the later layers).
 *
 * Conventions (see docs/core.md):
 * - Functions that can fail return 0 (or a count) or a negative error code:
 *   libuv's codes pass through, loom's own are in <loom/errno.h>.
 * - Suspending calls made outside a task return LOOM_ENOTASK.
 * - Cancellation is level-triggered: once a task is cancelled, every
 *   suspending call it makes returns UV_ECANCELED until it returns.
 */
#ifndef LOOM_CORE_H
#define LOOM_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A task body. Its return value is the task's status: 0 for success, a
 * negative error code for failure. Results travel through `arg`. */
typedef int (*loom_fn)(void *arg);

typedef struct loom_s loom_t;           /* a runtime, bound to one uv loop */
typedef struct loom_task_s loom_task_t; /* opaque task handle */

/* Default virtual stack size of a task: 128 KiB, committed lazily by the
 * kernel, so an idle task costs one or two pages of memory. */
#define LOOM_DEFAULT_STACK_SIZE (128u * 1024u)
/* Smallest stack loom hands out; smaller requests are rounded up. */
#define LOOM_MIN_STACK_SIZE (16u * 1024u)
/* Largest stack a task may ask for (loom_task_opts_t.stack_size; the
 * runtime's default in loom_config_t is bounded the same way): 512 GiB of
 * address space on 64-bit systems, 512 MiB on 32-bit ones. Larger requests
 * fail with UV_EINVAL. */
#define LOOM_MAX_STACK_SIZE (SIZE_MAX > 0xffffffffu ? (size_t)1 << 39 : (size_t)1 << 29)
/* Longest task name kept (longer names are truncated). */
#define LOOM_TASK_NAME_MAX 31

typedef struct {
  size_t stack_size; /* default stack size for tasks; 0 = LOOM_DEFAULT_STACK_SIZE */
  uint64_t shutdown_grace_ms; /* at shutdown, how long streams may go on
                                 flushing before they are aborted;
                                 0 = LOOM_SHUTDOWN_GRACE_MS */
  size_t offload_threads;     /* threads of the default executor
                                 (loom_to_thread), 1..1024; 0 = the
                                 environment variable LOOM_OFFLOAD_THREADS,
                                 else LOOM_OFFLOAD_THREADS (loom/thread.h) */
} loom_config_t;

/* Default bound on the final flush at shutdown (docs/core.md). */
#define LOOM_SHUTDOWN_GRACE_MS 1000u

typedef struct {
  const char *name;  /* copied; NULL = "task-<id>" */
  size_t stack_size; /* 0 = the runtime's default */
} loom_task_opts_t;

/* ---- running --------------------------------------------------------- */

/* Creates a loop and a runtime, runs `main(arg)` as the first task (named
 * "main"), and when it returns cancels and awaits every task still alive,
 * closes every handle and the loop. Returns main's status, or a negative
 * error if the runtime could not start. While it runs, SIGINT cancels the
 * main task (of every runtime loom_run is running, on any thread); a
 * second SIGINT restores the default action and re-raises it. A signal
 * watcher of SIGINT (loom/signal.h) takes that over while it is open.
 * LOOM_EBUSY on a thread that already has a runtime (inside a task, or
 * beside an embedded one): one runtime per thread. */
LOOM_EXTERN int loom_run(loom_fn main, void *arg);

/* Embedding: attaches a runtime to a loop the host runs itself, on the
 * calling thread, which must be the loop's. `cfg` may be NULL. The runtime
 * adds only unreferenced handles until tasks exist, so it does not keep an
 * idle host loop alive. LOOM_EBUSY if the thread already has a runtime
 * (until that one's shutdown callback has run). */
LOOM_EXTERN int loom_init(loom_t **rt, uv_loop_t *loop, const loom_config_t *cfg);

/* Spawns a task on `rt`; callable from plain libuv callbacks or host code on
 * the loop's thread. `task` NULL makes the task detached. */
LOOM_EXTERN int loom_spawn_on(loom_t *rt, loom_task_t **task, loom_fn fn, void *arg);
LOOM_EXTERN int loom_spawn_on_ex(loom_t *rt, loom_task_t **task, loom_fn fn, void *arg,
                                 const loom_task_opts_t *opts);

/* Shuts an embedded runtime down: cancels every task, and once all have
 * ended and loom's handles are closed, frees the runtime and calls
 * `cb(data)` (cb may be NULL). Returns at once; the host's loop must keep
 * running for the shutdown to finish. Callable from a libuv callback, not
 * from inside a task of `rt` (LOOM_EBUSY). */
LOOM_EXTERN int loom_shutdown(loom_t *rt, void (*cb)(void *data), void *data);

/* The loop of a runtime, and the runtime of the calling task (NULL outside
 * a task). */
LOOM_EXTERN uv_loop_t *loom_loop(loom_t *rt);
LOOM_EXTERN loom_t *loom_runtime(void);

/* ---- tasks ------------------------------------------------------------ */

/* Schedules fn(arg) as a new task of the caller's runtime and returns at
 * once: the child never runs before spawn returns, and ready tasks run in
 * FIFO order. `task` NULL = detached. Errors: LOOM_ENOTASK outside a task,
 * LOOM_ECLOSED during shutdown, UV_ENOMEM, UV_EINVAL for a NULL fn or a
 * stack_size above LOOM_MAX_STACK_SIZE. */
LOOM_EXTERN int loom_spawn(loom_task_t **task, loom_fn fn, void *arg);
LOOM_EXTERN int loom_spawn_ex(loom_task_t **task, loom_fn fn, void *arg,
                              const loom_task_opts_t *opts);

/* Waits for `task` to end and stores its status in *status (may be NULL).
 * Always consumes the handle once it is accepted. If the joiner is cancelled
 * while waiting, the child is cancelled and awaited, *status is filled, and
 * join returns UV_ECANCELED. Errors without consuming: LOOM_ENOTASK,
 * LOOM_EBADTASK (joined already, detached, or not a handle), LOOM_EDEADLK
 * (joining yourself). */
LOOM_EXTERN int loom_join(loom_task_t *task, int *status);

/* Gives up the handle: the task runs on and its memory is reclaimed when it
 * ends. A detached task that fails (status < 0, other than UV_ECANCELED) is
 * logged on stderr with its name and error. Returns LOOM_EBADTASK for a
 * consumed handle. The handle given up is stale afterwards, as after a join
 * (every call taking it returns LOOM_EBADTASK, NULL or 0); the task's own
 * loom_current() stays valid. */
LOOM_EXTERN int loom_detach(loom_task_t *task);

/* Requests cancellation and returns at once. A task blocked in a suspending
 * call is woken with UV_ECANCELED; every later suspending call it makes
 * fails the same way. Cancelling an ended task is a no-op (0). Returns
 * LOOM_EBADTASK for a handle joined or detached already, or not a handle. */
LOOM_EXTERN int loom_cancel(loom_task_t *task);

/* asyncio.sleep(0): goes behind every ready task. Returns 0, UV_ECANCELED,
 * or LOOM_ENOTASK. */
LOOM_EXTERN int loom_yield(void);

/* Suspends the task for `ms` milliseconds of loop time (loom_sleep(0) is a
 * yield). Returns 0, UV_ECANCELED (woken at once when cancelled), or
 * LOOM_ENOTASK. */
LOOM_EXTERN int loom_sleep(uint64_t ms);

/* 1 if the task has ended (its status is then ready for loom_join), 0 if
 * not or if the handle is invalid. Does not consume the handle. */
LOOM_EXTERN int loom_task_done(loom_task_t *task);

/* The running task (NULL outside a task). */
LOOM_EXTERN loom_task_t *loom_current(void);
/* Whether cancellation was requested for the running task. */
LOOM_EXTERN int loom_cancelled(void);

/* Loop time in milliseconds (uv_now of the caller's loop; cached once per
 * loop iteration). 0 outside a runtime. */
LOOM_EXTERN uint64_t loom_now(void);

/* The task's name ("task-<id>" when none was given). The pointer stays valid
 * while the handle does. NULL for an invalid handle. */
LOOM_EXTERN const char *loom_task_name(loom_task_t *task);
/* A task's unique id within its runtime (main is 1); 0 for a bad handle. */
LOOM_EXTERN uint64_t loom_task_id(loom_task_t *task);

/* ---- errors ------------------------------------------------------------ */

/* Message and symbolic name of an error code, libuv's or loom's. Never NULL.
 * Known codes (0: "OK" / "success", libuv's, loom's) give static strings.
 * Only an unknown code is formatted, into a per-thread buffer (one per
 * function) valid until that function formats another unknown code on the
 * same thread. */
LOOM_EXTERN const char *loom_strerror(int err);
LOOM_EXTERN const char *loom_err_name(int err);

/* The linked library's version (LOOM_VERSION_HEX / LOOM_VERSION_STRING). */
LOOM_EXTERN unsigned loom_version(void);
LOOM_EXTERN const char *loom_version_string(void);

#ifdef __cplusplus
}
#endif
#endif /* LOOM_CORE_H */
