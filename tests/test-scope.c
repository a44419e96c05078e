/* Timeout and shield scopes: firing, nesting in both orders, rescheduling,
 * expired-at-entry, shields in cancelled tasks, misuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"

typedef struct {
  int rc[8];
  uint64_t ms[4];
} rec_t;

static rec_t r;

static void reset(void) { memset(&r, 0x55, sizeof(r)); }

static void run(loom_fn fn) {
  reset();
  assert_loom_ok(loom_run(fn, NULL));
}

/* ---- a single scope -------------------------------------------------------------- */

static int fires_main(void *arg) {
  (void)arg;
  loom_scope_t s;
  uint64_t t0 = wall_ms();
  r.rc[0] = loom_timeout_enter(&s, 30);
  r.rc[1] = loom_sleep(5000);
  r.ms[0] = wall_ms() - t0;
  r.rc[2] = loom_sleep(1); /* still expired: level-triggered */
  r.rc[3] = loom_yield();
  r.rc[4] = loom_scope_expired(&s);
  r.rc[5] = loom_scope_exit(&s);
  r.rc[6] = loom_sleep(1); /* outside the scope again */
  return 0;
}
static void test_timeout_fires(void **state) {
  (void)state;
  run(fires_main);
  assert_loom_ok(r.rc[0]);
  assert_loom_err(r.rc[1], UV_ETIMEDOUT);
  assert_true(r.ms[0] < 2000);
  assert_loom_err(r.rc[2], UV_ETIMEDOUT);
  assert_loom_err(r.rc[3], UV_ETIMEDOUT);
  assert_int_equal(r.rc[4], 1);
  assert_loom_err(r.rc[5], UV_ETIMEDOUT);
  assert_loom_ok(r.rc[6]);
}

static int not_fired_main(void *arg) {
  (void)arg;
  loom_scope_t s;
  loom_timeout_enter(&s, 5000);
  r.rc[0] = loom_sleep(10);
  r.rc[1] = loom_scope_expired(&s);
  r.rc[2] = loom_scope_exit(&s);
  loom_timeout_enter_at(&s, loom_now() + 20);
  r.rc[3] = loom_sleep(5000);
  r.rc[4] = loom_scope_exit(&s);
  return 0;
}
static void test_timeout_not_fired_and_absolute(void **state) {
  (void)state;
  run(not_fired_main);
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_loom_ok(r.rc[2]);
  assert_loom_err(r.rc[3], UV_ETIMEDOUT);
  assert_loom_err(r.rc[4], UV_ETIMEDOUT);
}

static int already_expired_main(void *arg) {
  (void)arg;
  loom_scope_t s;
  loom_timeout_enter(&s, 0);
  r.rc[0] = loom_scope_expired(&s); /* expired, but nothing suspended yet */
  r.rc[1] = loom_yield();           /* the first suspension fails */
  r.rc[2] = loom_scope_exit(&s);
  loom_timeout_enter_at(&s, loom_now() > 5 ? loom_now() - 5 : 0);
  r.rc[3] = loom_sleep(1000);
  r.rc[4] = loom_scope_exit(&s);
  return 0;
}
static void test_expired_at_entry(void **state) {
  (void)state;
  run(already_expired_main);
  assert_int_equal(r.rc[0], 1);
  assert_loom_err(r.rc[1], UV_ETIMEDOUT);
  assert_loom_err(r.rc[2], UV_ETIMEDOUT);
  assert_loom_err(r.rc[3], UV_ETIMEDOUT);
  assert_loom_err(r.rc[4], UV_ETIMEDOUT);
}

