/* Internal invariant checks.
 *
 * loom__assert(cond, msg) guards what must never happen inside loom itself,
 * whatever the program does through the public API: a task parked twice, a
 * wake-up for a task that has ended, a timer taken out of the heap when it
 * is not in it, a list node linked twice. Each of these corrupts memory far
 * from its cause, so debug and sanitizer builds (LOOM_DEBUG=1, set by the
 * build for CMAKE_BUILD_TYPE=Debug and LOOM_SANITIZE=ON) stop at once with
 * the place and the broken rule; release builds compile the checks out and
 * never evaluate `cond`. Misuse the public API can report is an error code,
 * not an assertion.
 */
#ifndef LOOM_CORE_ASSERT_H
#define LOOM_CORE_ASSERT_H

#if defined(LOOM_DEBUG) && LOOM_DEBUG

#include <stdio.h>
#include <stdlib.h>

/* Out of line in spirit (cold, never returns): the check itself stays one
 * compare and a branch in the callers. */
__attribute__((cold, noreturn)) static inline void loom__assert_fail(const char *msg,
                                                                     const char *file,
                                                                     int line) {
  fprintf(stderr, "loom: internal check failed at %s:%d: %s\n", file, line, msg);
  fflush(stderr);
  abort();
}

#define loom__assert(cond, msg) \
  ((cond) ? (void)0 : loom__assert_fail((msg), __FILE__, __LINE__))

#else

/* sizeof: `cond` is type-checked but never evaluated. */
#define loom__assert(cond, msg) ((void)sizeof((cond) ? 1 : 0), (void)(msg))

#endif

#endif
