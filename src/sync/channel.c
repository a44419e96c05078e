/* Channels (include/loom/channel.h): a bounded queue between runtimes.
 *
 * One mutex guards the ring buffer and the channel's list of *ports*. A
 * port is a runtime's attachment to the channel, made the first time one
 * of its tasks puts or gets: it holds the runtime's waiting getters and
 * putters on two wait queues that only that runtime's thread touches, so
 * cancellation and scopes are the wait queue's own (wq.c), and counts of
 * them that the other threads read under the mutex.
 *
 *   runtime A (putter)          channel (mutex)             runtime B
 *   put: lock, push item,  -->  ports: [A] [B: 1 getter]    getq: task
 *        B has getters:         B's kick posted once  --inbox--> on_kick:
 *        post B's kick                                      wake getq
 *
 * A wake-up for another runtime is one message per port (the port's
 * `kick`, posted to the runtime's inbox at most once at a time, with the
 * kinds of waiters it must wake); a wake-up on the caller's own runtime is
 * direct. Woken waiters retake the mutex and try again, so a wake-up
 * never carries an item and a waiter interrupted after its wake-up loses
 * nothing; it passes the wake-up on (to other runtimes' waiters) if what
 * it was woken for is still there.
 *
 * Each waiting task takes an inbox hold: its runtime's loop stays alive
 * while it waits for another thread, and loom_run does not call the wait a
 * deadlock. A port lives on its runtime's list of I/O objects: when the
 * runtime ends (every task has), shutdown detaches it, which closes the
 * channel if at most one runtime is left attached. A port holds a
 * reference on the channel, so the channel outlives every port; a port
 * whose kick is still in its inbox when it detaches is freed by the kick.
 */
#define _GNU_SOURCE /* PTHREAD_MUTEX_ADAPTIVE_NP */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>

#include "sync/internal.h"

enum { OPEN = 0, CLOSED = 1, DROPPED = 2 };

/* count and state: relaxed, since the mutex orders everything that
 * matters; a spinner only uses them to decide when to take it again. */
#define COUNT(ch) atomic_load_explicit(&(ch)->count, memory_order_relaxed)
#define STATE(ch) atomic_load_explicit(&(ch)->state, memory_order_relaxed)
#define SET(field, v) atomic_store_explicit(&(field), (v), memory_order_relaxed)

/* Spinning before a park (spin): at most this many pauses, then this many
 * sched_yield calls. */
#define LOOM__CHANNEL_SPIN 256
#define LOOM__CHANNEL_YIELDS 8

typedef struct port_s port_t;

struct loom_channel_s {
  pthread_mutex_t mu;
  _Atomic long refs;
  size_t cap;
  void **buf;
  /* Written under mu; count and state are also read without it, by
   * tasks spinning before they park (spin): */
  size_t head;
  _Atomic size_t count;
  _Atomic int state;  /* OPEN, CLOSED (draining), DROPPED (immediate) */
  loom__list_t ports; /* port_t.link */
  size_t nports;
  size_t getters, putters; /* tasks waiting, every runtime */
};

struct port_s {
  loom__io_t io;     /* on rt's list of I/O objects */
  loom__link_t link; /* on ch->ports */
  loom_channel_t *ch;
  loom_t *rt;
  loom__inbox_t *ib; /* rt's inbox (a reference) */
  loom__msg_t kick;  /* wakes this runtime's waiters from elsewhere */
  /* Under ch->mu: */
  unsigned ngetters, nputters; /* rt's tasks waiting */
  uint8_t wake_get, wake_put;  /* the kick is to wake them */
  uint8_t posted;              /* the kick is in the inbox */
  uint8_t detached;            /* rt has ended: the kick frees the port */
  /* rt's thread only: */
  loom__wq_t getq, putq;
};

/* The mutex is held for a few dozen nanoseconds at a time, by threads
 * that are running: where glibc has it, an adaptive mutex spins a little
 * before it sleeps in the kernel, which saves the futex system calls of a
 * plain one under contention (two runtimes putting and getting at full
 * speed). */
static int mutex_init(pthread_mutex_t *mu) {
  pthread_mutexattr_t attr;
  if (pthread_mutexattr_init(&attr)) return -1;
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
  int rc = pthread_mutex_init(mu, &attr);
  pthread_mutexattr_destroy(&attr);
  return rc;
}

static inline void lock(loom_channel_t *ch) { pthread_mutex_lock(&ch->mu); }
static inline void unlock(loom_channel_t *ch) { pthread_mutex_unlock(&ch->mu); }

int loom_channel_new(loom_channel_t **out, size_t capacity) {
  if (!out) return UV_EINVAL;
  *out = NULL;
  if (capacity == 0 || capacity > SIZE_MAX / sizeof(void *)) return UV_EINVAL;
  loom_channel_t *ch = calloc(1, sizeof(*ch));
  if (!ch) return UV_ENOMEM;
  ch->buf = malloc(capacity * sizeof(void *));
  if (!ch->buf || mutex_init(&ch->mu)) {
    free(ch->buf);
    free(ch);
    return UV_ENOMEM;
  }
  ch->cap = capacity;
  atomic_init(&ch->refs, 1);
  *out = ch;
  return 0;
}

