/* RUNNING_ON_VALGRIND for tests that widen their bounds or sample less
 * under Valgrind: Valgrind's own macro where its header was found at
 * configure time (LOOM_HAVE_VALGRIND), else 0. */
#ifndef LOOM_TESTS_ON_VALGRIND_H
#define LOOM_TESTS_ON_VALGRIND_H

#ifdef LOOM_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#endif
