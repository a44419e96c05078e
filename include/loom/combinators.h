/* loom combinators: running tasks together (asyncio.gather, wait,
 * as_completed, wait_for, TaskGroup), with the semantics of docs/combinators.md:
 * nothing outlives the call that awaits it, and a cancelled or timed-out
 * caller cancels and awaits what it waits for before it returns.
 */
#ifndef LOOM_COMBINATORS_H
#define LOOM_COMBINATORS_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "export.h"
#include "scope.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- gather ------------------------------------------------------------ */

/* loom_gather flags. */
#define LOOM_FAIL_FAST 1u /* the first failure cancels the other tasks */

/* Waits for every task, consumes every handle, and stores task i's status in
 * statuses[i] (statuses may be NULL). Returns 0 if all succeeded, else the
 * first failure in completion order (a negative status, UV_ECANCELED
 * included). With LOOM_FAIL_FAST the first failure cancels the others (they
 * are still awaited). If the caller is cancelled or its timeout scope
 * expires, every task is cancelled and awaited, statuses are filled, and the
 * call returns UV_ECANCELED / UV_ETIMEDOUT. Errors that consume nothing:
 * LOOM_ENOTASK, UV_EINVAL (NULL tasks with n > 0), LOOM_EBADTASK (a handle
 * joined, detached or listed twice), UV_ENOMEM (n > 8 needs an array),
 * UV_EINVAL also for an n no array could hold. */
LOOM_EXTERN int loom_gather(loom_task_t **tasks, size_t n, int *statuses, unsigned flags);

/* asyncio.gather(*[fn(x) for x in args]): runs fn(&args[i]) for i < n as n
 * tasks (each argument is `size` bytes of the array `args`, so results can
 * be written back into it) and gathers them as loom_gather does. Everything
 * the gather needs is allocated before the first spawn, so nothing it
 * spawned outlives it: if a spawn fails, the tasks already started are
 * cancelled and awaited and the spawn error is returned (statuses of the
 * tasks never spawned are not written). UV_EINVAL, with nothing spawned,
 * for a NULL fn, bad flags, or an n no array could hold; UV_ENOMEM, with
 * nothing spawned, if that allocation fails. */
LOOM_EXTERN int loom_gather_map(loom_fn fn, void *args, size_t size, size_t n,
                                int *statuses, unsigned flags);

/* ---- wait ------------------------------------------------------------------ */

enum {
  LOOM_FIRST_COMPLETED = 1, /* any task ended */
  LOOM_FIRST_FAILED = 2,    /* any task failed (not cancelled), or all ended */
  LOOM_ALL_COMPLETED = 3    /* every task ended */
};
#define LOOM_WAIT_FOREVER (-1)

/* Waits until `return_when` holds or timeout_ms passes (LOOM_WAIT_FOREVER:
 * no timeout; 0: just look), then reorders tasks[] so that the *ndone ended
 * tasks come first (each part in its original order). Never cancels, never
 * consumes: join or cancel the tasks afterwards. Returns 0 (also when the
 * timeout passed: compare *ndone), UV_ECANCELED / UV_ETIMEDOUT if the caller
 * was interrupted (tasks[] is still partitioned), LOOM_ENOTASK, UV_EINVAL,
 * LOOM_EBADTASK. */
LOOM_EXTERN int loom_wait(loom_task_t **tasks, size_t n, int64_t timeout_ms,
                          int return_when, size_t *ndone);

/* ---- as_completed ------------------------------------------------------------ */

/* Caller-owned: declare it as a variable. It holds one pointer to the
 * iteration's state, which init allocates and close frees; the state's
 * type is private. */
typedef struct loom_as_completed_s {
  struct loom_as_completed_state_s *state;
} loom_as_completed_t;

/* Starts an iterator over tasks (not consumed) that hands them back in the
 * order they end. timeout_ms bounds the whole iteration (LOOM_WAIT_FOREVER:
 * none). Returns 0, LOOM_ENOTASK, UV_EINVAL, LOOM_EBADTASK, UV_ENOMEM. */
