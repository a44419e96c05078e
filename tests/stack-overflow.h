/* A task that overflows its stack, in a child process (the overflow ends
 * the process), for the tests of loom's report of it. Header-only: each
 * test program includes it once. */
#ifndef LOOM_TEST_STACK_OVERFLOW_H
#define LOOM_TEST_STACK_OVERFLOW_H

#include <stddef.h>

#include "deep-recursion.h"
#include "loom-child.h"
#include "loom.h"

static int overflow_recurse(void *arg) {
  (void)arg;
  return recurse_deep(0);
}

typedef struct {
  const char *name;
  size_t stack_size;
  loom_fn fn;
} overflow_task_t;

static inline int overflow_main(void *arg) {
  const overflow_task_t *o = arg;
  loom_task_opts_t opts = {.name = o->name, .stack_size = o->stack_size};
  loom_task_t *t;
  if (loom_spawn_ex(&t, o->fn, NULL, &opts) != 0) return -1;
  return loom_join(t, NULL);
}

/* Runs fn in a task named name with a stack of stack_size bytes, under
 * loom_run in a child process whose stderr goes into out: the child's wait
 * status. */
static inline int overflow_in_child(const char *name, size_t stack_size, loom_fn fn,
                                    char *out, size_t cap) {
  overflow_task_t o = {name, stack_size, fn};
  return run_loom_in_child(overflow_main, &o, out, cap);
}

#endif
