/* Channels (include/loom/channel.h): a bounded queue between runtimes.
 *
 * The items travel through a lock-free ring (Vyukov's bounded MPMC queue):
 * a put claims a position with one compare-and-swap on `enq` and
 * publishes the item with a release store of its cell's sequence number;
 * a get does the same on `deq`. Producers and consumers write different
 * cache lines, so two runtimes streaming items do not serialise on a lock.
 * A cell's sequence says what it holds for the position that maps to it:
 * 2*pos when it is free for the put of pos, 2*pos + 1 once that put has
 * published, and 2*(pos + cap) when the get of pos has emptied it (even
 * for "free", odd for "full", so that capacity 1 works).
 *
 * Waiting goes through a mutex, only when someone has to wait. A port is
 * a runtime's attachment to the channel, made the first time one of its
 * tasks puts or gets: it holds the runtime's waiting getters and putters
 * on two wait queues that only that runtime's thread touches, so
 * cancellation and scopes are the wait queue's own (wq.c). A task about to
 * wait registers (the counts `getters` / `putters`), then looks at the ring
 * again, without the mutex; a put or get that succeeds looks at the other
 * side's count after its publish (an exchange, a full barrier). One of the
 * two sees the other (a Dekker pair), so no wake-up is lost. The waker then
 * takes the mutex and wakes the ports that have waiters:
 *
 *   runtime A (putter)          channel                     runtime B
 *   put: CAS enq, publish  -->  ring: [x][ ][ ]             getq: task
 *        getters > 0: lock,     ports: [A] [B: 1 getter]
 *        post B's kick          B's kick posted once  --inbox--> on_kick:
 *                                                           wake getq
 *
 * A wake-up for another runtime is one message per port (the port's
 * `kick`, posted to the runtime's inbox at most once at a time, with the
 * kinds of waiters it must wake); a wake-up on the caller's own runtime is
 * direct. Woken waiters try the ring again, so a wake-up never carries an
 * item and a waiter interrupted after its wake-up loses nothing; it passes
 * the wake-up on (to other runtimes' waiters) if what it was woken for is
 * still there.
 *
 * Close marks `enq` (its low bit; the position is enq >> 1) before it
 * sets `state`, so the put's compare-and-swap that claims a position
 * fails once the channel is closed: the last position is fixed, and a get
 * that finds the channel closed takes every item up to it (waiting for
 * the puts that claimed a position to publish) before it concludes. A put
 * that returned 0 has its item delivered (unless the close was immediate),
 * and a put costs two locked instructions (the claim and the publish).
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

#define RELAXED memory_order_relaxed
#define ACQUIRE memory_order_acquire
#define RELEASE memory_order_release

/* Spinning before a park (spin) takes up to this long on the CPU; the
 * loop's spin (loom__inbox_expect_soon) has the rest of LOOM__SPIN_NS. */
#define LOOM__CHANNEL_SPIN_NS (LOOM__SPIN_NS / 2)

typedef struct port_s port_t;

typedef struct {
  _Atomic size_t seq;
  void *item;
} cell_t;

struct loom_channel_s {
  /* Read-mostly. */
  size_t cap;
  size_t mask; /* cap - 1 if cap is a power of two (above 1), else 0 */
  cell_t *cells;
  _Atomic long refs;
  _Atomic int state;               /* OPEN, CLOSED (draining), DROPPED */
  _Atomic size_t getters, putters; /* tasks registered to wait (every
                                      runtime) */
  pthread_mutex_t mu;
  loom__list_t ports; /* port_t.link; under mu */
  size_t nports;      /* under mu */
  /* Written by every put, and by every get: 64 bytes apart, so that
   * they never share a cache line (with each other or the above). */
  char pad0[64];
  _Atomic size_t enq; /* 2 * the next put's position, | 1 once closed */
  char pad1[64];
  _Atomic size_t deq;
  char pad2[64];
};