static int reschedule_main(void *arg) {
  (void)arg;
  loom_scope_t s;
  loom_timeout_enter(&s, 20);
  r.rc[0] = loom_scope_reschedule(&s, 300); /* pushed out */
  r.rc[1] = loom_sleep(60);
  uint64_t t0 = wall_ms();
  r.rc[2] = loom_scope_reschedule(&s, 10); /* pulled in */
  r.rc[3] = loom_sleep(5000);
  r.ms[0] = wall_ms() - t0;
  r.rc[4] = loom_scope_reschedule(&s, 1000); /* too late: it expired */
  r.rc[5] = loom_scope_exit(&s);
  loom_timeout_enter(&s, LOOM_NO_DEADLINE);
  r.rc[6] = loom_scope_deadline(&s) == LOOM_NO_DEADLINE;
  loom_scope_reschedule_at(&s, loom_now() + 10);
  r.rc[7] = loom_sleep(5000);
  loom_scope_exit(&s);
  return 0;
}
static void test_reschedule_from_inside(void **state) {
  (void)state;
  run(reschedule_main);
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_loom_ok(r.rc[2]);
  assert_loom_err(r.rc[3], UV_ETIMEDOUT);
  assert_true(r.ms[0] < 2000);
  assert_loom_err(r.rc[4], UV_EINVAL);
  assert_loom_err(r.rc[5], UV_ETIMEDOUT);
  assert_int_equal(r.rc[6], 1);
  assert_loom_err(r.rc[7], UV_ETIMEDOUT);
}

/* ---- nesting -------------------------------------------------------------------------- */

static int inner_first_main(void *arg) {
  (void)arg;
  loom_scope_t outer, inner;
  loom_timeout_enter(&outer, 5000);
  loom_timeout_enter(&inner, 20);
  r.rc[0] = loom_sleep(5000);
  r.rc[1] = loom_scope_exit(&inner);
  r.rc[2] = loom_scope_expired(&outer); /* untouched */
  r.rc[3] = loom_sleep(1);
  r.rc[4] = loom_scope_exit(&outer);
  return 0;
}
static void test_nested_inner_fires(void **state) {
  (void)state;
  run(inner_first_main);
  assert_loom_err(r.rc[0], UV_ETIMEDOUT);
  assert_loom_err(r.rc[1], UV_ETIMEDOUT);
  assert_loom_ok(r.rc[2]);
  assert_loom_ok(r.rc[3]);
  assert_loom_ok(r.rc[4]);
}

static int outer_first_main(void *arg) {
  (void)arg;
  loom_scope_t outer, inner;
  loom_timeout_enter(&outer, 20);
  loom_timeout_enter(&inner, 500);
  r.rc[0] = loom_sleep(5000); /* the outer one fires */
  r.rc[1] = loom_scope_expired(&inner);
  r.rc[2] = loom_sleep(600);         /* inner expires too, meanwhile */
  r.rc[3] = loom_scope_exit(&inner); /* beaten by the outer: not fired */
  r.rc[4] = loom_scope_exit(&outer);
  return 0;
}
static void test_nested_outer_fires_first(void **state) {
  (void)state;
  run(outer_first_main);
  assert_loom_err(r.rc[0], UV_ETIMEDOUT);
  assert_loom_ok(r.rc[1]);
  assert_loom_err(r.rc[2], UV_ETIMEDOUT);
  assert_loom_ok(r.rc[3]);
  assert_loom_err(r.rc[4], UV_ETIMEDOUT);
}

/* Equal deadlines fire in the order they were set, whichever scope they
 * belong to: the inner scope's deadline was set first, so it fires (and
 * counts as fired at exit), then the outer one rescheduled to the same
 * instant. */
static int tie_main(void *arg) {
  (void)arg;
  loom_scope_t outer, inner;
  uint64_t now = loom_now();
  loom_timeout_enter_at(&outer, now + 1000);
  loom_timeout_enter_at(&inner, now + 30);
  r.rc[0] = loom_scope_reschedule_at(&outer, now + 30);
  r.rc[1] = loom_sleep(2000);
  r.rc[2] = loom_scope_exit(&inner);
  r.rc[3] = loom_scope_exit(&outer);
  return 0;
}
static void test_equal_deadlines_fire_in_order_set(void **state) {
  (void)state;
  run(tie_main);
  assert_loom_ok(r.rc[0]);
  assert_loom_err(r.rc[1], UV_ETIMEDOUT);
  assert_loom_err(r.rc[2], UV_ETIMEDOUT); /* the inner one fired */
  assert_loom_err(r.rc[3], UV_ETIMEDOUT); /* then the outer one */
}

