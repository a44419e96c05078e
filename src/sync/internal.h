/* The sync layer's private structures, behind the opaque storage of
 * include/loom/sync.h.
 *
 * Each public type (loom_lock_t, ...) is a block of uint64_t words the
 * caller owns; the library reads it as the matching loom__ struct below,
 * through loom__sync_of; the structs are may_alias types
 * (util/container.h), so the compiler knows the caller's words and this view
 * are the same memory. The _Static_asserts keep the public sizes honest:
 * a private struct that outgrows its storage, or needs a stricter
 * alignment, fails the build instead of overrunning the caller's memory.
 * Every private struct is valid when zero-filled where the public header
 * says the object is (an unlocked lock, a semaphore of value 0, a clear
 * event, an empty unbounded FIFO queue).
 *
 * The functions one sync file lends another are declared here too (the
 * condition re-acquires its lock through the lock's own code).
 */
#ifndef LOOM_SYNC_INTERNAL_H
#define LOOM_SYNC_INTERNAL_H

#include "core/internal.h"

typedef struct LOOM__MAY_ALIAS loom__lock_s {
  loom__wq_t waiters;
  int locked;
  /* While locked: the id of the task that took it (or was handed it),
   * 0 for host code; for dumps. Any task may release a lock (as in
   * asyncio), so the holder may have ended since. */
  uint64_t holder;
} loom__lock_t;

typedef struct LOOM__MAY_ALIAS loom__sem_s {
  loom__wq_t waiters;
  unsigned value;
  unsigned bound; /* the initial value, if bounded */
  int bounded;
} loom__sem_t;

typedef struct LOOM__MAY_ALIAS loom__event_s {
  loom__wq_t waiters;
  int set;
} loom__event_t;

typedef struct LOOM__MAY_ALIAS loom__cond_s {
  loom__wq_t waiters;
  loom__lock_t *lock; /* NULL: unusable (UV_EINVAL) */
} loom__cond_t;

typedef struct LOOM__MAY_ALIAS loom__barrier_s {
  loom__wq_t waiters;
  unsigned parties; /* 0: unusable (UV_EINVAL) */
  unsigned count;   /* arrived in the current cycle */
  int broken;       /* aborted: every wait fails */
} loom__barrier_t;

typedef struct LOOM__MAY_ALIAS loom__queue_s {
  loom__wq_t getters, putters, joiners;
  struct loom__qslot_s *buf; /* ring (FIFO), stack (LIFO) or heap
                                (PRIORITY); queue.c */
  size_t cap, head, size;
  size_t maxsize;      /* 0: unbounded */
  size_t unfinished;   /* put and not yet task_done */
  size_t get_reserved; /* items promised to woken getters */
  size_t put_reserved; /* slots promised to woken putters */
  uint64_t seq;        /* PRIORITY: ties come out in put order */
  loom_cmp_fn cmp;
  int kind;
  int shutdown; /* OPEN ... DESTROYED (queue.c) */
} loom__queue_t;

#define LOOM__SYNC_FITS(priv, pub)                                      \
  _Static_assert(sizeof(priv) <= sizeof(pub),                           \
                 #priv " outgrew " #pub ": enlarge it in loom/sync.h"); \
  _Static_assert(_Alignof(priv) <= _Alignof(pub),                       \
                 #priv " needs a stricter alignment than " #pub)

LOOM__SYNC_FITS(loom__lock_t, loom_lock_t);
LOOM__SYNC_FITS(loom__sem_t, loom_sem_t);
LOOM__SYNC_FITS(loom__event_t, loom_event_t);
LOOM__SYNC_FITS(loom__cond_t, loom_cond_t);
LOOM__SYNC_FITS(loom__barrier_t, loom_barrier_t);
LOOM__SYNC_FITS(loom__queue_t, loom_queue_t);

/* The private object behind a public one: loom__sync_of(l) is the
 * loom__lock_t of a loom_lock_t *l, and so on, const kept. A pointer of any
 * other type is a compile error. */
#define loom__sync_of(p) \
  _Generic((p),                                                             \
      loom_lock_t *: (loom__lock_t *)(void *)(p),                           \
      const loom_lock_t *: (const loom__lock_t *)(const void *)(p),         \
      loom_sem_t *: (loom__sem_t *)(void *)(p),                             \
      const loom_sem_t *: (const loom__sem_t *)(const void *)(p),           \
      loom_event_t *: (loom__event_t *)(void *)(p),                         \
      const loom_event_t *: (const loom__event_t *)(const void *)(p),       \
      loom_cond_t *: (loom__cond_t *)(void *)(p),                           \
      const loom_cond_t *: (const loom__cond_t *)(const void *)(p),         \
      loom_barrier_t *: (loom__barrier_t *)(void *)(p),                     \
      const loom_barrier_t *: (const loom__barrier_t *)(const void *)(p),   \
      loom_queue_t *: (loom__queue_t *)(void *)(p),                         \
      const loom_queue_t *: (const loom__queue_t *)(const void *)(p))

/* lock.c, for cond.c. acquire: shielded 1 is the re-acquisition in
 * loom_cond_wait, which cannot be interrupted. release: UV_EPERM if the
 * lock is not held. */
int loom__lock_acquire(loom__lock_t *l, loom_task_t *self, int shielded);
int loom__lock_release(loom__lock_t *l);

#endif