LOOM_EXTERN int loom_as_completed_init(loom_as_completed_t *it, loom_task_t **tasks,
                                       size_t n, int64_t timeout_ms);
/* Stores the next task to end in *task (join it for its status). Returns 0,
 * UV_EOF once every task has been handed back, UV_ETIMEDOUT once the overall
 * timeout has passed (and on every later call), UV_ECANCELED. */
LOOM_EXTERN int loom_as_completed_next(loom_as_completed_t *it, loom_task_t **task);
/* Ends the iteration and frees it; the tasks are left as they are. */
LOOM_EXTERN void loom_as_completed_close(loom_as_completed_t *it);

/* ---- wait_for ------------------------------------------------------------------- */

/* Runs fn(arg) as a task under a timeout of `ms`. Returns 0 when it ended
 * in time, with its status in *status (may be NULL). On expiry the task is
 * cancelled and awaited, *status still gets whatever it returned, and the
 * call returns UV_ETIMEDOUT. A cancelled caller gets UV_ECANCELED, likewise
 * after the task has been cancelled and awaited. */
LOOM_EXTERN int loom_wait_for(uint64_t ms, loom_fn fn, void *arg, int *status);
/* The same for an existing task, whose handle it consumes. */
LOOM_EXTERN int loom_wait_for_task(uint64_t ms, loom_task_t *task, int *status);

/* ---- task groups --------------------------------------------------------------- */

/* A task group (asyncio.TaskGroup, a Trio nursery), opened and waited for
 * by the same task. A loom_group_t * is a handle, not an address: it is
 * generation-checked, like a task handle, and goes stale when
 * loom_group_wait ends the group. Every function given a stale handle (a
 * group already waited for, or something that was never a group) returns
 * UV_EBADF and touches nothing; NULL is UV_EINVAL. Handles belong to the
 * runtime of the thread that opened them. */
typedef struct loom_group_s loom_group_t;

/* Opens a group in the calling task. Returns 0, LOOM_ENOTASK, UV_EINVAL,
 * UV_ENOMEM (the group or its handle). */
LOOM_EXTERN int loom_group_open(loom_group_t **g);
/* Spawns fn(arg) into the group. With `task` non-NULL the handle stays valid
 * after loom_group_wait, so the child's status can be had with loom_join;
 * with NULL the group reclaims the child. LOOM_ECLOSED once the group is
 * aborting (a child failed, or it was cancelled). Children may spawn
 * siblings while the opener waits. UV_EINVAL (NULL g or fn), LOOM_ENOTASK,
 * UV_EBADF (stale g). */
LOOM_EXTERN int loom_group_spawn(loom_group_t *g, loom_task_t **task, loom_fn fn,
                                 void *arg);
LOOM_EXTERN int loom_group_spawn_ex(loom_group_t *g, loom_task_t **task, loom_fn fn,
                                    void *arg, const loom_task_opts_t *opts);
/* Cancels every child; the group takes no new children. 0, UV_EINVAL
 * (NULL), UV_EBADF (stale). Works from host code too. */
LOOM_EXTERN int loom_group_cancel(loom_group_t *g);
/* Waits for every child, then frees the group. The first child failure
 * (other than cancellation) cancels all other children. Returns, in order of
 * precedence: UV_ECANCELED / UV_ETIMEDOUT if the waiter was interrupted
 * (children cancelled and awaited first); the first child failure;
 * UV_ECANCELED if the group was cancelled; 0. Errors that leave the group
 * as it is: LOOM_ENOTASK, UV_EINVAL (NULL), UV_EBADF (already waited for:
 * a second wait, or any use afterwards), LOOM_EBADTASK (called by another
 * task than the opener). A task that returns with a group still open has
 * it cancelled and awaited, and is reported. */
LOOM_EXTERN int loom_group_wait(loom_group_t *g);

#ifdef __cplusplus
}
#endif
#endif /* LOOM_COMBINATORS_H */
