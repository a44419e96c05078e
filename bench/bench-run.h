/* bench-run.h: how most of loom's benchmark programs (bench-*.c) run their
 * main task: a runtime that fails ends the program with a message naming
 * it, exit status 1, before anything is printed on stdout.
 */
#ifndef LOOM_BENCH_RUN_H
#define LOOM_BENCH_RUN_H

#include <stdio.h>
#include <stdlib.h>

#include "loom.h"

static inline void bench_run(const char *prog, loom_fn main_fn, void *arg) {
  int rc = loom_run(main_fn, arg);
  if (rc) {
    fprintf(stderr, "%s: %s\n", prog, loom_strerror(rc));
    exit(1);
  }
}

#endif