loom_channel_t *loom_channel_retain(loom_channel_t *ch) {
  if (ch) atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
  return ch;
}

void loom_channel_release(loom_channel_t *ch) {
  if (!ch || atomic_fetch_sub_explicit(&ch->refs, 1, memory_order_acq_rel) != 1) return;
  pthread_mutex_destroy(&ch->mu);
  free(ch->buf);
  free(ch);
}

/* ---- waking ------------------------------------------------------------------- */

/* Wakes the waiting getters (get = 1) or putters (get = 0) of every
 * runtime: directly on the caller's own, by each port's kick elsewhere.
 * Under ch->mu. */
static void notify(loom_channel_t *ch, int get) {
  if (!(get ? ch->getters : ch->putters)) return;
  loom_t *here = loom__handle_rt();
  loom__link_t *l;
  loom__list_foreach(l, &ch->ports) {
    port_t *p = loom__list_entry(l, port_t, link);
    if (!(get ? p->ngetters : p->nputters)) continue;
    if (p->rt == here) {
      loom__wq_wake_all(get ? &p->getq : &p->putq, 0);
      continue;
    }
    if (get)
      p->wake_get = 1;
    else
      p->wake_put = 1;
    if (!p->posted) {
      /* Cannot fail: p's runtime has tasks waiting, so it is open. */
      p->posted = 1;
      loom__inbox_post(p->ib, &p->kick);
    }
  }
}

static void port_free(port_t *p) {
  loom_channel_t *ch = p->ch;
  loom__inbox_release(p->ib);
  free(p);
  loom_channel_release(ch);
}

/* The kick, on the port's runtime's thread. */
static void on_kick(loom__msg_t *m, int status) {
  port_t *p = loom__container_of(m, port_t, kick);
  loom_channel_t *ch = p->ch;
  lock(ch);
  p->posted = 0;
  int get = p->wake_get, put = p->wake_put, detached = p->detached;
  p->wake_get = p->wake_put = 0;
  unlock(ch);
  if (detached) {
    port_free(p);
    return;
  }
  if (status) return;
  if (get) loom__wq_wake_all(&p->getq, 0);
  if (put) loom__wq_wake_all(&p->putq, 0);
}

/* ---- ports --------------------------------------------------------------------- */

/* Shutdown of the port's runtime, every task ended: detach. Closes the
 * channel if at most one runtime is left attached. Returns 0: the program
 * did not leave anything open (nothing to report). */
static int port_io_close(loom__io_t *io, int force) {
  (void)force;
  port_t *p = loom__container_of(io, port_t, io);
  loom_channel_t *ch = p->ch;
  loom_t *rt = p->rt;
  lock(ch);
  loom__list_remove(&ch->ports, &p->link);
  ch->nports--;
  if (ch->nports <= 1 && STATE(ch) == OPEN) {
    SET(ch->state, CLOSED);
    notify(ch, 1);
    notify(ch, 0);
  }
  int later = p->posted;
  if (later) p->detached = 1;
  unlock(ch);
  loom__io_remove(rt, &p->io);
  if (!later) port_free(p);
  return 0;
}

/* The calling runtime's port, attached on first use. Under ch->mu, which
 * it may drop for a while: only rt's own thread attaches rt, and it does
 * not run another task meanwhile. */
static int attach(loom_channel_t *ch, loom_t *rt, port_t **out) {
  loom__link_t *l;
  loom__list_foreach(l, &ch->ports) {
    port_t *p = loom__list_entry(l, port_t, link);
    if (p->rt == rt) {
      *out = p;
      return 0;
    }
  }
  unlock(ch);
  port_t *p = calloc(1, sizeof(*p));
  int rc = p ? loom__inbox_get(rt, &p->ib) : UV_ENOMEM;
  if (rc) {
    free(p);
    lock(ch);
    return rc;
  }
  p->ch = loom_channel_retain(ch);
  p->rt = rt;
  p->kick.run = on_kick;
  loom__io_add(rt, &p->io, "channel", port_io_close);
  lock(ch);
  loom__list_push_back(&ch->ports, &p->link);
  ch->nports++;
  *out = p;
  return 0;
}

/* ---- the buffer ---------------------------------------------------------------- */

static void push(loom_channel_t *ch, void *item) {
  size_t i = ch->head + COUNT(ch);
  if (i >= ch->cap) i -= ch->cap;
  ch->buf[i] = item;
  SET(ch->count, COUNT(ch) + 1);
}

static void *take(loom_channel_t *ch) {
  void *item = ch->buf[ch->head];
  if (++ch->head == ch->cap) ch->head = 0;
  SET(ch->count, COUNT(ch) - 1);
  return item;
}

/* ---- put and get --------------------------------------------------------------- */

