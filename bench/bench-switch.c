/* switch: the raw fiber switch, without any scheduler.
 *
 * A host (the thread's own stack) and one fiber ping-pong; one switch is one
 * direction, so a round trip counts two. Peers, in the same process:
 *   ucontext  swapcontext (saves and restores the signal mask: a syscall)
 *   fcontext  Boost.Context's jump_fcontext, declared here from C
 *             (built only when libboost_context links: BENCH_HAVE_FCONTEXT)
 * Target (docs/benchmarks.md): <= 15 ns per switch, >= 10x faster than ucontext.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "bench.h"
#include "fiber/fiber.h"

#define STACK_BYTES (64u * 1024u)

static void *map_stack(void) {
  void *p = mmap(NULL, STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    exit(1);
  }
  return p;
}

/* ---- loom ------------------------------------------------------------- */

static loom__fiber_t loom_host, loom_fib;

static void loom_body(void *arg) {
  (void)arg;
  loom__fiber_started();
  for (;;) loom__fiber_switch(&loom_fib, &loom_host);
}

static uint64_t run_loom(void *ctx, uint64_t n) {
  (void)ctx;
  uint64_t rounds = n / 2, t0 = bench_now_ns();
  for (uint64_t i = 0; i < rounds; i++) loom__fiber_switch(&loom_host, &loom_fib);
  return bench_now_ns() - t0;
}

static void loom_setup(void) {
  void *lo = map_stack();
  memset(&loom_host, 0, sizeof(loom_host));
  memset(&loom_fib, 0, sizeof(loom_fib));
  loom__fiber_init(&loom_fib, lo, STACK_BYTES, loom_body, NULL);
  loom_fib.name = "bench";
  /* The body runs once into its loop, so every measured switch is a
   * steady-state one. */
  loom__fiber_switch(&loom_host, &loom_fib);
}

/* ---- loom, fiber to fiber ------------------------------------------------- */
/* The switch the scheduler makes: a task hands the thread to another task
 * from the same place in the code (loom__suspend), so both sides of every
 * switch resume at the same return address. Two fibers run the same loop and
 * switch to each other; the host only starts and stops them. */

static loom__fiber_t sym_fib[2];
static uint64_t sym_left;

static void sym_body(void *arg) {
  int me = (int)(intptr_t)arg;
  loom__fiber_started();
  for (;;) {
    if (sym_left == 0) {
      loom__fiber_switch(&sym_fib[me], &loom_host);
      continue;
    }
    sym_left--;
    loom__fiber_switch(&sym_fib[me], &sym_fib[!me]);
  }
}

static uint64_t run_loom_sym(void *ctx, uint64_t n) {
  (void)ctx;
  sym_left = n;
  uint64_t t0 = bench_now_ns();
  loom__fiber_switch(&loom_host, &sym_fib[0]);
  return bench_now_ns() - t0;
}

static void sym_setup(void) {
  for (int i = 0; i < 2; i++) {
    memset(&sym_fib[i], 0, sizeof(sym_fib[i]));
    loom__fiber_init(&sym_fib[i], map_stack(), STACK_BYTES, sym_body,
                     (void *)(intptr_t)i);
  }
  sym_left = 1; /* run both into their loops once */
  loom__fiber_switch(&loom_host, &sym_fib[0]);
  sym_left = 1;
  loom__fiber_switch(&loom_host, &sym_fib[1]);
}

/* ---- loom, fiber to fiber from two different places ----------------------- */
/* The switch a producer and a consumer make: each calls the suspending
 * function from its own loop, so after every switch the CPU's return stack
 * holds the other fiber's call site and the return into the loop is
 * mispredicted. Nothing else differs from the figure above: this is the
 * floor under any strict one-item hand-off between two tasks, which costs
 * two such switches per item. */

static uint64_t two_left;

static __attribute__((noinline)) void two_wait(int me) {
  loom__fiber_switch(&sym_fib[me], two_left ? &sym_fib[!me] : &loom_host);
  __asm__ volatile("" ::: "memory"); /* keep the call a call, not a jump */
}

static void two_producer(void *arg) {
  (void)arg;
  loom__fiber_started();
  for (;;) {
    if (two_left) two_left--;
    two_wait(0);
  }
}

static void two_consumer(void *arg) {
  (void)arg;
  loom__fiber_started();
  for (;;) {
    if (two_left) two_left--;
    two_wait(1);
  }
}

