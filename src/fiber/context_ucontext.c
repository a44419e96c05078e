/* The portable context backend: getcontext/makecontext/swapcontext.
 *
 * Slow (swapcontext saves and restores the signal mask with a system call on
 * every switch) but available wherever glibc is; chosen with
 * -DLOOM_FIBER_BACKEND=ucontext.
 *
 * makecontext passes its extra arguments as int, so a new context's entry
 * function receives one pointer (to its loom__ctx_t, which holds fn and arg)
 * as unsigned pieces. Where a pointer fits in an unsigned (32-bit targets)
 * it travels whole; where it is wider (64-bit) it travels as two halves,
 * shifted by the width of unsigned, which is less than uintptr_t's there.
 * Shifting a 32-bit uintptr_t by 32 would be undefined, so that code is
 * compiled only where the pointer is the wider type.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* REG_RBP */
#endif
#include <limits.h>
#include <stdint.h>

#include "context.h"

#if UINTPTR_MAX > UINT_MAX
#define CTX_HALVES 2
#define UNSIGNED_BITS (sizeof(unsigned) * CHAR_BIT)
_Static_assert(sizeof(uintptr_t) <= 2 * sizeof(unsigned),
               "a pointer must fit in two makecontext arguments");
#else
#define CTX_HALVES 1
#endif

#if CTX_HALVES == 2
static void ucontext_entry(unsigned hi, unsigned lo) {
  loom__ctx_t *ctx = (loom__ctx_t *)(((uintptr_t)hi << UNSIGNED_BITS) | (uintptr_t)lo);
#else
static void ucontext_entry(unsigned whole) {
  loom__ctx_t *ctx = (loom__ctx_t *)(uintptr_t)whole;
#endif
  ctx->started = 1;
  ctx->fn(ctx->arg);
  __builtin_trap(); /* a fiber never returns */
}

void loom__ctx_make(loom__ctx_t *ctx, void *lo, size_t size, void (*fn)(void *),
                    void *arg) {
  uintptr_t p = (uintptr_t)ctx;
  ctx->fn = fn;
  ctx->arg = arg;
  ctx->started = 0;
  getcontext(&ctx->uc);
  ctx->uc.uc_stack.ss_sp = lo;
  ctx->uc.uc_stack.ss_size = size;
  ctx->uc.uc_link = NULL;
#if CTX_HALVES == 2
  makecontext(&ctx->uc, (void (*)(void))ucontext_entry, 2, (unsigned)(p >> UNSIGNED_BITS),
              (unsigned)p);
#else
  makecontext(&ctx->uc, (void (*)(void))ucontext_entry, 1, (unsigned)p);
#endif
  /* getcontext copied the creator's frame pointer; makecontext leaves it.
   * Zero, a frame-pointer walk (perf -g) from the fiber stops at its entry
   * instead of wandering into the creator's stack. (glibc's start-up frame
   * ends DWARF unwinding already.) */
#if defined(__x86_64__)
  ctx->uc.uc_mcontext.gregs[REG_RBP] = 0;
#elif defined(__aarch64__)
  ctx->uc.uc_mcontext.regs[29] = 0;
#endif
}

void loom__ctx_switch(loom__ctx_t *from, loom__ctx_t *to) {
  swapcontext(&from->uc, &to->uc);
}

int loom__ctx_started(const loom__ctx_t *ctx) { return ctx->started; }

void *loom__ctx_sp(const loom__ctx_t *ctx) {
#if defined(__x86_64__)
  return (void *)(uintptr_t)ctx->uc.uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
  return (void *)(uintptr_t)ctx->uc.uc_mcontext.sp;
#else
  return NULL; /* unknown: no room, as far as callers can tell */
#endif
}
