/* Debug mode (docs/debug-mode.md): the slow-task report fires for a task
 * that runs 200 ms without suspending and not for many 1 ms ones; a task
 * never joined is reported with its spawn site; a lock held across a
 * suspension is reported with its holder; nothing is printed when debug
 * mode is off. Also: a task's stack ends at its entry for frame-pointer and
 * DWARF unwinders (perf -g), and under AddressSanitizer a report from
 * inside a task names the task.
 *
 * Reports go to stderr: each test sends stderr to a memory file while the
 * runtime runs and reads it back. The functions the reports must name are
 * global and the program exports its symbols (CMake ENABLE_EXPORTS), so
 * that dladdr can name them. Timing is tolerant: a slow task runs twice
 * the threshold and on until its report is out (a loaded machine may
 * starve the watchdog), and the quick ones a hundredth of it. */
#define _GNU_SOURCE
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/internal.h"
#include "harness.h"
#include "helpers.h"
#include "loom.h"
#include "loom/debug.h"

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif

/* ---- stderr into memory -------------------------------------------------- */

static int cap_fd = -1, saved_err = -1;
static char captured[65536];

static void capture_begin(void) {
  fflush(stderr);
  cap_fd = memfd_create("stderr", 0);
  assert_true(cap_fd >= 0);
  /* Appending: two runtimes' watchdogs may write at the same moment, and
   * without it a write at a shared offset can land on another's. */
  assert_int_equal(fcntl(cap_fd, F_SETFL, O_APPEND), 0);
  saved_err = dup(2);
  assert_true(saved_err >= 0);
  assert_true(dup2(cap_fd, 2) == 2);
}

static const char *capture_end(void) {
  fflush(stderr);
  dup2(saved_err, 2);
  close(saved_err);
  ssize_t n = pread(cap_fd, captured, sizeof(captured) - 1, 0);
  close(cap_fd);
  captured[n > 0 ? n : 0] = 0;
  /* Shown when a test fails, and with ctest -V. */
  if (n > 0) fprintf(stderr, "--- captured stderr ---\n%s--- end ---\n", captured);
  return captured;
}

static void unset_env(void) {
  unsetenv("LOOM_DEBUG");
  unsetenv("LOOM_DEBUG_SLOW_MS");
  unsetenv("LOOM_DEBUG_LOCK_MS");
}

/* Whether the captured stderr holds `text` yet (a report of the watchdog).
 * The buffer is per thread: two runtimes' tasks may look at once; not on
 * the task's stack, which may be the smallest. */
static int captured_has(const char *text) {
  static _Thread_local char seen[sizeof(captured)];
  ssize_t n = pread(cap_fd, seen, sizeof(seen) - 1, 0);
  seen[n > 0 ? n : 0] = 0;
  return strstr(seen, text) != NULL;
}

/* Whether the report that task `name` has been running is out. */
static int reported(const char *name) {
  static const char tail[] = "' has been running";
  char want[64];
  size_t k = strlen(name);
  assert_true(k + sizeof(tail) < sizeof(want)); /* the tests' short names */
  want[0] = '\'';
  memcpy(want + 1, name, k);
  memcpy(want + 1 + k, tail, sizeof(tail));
  return captured_has(want);
}

/* Busy for ms milliseconds without suspending the task (blocking the loop's
 * thread, as a blocking call in a task would), and with `until` (a task's
 * name) on until the report that that task has been running is out, for up
 * to a minute more: a watchdog starved of CPU on a loaded machine starts its
 * count afresh (it cannot vouch for what it did not see), so a task that
 * ran a fixed time could end before any report. The report is then missing
 * only if it never comes. Global and not inlined: the slow-task backtrace
 * must name it. The short blocking sleeps let the watchdog thread run under
 * Valgrind, which runs one thread at a time and hands over only when the
 * running one blocks. */
