/* Context switch for x86_64, System V ABI.
 *
 * Saves only what the ABI makes callee-saved: rbx, rbp, r12-r15, the MXCSR
 * control bits and the x87 control word. Everything else is caller-saved, so
 * the C compiler has already spilled what it needs before calling us.
 *
 * Saved frame, at the stored stack pointer (lowest address first):
 *
 *   +0   mxcsr (4 bytes) | x87 cw (2 bytes) | pad
 *   +8   r15
 *   +16  r14
 *   +24  r13
 *   +32  r12
 *   +40  rbx
 *   +48  rbp
 *   +56  return address
 *
 * void loom__ctx_switch(loom__ctx_t *from, loom__ctx_t *to)
 *   rdi = from (stack pointer stored at offset 0), rsi = to
 */
        .text
        .globl  loom__ctx_switch
        .hidden loom__ctx_switch
        .type   loom__ctx_switch,@function
        .p2align 4
loom__ctx_switch:
        .cfi_startproc
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $8, %rsp
        stmxcsr (%rsp)
        andl    $0xffc0, (%rsp)
        fnstcw  4(%rsp)
        movq    %rsp, (%rdi)
        movq    (%rsi), %rsp
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        .cfi_endproc
        .size   loom__ctx_switch,.-loom__ctx_switch

/* First code a new fiber runs: loom__ctx_make leaves fn in r12 and its
 * argument in r13. The stack is 16-byte aligned here, as a call requires.
 * fn never returns; ud2 traps if it does. The outermost frame of every
 * task: rip is undefined in its CFI (so DWARF unwinders, backtrace(),
 * perf --call-graph=dwarf and gdb stop here) and rbp is zero (so
 * frame-pointer walks, perf -g, stop at the task's entry function). */
        .globl  loom__ctx_trampoline
        .hidden loom__ctx_trampoline
        .type   loom__ctx_trampoline,@function
        .p2align 4
loom__ctx_trampoline:
        .cfi_startproc
        .cfi_undefined rip
        xorl    %ebp, %ebp
        movq    %r13, %rdi
        callq   *%r12
        ud2
        .cfi_endproc
        .size   loom__ctx_trampoline,.-loom__ctx_trampoline

        .section .note.GNU-stack,"",@progbits
