/* A recursion that runs a stack out: the fiber layer's guard test
 * (test-fiber.c) and the task overflow reports (stack-overflow.h) drive
 * it into the guard page. No includes: the fiber-only build uses it too. */
#ifndef LOOM_TESTS_DEEP_RECURSION_H
#define LOOM_TESTS_DEEP_RECURSION_H

/* Recurses half a KiB a frame until the stack runs out (the bound is never
 * reached); volatile, and used after the call, so that the compiler neither
 * drops the frames nor turns the recursion into a loop. */
static int recurse_deep(int n) {
  volatile char pad[512];
  pad[0] = (char)n;
  if (n > 100000000) return pad[0];
  return recurse_deep(n + 1) + pad[0];
}

#endif