__attribute__((noinline)) void debug_test_spin(uint64_t ms, const char *until);
__attribute__((noinline)) void debug_test_spin(uint64_t ms, const char *until) {
  uint64_t now = uv_hrtime(), end = now + ms * 1000000, cap = end + 60000 * 1000000ull;
  uint64_t next_look = end;
  while (now < end || (until && now < cap)) {
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 50000};
    nanosleep(&pause, NULL);
    now = uv_hrtime();
    if (until && now >= next_look) {
      if (reported(until)) break;
      next_look = now + 1000000; /* a look a millisecond */
    }
  }
}

static int rc_enable;

/* ---- slow tasks ------------------------------------------------------------ */

static int busy_task(void *arg) {
  debug_test_spin((uint64_t)(uintptr_t)arg, NULL);
  return loom_yield();
}

/* Slow: 200 ms, and on until its report is out (debug_test_spin). arg: its
 * name, which the task is spawned with. */
static int slow_task(void *arg) {
  debug_test_spin(200, arg);
  return loom_yield();
}

static int slow_main(void *arg) {
  (void)arg;
  loom_debug_opts_t o = {.slow_task_ms = 100};
  rc_enable = loom_debug_enable(NULL, &o);
  loom_task_t *t;
  /* The smallest stack: the report may be written on it. */
  loom_task_opts_t to = {.name = "busy", .stack_size = LOOM_MIN_STACK_SIZE};
  loom_spawn_ex(&t, slow_task, "busy", &to);
  return loom_join(t, NULL);
}

static void test_slow_task_reported(void **state) {
  (void)state;
  unset_env();
  capture_begin();
  int rc = loom_run(slow_main, NULL);
  const char *out = capture_end();
  assert_loom_ok(rc);
  assert_loom_ok(rc_enable);
  assert_non_null(strstr(out, "'busy' has been running for at least "));
  assert_non_null(strstr(out, "without suspending (slow_task_ms 100); it is at:"));
  /* The backtrace was taken while it ran: it names the busy function. */
  assert_non_null(strstr(out, "debug_test_spin"));
  assert_non_null(strstr(out, "'busy' suspended after running at least "));
  /* The total is at least the threshold. */
  const char *p = strstr(out, "suspended after running at least ");
  assert_true(strtoull(p + strlen("suspended after running at least "), NULL, 10) >= 100);
}

/* A task run straight from a libuv callback (a read completes) takes
 * another path through the scheduler: reported the same way. */
static loom_stream_t *rd_stream;

static int reader_task(void *arg) {
  (void)arg;
  char c;
  ssize_t n = loom_read(rd_stream, &c, 1);
  if (n != 1) return (int)(n < 0 ? n : -1);
  debug_test_spin(200, "reader");
  return loom_yield();
}

static int slow_reader_main(void *arg) {
  (void)arg;
  loom_debug_opts_t o = {.slow_task_ms = 100};
  rc_enable = loom_debug_enable(NULL, &o);
  int fd = -1, rc = stream_pair(&rd_stream, &fd);
  if (rc) return rc;
  loom_task_t *t;
  loom_task_opts_t to = {.name = "reader"};
  loom_spawn_ex(&t, reader_task, NULL, &to);
  loom_yield(); /* it waits for the byte */
  if (write(fd, "x", 1) != 1) rc = -1;
  rc |= loom_join(t, NULL);
  close(fd);
  loom_close(rd_stream);
  return rc;
}

static void test_slow_task_run_from_a_callback_reported(void **state) {
  (void)state;
  unset_env();
  capture_begin();
  int rc = loom_run(slow_reader_main, NULL);
  const char *out = capture_end();
  assert_loom_ok(rc);
  assert_loom_ok(rc_enable);
  assert_non_null(strstr(out, "'reader' has been running for at least "));
  assert_non_null(strstr(out, "debug_test_spin"));
  assert_non_null(strstr(out, "'reader' suspended after running at least "));
}

