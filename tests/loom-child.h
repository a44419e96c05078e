/* loom_run in a child process, for the tests of what ends a process: a
 * report written on the way out, a signal, an abort. The child's stderr is
 * captured (run_in_child, helpers.h). Header-only: each test program
 * includes it once. */
#ifndef LOOM_TEST_LOOM_CHILD_H
#define LOOM_TEST_LOOM_CHILD_H

#include <stddef.h>

#include "helpers.h"
#include "loom.h"

typedef struct {
  loom_fn main;
  void *arg;
} loom_child_t;

static inline void loom_child_run(void *p) {
  loom_child_t *c = p;
  loom_run(c->main, c->arg);
}

/* Runs loom_run(main, arg) in a child process with its stderr captured
 * into out; returns the child's wait status. */
static inline int run_loom_in_child(loom_fn main, void *arg, char *out, size_t cap) {
  loom_child_t c = {main, arg};
  return run_in_child(loom_child_run, &c, out, cap);
}

#endif
