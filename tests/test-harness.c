/* The test harness checks itself: a test that leaks an allocation, leaves
 * a task unjoined, leaves an I/O object or a libuv handle for loom to
 * close, or leaves a runtime attached must fail, by name, with a message
 * that says what it left; a test that says it leaves things on purpose
 * (harness_expect_leftovers) and a clean test must pass; assertions on
 * error codes name both codes.
 *
 * The leaky tests run in a child: this program runs itself with the
 * argument "leaky" and LOOM_TEST_FILTER set to one of them, and the test
 * reads what the child printed and how it exited. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"

/* ---- the leaky tests (run in the child) ------------------------------------ */

static int child_ok(void *arg) {
  (void)arg;
  return 0;
}

static int main_spawns_and_forgets(void *arg) {
  (void)arg;
  loom_task_t *t;
  int rc = loom_spawn_ex(&t, child_ok, NULL,
                         &(loom_task_opts_t){.name = "forgotten", .stack_size = 0});
  return rc;
}

static int main_joins(void *arg) {
  (void)arg;
  loom_task_t *t;
  int rc = loom_spawn(&t, child_ok, NULL);
  return rc ? rc : loom_join(t, NULL);
}

static int main_listens_and_returns(void *arg) {
  (void)arg;
  loom_listener_t *l;
  return loom_tcp_listen(&l, "127.0.0.1", 0, 16);
}

static uv_timer_t raw_timer;
static void on_raw_timer(uv_timer_t *h) { (void)h; }
static int main_leaves_timer(void *arg) {
  (void)arg;
  uv_timer_init(loom_loop(loom_runtime()), &raw_timer);
  return uv_timer_start(&raw_timer, on_raw_timer, 100000, 100000);
}

static void *kept_block;
static void leaky_malloc(void **state) {
  (void)state;
  kept_block = malloc(24);
  assert_non_null(kept_block);
}

static void leaky_task(void **state) {
  (void)state;
  assert_loom_ok(loom_run(main_spawns_and_forgets, NULL));
}

static void leaky_listener(void **state) {
  (void)state;
  assert_loom_ok(loom_run(main_listens_and_returns, NULL));
}

static void leaky_handle(void **state) {
  (void)state;
  assert_loom_ok(loom_run(main_leaves_timer, NULL));
}

static uv_loop_t kept_loop;
static void leaky_runtime(void **state) {
  (void)state;
  loom_t *rt;
  assert_loom_ok(uv_loop_init(&kept_loop));
  assert_loom_ok(loom_init(&rt, &kept_loop, NULL));
}

static void leaky_on_purpose(void **state) {
  (void)state;
  harness_expect_leftovers();
  assert_loom_ok(loom_run(main_spawns_and_forgets, NULL));
  assert_loom_ok(loom_run(main_listens_and_returns, NULL));
}

static void clean(void **state) {
  (void)state;
  assert_loom_ok(loom_run(main_joins, NULL));
}

static void wrong_code(void **state) {
  (void)state;
  assert_loom_err(UV_ECANCELED, UV_ETIMEDOUT);
}

static int run_leaky(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(leaky_malloc),   cmocka_unit_test(leaky_task),
      cmocka_unit_test(leaky_listener), cmocka_unit_test(leaky_handle),
      cmocka_unit_test(leaky_runtime),  cmocka_unit_test(leaky_on_purpose),
      cmocka_unit_test(clean),          cmocka_unit_test(wrong_code),
  };
  return HARNESS_RUN(tests);
}

/* ---- the checks (run here) -------------------------------------------------- */

static const char *self_path;

/* Runs the leaky test `name` in a child; its output in out, its exit
 * status (cmocka's count of failed tests) returned. */
static int run_child(const char *name, char *out, size_t cap) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    setenv("LOOM_TEST_FILTER", name, 1);
    /* The leaks are on purpose: no LeakSanitizer report at exit. */
    setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
    execl(self_path, self_path, "leaky", (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  size_t n = 0;
  ssize_t r;
  char sink[256];
  /* Read to the end, keeping what fits: a child blocked on a full pipe
   * would never exit. */
  while ((r = n + 1 < cap ? read(fds[0], out + n, cap - 1 - n)
                          : read(fds[0], sink, sizeof(sink))) > 0)
    if (n + 1 < cap) n += (size_t)r;
  out[n] = 0;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void expect(const char *name, int failed, const char *says) {
  char out[8192];
  int rc = run_child(name, out, sizeof(out));
  if (rc != failed || (says && !strstr(out, says)))
    print_error("%s: exit %d (want %d), output:\n%s\n", name, rc, failed, out);
  assert_int_equal(rc, failed);
  if (says) assert_non_null(strstr(out, says));
}

static void test_leaked_block_fails(void **state) {
  (void)state;
  expect("leaky_malloc", 1, "1 block(s) allocated and not freed");
}

static void test_unjoined_task_fails(void **state) {
  (void)state;
  expect("leaky_task", 1, "task 'forgotten' was never joined nor detached");
}

static void test_listener_left_open_fails(void **state) {
  (void)state;
  expect("leaky_listener", 1, "loom's shutdown closed a listener the program left open");
}

static void test_raw_handle_left_fails(void **state) {
  (void)state;
  expect("leaky_handle", 1, "a libuv timer handle was left on the loop");
}

static void test_runtime_left_attached_fails(void **state) {
  (void)state;
  expect("leaky_runtime", 1, "a runtime is still attached to the thread");
  expect("leaky_runtime", 1, "1 libuv loop(s) initialised and not closed");
}

static void test_leftovers_on_purpose_pass(void **state) {
  (void)state;
  expect("leaky_on_purpose", 0, NULL);
  expect("clean", 0, NULL);
}

static void test_codes_by_name(void **state) {
  (void)state;
  expect("wrong_code", 1, "UV_ECANCELED: got ECANCELED (-125), want ETIMEDOUT (-110)");
  char buf[64];
  char want[64];
  snprintf(want, sizeof(want), "LOOM_EBUSY (%d)", LOOM_EBUSY);
  assert_string_equal(harness_code_str(LOOM_EBUSY, buf, sizeof(buf)), want);
  assert_string_equal(harness_code_str(7, buf, sizeof(buf)), "7");
}

int main(int argc, char **argv) {
  self_path = argv[0];
  if (argc > 1 && strcmp(argv[1], "leaky") == 0) return run_leaky();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_leaked_block_fails),
      cmocka_unit_test(test_unjoined_task_fails),
      cmocka_unit_test(test_listener_left_open_fails),
      cmocka_unit_test(test_raw_handle_left_fails),
      cmocka_unit_test(test_runtime_left_attached_fails),
      cmocka_unit_test(test_leftovers_on_purpose_pass),
      cmocka_unit_test(test_codes_by_name),
  };
  return HARNESS_RUN(tests);
}