static int quick_main(void *arg) {
  (void)arg;
  rc_enable = loom_debug_enable(NULL, NULL);
  /* 150 ms of work in all, 1 ms per activation. */
  enum { N = 150 };
  loom_task_t *t[N];
  for (int i = 0; i < N; i++) loom_spawn(&t[i], busy_task, (void *)(uintptr_t)1);
  int rc = 0;
  for (int i = 0; i < N; i++) rc |= loom_join(t[i], NULL);
  return rc;
}

static void test_quick_tasks_not_reported(void **state) {
  (void)state;
  unset_env();
  capture_begin();
  int rc = loom_run(quick_main, NULL);
  const char *out = capture_end();
  assert_loom_ok(rc);
  assert_loom_ok(rc_enable);
  assert_null(strstr(out, "has been running"));
  assert_null(strstr(out, "loom: debug:"));
}

/* A task that yields alone is suspending: not reported either. */
static int lone_yield_main(void *arg) {
  (void)arg;
  rc_enable = loom_debug_enable(NULL, NULL);
  uint64_t end = uv_hrtime() + 300 * 1000000ull;
  while (uv_hrtime() < end) {
    debug_test_spin(1, NULL);
    loom_yield();
  }
  return 0;
}

static void test_lone_yielding_task_not_reported(void **state) {
  (void)state;
  unset_env();
  capture_begin();
  int rc = loom_run(lone_yield_main, NULL);
  const char *out = capture_end();
  assert_loom_ok(rc);
  assert_loom_ok(rc_enable);
  assert_null(strstr(out, "has been running"));
}

/* Two runtimes on two threads, each in debug mode with a slow task: each
 * probe goes to its own runtime's thread, and each report names its task. */
static int named_slow_main(void *arg) {
  loom_debug_opts_t o = {.slow_task_ms = 100};
  int rc = loom_debug_enable(NULL, &o);
  if (rc) return rc;
  loom_task_t *t;
  loom_task_opts_t to = {.name = arg};
  loom_spawn_ex(&t, slow_task, arg, &to);
  return loom_join(t, NULL);
}

static void *runtime_thread(void *arg) {
  return (void *)(intptr_t)loom_run(named_slow_main, arg);
}

static void test_slow_tasks_of_two_runtimes(void **state) {
  (void)state;
  unset_env();
  capture_begin();
  pthread_t a, b;
  int ok = pthread_create(&a, NULL, runtime_thread, "busy-a") == 0;
  ok &= pthread_create(&b, NULL, runtime_thread, "busy-b") == 0;
  void *ra = (void *)1, *rb = (void *)1;
  pthread_join(a, &ra);
  pthread_join(b, &rb);
  const char *out = capture_end();
  assert_true(ok);
  assert_loom_ok((intptr_t)ra);
  assert_loom_ok((intptr_t)rb);
  assert_non_null(strstr(out, "'busy-a' has been running for at least "));
  assert_non_null(strstr(out, "'busy-b' has been running for at least "));
  assert_non_null(strstr(out, "'busy-a' suspended after running at least "));
  assert_non_null(strstr(out, "'busy-b' suspended after running at least "));
}

/* A task that runs long while probing another (a dump resumes the parked
 * task briefly to have it unwind its own stack): the report names the
 * prober and never shows the probed task's frames as the prober's. */
static loom_event_t parked_ev;
static int parked_woke;

__attribute__((noinline)) int debug_test_parked(void *arg);
__attribute__((noinline)) int debug_test_parked(void *arg) {
  (void)arg;
  int rc = loom_event_wait(&parked_ev);
  parked_woke++; /* not a tail call: the frame stays on the stack */
  return rc;
}

/* Whether the report on the prober has been written (stderr is the memory
 * file of capture_begin). */
static int prober_reported(void) {
  static char seen[sizeof(captured)];
  ssize_t n = pread(cap_fd, seen, sizeof(seen) - 1, 0);
  seen[n > 0 ? n : 0] = 0;
  return strstr(seen, "'prober' has been running") != NULL;
}

