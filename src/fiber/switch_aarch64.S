/* Context switch for aarch64, AAPCS64.
 *
 * Saves only what the ABI makes callee-saved: x19-x28, the frame pointer
 * x29, the link register x30 and the low halves d8-d15 of v8-v15.
 *
 * Saved frame, at the stored stack pointer (160 bytes, 16-byte aligned):
 *
 *   +0   x19 x20    +16  x21 x22    +32  x23 x24    +48  x25 x26
 *   +64  x27 x28    +80  x29 x30    +96  d8  d9     +112 d10 d11
 *   +128 d12 d13    +144 d14 d15
 *
 * void loom__ctx_switch(loom__ctx_t *from, loom__ctx_t *to)
 *   x0 = from (stack pointer stored at offset 0), x1 = to
 */
        .text
        .globl  loom__ctx_switch
        .hidden loom__ctx_switch
        .type   loom__ctx_switch,%function
        .p2align 4
loom__ctx_switch:
        sub     sp, sp, #160
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8,  d9,  [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mov     x9, sp
        str     x9, [x0]
        ldr     x9, [x1]
        mov     sp, x9
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8,  d9,  [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #160
        ret
        .size   loom__ctx_switch,.-loom__ctx_switch

/* First code a new fiber runs: loom__ctx_make leaves fn in x19 and its
 * argument in x20, and points x30 here. fn never returns; brk traps if it
 * does. The outermost frame of every task: its return address column is
 * undefined (so DWARF unwinders, perf --call-graph=dwarf and gdb stop
 * here) and the frame pointer is zero (so frame-pointer walks, perf -g,
 * stop at the task's entry function). */
        .globl  loom__ctx_trampoline
        .hidden loom__ctx_trampoline
        .type   loom__ctx_trampoline,%function
        .p2align 4
loom__ctx_trampoline:
        .cfi_startproc
        .cfi_undefined x30
        mov     x29, #0
        mov     x0, x20
        blr     x19
        brk     #0
        .cfi_endproc
        .size   loom__ctx_trampoline,.-loom__ctx_trampoline

        .section .note.GNU-stack,"",%progbits