static int cancel_beats_main(void *arg) {
  (void)arg;
  loom_scope_t s;
  loom_timeout_enter(&s, 0);
  loom_cancel(loom_current());
  r.rc[0] = loom_sleep(10);      /* cancellation beats the inner timeout */
  r.rc[1] = loom_scope_exit(&s); /* expired at entry, before the cancel */
  return 0;
}
static void test_cancellation_beats_timeout(void **state) {
  (void)state;
  run(cancel_beats_main);
  assert_loom_err(r.rc[0], UV_ECANCELED);
  assert_loom_err(r.rc[1], UV_ETIMEDOUT);
}

/* ---- shields -------------------------------------------------------------------------------- */

static int shielded_cleanup(void *arg) {
  (void)arg;
  r.rc[0] = loom_sleep(5000); /* cancelled here */
  loom_scope_t sh;
  loom_shield_enter(&sh);
  uint64_t t0 = wall_ms();
  r.rc[1] = loom_sleep(30); /* cleanup I/O still works */
  r.ms[0] = wall_ms() - t0;
  r.rc[2] = loom_scope_exit(&sh);
  r.rc[3] = loom_sleep(1); /* and the cancellation is back */
  loom_shield_enter_timeout(&sh, 20);
  r.rc[4] = loom_sleep(5000); /* a shield's own timeout still applies */
  r.rc[5] = loom_scope_exit(&sh);
  return r.rc[0];
}
static int shield_main(void *arg) {
  (void)arg;
  loom_task_t *t;
  loom_spawn(&t, shielded_cleanup, NULL);
  loom_sleep(10);
  loom_cancel(t);
  int st;
  r.rc[6] = loom_join(t, &st);
  r.rc[7] = st;
  return 0;
}
static void test_shield_in_cancelled_task(void **state) {
  (void)state;
  run(shield_main);
  assert_loom_err(r.rc[0], UV_ECANCELED);
  assert_loom_ok(r.rc[1]);
  assert_true(r.ms[0] < 2000);
  assert_loom_ok(r.rc[2]);
  assert_loom_err(r.rc[3], UV_ECANCELED);
  assert_loom_err(r.rc[4], UV_ETIMEDOUT);
  assert_loom_err(r.rc[5], UV_ETIMEDOUT);
  assert_loom_ok(r.rc[6]);
  assert_loom_err(r.rc[7], UV_ECANCELED);
}

/* Cancel arrives while the task sleeps inside a shield: the sleep runs on. */
static int sleeps_shielded(void *arg) {
  (void)arg;
  loom_scope_t sh;
  loom_shield_enter(&sh);
  r.rc[0] = loom_sleep(40);
  loom_scope_exit(&sh);
  r.rc[1] = loom_sleep(1);
  return 0;
}
static int shield_during_main(void *arg) {
  (void)arg;
  loom_task_t *t;
  loom_spawn(&t, sleeps_shielded, NULL);
  loom_sleep(5);
  loom_cancel(t);
  loom_join(t, NULL);
  return 0;
}
static void test_cancel_during_shielded_sleep(void **state) {
  (void)state;
  run(shield_during_main);
  assert_loom_ok(r.rc[0]);
  assert_loom_err(r.rc[1], UV_ECANCELED);
}

static int shield_hides_timeout_main(void *arg) {
  (void)arg;
  loom_scope_t outer, sh;
  loom_timeout_enter(&outer, 10);
  loom_shield_enter(&sh);
  r.rc[0] = loom_sleep(40); /* outer expires meanwhile, unseen */
  r.rc[1] = loom_scope_exit(&sh);
  r.rc[2] = loom_sleep(1);
  r.rc[3] = loom_scope_exit(&outer);
  return 0;
}
static void test_shield_hides_outer_timeout(void **state) {
  (void)state;
  run(shield_hides_timeout_main);
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_loom_err(r.rc[2], UV_ETIMEDOUT);
  assert_loom_err(r.rc[3], UV_ETIMEDOUT);
}

/* ---- join under a timeout: the child is cancelled and awaited ---------------------------- */