static int prober_task(void *arg) {
  loom_task_t *probed = loom__task_of(NULL, arg);
  void *pcs[32];
  /* Nearly all the time on the probed task's stack, until the watchdog has
   * reported (10 s at most). A clock read every 100 probes (it may be a
   * system call, where a signal would land) and a short blocking sleep
   * every 2 ms, which lets the watchdog run under Valgrind
   * (debug_test_spin). */
  uint64_t end = uv_hrtime() + 10000 * 1000000ull;
  for (uint64_t now = uv_hrtime(); now < end && !prober_reported();) {
    for (uint64_t until = now + 2 * 1000000ull; now < until; now = uv_hrtime())
      for (int i = 0; i < 100; i++)
        if (loom__backtrace_task(probed, pcs, 32) < 1) return -1;
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 50000};
    nanosleep(&pause, NULL);
  }
  return loom_yield();
}

static int probe_main(void *arg) {
  (void)arg;
  loom_debug_opts_t o = {.slow_task_ms = 50};
  rc_enable = loom_debug_enable(NULL, &o);
  loom_event_init(&parked_ev);
  parked_woke = 0;
  loom_task_t *parked, *prober;
  loom_spawn(&parked, debug_test_parked, NULL);
  loom_yield(); /* parked on the event */
  loom_task_opts_t to = {.name = "prober"};
  loom_spawn_ex(&prober, prober_task, parked, &to);
  int st = -1, rc = loom_join(prober, &st);
  loom_event_set(&parked_ev);
  int rc2 = loom_join(parked, NULL);
  return rc ? rc : st ? st : rc2;
}

static void test_slow_prober_not_blamed_for_probed_frames(void **state) {
  (void)state;
  unset_env();
  capture_begin();
  int rc = loom_run(probe_main, NULL);
  const char *out = capture_end();
  assert_loom_ok(rc);
  assert_loom_ok(rc_enable);
  assert_non_null(strstr(out, "'prober' has been running for at least "));
  assert_non_null(strstr(out, "'prober' suspended after running at least "));
  assert_null(strstr(out, "debug_test_parked"));
  assert_null(strstr(out, "probe_answer"));
  assert_int_equal(parked_woke, 1);
}

/* Enabling again changes the thresholds: a 200 ms task is not slow at 1 s. */
static int reenable_main(void *arg) {
  (void)arg;
  int rc = loom_debug_enable(NULL, NULL);
  loom_debug_opts_t o = {.slow_task_ms = 1000};
  rc |= loom_debug_enable(NULL, &o);
  if (rc) return rc;
  loom_task_t *t;
  loom_spawn(&t, busy_task, (void *)(uintptr_t)200);
  return loom_join(t, NULL);
}

static void test_enable_again_sets_thresholds(void **state) {
  (void)state;
  unset_env();
  capture_begin();
  int rc = loom_run(reenable_main, NULL);
  const char *out = capture_end();
  assert_loom_ok(rc);
  assert_null(strstr(out, "has been running"));
}

/* Lowering the threshold of a running debug mode (and a threshold of a
 * few ms) still reports: the watchdog samples at the new pace. It did not:
 * the old 12.5 ms period looked like a stall of the watchdog at every
 * sample of a 10 ms threshold. */
static int lower_main(void *arg) {
  uint64_t slow = (uint64_t)(uintptr_t)arg;
  int rc = loom_debug_enable(NULL, NULL);
  loom_debug_opts_t o = {.slow_task_ms = slow};
  rc |= loom_debug_enable(NULL, &o);
  if (rc) return rc;
  loom_task_t *t;
  loom_task_opts_t to = {.name = "busy"};
  loom_spawn_ex(&t, slow_task, "busy", &to);
  return loom_join(t, NULL);
}

