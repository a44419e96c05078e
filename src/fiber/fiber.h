/* Fibers: a machine context plus the stack it runs on, and the bookkeeping
 * that lets AddressSanitizer, Valgrind and the overflow detector follow the
 * switches. The core layer builds tasks on top; this layer knows nothing of
 * libuv or scheduling, so its test runs on its own (also under qemu-user).
 *
 *   high  +------------------------+ <- lo + size
 *         | frames of the fiber    |   grows down
 *         |          ...           |
 *         | zeros (unguarded)      | <- lo
 *         +------------------------+
 *         | guard zone (dead zone) |   PROT_NONE: a SIGSEGV names the fiber
 *         |                        |   (unguarded: unused, big frames land)
 *   low   +------------------------+
 */
#ifndef LOOM_FIBER_FIBER_H
#define LOOM_FIBER_FIBER_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"

/* The canary of an unguarded stack is its lowest LOOM__CANARY_BYTES, which
 * must stay zero. Zero, because a fresh (or MADV_DONTNEED'd) page reads as
 * zero without being committed: writing a canary would cost every task a
 * second resident page. A frame that reaches the bottom of the stack writes
 * return addresses and frame pointers there, which are not zero. */
#define LOOM__CANARY_BYTES 32

/* Thread-locals on the hot path (every switch, every suspending call). The
 * library is position-independent, so the default model would call
 * __tls_get_addr on each access (~10 ns); initial-exec is one load from the
 * thread pointer. It takes static TLS space, a few pointers' worth, which
 * glibc reserves even for libraries loaded with dlopen. */
#define LOOM__TLS __thread __attribute__((tls_model("initial-exec")))

typedef struct loom__fiber_s {
  /* What a switch and the canary check read, first: a task record keeps
   * the lines that every switch touches few (core/internal.h). */
  loom__ctx_t ctx;   /* saved machine state while not running */
  void *stack_lo;    /* lowest usable byte of the stack */
  size_t stack_size; /* usable bytes above stack_lo */
  void *guard_lo;    /* guard zone below stack_lo, NULL if canary-only */
  void *asan_fake;   /* ASan fake-stack handle while switched out */
  /* For overflow reports only. */
  size_t nominal_size; /* the size overflow reports print (the usable
                          size as its owner counts it), or 0 for
                          stack_size */
  size_t guard_size;   /* its bytes (loom__stack_t.guard_size) */
  const char *name;    /* for overflow reports; may be NULL */
  uint64_t id;         /* for overflow reports when name is NULL */
} loom__fiber_t;

/* Makes `f` start fn(arg) on [lo, lo + size) at its first switch-in. The
 * caller fills guard_lo/guard_size/name/id. */
void loom__fiber_init(loom__fiber_t *f, void *lo, size_t size, void (*fn)(void *),
                      void *arg);

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define LOOM__ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define LOOM__TSAN 1
#endif
/* A sanitizer that must hear of every switch: the switch is out of line. */
#if defined(LOOM__ASAN) || defined(LOOM__TSAN)
#define LOOM__SWITCH_HOOKS 1
#endif

/* Switches from the running fiber `from` (which may be a thread's own stack,
 * a zeroed loom__fiber_t) to `to`.
 *
 * Without AddressSanitizer or ThreadSanitizer there is nothing to tell
 * anyone, and the switch is
 * inline: a switch makes the CPU mispredict the returns of the resumed fiber
 * wherever its call chain differs from the one that switched out, and one
 * call level less is one return less to mispredict (docs/fiber.md). */
/* The fiber this thread runs (the last switch's destination). */
extern LOOM__TLS loom__fiber_t *loom__fiber_running;
#ifdef LOOM__SWITCH_HOOKS
void loom__fiber_switch(loom__fiber_t *from, loom__fiber_t *to);
#else
static inline void loom__fiber_switch(loom__fiber_t *from, loom__fiber_t *to) {
  loom__fiber_running = to; /* whoever switches back to `from` sets it again */
  loom__ctx_switch(&from->ctx, &to->ctx);
}
#endif

/* Like loom__fiber_switch, for a fiber that will never run again: its
 * sanitizer state is released. */
void loom__fiber_switch_last(loom__fiber_t *from, loom__fiber_t *to);

/* Must be the first call in a fiber's entry function. */
void loom__fiber_started(void);

/* The fiber running on this thread (NULL on a thread's own stack). */
loom__fiber_t *loom__fiber_current(void);

/* True if the canary of an unguarded stack is intact (always true for
 * guarded stacks). */
static inline int loom__fiber_canary_ok(const loom__fiber_t *f) {
  if (f->guard_lo) return 1;
  const uint64_t *c = (const uint64_t *)f->stack_lo;
  return (c[0] | c[1] | c[2] | c[3]) == 0;
}

/* Reports an overflow of `f` on stderr and aborts the process. */
void loom__fiber_overflow(const loom__fiber_t *f, const char *how)
    __attribute__((noreturn));

/* Installs the process-wide SIGSEGV handler (once) and an alternate signal
 * stack for the calling thread. `*altstack` receives memory to hand back to
 * loom__overflow_thread_fini (NULL if the thread already had one). */
int loom__overflow_thread_init(void **altstack);
void loom__overflow_thread_fini(void *altstack);

#endif