/* One attempt under ch->mu: 0 (done), LOOM_ESHUTDOWN, or UV_EAGAIN. */
static int try_put_locked(loom_channel_t *ch, void *item) {
  if (STATE(ch) != OPEN) return LOOM_ESHUTDOWN;
  if (COUNT(ch) == ch->cap) return UV_EAGAIN;
  push(ch, item);
  notify(ch, 1);
  return 0;
}

static int try_get_locked(loom_channel_t *ch, void **item) {
  if (COUNT(ch)) {
    *item = take(ch);
    notify(ch, 0);
    return 0;
  }
  return STATE(ch) != OPEN ? LOOM_ESHUTDOWN : UV_EAGAIN;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Before parking, a task whose runtime has nothing else to run waits a
 * little on the CPU for the other thread: a park and its cross-thread
 * wake-up cost a system call on each side and the sleeper's return from
 * epoll (5-20 us on a VM), while the other thread, running, usually
 * answers within a microsecond. Returns when the put (get = 0) or get
 * may succeed or fail for good, or after a bound, so that a timer or I/O
 * of this runtime waits at most a few microseconds. */
static void spin(loom_channel_t *ch, int get, loom_t *rt) {
  if (rt->ready_head || rt->round_head) return;
  /* A putter waits for the channel to be half empty, not for one slot:
   * else, with both sides running, every put would wait for one get and
   * the two threads would pull the channel's cache lines back and forth
   * once per item instead of once per batch. */
  size_t room = (ch->cap - 1) / 2;
  for (int i = 0; i < LOOM__CHANNEL_SPIN + LOOM__CHANNEL_YIELDS; i++) {
    size_t n = COUNT(ch);
    if ((get ? n > 0 : n <= room) || STATE(ch) != OPEN) return;
    /* Then a few yields of the CPU: on a machine with more runnable
     * threads than cores, the other side may be waiting for this one. */
    if (i < LOOM__CHANNEL_SPIN)
      cpu_relax();
    else
      sched_yield();
  }
}

/* put (get = 0) or get (get = 1) from a task: attempts, and waits on the
 * runtime's port between attempts. */
static int wait_op(loom_channel_t *ch, int get, void **item) {
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  loom_t *rt = self->rt;
  port_t *p;
  int held = 0, spun = 0;
  lock(ch);
  rc = attach(ch, rt, &p);
  while (rc == 0) {
    rc = get ? try_get_locked(ch, item) : try_put_locked(ch, *item);
    if (rc != UV_EAGAIN) break;
    rc = loom__check(self); /* woken, but cancelled before it ran */
    if (rc) break;
    if (!spun) { /* then try again under the mutex, whatever it saw */
      spun = 1;
      unlock(ch);
      spin(ch, get, rt);
      lock(ch);
      continue;
    }
    if (get) {
      p->ngetters++;
      ch->getters++;
    } else {
      p->nputters++;
      ch->putters++;
    }
    unlock(ch);
    if (!held) { /* another thread is to wake it: keep the loop alive */
      loom__inbox_hold(rt);
      held = 1;
    }
    loom__wnode_t n;
    rc = loom__wq_wait(get ? &p->getq : &p->putq, &n, self, 0);
    lock(ch);
    if (get) {
      p->ngetters--;
      ch->getters--;
    } else {
      p->nputters--;
      ch->putters--;
    }
    /* Interrupted: what it was woken for (if it was) goes to others. */
    if (rc && (get ? COUNT(ch) > 0 : COUNT(ch) < ch->cap)) notify(ch, get);
  }
  unlock(ch);
  if (held) loom__inbox_unhold(rt);
  return rc;
}

int loom_channel_put(loom_channel_t *ch, void *item) {
  if (!ch) return UV_EINVAL;
  return wait_op(ch, 0, &item);
}

int loom_channel_get(loom_channel_t *ch, void **item) {
  if (!ch || !item) return UV_EINVAL;
  return wait_op(ch, 1, item);
}

int loom_channel_try_put(loom_channel_t *ch, void *item) {
  if (!ch) return UV_EINVAL;
  lock(ch);
  int rc = try_put_locked(ch, item);
  unlock(ch);
  return rc;
}

int loom_channel_try_get(loom_channel_t *ch, void **item) {
  if (!ch || !item) return UV_EINVAL;
  lock(ch);
  int rc = try_get_locked(ch, item);
  unlock(ch);
  return rc;
}

int loom_channel_close(loom_channel_t *ch, int immediate) {
  if (!ch) return UV_EINVAL;
  lock(ch);
  if (immediate && STATE(ch) != DROPPED) {
    SET(ch->state, DROPPED);
    ch->head = 0;
    SET(ch->count, 0);
  } else if (STATE(ch) == OPEN) {
    SET(ch->state, CLOSED);
  }
  notify(ch, 1);
  notify(ch, 0);
  unlock(ch);
  return 0;
}

size_t loom_channel_size(loom_channel_t *ch) {
  if (!ch) return 0;
  lock(ch);
  size_t n = COUNT(ch);
  unlock(ch);
  return n;
}

int loom_channel_closed(loom_channel_t *ch) {
  if (!ch) return 0;
  lock(ch);
  int closed = STATE(ch) != OPEN;
  unlock(ch);
  return closed;
}