static void test_lower_threshold_reports(void **state) {
  (void)state;
  uint64_t slows[] = {10, 4};
  for (int i = 0; i < 2; i++) {
    unset_env();
    capture_begin();
    int rc = loom_run(lower_main, (void *)(uintptr_t)slows[i]);
    const char *out = capture_end();
    assert_loom_ok(rc);
    assert_non_null(strstr(out, "'busy' has been running for at least "));
  }
}

/* ---- unjoined tasks -------------------------------------------------------- */

static int quick_task(void *arg) {
  (void)arg;
  return 0;
}

/* The spawn site the report names. */
__attribute__((noinline)) int debug_test_spawner(loom_task_t **t);
__attribute__((noinline)) int debug_test_spawner(loom_task_t **t) {
  loom_task_opts_t to = {.name = "forgotten"};
  return loom_spawn_ex(t, quick_task, NULL, &to);
}

static int unjoined_main(void *arg) {
  (void)arg;
  loom_task_t *t, *u;
  int rc = debug_test_spawner(&t); /* never joined */
  if (rc) return rc;
  rc = loom_spawn(&u, quick_task, NULL);
  if (rc) return rc;
  return loom_join(u, NULL);
}

static void test_unjoined_task_reported(void **state) {
  (void)state;
  unset_env();
  setenv("LOOM_DEBUG", "1", 1);
  harness_expect_leftovers();
  capture_begin();
  int rc = loom_run(unjoined_main, NULL);
  const char *out = capture_end();
  unset_env();
  assert_loom_ok(rc);
  assert_non_null(strstr(out, "task 'forgotten' was never joined nor detached"));
  assert_non_null(
      strstr(out, "'forgotten' (status 0) was spawned at debug_test_spawner+"));
  assert_non_null(strstr(out, ", running "));
  /* Only that one. */
  const char *first = strstr(out, "was spawned at");
  assert_null(strstr(first + 1, "was spawned at"));
}

/* ---- locks ------------------------------------------------------------------- */

static loom_lock_t lk;
static int lock_rc[4];

/* Holds lk for arg ms across a suspension; LONG_HOLD ms (past the 100 ms
 * lock_hold_ms of lock_main), and then on until the report that the lock is
 * still held is out, for up to a minute more: a watchdog starved of CPU on
 * a loaded machine may not look at the locks within a fixed time. */
#define LONG_HOLD 250
static int holder_task(void *arg) {
  uint64_t ms = (uint64_t)(uintptr_t)arg;
  int rc = loom_lock_acquire(&lk);
  if (rc) return rc;
  lock_rc[1] = loom_lock_locked(&lk);
  rc = loom_sleep(ms); /* suspends with the lock held */
  for (int i = 0; rc == 0 && ms == LONG_HOLD && i < 60000; i++) {
    if (captured_has("still held by task ")) break;
    rc = loom_sleep(1);
  }
  lock_rc[2] = loom_lock_release(&lk);
  return rc;
}

static int waiter_task(void *arg) {
  (void)arg;
  int rc = loom_lock_acquire(&lk);
  if (rc) return rc;
  return loom_lock_release(&lk);
}

static int lock_main(void *arg) {
  loom_debug_opts_t o = {.lock_hold_ms = 100, .slow_task_ms = 1000};
  lock_rc[0] = loom_debug_enable(NULL, &o);
  loom_lock_init(&lk);
  loom_task_t *h, *w;
  loom_task_opts_t to = {.name = "holder", .stack_size = LOOM_MIN_STACK_SIZE};
  loom_spawn_ex(&h, holder_task, arg, &to);
  loom_yield();
  loom_spawn(&w, waiter_task, NULL);
  int rc = loom_join(h, NULL);
  rc |= loom_join(w, NULL);
  lock_rc[3] = loom_lock_locked(&lk);
  return rc;
}

