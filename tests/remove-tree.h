/* Removes a test program's scratch directory and all below it, at its
 * end: 0, or -1 after saying on stderr that it could not. */
#ifndef LOOM_TESTS_REMOVE_TREE_H
#define LOOM_TESTS_REMOVE_TREE_H

#include <stdio.h>
#include <stdlib.h>

static inline int remove_tree(const char *dir) {
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) == 0) return 0;
  fprintf(stderr, "could not remove %s\n", dir);
  return -1;
}

#endif