static uint64_t run_loom_two(void *ctx, uint64_t n) {
  (void)ctx;
  two_left = n;
  uint64_t t0 = bench_now_ns();
  loom__fiber_switch(&loom_host, &sym_fib[0]);
  return bench_now_ns() - t0;
}

static void two_setup(void) {
  void (*body[2])(void *) = {two_producer, two_consumer};
  for (int i = 0; i < 2; i++) {
    memset(&sym_fib[i], 0, sizeof(sym_fib[i]));
    loom__fiber_init(&sym_fib[i], map_stack(), STACK_BYTES, body[i], NULL);
    two_left = 0; /* run each into its loop once */
    loom__fiber_switch(&loom_host, &sym_fib[i]);
  }
}

/* ---- ucontext ------------------------------------------------------------ */

static ucontext_t uc_host, uc_fib;

static void uc_body(void) {
  for (;;) swapcontext(&uc_fib, &uc_host);
}

static uint64_t run_ucontext(void *ctx, uint64_t n) {
  (void)ctx;
  uint64_t rounds = n / 2, t0 = bench_now_ns();
  for (uint64_t i = 0; i < rounds; i++) swapcontext(&uc_host, &uc_fib);
  return bench_now_ns() - t0;
}

static void uc_setup(void) {
  getcontext(&uc_fib);
  uc_fib.uc_stack.ss_sp = map_stack();
  uc_fib.uc_stack.ss_size = STACK_BYTES;
  uc_fib.uc_link = NULL;
  makecontext(&uc_fib, uc_body, 0);
  swapcontext(&uc_host, &uc_fib);
}

/* ---- Boost.Context fcontext ------------------------------------------- */

#ifdef BENCH_HAVE_FCONTEXT
typedef void *fcontext_t;
typedef struct {
  fcontext_t fctx;
  void *data;
} transfer_t;
extern transfer_t jump_fcontext(fcontext_t const to, void *vp);
extern fcontext_t make_fcontext(void *sp, size_t size, void (*fn)(transfer_t));

static fcontext_t fc_fib;

static void fc_body(transfer_t t) {
  for (;;) t = jump_fcontext(t.fctx, NULL);
}

static uint64_t run_fcontext(void *ctx, uint64_t n) {
  (void)ctx;
  uint64_t rounds = n / 2, t0 = bench_now_ns();
  fcontext_t f = fc_fib;
  for (uint64_t i = 0; i < rounds; i++) f = jump_fcontext(f, NULL).fctx;
  fc_fib = f;
  return bench_now_ns() - t0;
}

static void fc_setup(void) {
  char *lo = map_stack();
  /* make_fcontext takes the top of the stack. */
  fc_fib = make_fcontext(lo + STACK_BYTES, STACK_BYTES, fc_body);
  fc_fib = jump_fcontext(fc_fib, NULL).fctx;
}
#endif

int main(void) {
  loom_setup();
  uc_setup();
  sym_setup();
  bench_result_t loom = bench_measure(run_loom_sym, NULL, 1);
  bench_print("switch", "loom", &loom, "ns/switch");
  two_setup(); /* reuses sym_fib: after the measurement above */
  bench_result_t two = bench_measure(run_loom_two, NULL, 1);
  bench_print("switch", "loom-two-sites", &two, "ns/switch");
  bench_result_t ping = bench_measure(run_loom, NULL, 2);
  bench_print("switch", "loom-host-pingpong", &ping, "ns/switch");
  bench_result_t uc = bench_measure(run_ucontext, NULL, 2);
  bench_print("switch", "ucontext", &uc, "ns/switch");
#ifdef BENCH_HAVE_FCONTEXT
  fc_setup();
  bench_result_t fc = bench_measure(run_fcontext, NULL, 2);
  bench_print("switch", "boost-fcontext", &fc, "ns/switch");
#else
  printf("# switch: boost-fcontext skipped (libboost_context not found)\n");
#endif
  bench_ratio("switch", "ucontext", loom.median, uc.median);
#ifdef BENCH_HAVE_FCONTEXT
  bench_ratio("switch", "boost-fcontext", loom.median, fc.median);
#endif
  bench_ratio("switch", "loom-host-pingpong", loom.median, ping.median);
  bench_ratio("switch", "loom-two-sites", loom.median, two.median);
  bench_target("switch", loom.median, "loom", 15, "ns/switch");
  printf("target switch loom vs ucontext %.1fx faster (target >= 10x): %s\n",
         uc.median / loom.median, uc.median / loom.median >= 10 ? "met" : "NOT MET");
  return 0;
}
