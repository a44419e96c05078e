/* loom futures (asyncio.Future, concurrent.futures.Future): a one-shot cell
 * that holds a value or an error, awaited by tasks and resolved by anyone.
 *
 *   loom_future_t *f;
 *   loom_future_new(&f);                 // on a runtime's thread
 *   ... hand f to a libuv callback, a C library's callback, a thread ...
 *   void *v;
 *   int rc = loom_future_await(f, &v);   // in a task: 0 and v, or an error
 *   loom_future_release(f);
 *
 * A future is made on a runtime; tasks of any runtime await it, and any
 * thread resolves it (from a task, a plain libuv callback on the runtime's
 * thread, another thread, or another runtime's thread). Resolved from
 * elsewhere, each waiting task is woken through its own runtime's inbox.
 *
 * - Resolving: loom_future_set (a value, status 0), loom_future_fail (a
 *   negative error), loom_future_cancel (UV_ECANCELED). Only the first one
 *   counts: the others return LOOM_EDONE and change nothing.
 * - Awaiting: loom_future_await in a task (of any runtime), any number of
 *   tasks at once; it honours cancellation and timeout scopes
 *   (UV_ECANCELED / UV_ETIMEDOUT). A waiter that gives up leaves the future
 *   as it was: unlike asyncio, awaiting never cancels the future (several
 *   tasks may be waiting on it); cancel it explicitly if nobody else needs
 *   it. Outside a task, loom_future_wait blocks the calling thread (another
 *   thread than the runtime's: concurrent.futures.Future.result).
 * - The result: what the future was resolved with. loom_future_await,
 *   loom_future_wait and loom_future_result return its status (0 for set,
 *   the error for fail, UV_ECANCELED for cancel; a future given by
 *   loom_remote_spawn or loom_executor_submit carries the task's or job's
 *   status, which may be positive) and store its value (NULL unless set).
 * - Lifetime: reference-counted, thread-safe. loom_future_new gives one
 *   reference; loom_future_retain adds one (for another thread or callback);
 *   loom_future_release drops one, the last frees it. A task awaiting a
 *   future keeps it alive while it waits. A future may outlive its runtime:
 *   resolving it then still works (waiters on other threads and other
 *   runtimes are woken), and tasks of other runtimes may still await it.
 *
 * A NULL future is answered with UV_EINVAL (loom_future_done: 0). See
 * docs/future.md, which also shows how to wrap a libuv request or a
 * callback-style C library in a future.
 */
#ifndef LOOM_FUTURE_H
#define LOOM_FUTURE_H

#include <stdint.h>

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_future_s loom_future_t;

/* A pending future of the calling thread's runtime (from a task, or from
 * host code or a libuv callback on the thread of a runtime made with
 * loom_init). LOOM_ENOTASK with no runtime on the thread, LOOM_ECLOSED once
 * its shutdown is closing its handles, UV_ENOMEM. */
LOOM_EXTERN int loom_future_new(loom_future_t **f);

/* Resolve, from any thread. 0, LOOM_EDONE if already resolved, UV_EINVAL
 * (NULL; loom_future_fail with err >= 0). */
LOOM_EXTERN int loom_future_set(loom_future_t *f, void *value);
LOOM_EXTERN int loom_future_fail(loom_future_t *f, int err);
LOOM_EXTERN int loom_future_cancel(loom_future_t *f);

/* In a task (of the future's runtime or another): waits until it is
 * resolved, then returns its status and stores its value in *value (value
 * may be NULL). UV_ECANCELED / UV_ETIMEDOUT if the task is cancelled or a
 * scope expires first (the future is untouched); LOOM_ENOTASK outside a
 * task; UV_ENOMEM (a task of another runtime: its wait record). */
LOOM_EXTERN int loom_future_await(loom_future_t *f, void **value);

/* From a thread that is not the future's runtime's: blocks until the
 * future is resolved or timeout_ms passes (< 0, or beyond the monotonic
 * clock's range: no limit; 0: a poll), then
 * as loom_future_await; UV_ETIMEDOUT on timeout. On the runtime's own
 * thread it would block the tasks that are to resolve it: LOOM_EDEADLK
 * unless it is resolved already. */
LOOM_EXTERN int loom_future_wait(loom_future_t *f, int64_t timeout_ms, void **value);

/* Without waiting: 1 if resolved, else 0. loom_future_result: as await if
 * resolved, UV_EAGAIN if pending. Any thread. */
LOOM_EXTERN int loom_future_done(const loom_future_t *f);
LOOM_EXTERN int loom_future_result(const loom_future_t *f, void **value);

/* Reference counting, any thread. retain returns f. */
LOOM_EXTERN loom_future_t *loom_future_retain(loom_future_t *f);
LOOM_EXTERN void loom_future_release(loom_future_t *f);

#ifdef __cplusplus
}
#endif

#endif /* LOOM_FUTURE_H */
