/* loom synchronisation: locks, semaphores, events, conditions, barriers
 * and queues for loom tasks (asyncio.Lock, Semaphore, BoundedSemaphore,
 * Event, Condition, Barrier, Queue, LifoQueue, PriorityQueue).
 *
 * All storage is the caller's (declare them as variables or struct members)
 * and nothing allocates except a queue's buffer. Each object is opaque
 * storage of a fixed size, aligned as uint64_t, the same on every platform:
 *
 *   loom_lock_t     32 bytes     loom_cond_t      32 bytes
 *   loom_sem_t      48 bytes     loom_barrier_t   48 bytes
 *   loom_event_t    32 bytes     loom_queue_t    192 bytes
 *
 * Its contents are private: touch it only through these functions (copying
 * an object in use, like copying a pthread mutex, breaks it). The sizes
 * leave room for the library to grow; a 0.x release may still enlarge them,
 * and then changes the library's soname, so a program is rebuilt against the
 * new header, never run against a library it does not fit.
 *
 * Every waiting call honours cancellation and timeout scopes, returning
 * UV_ECANCELED / UV_ETIMEDOUT, and wakes waiters in FIFO order. A waiter
 * that is woken (granted the lock, a permit, an item, a notification) but
 * cancelled or timed out before it runs passes what it was given to the next
 * waiter and returns the error, as in asyncio: nothing is lost or given
 * twice. See docs/sync.md.
 *
 * Misuse is answered with an error code, never undefined behaviour:
 *  - a NULL object (or NULL item pointer) makes every function return
 *    UV_EINVAL; the queries (locked, value, is_set, n_waiting, broken,
 *    size, empty, full) return 0. The NULL check comes first, so a waiting
 *    call from host code with NULL also gets UV_EINVAL, not LOOM_ENOTASK.
 *  - zero-filled storage (a static object, or `loom_lock_t l = {0};`) is a
 *    valid unlocked lock, a semaphore of value 0, a clear event and an
 *    empty unbounded FIFO queue; a condition bound to no lock and a
 *    barrier of 0 parties answer UV_EINVAL.
 *  - the other misuses each have their code, listed with each function:
 *    releasing a lock that is not held (UV_EPERM), releasing a semaphore
 *    past its bound (UV_EOVERFLOW), waiting on or notifying a condition
 *    without its lock (UV_EPERM), destroying a queue tasks wait on
 *    (LOOM_EBUSY), using a queue after destroy (UV_EINVAL).
 * The functions that used to return void return 0 or UV_EINVAL now;
 * callers that ignore the result compile unchanged.
 * The objects belong to one runtime's tasks (one thread): using one from
 * another thread is not detected.
 */
#ifndef LOOM_SYNC_H
#define LOOM_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- lock ------------------------------------------------------------------ */

typedef struct loom_lock_s {
  uint64_t opaque[4];
} loom_lock_t;

/* 0, or UV_EINVAL for NULL. */
LOOM_EXTERN int loom_lock_init(loom_lock_t *l);
/* Waits for the lock (FIFO: the lock is handed to the longest waiter). */
LOOM_EXTERN int loom_lock_acquire(loom_lock_t *l);
/* UV_EAGAIN if it is held (or others are waiting for it). */
LOOM_EXTERN int loom_lock_try_acquire(loom_lock_t *l);
/* UV_EPERM if the lock is not held. As in asyncio, any task may release. */
LOOM_EXTERN int loom_lock_release(loom_lock_t *l);
/* 1 if held; 0 if not, or NULL. */
LOOM_EXTERN int loom_lock_locked(const loom_lock_t *l);

/* ---- semaphore -------------------------------------------------------------- */

typedef struct loom_sem_s {
  uint64_t opaque[6];
} loom_sem_t;

/* 0, or UV_EINVAL for NULL. */
LOOM_EXTERN int loom_sem_init(loom_sem_t *s, unsigned value);
/* A bounded semaphore: releasing above `value` is an error. */
LOOM_EXTERN int loom_sem_init_bounded(loom_sem_t *s, unsigned value);
/* Takes a permit, waiting in FIFO order. No queue jumping: a newcomer waits
 * if anyone is waiting, even when value > 0. */
LOOM_EXTERN int loom_sem_acquire(loom_sem_t *s);
/* UV_EAGAIN if no permit can be had at once. */
LOOM_EXTERN int loom_sem_try_acquire(loom_sem_t *s);
/* Gives a permit back (to the longest waiter, if any). UV_EOVERFLOW if a
 * bounded semaphore would exceed its initial value (any semaphore,
 * UINT_MAX). */
LOOM_EXTERN int loom_sem_release(loom_sem_t *s);
/* 0 for NULL. */
LOOM_EXTERN unsigned loom_sem_value(const loom_sem_t *s);
/* 1 if acquire would wait (0 for NULL). */
LOOM_EXTERN int loom_sem_locked(const loom_sem_t *s);

/* ---- event ------------------------------------------------------------------- */

typedef struct loom_event_s {
  uint64_t opaque[4];
} loom_event_t;

/* init, set and clear return 0, or UV_EINVAL for NULL. */
LOOM_EXTERN int loom_event_init(loom_event_t *e);
/* Sets the flag and wakes every current waiter: each of them returns 0, even
 * if the flag is cleared again before it runs. */
LOOM_EXTERN int loom_event_set(loom_event_t *e);
LOOM_EXTERN int loom_event_clear(loom_event_t *e);
LOOM_EXTERN int loom_event_is_set(const loom_event_t *e);
LOOM_EXTERN int loom_event_wait(loom_event_t *e);

/* ---- condition ------------------------------------------------------------------ */