static void test_lock_held_across_suspension(void **state) {
  (void)state;
  unset_env();
  capture_begin();
  int rc = loom_run(lock_main, (void *)(uintptr_t)LONG_HOLD);
  const char *out = capture_end();
  assert_loom_ok(rc);
  assert_loom_ok(lock_rc[0]);
  assert_int_equal(lock_rc[1], 1);
  assert_loom_ok(lock_rc[2]);
  assert_int_equal(lock_rc[3], 0);
  char want[64];
  snprintf(want, sizeof(want), "loom: debug: lock %p still held by task ", (void *)&lk);
  assert_non_null(strstr(out, want));
  assert_non_null(strstr(out, "'holder' for "));
  assert_non_null(strstr(out, "ms across a suspension (lock_hold_ms 100)"));
  snprintf(want, sizeof(want), "lock %p released: it was held by task ", (void *)&lk);
  assert_non_null(strstr(out, want));
}

static void test_short_lock_hold_not_reported(void **state) {
  (void)state;
  unset_env();
  capture_begin();
  int rc = loom_run(lock_main, (void *)(uintptr_t)1);
  const char *out = capture_end();
  assert_loom_ok(rc);
  assert_null(strstr(out, "loom: debug:"));
}

/* ---- a starved loop thread ---------------------------------------------------- */

/* A machine short of CPU may leave the loop's thread waiting on a run
 * queue for longer than a threshold in the middle of a short activation:
 * that wait is not the task's, and is not counted. The hook makes the
 * watchdog believe the thread waited for a CPU all along (its run-queue
 * wait grows with the clock), so that a task that runs 300 ms and a lock
 * held 250 ms across a suspension are, as far as it can tell, the
 * machine's doing: nothing is reported. */
static uint64_t starved_all_along(void) { return uv_hrtime(); }

static int starved_main(void *arg) {
  (void)arg;
  loom_debug_opts_t o = {.slow_task_ms = 100, .lock_hold_ms = 100};
  rc_enable = loom_debug_enable(NULL, &o);
  loom_lock_init(&lk);
  loom_task_t *t, *h;
  loom_task_opts_t to = {.name = "busy"};
  loom_spawn_ex(&t, busy_task, (void *)(uintptr_t)300, &to);
  int rc = loom_join(t, NULL);
  /* 300 ms, past lock_hold_ms; not LONG_HOLD, with which the holder would
   * wait up to a minute for a report that must not come. */
  loom_spawn(&h, holder_task, (void *)(uintptr_t)300);
  return rc | loom_join(h, NULL);
}

static void test_starved_loop_thread_not_reported(void **state) {
  (void)state;
  unset_env();
  __atomic_store_n(&loom__debug_runq_hook, starved_all_along, __ATOMIC_RELEASE);
  capture_begin();
  int rc = loom_run(starved_main, NULL);
  const char *out = capture_end();
  __atomic_store_n(&loom__debug_runq_hook, NULL, __ATOMIC_RELEASE);
  assert_loom_ok(rc);
  assert_loom_ok(rc_enable);
  assert_loom_ok(lock_rc[2]);
  assert_null(strstr(out, "loom: debug:"));
}

/* Half the time on a run queue: a task that runs 600 ms has run 300 ms
 * of it, past the threshold, and is reported. */
static uint64_t starve_base;
static uint64_t starved_half(void) { return (uv_hrtime() - starve_base) / 2; }

static int half_starved_main(void *arg) {
  (void)arg;
  loom_debug_opts_t o = {.slow_task_ms = 100};
  rc_enable = loom_debug_enable(NULL, &o);
  loom_task_t *t;
  loom_task_opts_t to = {.name = "busy"};
  loom_spawn_ex(&t, slow_task, "busy", &to);
  return loom_join(t, NULL);
}