struct port_s {
  loom__io_t io;     /* on rt's list of I/O objects */
  loom__link_t link; /* on ch->ports */
  loom_channel_t *ch;
  loom_t *rt;
  loom__inbox_t *ib; /* rt's inbox (a reference) */
  loom__msg_t kick;  /* wakes this runtime's waiters from elsewhere */
  /* rt's tasks registered to wait: changed by rt's thread without the
   * mutex (before the channel's count, which publishes them to a waker
   * that sees that count), read by notify. */
  _Atomic unsigned ngetters, nputters;
  /* Under ch->mu: */
  uint8_t wake_get, wake_put; /* the kick is to wake them */
  uint8_t posted;             /* the kick is in the inbox */
  uint8_t detached;           /* rt has ended: the kick frees the port */
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
  if (capacity == 0 || capacity > SIZE_MAX / 4 / sizeof(cell_t)) return UV_EINVAL;
  loom_channel_t *ch = calloc(1, sizeof(*ch));
  if (!ch) return UV_ENOMEM;
  ch->cells = malloc(capacity * sizeof(cell_t));
  if (!ch->cells || mutex_init(&ch->mu)) {
    free(ch->cells);
    free(ch);
    return UV_ENOMEM;
  }
  ch->cap = capacity;
  ch->mask = capacity > 1 && !(capacity & (capacity - 1)) ? capacity - 1 : 0;
  for (size_t i = 0; i < capacity; i++) atomic_init(&ch->cells[i].seq, 2 * i);
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
  free(ch->cells);
  free(ch);
}

/* Closes the channel (to CLOSED or DROPPED): marks enq first, so that no
 * put claims a position once `state` says closed. */
static void set_closed(loom_channel_t *ch, int state) {
  atomic_fetch_or(&ch->enq, 1);
  atomic_store(&ch->state, state);
}

/* ---- waking ------------------------------------------------------------------- */

/* Wakes the waiting getters (get = 1) or putters (get = 0) of every
 * runtime: directly on the caller's own, by each port's kick elsewhere.
 * Under ch->mu. */
