/* The test harness every test program shares: one runner for main() and
 * assertions on error codes that print them by name.
 *
 * The runner (harness_run) runs a cmocka group the way every test program
 * used to by hand: LOOM_TEST_FILTER=<glob> selects tests by name. Around
 * each test it checks that the test left nothing behind, and fails that
 * very test if it did:
 *   - allocations: every malloc/calloc/realloc/free of the test program and
 *     of loom's static library goes through a counting allocator
 *     (harness-alloc.c, linked with -Wl,--wrap), and so does libuv's
 *     (uv_replace_allocator); the count of live blocks after the test must
 *     equal the count before it;
 *   - loops and handles: every uv_loop_t initialised during the test (the
 *     one loom_run makes, or the test's own host loop) must have been closed,
 *     with no handle left on it. loom_run closes the handles a program left
 *     behind and loom's shutdown closes the I/O objects it left open: both
 *     count as leaks, although loom tidies them up;
 *   - tasks: no task may be left unjoined and undetached, and no runtime may
 *     be left attached to the thread (loom_init without loom_shutdown).
 * A test that leaves such things behind on purpose (to test loom's clean-up)
 * calls harness_expect_leftovers(); allocations, loops and runtimes are
 * still checked.
 *
 * Only the main stack may fail an assertion (cmocka longjmps): tasks record
 * what they see and the test asserts once loom_run has returned. */
#ifndef LOOM_TEST_HARNESS_H
#define LOOM_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* Runs the group (LOOM_TEST_FILTER applies) with the per-test checks; the
 * result is main's exit status. */
int harness_run(const struct CMUnitTest *tests, size_t n);
#define HARNESS_RUN(tests) harness_run((tests), sizeof(tests) / sizeof((tests)[0]))

/* Called by a test that leaves tasks, I/O objects or libuv handles for loom
 * to clean up on purpose: its allocations, loops and runtimes are still
 * checked. */
void harness_expect_leftovers(void);

/* rc must be 0 / must be the error code want; a failure names both codes:
 *   loom_join(t, &st): got ECANCELED (-125), want ETIMEDOUT (-110) */
#define assert_loom_ok(rc) harness_assert_code((long)(rc), 0, #rc, __FILE__, __LINE__)
#define assert_loom_err(rc, want) \
  harness_assert_code((long)(rc), (long)(want), #rc, __FILE__, __LINE__)
void harness_assert_code(long got, long want, const char *expr, const char *file,
                         int line);

/* "ECANCELED (-125)", or the number alone when it is not negative. */
const char *harness_code_str(long code, char *buf, size_t cap);

/* ---- the counting allocator (harness-alloc.c) ---------------------------- */

/* Blocks allocated and not yet freed, by every thread, since the program
 * started (loom's code, the test's and libuv's). */
long harness_alloc_live(void);

enum { HARNESS_MALLOC = 1, HARNESS_CALLOC, HARNESS_REALLOC };

/* Allocation-failure tests (test-misuse, test-faults) install hooks.
 * should_fail: called before every allocation, 1 fails it (returns NULL).
 *   kind: HARNESS_MALLOC/CALLOC/REALLOC; from_uv: libuv's allocation.
 *   libuv's reallocs are never offered: libuv aborts when its fd-watcher
 *   array cannot grow (uv__io_start).
 * watch: told of each block that comes (allocated) and goes (freed); either
 *   may be NULL (a realloc reports both). */
typedef struct {
  int (*should_fail)(int kind, int from_uv);
  void (*watch)(void *freed, void *allocated, int from_uv);
} harness_alloc_hooks_t;
void harness_alloc_set_hooks(const harness_alloc_hooks_t *hooks); /* NULL: none */

/* The runner's: routes libuv's allocations through the count. */
void harness__alloc_install(void);

#endif
