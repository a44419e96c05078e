/* Machine contexts: the lowest piece of the fiber layer.
 *
 * A context is what a suspended fiber leaves behind: for the assembly
 * backends, just the stack pointer (the callee-saved registers are pushed on
 * the fiber's own stack, so the stack pointer always points into a real
 * stack); for the ucontext backend, a ucontext_t. The backend is chosen by
 * CMake (LOOM_FIBER_BACKEND) and compiled as a separate file:
 *
 *   switch_x86_64.S    System V x86_64
 *   switch_aarch64.S   AAPCS64
 *   context_asm.c      initial frames for the two assembly backends
 *   context_ucontext.c getcontext/makecontext/swapcontext (portable, slow:
 *                      swapcontext saves the signal mask with a syscall)
 */
#ifndef LOOM_FIBER_CONTEXT_H
#define LOOM_FIBER_CONTEXT_H

#include <stddef.h>

#ifdef LOOM_FIBER_UCONTEXT
#include <ucontext.h>
typedef struct {
  ucontext_t uc;
  /* What a new context runs: makecontext passes only int arguments, so the
   * entry function gets this context's address and reads them from here.
   * A ucontext_t may point into itself (glibc's fpregs), so a context never
   * moves once made anyway. */
  void (*fn)(void *);
  void *arg;
  int started; /* its entry function has run */
} loom__ctx_t;
#else
typedef struct {
  void *sp; /* saved stack pointer; must stay the first member (asm) */
} loom__ctx_t;
#endif

/* Prepares `ctx` so that switching to it calls fn(arg) on the stack
 * [lo, lo + size). fn must never return: a fiber ends by switching away for
 * good. */
void loom__ctx_make(loom__ctx_t *ctx, void *lo, size_t size, void (*fn)(void *),
                    void *arg);

/* Saves the running context into `from` and resumes `to`. Returns when
 * something switches back to `from`. */
void loom__ctx_switch(loom__ctx_t *from, loom__ctx_t *to);

/* Of a context that is switched out (cold paths: task dumps): whether it
 * has run since loom__ctx_make (if not, switching to it starts its entry
 * function), and its saved stack pointer. */
int loom__ctx_started(const loom__ctx_t *ctx);
void *loom__ctx_sp(const loom__ctx_t *ctx);

#endif