typedef struct loom_cond_s {
  uint64_t opaque[4];
} loom_cond_t;

/* Binds the condition to a lock the caller owns. UV_EINVAL if c or lock is
 * NULL; a condition bound to no lock answers UV_EINVAL to every call. */
LOOM_EXTERN int loom_cond_init(loom_cond_t *c, loom_lock_t *lock);
/* Releases the lock, waits for a notification, and re-acquires the lock
 * before returning, even when cancelled or timed out. UV_EPERM if the lock
 * is not held. A notified waiter that is cancelled before it runs passes the
 * notification on. */
LOOM_EXTERN int loom_cond_wait(loom_cond_t *c);
/* Waits until pred(arg) is true (checked with the lock held). */
LOOM_EXTERN int loom_cond_wait_for(loom_cond_t *c, int (*pred)(void *arg), void *arg);
/* Wakes up to n waiters / all of them. UV_EPERM if the lock is not held. */
LOOM_EXTERN int loom_cond_notify(loom_cond_t *c, unsigned n);
LOOM_EXTERN int loom_cond_notify_all(loom_cond_t *c);

/* ---- barrier ------------------------------------------------------------------- */

typedef struct loom_barrier_s {
  uint64_t opaque[6];
} loom_barrier_t;

/* UV_EINVAL for 0 parties or more than INT_MAX (the barrier is then
 * unusable: wait returns UV_EINVAL, as for zero-filled storage). */
LOOM_EXTERN int loom_barrier_init(loom_barrier_t *b, unsigned parties);
/* Waits until `parties` tasks have arrived; returns each its arrival index
 * (0 .. parties-1), or LOOM_EBROKEN if the barrier was reset or aborted
 * while waiting (or is aborted). A cancelled waiter leaves the cycle. */
LOOM_EXTERN int loom_barrier_wait(loom_barrier_t *b);
/* Breaks the current cycle (its waiters get LOOM_EBROKEN) and starts afresh.
 * 0, or UV_EINVAL for NULL. */
LOOM_EXTERN int loom_barrier_reset(loom_barrier_t *b);
/* Breaks the barrier for good. 0, or UV_EINVAL for NULL. */
LOOM_EXTERN int loom_barrier_abort(loom_barrier_t *b);
LOOM_EXTERN unsigned loom_barrier_n_waiting(const loom_barrier_t *b);
LOOM_EXTERN int loom_barrier_broken(const loom_barrier_t *b);

/* ---- queue -------------------------------------------------------------------- */

enum { LOOM_QUEUE_FIFO = 0, LOOM_QUEUE_LIFO = 1, LOOM_QUEUE_PRIORITY = 2 };

/* Priority order: negative if a comes out before b. */
typedef int (*loom_cmp_fn)(const void *a, const void *b);

typedef struct loom_queue_s {
  uint64_t opaque[24];
} loom_queue_t;

/* maxsize 0 = unbounded; any other value is a limit (SIZE_MAX included).
 * kind: LOOM_QUEUE_FIFO, _LIFO, or _PRIORITY with cmp. Returns 0,
 * UV_EINVAL, UV_ENOMEM. A bounded queue of up to 1024 items allocates its
 * whole buffer here, so its puts never fail for memory; a larger one
 * allocates 1024 slots and grows on demand up to maxsize, as an unbounded
 * one does (its put may then return UV_ENOMEM). After a failed init the
 * queue answers UV_EINVAL, as after destroy. */
LOOM_EXTERN int loom_queue_init(loom_queue_t *q, size_t maxsize, int kind,
                                loom_cmp_fn cmp);
/* Frees the buffer (items still in it are dropped). LOOM_EBUSY (and
 * nothing freed) if tasks wait on it, or were woken and have not run yet.
 * Afterwards every call but init and destroy returns UV_EINVAL (size 0);
 * destroying again returns 0. */
LOOM_EXTERN int loom_queue_destroy(loom_queue_t *q);
/* Waits while the queue is full. LOOM_ESHUTDOWN after shutdown. Once put
 * returns 0 the item is in the queue (or already handed to a getter). */
LOOM_EXTERN int loom_queue_put(loom_queue_t *q, void *item);
/* Waits while the queue is empty. LOOM_ESHUTDOWN once shut down and empty
 * (at once for an immediate shutdown). UV_EINVAL if item is NULL. */
LOOM_EXTERN int loom_queue_get(loom_queue_t *q, void **item);
/* Without waiting: UV_EAGAIN when full / empty. */
LOOM_EXTERN int loom_queue_try_put(loom_queue_t *q, void *item);
LOOM_EXTERN int loom_queue_try_get(loom_queue_t *q, void **item);
/* size, empty and full return 0 for NULL. */
LOOM_EXTERN size_t loom_queue_size(const loom_queue_t *q);
LOOM_EXTERN int loom_queue_empty(const loom_queue_t *q);
LOOM_EXTERN int loom_queue_full(const loom_queue_t *q);
/* One item got earlier is processed. UV_EINVAL if called more times than
 * items were put. */
LOOM_EXTERN int loom_queue_task_done(loom_queue_t *q);
/* Waits until every item put has been marked done. */
LOOM_EXTERN int loom_queue_join(loom_queue_t *q);
/* Python 3.13's Queue.shutdown: put fails from now on and every blocked
 * putter is woken with LOOM_ESHUTDOWN; get drains what is left, then fails.
 * immediate: the queue is emptied at once (its items count as done, which
 * may release join) and every blocked getter fails too. Returns 0, or
 * UV_EINVAL (NULL, destroyed). */
LOOM_EXTERN int loom_queue_shutdown(loom_queue_t *q, int immediate);

#ifdef __cplusplus
}
#endif
#endif /* LOOM_SYNC_H */