static void notify(loom_channel_t *ch, int get) {
  /* Sequentially consistent: a close (state, then this look) and a
   * waiter's registration (the count, then a look at state) see each
   * other. */
  if (!atomic_load(get ? &ch->getters : &ch->putters)) return;
  loom_t *here = loom__handle_rt();
  loom__link_t *l;
  loom__list_foreach(l, &ch->ports) {
    port_t *p = loom__list_entry(l, port_t, link);
    if (!atomic_load_explicit(get ? &p->ngetters : &p->nputters, RELAXED)) continue;
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

/* The port the calling thread used last: one runtime per thread, so it is
 * this thread's runtime's, and while it is attached it holds a reference
 * on its channel (which therefore is not freed and reused). Cleared when
 * the port detaches. Saves the mutex on every put and get. */
static LOOM__TLS loom_channel_t *cached_ch;
static LOOM__TLS port_t *cached_port;

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
  if (p == cached_port) cached_ch = NULL, cached_port = NULL;
  if (ch->nports <= 1 && atomic_load(&ch->state) == OPEN) {
    set_closed(ch, CLOSED);
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

/* The calling runtime's port, from the cache or attached. */
static int port_of(loom_channel_t *ch, loom_t *rt, port_t **out) {
  if (cached_ch == ch && cached_port->rt == rt) {
    *out = cached_port;
    return 0;
  }
  lock(ch);
  int rc = attach(ch, rt, out);
  unlock(ch);
  if (rc == 0) {
    cached_ch = ch;
    cached_port = *out;
  }
  return rc;
}

/* ---- the ring ------------------------------------------------------------------ */

/* The cell of position pos: a mask for a power-of-two capacity, which
 * spares a division on every put and get. */
static inline cell_t *cell(loom_channel_t *ch, size_t pos) {
  return &ch->cells[ch->mask ? pos & ch->mask : pos % ch->cap];
}

/* The publish of a put or a get is an exchange, sequentially consistent:
 * with the other side's look at the waiter count that follows it
 * (wake_side), the Dekker pair with a waiter's registration, and on x86
 * one locked instruction where a store and a fence were two. */
static int enqueue(loom_channel_t *ch, void *item) {
  size_t e = atomic_load_explicit(&ch->enq, RELAXED);
  for (;;) {
    if (e & 1) return LOOM_ESHUTDOWN; /* closed: no position after the last */
    size_t pos = e >> 1;
    cell_t *c = cell(ch, pos);
    size_t seq = atomic_load_explicit(&c->seq, ACQUIRE);
    intptr_t diff = (intptr_t)(seq - 2 * pos);
    if (diff == 0) {
      if (atomic_compare_exchange_weak_explicit(&ch->enq, &e, e + 2, RELAXED, RELAXED)) {
        c->item = item;
        atomic_exchange(&c->seq, 2 * pos + 1);
        return 0;
      }
    } else if (diff < 0) {
      return UV_EAGAIN; /* full: the cell still holds the item of a lap ago */
    } else {
      e = atomic_load_explicit(&ch->enq, RELAXED);
    }
  }
}

static int dequeue(loom_channel_t *ch, void **item) {
  size_t pos = atomic_load_explicit(&ch->deq, RELAXED);
  for (;;) {
    cell_t *c = cell(ch, pos);
    size_t seq = atomic_load_explicit(&c->seq, ACQUIRE);
    intptr_t diff = (intptr_t)(seq - (2 * pos + 1));
    if (diff == 0) {
      if (atomic_compare_exchange_weak_explicit(&ch->deq, &pos, pos + 1, RELAXED,
                                                RELAXED)) {
        *item = c->item;
        atomic_exchange(&c->seq, 2 * (pos + ch->cap));
        return 0;
      }
    } else if (diff < 0) {
      return UV_EAGAIN; /* empty: the put of pos has not published */
    } else {
      pos = atomic_load_explicit(&ch->deq, RELAXED);
    }
  }
}

/* Items held now (a snapshot). */
static size_t held(loom_channel_t *ch) {
  size_t d = atomic_load_explicit(&ch->deq, RELAXED);
  size_t e = atomic_load_explicit(&ch->enq, RELAXED) >> 1;
  size_t n = e - d;
  return n > ch->cap ? (e < d ? 0 : ch->cap) : n;
}

/* Wakes the other side's waiters if there are any (the look is ordered
 * after the publish, an exchange: the Dekker pair with a waiter's
 * registration). */
static void wake_side(loom_channel_t *ch, int get) {
  if (!atomic_load(get ? &ch->getters : &ch->putters)) return;
  lock(ch);
  notify(ch, get);
  unlock(ch);
}

/* One attempt: 0 (done), LOOM_ESHUTDOWN, or UV_EAGAIN (full / empty). */
static int put_once(loom_channel_t *ch, void *item) {
  /* A full channel that is closed says so (the claim would not look). */
  if (atomic_load_explicit(&ch->state, ACQUIRE) != OPEN) return LOOM_ESHUTDOWN;
  int rc = enqueue(ch, item);
  if (rc == 0) wake_side(ch, 1);
  return rc;
}

static int get_once(loom_channel_t *ch, void **item) {
  int state = atomic_load(&ch->state);
  if (state == DROPPED) return LOOM_ESHUTDOWN;
  int rc = dequeue(ch, item);
  if (rc == 0) {
    wake_side(ch, 0);
    return 0;
  }
  if (state == OPEN && (state = atomic_load(&ch->state)) == OPEN) return UV_EAGAIN;
  /* Closed, so enq is marked and its position is the last: the items of
   * the puts that claimed a position before it are taken first, once
   * they are published (a put between its claim and its publish). */
  size_t last = atomic_load(&ch->enq) >> 1;
  while (state != DROPPED) {
    if (dequeue(ch, item) == 0) return 0;
    if ((intptr_t)(atomic_load_explicit(&ch->deq, RELAXED) - last) >= 0) break;
    sched_yield();
    state = atomic_load(&ch->state);
  }
  return LOOM_ESHUTDOWN;
}

/* What a spinning put or get waits for. */
typedef struct {
  loom_channel_t *ch;
  int get;
  size_t room; /* a put: items at most held */
} spin_ctx_t;

/* Looks only at the spinner's own index and at the cell the other side
 * writes when it is done with it, not at the other side's index: the
 * cache line of that index would cross between the cores on every look,
 * and once more for every item it then moves. A getter waits for the cell
 * of `deq` to be published; a putter for the cell of position
 * enq + cap - 1 - room to be free for that position, which is when at
 * most `room` items are held. */
static int spin_ready(void *p) {
  spin_ctx_t *c = p;
  loom_channel_t *ch = c->ch;
  if (atomic_load_explicit(&ch->state, RELAXED) != OPEN) return 1;
  if (c->get) {
    size_t pos = atomic_load_explicit(&ch->deq, RELAXED);
    size_t seq = atomic_load_explicit(&cell(ch, pos)->seq, RELAXED);
    return (intptr_t)(seq - (2 * pos + 1)) >= 0;
  }
  size_t pos = (atomic_load_explicit(&ch->enq, RELAXED) >> 1) + ch->cap - 1 - c->room;
  size_t seq = atomic_load_explicit(&cell(ch, pos)->seq, RELAXED);
  return (intptr_t)(seq - 2 * pos) >= 0;
}

/* Before parking, a task whose runtime has nothing else to run waits a
 * little for the other thread: a park and its cross-thread wake-up cost a
 * message, and the sleeper's return from epoll (15-30 us on a VM) if it
 * sleeps, while the other thread, running, usually answers within a
 * microsecond. This is the first half of the runtime's spin (inbox.h: one
 * policy, rt's inbox->spin, for every wait on another thread); if it ends
 * without an answer the task parks and the loop spins on for the kick
 * (loom__inbox_expect_soon), which records the outcome. 1 if the spin was
 * late (LOOM__SPIN_LATE). */
static int spin(loom_channel_t *ch, int get, port_t *p) {
  loom_t *rt = p->rt;
  if (rt->ready_head || rt->round_head || !loom__spin_may(&p->ib->spin)) return 0;
  /* A putter waits for the channel to be half empty, not for one slot:
   * else, with both sides running, every put would wait for one get and
   * the cells' cache lines would cross between the cores once per item
   * instead of once per batch. */
  spin_ctx_t c = {.ch = ch, .get = get, .room = (ch->cap - 1) / 2};
  return loom__spin_wait(&p->ib->spin, LOOM__CHANNEL_SPIN_NS, spin_ready, &c) ==
         LOOM__SPIN_LATE;
}

/* put (get = 0) or get (get = 1) from a task: attempts, and waits on the
 * runtime's port between attempts. */
static int wait_op(loom_channel_t *ch, int get, void **item) {
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  loom_t *rt = self->rt;
  port_t *p;
  rc = port_of(ch, rt, &p);
  if (rc) return rc;
  int hold = 0, spun = 0;
  _Atomic size_t *waiting = get ? &ch->getters : &ch->putters;
  for (;;) {
    rc = get ? get_once(ch, item) : put_once(ch, *item);
    if (rc != UV_EAGAIN) break;
    rc = loom__check(self); /* woken, but cancelled before it ran */
    if (rc) break;
    if (!spun) {
      spun = 1;
      /* Late: the loop has not run for a while, and a deadline of ours may
       * have passed unseen; let it run its timers before we go on. */
      if (spin(ch, get, p) && (rc = loom_yield()) != 0) break;
      continue;
    }
    /* Registers without the mutex: a same-runtime hand-off parks each
     * side once per item, and the mutex took a third of its time. */
    atomic_fetch_add_explicit(get ? &p->ngetters : &p->nputters, 1, RELAXED);
    atomic_fetch_add(waiting, 1);
    /* Registered: look again (the other half of the Dekker pair). */
    atomic_thread_fence(memory_order_seq_cst);
    rc = get ? get_once(ch, item) : put_once(ch, *item);
    if (rc == UV_EAGAIN) {
      if (!hold) { /* another thread is to wake it: keep the loop alive */
        loom__inbox_hold(rt);
        hold = 1;
      }
      /* Parked, the loop looks at the inbox for the kick a while before
       * it sleeps. */
      loom__inbox_expect_soon(rt, LOOM__SPIN_NS - LOOM__CHANNEL_SPIN_NS);
      loom__wnode_t n;
      /* The channel the program holds, not its port here: a dump prints
       * it and finds loom_debug_name's name by it. */
      loom__wait_on(&n.w, get ? LOOM__W_CHANNEL_RECV : LOOM__W_CHANNEL_SEND, ch);
      rc = loom__wq_wait(get ? &p->getq : &p->putq, &n, self, 0);
      if (rc == 0) rc = UV_EAGAIN; /* woken: try again */
    }
    atomic_fetch_sub_explicit(get ? &p->ngetters : &p->nputters, 1, RELAXED);
    atomic_fetch_sub(waiting, 1);
    /* Interrupted: what it was woken for (if it was) goes to others. */
    if (rc != UV_EAGAIN && rc != 0 && rc != LOOM_ESHUTDOWN &&
        (get ? held(ch) > 0 : held(ch) < ch->cap)) {
      lock(ch);
      notify(ch, get);
      unlock(ch);
    }
    if (rc != UV_EAGAIN) break;
  }
  if (hold) loom__inbox_unhold(rt);
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
  return put_once(ch, item);
}

int loom_channel_try_get(loom_channel_t *ch, void **item) {
  if (!ch || !item) return UV_EINVAL;
  return get_once(ch, item);
}

int loom_channel_close(loom_channel_t *ch, int immediate) {
  if (!ch) return UV_EINVAL;
  lock(ch);
  if (immediate && atomic_load(&ch->state) != DROPPED) {
    set_closed(ch, DROPPED);
    void *item;
    while (dequeue(ch, &item) == 0) {}
  } else if (atomic_load(&ch->state) == OPEN) {
    set_closed(ch, CLOSED);
  }
  notify(ch, 1);
  notify(ch, 0);
  unlock(ch);
  return 0;
}

size_t loom_channel_size(loom_channel_t *ch) { return ch ? held(ch) : 0; }

int loom_channel_closed(loom_channel_t *ch) {
  return ch ? atomic_load(&ch->state) != OPEN : 0;
}
