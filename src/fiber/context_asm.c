/* Initial frames for the assembly context-switch backends.
 *
 * A new fiber's stack is laid out as if loom__ctx_switch had saved it, so the
 * first switch to it "returns" into loom__ctx_trampoline with fn and arg in
 * callee-saved registers. Nothing is ever placed outside [lo, lo + size).
 */
#include <stdint.h>
#include <string.h>

#include "context.h"

void loom__ctx_trampoline(void);

#if defined(__x86_64__)

void loom__ctx_make(loom__ctx_t *ctx, void *lo, size_t size, void (*fn)(void *),
                    void *arg) {
  /* The trampoline runs right after `ret` pops its address from the top
   * slot, leaving rsp == top: 16-byte aligned, as its `call` requires. */
  uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
  uint64_t *sp = (uint64_t *)top;
  *--sp = (uint64_t)(uintptr_t)loom__ctx_trampoline; /* ret target */
  *--sp = 0;                                         /* rbp */
  *--sp = 0;                                         /* rbx */
  *--sp = (uint64_t)(uintptr_t)fn;                   /* r12 */
  *--sp = (uint64_t)(uintptr_t)arg;                  /* r13 */
  *--sp = 0;                                         /* r14 */
  *--sp = 0;                                         /* r15 */
  /* Default control state: MXCSR 0x1f80 (all exceptions masked, round to
   * nearest), x87 control word 0x037f. */
  *--sp = (uint64_t)0x1f80u | ((uint64_t)0x037fu << 32);
  ctx->sp = sp;
}

#elif defined(__aarch64__)

void loom__ctx_make(loom__ctx_t *ctx, void *lo, size_t size, void (*fn)(void *),
                    void *arg) {
  uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
  uint64_t *sp = (uint64_t *)(top - 160);
  memset(sp, 0, 160);
  sp[0] = (uint64_t)(uintptr_t)fn;                    /* x19 */
  sp[1] = (uint64_t)(uintptr_t)arg;                   /* x20 */
  sp[11] = (uint64_t)(uintptr_t)loom__ctx_trampoline; /* x30 */
  ctx->sp = sp;
}

#endif

#if defined(__x86_64__) || defined(__aarch64__)
/* A context that never ran "returns" into the trampoline (the slot
 * loom__ctx_make filled, which every switch out overwrites). */
int loom__ctx_started(const loom__ctx_t *ctx) {
  const uint64_t *sp = ctx->sp;
#if defined(__x86_64__)
  return sp[7] != (uint64_t)(uintptr_t)loom__ctx_trampoline;
#else
  return sp[11] != (uint64_t)(uintptr_t)loom__ctx_trampoline;
#endif
}

void *loom__ctx_sp(const loom__ctx_t *ctx) { return ctx->sp; }
#else
#error "no assembly context switch for this architecture; use LOOM_FIBER_BACKEND=ucontext"
#endif