static void test_half_starved_slow_task_reported(void **state) {
  (void)state;
  unset_env();
  starve_base = uv_hrtime();
  __atomic_store_n(&loom__debug_runq_hook, starved_half, __ATOMIC_RELEASE);
  capture_begin();
  int rc = loom_run(half_starved_main, NULL);
  const char *out = capture_end();
  __atomic_store_n(&loom__debug_runq_hook, NULL, __ATOMIC_RELEASE);
  assert_loom_ok(rc);
  assert_loom_ok(rc_enable);
  assert_non_null(strstr(out, "'busy' has been running for at least "));
  assert_non_null(strstr(out, "'busy' suspended after running at least "));
}

/* ---- off by default ---------------------------------------------------------- */

static int enabled_seen = -1;

static int off_main(void *arg) {
  (void)arg;
  enabled_seen = loom_debug_enabled(NULL);
  loom_task_t *t, *h;
  loom_task_opts_t to = {.name = "busy"};
  loom_spawn_ex(&t, busy_task, (void *)(uintptr_t)200, &to);
  loom_lock_init(&lk);
  loom_spawn(&h, holder_task, (void *)(uintptr_t)150);
  int rc = loom_join(t, NULL);
  return rc | loom_join(h, NULL);
}

static void test_off_by_default_prints_nothing(void **state) {
  (void)state;
  unset_env();
  capture_begin();
  int rc = loom_run(off_main, NULL);
  const char *out = capture_end();
  assert_loom_ok(rc);
  assert_int_equal(enabled_seen, 0);
  assert_string_equal(out, "");
}

static int env_main(void *arg) {
  (void)arg;
  enabled_seen = loom_debug_enabled(NULL);
  int rc = loom_debug_disable(NULL);
  if (rc) return rc;
  return loom_debug_enabled(NULL); /* 0 */
}

static void test_env_turns_it_on(void **state) {
  (void)state;
  unset_env();
  setenv("LOOM_DEBUG", "1", 1);
  int rc = loom_run(env_main, NULL);
  unset_env();
  assert_loom_ok(rc);
  assert_int_equal(enabled_seen, 1);
  setenv("LOOM_DEBUG", "0", 1);
  rc = loom_run(env_main, NULL);
  unset_env();
  assert_loom_ok(rc);
  assert_int_equal(enabled_seen, 0);
}

static void test_enable_outside_a_runtime(void **state) {
  (void)state;
  assert_loom_err(loom_debug_enable(NULL, NULL), UV_EINVAL);
  assert_loom_err(loom_debug_disable(NULL), UV_EINVAL);
  assert_int_equal(loom_debug_enabled(NULL), 0);
}

/* ---- the checks at the end of a pass ----------------------------------------- */

/* Debug mode checks every live task when a pass ends, tasks spawned but not
 * started included. Those have no stack yet: with every stack unguarded,
 * reading their canary read address 0. A pass ends after 1,024 rounds at
 * most, so 3,000 spawn-and-yield rounds end passes with a task queued. */
static int empty_task(void *arg) {
  (void)arg;
  return 0;
}

static int unstarted_main(void *arg) {
  (void)arg;
  for (int i = 0; i < 3000; i++) {
    int rc = loom_spawn(NULL, empty_task, NULL);
    if (!rc) rc = loom_yield();
    if (rc) return rc;
  }
  return 0;
}

static void test_pass_checks_skip_unstarted_tasks(void **state) {
  (void)state;
  unset_env();
  setenv("LOOM_DEBUG", "1", 1);
  loom__stack_set_guard_budget(1); /* every new slab unguarded */
  int rc = loom_run(unstarted_main, NULL);
  loom__stack_set_guard_budget(0);
  unset_env();
  assert_loom_ok(rc);
}

/* ---- a task's stack ends at its entry ---------------------------------------- */

static int walk_steps = -1, bt_frames = -1;
static void *walk_last_ret;

/* Follows the frame-pointer chain as perf -g does: each frame's saved frame
 * pointer, up the stack, until a zero one. */