static int slow(void *arg) {
  (void)arg;
  int rc = loom_sleep(5000);
  r.rc[3] = 1; /* ended before the joiner returned */
  return rc;
}
static int join_timeout_main(void *arg) {
  (void)arg;
  loom_task_t *t;
  loom_scope_t s;
  loom_spawn(&t, slow, NULL);
  loom_timeout_enter(&s, 20);
  int st = 0;
  r.rc[0] = loom_join(t, &st);
  r.rc[4] = r.rc[3];
  r.rc[1] = st;
  r.rc[2] = loom_scope_exit(&s);
  return 0;
}
static void test_join_under_timeout(void **state) {
  (void)state;
  run(join_timeout_main);
  assert_loom_err(r.rc[0], UV_ETIMEDOUT);
  assert_loom_err(r.rc[1], UV_ECANCELED);
  assert_loom_err(r.rc[2], UV_ETIMEDOUT);
  assert_int_equal(r.rc[4], 1);
}

/* ---- misuse ------------------------------------------------------------------------------ */

static int misuse_main(void *arg) {
  (void)arg;
  loom_scope_t a, b;
  loom_timeout_enter(&a, 1000);
  loom_timeout_enter(&b, 1000);
  r.rc[0] = loom_scope_exit(&a); /* not innermost */
  r.rc[1] = loom_scope_exit(&b);
  r.rc[2] = loom_scope_exit(&a);
  r.rc[3] = loom_scope_exit(&a); /* twice */
  r.rc[4] = loom_timeout_enter(NULL, 1);
  r.rc[5] = loom_scope_reschedule(&a, 5); /* closed */
  return 0;
}
static void test_misuse(void **state) {
  (void)state;
  run(misuse_main);
  assert_loom_err(r.rc[0], LOOM_ESCOPE);
  assert_loom_ok(r.rc[1]);
  assert_loom_ok(r.rc[2]);
  assert_loom_err(r.rc[3], LOOM_ESCOPE);
  assert_loom_err(r.rc[4], UV_EINVAL);
  assert_loom_err(r.rc[5], UV_EINVAL);
  loom_scope_t s;
  assert_loom_err(loom_timeout_enter(&s, 1), LOOM_ENOTASK);
  assert_loom_err(loom_scope_exit(&s), LOOM_ENOTASK);
}

static int leaves_scope_open(void *arg) {
  (void)arg;
  loom_scope_t s;
  loom_timeout_enter(&s, 10);
  return 0; /* forgot loom_scope_exit */
}
static int open_scope_main(void *arg) {
  (void)arg;
  loom_task_opts_t o = {.name = "sloppy", .stack_size = 0};
  loom_task_t *t;
  loom_spawn_ex(&t, leaves_scope_open, NULL, &o);
  loom_join(t, NULL);
  return loom_sleep(30); /* the abandoned deadline must not fire */
}
static void open_scope_child(void *arg) {
  (void)arg;
  exit(loom_run(open_scope_main, NULL) == 0 ? 0 : 1);
}
static void test_task_ending_inside_scope(void **state) {
  (void)state;
  char out[4096];
  int st = run_in_child(open_scope_child, NULL, out, sizeof(out));
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  assert_non_null(strstr(out, "task 'sloppy' ended inside an open scope"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_timeout_fires),
      cmocka_unit_test(test_timeout_not_fired_and_absolute),
      cmocka_unit_test(test_expired_at_entry),
      cmocka_unit_test(test_reschedule_from_inside),
      cmocka_unit_test(test_nested_inner_fires),
      cmocka_unit_test(test_nested_outer_fires_first),
      cmocka_unit_test(test_equal_deadlines_fire_in_order_set),
      cmocka_unit_test(test_cancellation_beats_timeout),
      cmocka_unit_test(test_shield_in_cancelled_task),
      cmocka_unit_test(test_cancel_during_shielded_sleep),
      cmocka_unit_test(test_shield_hides_outer_timeout),
      cmocka_unit_test(test_join_under_timeout),
      cmocka_unit_test(test_misuse),
      cmocka_unit_test(test_task_ending_inside_scope),
  };
  return HARNESS_RUN(tests);
}
