/* The portable context backend: getcontext/makecontext/swapcontext.
 *
 * Slow (swapcontext saves and restores the signal mask with a system call on
 * every switch) but available wherever glibc is; chosen with
 * -DLOOM_FIBER_BACKEND=ucontext. makecontext passes only int arguments, so
 * the pointer is split into two halves.
 */
#include <stdint.h>

#include "context.h"

static void ucontext_entry(unsigned fn_hi, unsigned fn_lo, unsigned arg_hi,
                           unsigned arg_lo) {
  void (*fn)(void *) =
      (void (*)(void *))(((uintptr_t)fn_hi << 32) | (uintptr_t)fn_lo);
  void *arg = (void *)(((uintptr_t)arg_hi << 32) | (uintptr_t)arg_lo);
  fn(arg);
  __builtin_trap(); /* a fiber never returns */
}

void loom__ctx_make(loom__ctx_t *ctx, void *lo, size_t size,
                    void (*fn)(void *), void *arg) {
  uint64_t f = (uint64_t)(uintptr_t)fn, a = (uint64_t)(uintptr_t)arg;
  getcontext(&ctx->uc);
  ctx->uc.uc_stack.ss_sp = lo;
  ctx->uc.uc_stack.ss_size = size;
  ctx->uc.uc_link = NULL;
  makecontext(&ctx->uc, (void (*)(void))ucontext_entry, 4,
              (unsigned)(f >> 32), (unsigned)f, (unsigned)(a >> 32),
              (unsigned)a);
}

void loom__ctx_switch(loom__ctx_t *from, loom__ctx_t *to) {
  swapcontext(&from->uc, &to->uc);
}
