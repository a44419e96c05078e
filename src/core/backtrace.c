/* Backtraces of tasks, for dumps and debug-mode reports.
 *
 * A parked task's stack is not the thread's: no unwinder is running on it
 * and none can be started there without resuming the task. So a dump
 * resumes it, briefly: loom__probe_backtrace (sched.c) switches to the
 * task, which lands in loom__landed as after any switch, finds the dump's
 * question there, unwinds its own stack with glibc's backtrace() (the
 * unwind tables: no frame pointers needed, and the trampoline's CFI ends
 * the walk), and switches straight back. The hot path pays nothing for it:
 * landed's test for an ended task catches the question too.
 *
 * Where that is not safe (can_probe below: a task that never ran, too
 * little stack left, another task of the runtime running) its saved
 * registers are walked instead (loom__backtrace_fp). The context switch
 * left its callee-saved registers on top of that stack (see
 * fiber/switch_*.S), among them the frame pointer and the return address
 * into whatever called the switch. From there, where frame pointers are
 * kept (loom is built with -fno-omit-frame-pointer only under
 * LOOM_FRAME_POINTERS and in sanitizer builds), each frame record is two
 * words, the caller's frame pointer and a return address:
 *
 *   fp ──> [ caller's fp | return address ] ──> [ its caller's fp | ra ] ...
 *
 * up to the first frame of the task, whose caller's frame pointer is 0
 * (the trampoline clears it). Code built without frame pointers leaves a
 * register in their place that may hold anything, so the walk trusts
 * nothing: each fp must lie inside the task's stack, above the last one,
 * and be 8-byte aligned; the walk stops at the first one that is not. A
 * weird stack gives a short backtrace, never a crash or a read outside the
 * stack. (Debug mode's slow-task report does not walk: its signal handler
 * calls backtrace() on the interrupted stack, debug-mode.c.)
 *
 * The running task is on the thread's stack as far as the unwinder knows:
 * glibc's backtrace() walks it with the unwind tables, to the trampoline,
 * whose CFI marks the end.
 */
#define _GNU_SOURCE
#include <execinfo.h>

#include "internal.h"

#ifndef LOOM_FIBER_UCONTEXT
void loom__ctx_trampoline(void);
#endif

/* The saved frame pointer and return address of a suspended context. */
static int saved_regs(const loom_task_t *t, uintptr_t *fp, uintptr_t *pc) {
#if defined(LOOM_FIBER_UCONTEXT)
#if defined(__x86_64__)
  *fp = (uintptr_t)t->fiber.ctx.uc.uc_mcontext.gregs[REG_RBP];
  *pc = (uintptr_t)t->fiber.ctx.uc.uc_mcontext.gregs[REG_RIP];
  return 1;
#elif defined(__aarch64__)
  *fp = (uintptr_t)t->fiber.ctx.uc.uc_mcontext.regs[29];
  *pc = (uintptr_t)t->fiber.ctx.uc.uc_mcontext.pc;
  return 1;
#else
  (void)t, (void)fp, (void)pc;
  return 0;
#endif
#else
  const uintptr_t *sp = (const uintptr_t *)t->fiber.ctx.sp;
  uintptr_t lo = (uintptr_t)t->fiber.stack_lo, hi = lo + t->fiber.stack_size;
  if ((uintptr_t)sp < lo || (uintptr_t)sp + 12 * sizeof(uintptr_t) > hi) return 0;
#if defined(__x86_64__)
  *fp = sp[6];
  *pc = sp[7];
#elif defined(__aarch64__)
  *fp = sp[10];
  *pc = sp[11];
#endif
  /* Never run: the "return address" is the trampoline's first
   * instruction, and there is no frame. */
  if (*pc == (uintptr_t)loom__ctx_trampoline) return 0;
  return 1;
#endif
}

/* Whether t may be resumed to unwind itself (loom__probe_backtrace): it
 * has run (else its context is its entry), it is ready or parked, no other
 * task of its runtime is running (a dump runs from a task, from host code on
 * the runtime's thread or from the loop), and its stack has room below the
 * saved stack pointer for backtrace() and what it calls. backtrace() loads
 * the unwinder and allocates on its first call: done here first, on the
 * dumper's own stack. */
static int can_probe(loom_task_t *t) {
  loom_t *rt = t->rt;
  if (t->state != LOOM__PARKED && t->state != LOOM__READY) return 0;
  if (!loom__task_has_stack(t)) return 0; /* never ran: no stack yet */
  if (rt->prev || (rt->current && rt->current != loom__self())) return 0;
  if (!loom__ctx_started(&t->fiber.ctx)) return 0;
  uintptr_t sp = (uintptr_t)loom__ctx_sp(&t->fiber.ctx),
            lo = (uintptr_t)t->fiber.stack_lo;
  if (sp < lo || sp - lo < LOOM__PROBE_ROOM || sp > lo + t->fiber.stack_size) return 0;
  static int warm;
  if (!__atomic_load_n(&warm, __ATOMIC_ACQUIRE)) {
    void *buf[4];
    backtrace(buf, 4);
    __atomic_store_n(&warm, 1, __ATOMIC_RELEASE);
  }
  return 1;
}

int loom__backtrace_task(loom_task_t *t, void **pcs, int max) {
  if (!t || !pcs || max <= 0) return 0;
  if (t->state == LOOM__RUNNING) {
    if (loom__self() != t) return 0; /* another thread's: not ours to read */
    void *buf[64];
    int n = backtrace(buf, 64);
    /* Leave out this function itself. */
    int skip = n > 1 ? 1 : 0, k = 0;
    for (int i = skip; i < n && k < max; i++) pcs[k++] = buf[i];
    return k;
  }
  if (t->state == LOOM__DONE) return 0;
  if (can_probe(t)) return loom__probe_backtrace(t, pcs, max);
  return loom__backtrace_fp(t, pcs, max);
}

int loom__backtrace_fp(loom_task_t *t, void **pcs, int max) {
  if (!t || !pcs || max <= 0 || t->state == LOOM__RUNNING || t->state == LOOM__DONE)
    return 0;
  /* Never ran: no stack yet, or the context holds its entry, not a frame. */
  if (!loom__task_has_stack(t) || !loom__ctx_started(&t->fiber.ctx)) return 0;
  uintptr_t fp, pc;
  if (!saved_regs(t, &fp, &pc)) return 0;
  return loom__backtrace_from((void *)fp, (void *)pc, t->fiber.stack_lo,
                              (char *)t->fiber.stack_lo + t->fiber.stack_size, pcs, max);
}

int loom__backtrace_from(void *fp0, void *pc, const void *stack_lo, const void *stack_hi,
                         void **pcs, int max) {
  if (!pcs || max <= 0) return 0;
  uintptr_t fp = (uintptr_t)fp0, lo = (uintptr_t)stack_lo, hi = (uintptr_t)stack_hi;
  int n = 0;
  pcs[n++] = pc;
  while (n < max) {
    if (hi <= lo || hi - lo < 2 * sizeof(uintptr_t) || fp < lo ||
        fp > hi - 2 * sizeof(uintptr_t) || (fp & (sizeof(uintptr_t) - 1)))
      break;
    const uintptr_t *rec = (const uintptr_t *)fp;
    uintptr_t next = rec[0], ra = rec[1];
    if (!ra) break;
    pcs[n++] = (void *)ra;
    if (next <= fp) break; /* callers' frames are above */
    fp = next;
  }
  return n;
}
