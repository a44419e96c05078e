/* The runtime's inbox: the one way into a runtime from another thread.
 *
 * A mutex-protected FIFO of messages and one uv_async_t per runtime,
 * created on first use (loom__inbox_get). Any thread may post; the
 * runtime's thread runs each message's callback from the async handle's
 * callback, in posting order. The inbox is reference-counted and outlives
 * its runtime: a thread that kept a reference gets LOOM_ECLOSED from
 * loom__inbox_post once the runtime has closed, never a freed pointer.
 *
 *   other thread                          runtime's thread
 *   loom__inbox_post(ib, m) --lock-->  [ m1 m2 ... ] --async--> m->run(m, 0)
 *                                       closed at shutdown: m->run(m, LOOM_ECLOSED)
 *
 * The async handle is unreferenced, so an inbox never keeps loom_run or a
 * host loop alive by itself; loom__inbox_hold marks a message the runtime
 * must wait for (an offload job in flight, a task awaiting a future), and
 * while any is held the handle is referenced and the runtime does not
 * finish its shutdown. The API is in inbox.h; the public layers built on it
 * are futures (sync/future.c), thread-safe entry (core/remote.c), offload
 * (io/offload.c) and the cross-runtime channel.
 */
#ifndef LOOM_CORE_INBOX_H
#define LOOM_CORE_INBOX_H

#include <stdatomic.h>
#include <uv.h>

typedef struct loom_s loom_t;
typedef struct loom__msg_s loom__msg_t;
typedef struct loom__inbox_s loom__inbox_t;

/* A message: embedded in the sender's own struct (no allocation by the
 * inbox). Once loom__inbox_post has returned 0, `run` is called exactly
 * once, on the runtime's thread:
 *   status 0            the runtime is alive; loom__inbox_rt() gives it;
 *   status LOOM_ECLOSED the runtime closed before the message ran (only
 *                       free what the message holds).
 * When post returns an error, `run` is never called. `run` may free m. */
struct loom__msg_s {
  loom__msg_t *next; /* the inbox's FIFO link */
  void (*run)(loom__msg_t *m, int status);
};

struct loom__inbox_s {
  uv_mutex_t mu;
  loom__msg_t *head, *tail; /* under mu: posted, not yet run */
  loom_t *rt;               /* under mu: NULL once the runtime closed */
  uv_async_t *async;        /* rt's handle; sent under mu only */
  int signalled;            /* under mu: an async send is on its way */
  uv_thread_t thread;       /* the runtime's thread */
  _Atomic int posted;       /* messages may be queued: the spin's cheap look */
  uint64_t spin_until;      /* the runtime's thread: hrtime to spin until */
  struct loom__spin_s {     /* adaptive spinning (loom__spin_try) */
    uint32_t skip, fails, backoff;
  } spin; /* for replies: the runtime's thread */
  _Atomic long refs;
  _Atomic long senders; /* references held for other threads that may
                           still post (loom_remote_t) */
  int waiting;          /* the runtime's thread: async referenced until
                           the next message (loom__inbox_expect) */
};

/* On rt's thread: rt's inbox, made on first use, with one more reference
 * for the caller. 0, UV_ENOMEM, or LOOM_ECLOSED once rt's shutdown has
 * closed its handles. */
int loom__inbox_get(loom_t *rt, loom__inbox_t **out);
/* Any thread: one more / one less reference; the last frees it. */
void loom__inbox_retain(loom__inbox_t *ib);
void loom__inbox_release(loom__inbox_t *ib);
/* Any thread: queues m and wakes the runtime. 0, or LOOM_ECLOSED (the
 * runtime is gone; m is untouched and its callback will not run). */
int loom__inbox_post(loom__inbox_t *ib, loom__msg_t *m);
/* Whether the calling thread is the inbox's runtime's thread (and the
 * runtime is still open): then its state may be touched directly. */
int loom__inbox_on_thread(loom__inbox_t *ib);
/* On rt's thread, with the inbox made: while holds are taken, the inbox
 * keeps rt's loop alive and rt's shutdown waits (a message is due). */
void loom__inbox_hold(loom_t *rt);
void loom__inbox_unhold(loom_t *rt);
/* Any thread: +1 / -1 thread that may post at any time (a loom_remote_t).
 * Such senders do not keep a runtime from shutting down, but while one
 * exists, tasks that wait with nothing else to wake them may be waiting
 * for it: loom_run does not call that a deadlock. */
void loom__inbox_sender(loom__inbox_t *ib, int delta);
/* On rt's thread, when the loop has nothing left to wake rt's waiting
 * tasks: 1 if a sender may still wake them (the inbox then keeps the loop
 * alive until its next message), else 0. */
int loom__inbox_expect(loom_t *rt);
/* On rt's thread, inbox made: a reply is expected within about ns (an
 * offload job was just submitted). Until then, when the loop is about to
 * sleep with nothing else to do, it first looks at the inbox for a while:
 * a reply that comes within microseconds then costs no wake-up of a
 * sleeping thread (tens of microseconds on a VM). Only with more than one
 * CPU. */
void loom__inbox_expect_soon(loom_t *rt, uint64_t ns);
/* Whether spinning can help: more than one CPU to run on. */
int loom__spin_ok(void);

/* Adaptive spinning. A spin that keeps failing (the other thread does not
 * get a CPU in time: the machine is loaded) only makes things worse, as it
 * takes a CPU the other side needs. So after two failures in a row the
 * next 16 spins are skipped, then 32, ... up to 1024, between single
 * tries; a success starts afresh. */
typedef struct loom__spin_s loom__spin_t;
static inline int loom__spin_try(loom__spin_t *s) {
  if (s->skip) {
    s->skip--;
    return 0;
  }
  return loom__spin_ok();
}
static inline void loom__spin_done(loom__spin_t *s, int ok) {
  if (ok) {
    s->fails = s->backoff = 0;
  } else if (++s->fails >= 2) {
    s->fails = 0;
    s->skip = 16u << s->backoff;
    if (s->backoff < 6) s->backoff++;
  }
}
static inline void loom__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}
/* The runtime of an inbox, on its thread (NULL once closed). */
static inline loom_t *loom__inbox_rt(loom__inbox_t *ib) { return ib->rt; }

/* runtime.c: called at shutdown with every task ended and no hold left. */
void loom__inbox_close(loom_t *rt);

#endif