__attribute__((noinline)) static void walk(void) {
  void **fp = __builtin_frame_address(0);
  for (int i = 0; i < 64; i++) {
    void **next = fp[0];
    walk_last_ret = fp[1];
    if (!next) {
      walk_steps = i + 1;
      return;
    }
    /* Up the stack, and within one task stack. */
    if (next <= fp || (char *)next - (char *)fp > (1 << 20)) return;
    fp = next;
  }
}

__attribute__((noinline)) static void unwind(void) {
  void *pcs[64];
  bt_frames = backtrace(pcs, 64);
  walk();
}

static int unwind_task(void *arg) {
  (void)arg;
  unwind();
  return 0;
}

static int unwind_main(void *arg) {
  (void)arg;
  loom_task_t *t;
  loom_spawn(&t, unwind_task, NULL);
  return loom_join(t, NULL);
}

static void test_task_stack_ends_at_entry(void **state) {
  (void)state;
  assert_loom_ok(loom_run(unwind_main, NULL));
  /* walk, unwind, unwind_task, the runtime's entry: then a zero frame
   * pointer (a few more frames if the compiler kept some inline). */
  assert_true(walk_steps >= 2 && walk_steps <= 8);
  assert_non_null(walk_last_ret);
  /* The DWARF unwinder stops at the trampoline, whose return address is
   * undefined: a handful of frames, not a walk into the stack's data. */
  assert_true(bt_frames >= 3 && bt_frames <= 10);
}

/* ---- AddressSanitizer names the task ----------------------------------------- */

#ifdef TEST_ASAN
static int overflow_task(void *arg) {
  (void)arg;
  char *volatile p = malloc(8);
  volatile int i = 8;
  p[i] = 1; /* heap-buffer-overflow */
  free(p);
  return 0;
}

static int asan_main(void *arg) {
  (void)arg;
  loom_task_t *t;
  loom_task_opts_t to = {.name = "culprit"};
  loom_spawn_ex(&t, overflow_task, NULL, &to);
  return loom_join(t, NULL);
}

static void test_asan_report_names_the_task(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(stderr);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    loom_run(asan_main, NULL);
    _exit(0); /* not reached: ASan ends the process */
  }
  close(fds[1]);
  size_t n = 0;
  ssize_t k;
  while (n < sizeof(captured) - 1 &&
         (k = read(fds[0], captured + n, sizeof(captured) - 1 - n)) > 0)
    n += (size_t)k;
  captured[n] = 0;
  close(fds[0]);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_false(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  assert_non_null(strstr(captured, "heap-buffer-overflow"));
  assert_non_null(strstr(captured, "loom: the error happened in task "));
  assert_non_null(strstr(captured, " 'culprit'"));
}
#endif

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_slow_task_reported),
      cmocka_unit_test(test_slow_task_run_from_a_callback_reported),
      cmocka_unit_test(test_slow_tasks_of_two_runtimes),
      cmocka_unit_test(test_slow_prober_not_blamed_for_probed_frames),
      cmocka_unit_test(test_enable_again_sets_thresholds),
      cmocka_unit_test(test_lower_threshold_reports),
      cmocka_unit_test(test_quick_tasks_not_reported),
      cmocka_unit_test(test_lone_yielding_task_not_reported),
      cmocka_unit_test(test_unjoined_task_reported),
      cmocka_unit_test(test_lock_held_across_suspension),
      cmocka_unit_test(test_short_lock_hold_not_reported),
      cmocka_unit_test(test_starved_loop_thread_not_reported),
      cmocka_unit_test(test_half_starved_slow_task_reported),
      cmocka_unit_test(test_off_by_default_prints_nothing),
      cmocka_unit_test(test_env_turns_it_on),
      cmocka_unit_test(test_enable_outside_a_runtime),
      cmocka_unit_test(test_pass_checks_skip_unstarted_tasks),
      cmocka_unit_test(test_task_stack_ends_at_entry),
#ifdef TEST_ASAN
      cmocka_unit_test(test_asan_report_names_the_task),
#endif
  };
  return HARNESS_RUN(tests);
}
