/* loom and other threads: thread-safe entry into a runtime
 * (call_soon_threadsafe, run_coroutine_threadsafe) and thread offload
 * (asyncio.to_thread, run_in_executor).
 *
 * ---- thread-safe entry ----
 * A loom_remote_t is a reference to a runtime that any thread may use and
 * keep: it outlives the runtime, so a call after the runtime has ended is a
 * clear LOOM_ECLOSED, never a crash. Open it on the runtime's thread, hand
 * it to the other thread, close it when that thread is done:
 *
 *   loom_remote_t *r; loom_remote_open(NULL, &r);      // in a task
 *   ... other thread:
 *   loom_future_t *f;
 *   loom_remote_spawn(r, work, arg, &f);               // a task there
 *   int status = loom_future_wait(f, -1, NULL);        // its status
 *   loom_future_release(f); loom_remote_close(r);
 *
 * ---- offload ----
 * A blocking or CPU-bound function runs on a worker thread while the task
 * that awaits it is suspended and the runtime goes on running other tasks.
 * Jobs run on loom's own executors, never on libuv's thread pool, so a
 * flood of blocking jobs cannot delay loom_getaddrinfo or file work (libuv
 * has 4 threads for those). Each runtime has a default executor, made on
 * first use, of LOOM_OFFLOAD_THREADS threads unless loom_config_t's
 * offload_threads (loom_init) or else the environment variable
 * LOOM_OFFLOAD_THREADS says otherwise (1..1024); threads start
 * when jobs need them and stay until the runtime ends. loom_executor_new
 * makes a bounded pool of one's own (run_in_executor with a
 * ThreadPoolExecutor(max_workers=n)).
 *
 * Cancellation: a task awaiting a job that is cancelled, or whose timeout
 * scope expires, returns UV_ECANCELED / UV_ETIMEDOUT at once. A job that
 * has not started yet is dropped and never runs. A job that is running
 * cannot be interrupted (C has no way to stop a function from outside): it
 * runs to its end on its thread and its status is dropped. So `arg` must
 * stay valid until the job has ended, not only until the await returns:
 * when the awaiting task may be cancelled, do not point arg into its
 * frame; allocate it and let the job free it, or await the job inside a
 * shield scope. A runtime waits, at its shutdown, for every job of its
 * still running (loom_run returns after them): no worker ever uses memory
 * that loom has freed.
 */
#ifndef LOOM_THREAD_H
#define LOOM_THREAD_H

#include <stddef.h>

#include "core.h"
#include "export.h"
#include "future.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- thread-safe entry ------------------------------------------------ */

typedef struct loom_remote_s loom_remote_t;

/* A function run on a runtime's thread, outside any task (as a libuv
 * callback would be): it may spawn tasks with loom_spawn_on(rt, ...),
 * resolve futures, touch the runtime's objects. rt is NULL when the runtime
 * ended before the call could run: then only free what arg holds. */
typedef void (*loom_call_fn)(loom_t *rt, void *arg);

/* On the runtime's thread (rt NULL: the calling task's runtime): a new
 * reference to it for other threads. LOOM_ENOTASK (rt NULL outside a
 * task), LOOM_ECLOSED, UV_ENOMEM. */
LOOM_EXTERN int loom_remote_open(loom_t *rt, loom_remote_t **out);
/* Any thread: drops the reference (the runtime itself is unaffected). */
LOOM_EXTERN void loom_remote_close(loom_remote_t *r);

/* Any thread: fn(rt, arg) runs soon on the runtime's thread, in the order
 * of the calls. 0; LOOM_ECLOSED if the runtime has ended (fn never runs);
 * UV_EINVAL, UV_ENOMEM. Once 0 is returned, fn runs exactly once: with the
 * runtime, or with NULL if it ended first. Does not keep the runtime
 * alive. */
LOOM_EXTERN int loom_remote_call(loom_remote_t *r, loom_call_fn fn, void *arg);

/* Any thread: spawns a task running fn(arg) on the runtime; *out (if not
 * NULL) receives a future resolved with the task's status (value NULL):
 * wait for it with loom_future_wait, or await it from a task of the same
 * runtime; cancel the future to cancel the task. Once the runtime has
 * begun its shutdown (main has returned, loom_shutdown), or ends before the
 * task could start, the future fails with LOOM_ECLOSED and fn never runs;
 * a runtime that has already ended: LOOM_ECLOSED at once (*out untouched).
 * The task is a detached task of the runtime, cancelled by its shutdown
 * like any other. */
LOOM_EXTERN int loom_remote_spawn(loom_remote_t *r, loom_fn fn, void *arg,
                                  loom_future_t **out);

/* ---- offload ---------------------------------------------------------- */

/* Threads of a runtime's default executor (asyncio: min(32, cpus + 4);
 * loom's jobs are C, so a fixed, documented bound). */
#define LOOM_OFFLOAD_THREADS 16
/* The largest executor. */
#define LOOM_EXECUTOR_MAX_THREADS 1024

typedef struct loom_executor_s loom_executor_t;

/* In a task: runs fn(arg) on a thread of the runtime's default executor,
 * waits for it, and stores its return value in *status (status may be
 * NULL). 0 once the job has run; UV_ECANCELED / UV_ETIMEDOUT (the job is
 * dropped if not started, else left to finish: see above); LOOM_ENOTASK,
 * UV_EINVAL, UV_ENOMEM, or the error starting a thread. */
LOOM_EXTERN int loom_to_thread(loom_fn fn, void *arg, int *status);

/* A bounded pool of `threads` threads (1..LOOM_EXECUTOR_MAX_THREADS),
 * started as jobs need them; usable from every runtime and thread. */
LOOM_EXTERN int loom_executor_new(loom_executor_t **ex, size_t threads);
/* As loom_to_thread, on ex (NULL: the runtime's default). */
LOOM_EXTERN int loom_executor_run(loom_executor_t *ex, loom_fn fn, void *arg,
                                  int *status);
/* Submits fn(arg) to ex (NULL: the runtime's default) from a task or from
 * the runtime's thread, and returns at once with a future of the
 * runtime, resolved with the job's status when it has run (run_in_executor).
 * Cancelling the future drops the job if it has not started. Awaiting it
 * from several tasks, or releasing it unawaited, is fine: the job runs
 * either way. LOOM_ENOTASK with no runtime on the thread. */
LOOM_EXTERN int loom_executor_submit(loom_executor_t *ex, loom_fn fn, void *arg,
                                     loom_future_t **out);
/* Shuts ex down: refuses new jobs (LOOM_ECLOSED), lets the queued and
 * running ones finish, then frees it on the thread of the runtime that
 * handles the last job's end; returns at once (never blocks a runtime's
 * thread). NULL is ignored. */
LOOM_EXTERN void loom_executor_free(loom_executor_t *ex);

#ifdef __cplusplus
}
#endif

#endif /* LOOM_THREAD_H */
