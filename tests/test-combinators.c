/* gather, gather_map, wait, as_completed, wait_for and task groups: the
 * asyncio corner cases docs/combinators.md promises and the ones users
 * trip on. Timings use short sleeps with generous bounds; ordering uses
 * sleeps of clearly different lengths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"

typedef struct {
  uint64_t ms; /* how long to sleep */
  int result;  /* what to return after sleeping */
  int rc;      /* what the sleep returned */
  int ended;   /* set just before returning */
} job_t;

static int job(void *arg) {
  job_t *j = arg;
  j->rc = loom_sleep(j->ms);
  j->ended = 1;
  return j->rc ? j->rc : j->result;
}

static int spawn_jobs(loom_task_t **t, job_t *jobs, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (loom_spawn(&t[i], job, &jobs[i])) return -1;
  return 0;
}

typedef struct {
  int rc[8];
  int st[8];
  uint64_t ms;
  size_t ndone;
} rec_t;
static rec_t r;

static void run(loom_fn fn, void *arg) {
  memset(&r, 0x55, sizeof(r));
  assert_loom_ok(loom_run(fn, arg));
}

/* ---- gather ---------------------------------------------------------------------- */

static job_t jobs[4];

static int gather_ok_main(void *arg) {
  (void)arg;
  job_t j[3] = {{30, 1, 0, 0}, {10, 2, 0, 0}, {20, 3, 0, 0}};
  memcpy(jobs, j, sizeof(j));
  loom_task_t *t[3];
  spawn_jobs(t, jobs, 3);
  uint64_t t0 = wall_ms();
  r.rc[0] = loom_gather(t, 3, r.st, 0);
  r.ms = wall_ms() - t0;
  r.rc[1] = loom_join(t[0], NULL); /* consumed */
  r.rc[2] = loom_gather(NULL, 0, NULL, 0);
  return 0;
}
static void test_gather_all_succeed(void **state) {
  (void)state;
  run(gather_ok_main, NULL);
  assert_loom_ok(r.rc[0]);
  assert_int_equal(r.st[0], 1);
  assert_int_equal(r.st[1], 2);
  assert_int_equal(r.st[2], 3);
  assert_true(r.ms < 2000); /* concurrent; wall-clock lower bounds are
                              * unreliable: loop time is cached */
  assert_loom_err(r.rc[1], LOOM_EBADTASK);
  assert_loom_ok(r.rc[2]);
}

static int gather_fail_main(void *arg) {
  unsigned flags = (unsigned)(uintptr_t)arg;
  /* Fail-fast: the others would run for seconds, so returning well
   * before that is unmistakable even on a stalled machine. */
  uint64_t slow = flags & LOOM_FAIL_FAST ? 3000 : 60;
  job_t j[3] = {{10, UV_EPIPE, 0, 0}, {slow, 0, 0, 0}, {slow + 20, 0, 0, 0}};
  memcpy(jobs, j, sizeof(j));
  loom_task_t *t[3];
  spawn_jobs(t, jobs, 3);
  uint64_t t0 = wall_ms();
  r.rc[0] = loom_gather(t, 3, r.st, flags);
  r.ms = wall_ms() - t0;
  r.rc[1] = jobs[1].ended && jobs[2].ended;
  return 0;
}
static void test_gather_one_fails(void **state) {
  (void)state;
  run(gather_fail_main, (void *)0);
  assert_loom_err(r.rc[0], UV_EPIPE);
  assert_loom_err(r.st[0], UV_EPIPE);
  assert_loom_ok(r.st[1]); /* the others ran to completion */
  assert_loom_ok(r.st[2]);
  assert_int_equal(r.rc[1], 1);
}
static void test_gather_fail_fast(void **state) {
  (void)state;
  run(gather_fail_main, (void *)(uintptr_t)LOOM_FAIL_FAST);
  assert_loom_err(r.rc[0], UV_EPIPE);
  assert_loom_err(r.st[0], UV_EPIPE);
  assert_loom_err(r.st[1], UV_ECANCELED); /* cancelled, and awaited */
  assert_loom_err(r.st[2], UV_ECANCELED);
  assert_true(r.ms < 1500);
  assert_int_equal(r.rc[1], 1);
}

static int gatherer(void *arg) {
  (void)arg;
  job_t j[2] = {{5000, 0, 0, 0}, {5000, 0, 0, 0}};
  memcpy(jobs, j, sizeof(j));
  loom_task_t *t[2];
  spawn_jobs(t, jobs, 2);
  r.rc[0] = loom_gather(t, 2, r.st, 0);
  r.rc[1] = jobs[0].ended && jobs[1].ended; /* no orphans */
  return r.rc[0];
}
static int gather_cancelled_main(void *arg) {
  (void)arg;
  loom_task_t *g;
  loom_spawn(&g, gatherer, NULL);
  loom_sleep(10);
  uint64_t t0 = wall_ms();
  loom_cancel(g);
  loom_join(g, &r.rc[2]);
  r.ms = wall_ms() - t0;
  return 0;
}
static void test_gather_cancelled_from_outside(void **state) {
  (void)state;
  run(gather_cancelled_main, NULL);
  assert_loom_err(r.rc[0], UV_ECANCELED);
  assert_loom_err(r.st[0], UV_ECANCELED);
  assert_loom_err(r.st[1], UV_ECANCELED);
  assert_int_equal(r.rc[1], 1);
  assert_loom_err(r.rc[2], UV_ECANCELED);
  assert_true(r.ms < 2000);
}

static int gather_timeout_main(void *arg) {
  (void)arg;
  job_t j[2] = {{5, 7, 0, 0}, {5000, 0, 0, 0}};
  memcpy(jobs, j, sizeof(j));
  loom_task_t *t[2];
  loom_scope_t s;
  loom_timeout_enter(&s, 300);
  spawn_jobs(t, jobs, 2);
  r.rc[0] = loom_gather(t, 2, r.st, 0);
  r.rc[1] = loom_scope_exit(&s);
  r.rc[2] = jobs[1].ended;
  return 0;
}
static void test_gather_inherits_timeout(void **state) {
  (void)state;
  run(gather_timeout_main, NULL);
  assert_loom_err(r.rc[0], UV_ETIMEDOUT);
  assert_int_equal(r.st[0], 7);
  assert_loom_err(r.st[1], UV_ECANCELED);
  assert_loom_err(r.rc[1], UV_ETIMEDOUT);
  assert_int_equal(r.rc[2], 1);
}

static int gather_misuse_main(void *arg) {
  (void)arg;
  job_t j[2] = {{1, 0, 0, 0}, {1, 0, 0, 0}};
  memcpy(jobs, j, sizeof(j));
  loom_task_t *t[3];
  spawn_jobs(t, jobs, 2);
  t[2] = t[0];
  r.rc[0] = loom_gather(t, 3, NULL, 0);  /* listed twice: nothing taken */
  r.rc[1] = loom_gather(t, 2, NULL, 99); /* bad flags */
  r.rc[2] = loom_gather(t, 2, NULL, 0);  /* still all there */
  loom_task_t *self = loom_current();
  r.rc[3] = loom_gather(&self, 1, NULL, 0);
  r.rc[4] = loom_gather_map(NULL, NULL, 0, 1, NULL, 0);
  return 0;
}
static void test_gather_misuse(void **state) {
  (void)state;
  run(gather_misuse_main, NULL);
  assert_loom_err(r.rc[0], LOOM_EBADTASK);
  assert_loom_err(r.rc[1], UV_EINVAL);
  assert_loom_ok(r.rc[2]);
  assert_loom_err(r.rc[3], LOOM_EDEADLK);
  assert_loom_err(r.rc[4], UV_EINVAL);
  loom_task_t *t = NULL;
  assert_loom_err(loom_gather(&t, 1, NULL, 0), LOOM_ENOTASK);
  loom_group_t *gg;
  assert_loom_err(loom_group_open(&gg), LOOM_ENOTASK);
  assert_null(gg);
}

typedef struct {
  int in, out;
} sq_t;
static int square(void *arg) {
  sq_t *s = arg;
  loom_sleep((uint64_t)(10 - s->in));
  s->out = s->in * s->in;
  return s->in == 3 ? UV_EIO : 0;
}
static int map_main(void *arg) {
  (void)arg;
  static sq_t xs[40];
  static int st[40];
  for (int i = 0; i < 40; i++) xs[i].in = i % 10;
  r.rc[0] = loom_gather_map(square, xs, sizeof(xs[0]), 40, st, 0);
  r.rc[1] = 0;
  for (int i = 0; i < 40; i++)
    if (xs[i].out != xs[i].in * xs[i].in || st[i] != (xs[i].in == 3 ? UV_EIO : 0))
      r.rc[1]++;
  return 0;
}
static void test_gather_map(void **state) {
  (void)state;
  run(map_main, NULL);
  assert_loom_err(r.rc[0], UV_EIO);
  assert_loom_ok(r.rc[1]);
}

/* ---- wait -------------------------------------------------------------------------- */

static int wait_main(void *arg) {
  (void)arg;
  job_t j[3] = {{10, 0, 0, 0}, {20, UV_EIO, 0, 0}, {400, 0, 0, 0}};
  memcpy(jobs, j, sizeof(j));
  loom_task_t *t[3];
  spawn_jobs(t, jobs, 3);
  loom_task_t *slow = t[2];
  r.rc[0] = loom_wait(t, 3, 0, LOOM_ALL_COMPLETED, &r.ndone); /* just look */
  r.st[0] = (int)r.ndone;
  r.rc[1] = loom_wait(t, 3, LOOM_WAIT_FOREVER, LOOM_FIRST_COMPLETED, &r.ndone);
  r.st[1] = (int)r.ndone;
  r.rc[2] = loom_wait(t, 3, LOOM_WAIT_FOREVER, LOOM_FIRST_FAILED, &r.ndone);
  r.st[2] = (int)r.ndone;
  uint64_t t0 = wall_ms();
  r.rc[3] = loom_wait(t, 3, 40, LOOM_ALL_COMPLETED, &r.ndone); /* times out */
  r.ms = wall_ms() - t0;
  r.st[3] = (int)r.ndone;
  r.st[4] = t[2] == slow; /* pending last */
  r.rc[4] = loom_wait(t, 3, 5, 0, NULL);
  loom_cancel(t[2]); /* wait never cancels: we do */
  for (int i = 0; i < 3; i++) loom_join(t[i], &r.st[5 + i]);
  return 0;
}
static void test_wait(void **state) {
  (void)state;
  run(wait_main, NULL);
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.st[0]);
  assert_loom_ok(r.rc[1]);
  assert_true(r.st[1] >= 1); /* the 20 ms job may have ended by then too */
  assert_loom_ok(r.rc[2]);
  assert_int_equal(r.st[2], 2);
  assert_loom_ok(r.rc[3]); /* a timeout is not an error: see ndone */
  assert_int_equal(r.st[3], 2);
  assert_true(r.ms < 2000);
  assert_int_equal(r.st[4], 1);
  assert_loom_err(r.rc[4], UV_EINVAL);
  assert_loom_err(r.st[5] + r.st[6], UV_EIO); /* done ones, either order */
  assert_loom_err(r.st[7], UV_ECANCELED);
}

/* ---- as_completed ------------------------------------------------------------------- */

static int ac_main(void *arg) {
  int64_t timeout = (int64_t)(intptr_t)arg;
  job_t j[3] = {{600, 3, 0, 0}, {10, 1, 0, 0}, {60, 2, 0, 0}};
  memcpy(jobs, j, sizeof(j));
  loom_task_t *t[3], *next;
  spawn_jobs(t, jobs, 3);
  loom_as_completed_t it;
  r.rc[0] = loom_as_completed_init(&it, t, 3, timeout);
  int k = 0, rc;
  while ((rc = loom_as_completed_next(&it, &next)) == 0) {
    int st;
    loom_join(next, &st);
    r.st[k++] = st;
  }
  r.rc[1] = rc;
  r.rc[2] = loom_as_completed_next(&it, &next); /* stays that way */
  r.rc[3] = k;
  loom_as_completed_close(&it);
  for (int i = 0; i < 3; i++) loom_cancel(t[i]);
  if (k < 3) loom_join(t[0], NULL); /* the one not handed back */
  return 0;
}
static void test_as_completed(void **state) {
  (void)state;
  run(ac_main, (void *)(intptr_t)LOOM_WAIT_FOREVER);
  assert_loom_ok(r.rc[0]);
  assert_int_equal(r.rc[3], 3);
  assert_int_equal(r.st[0], 1);
  assert_int_equal(r.st[1], 2);
  assert_int_equal(r.st[2], 3);
  assert_loom_err(r.rc[1], UV_EOF);
  assert_loom_err(r.rc[2], UV_EOF);
}
static void test_as_completed_timeout(void **state) {
  (void)state;
  run(ac_main, (void *)(intptr_t)300);
  assert_int_equal(r.rc[3], 2);
  assert_int_equal(r.st[0], 1);
  assert_int_equal(r.st[1], 2);
  assert_loom_err(r.rc[1], UV_ETIMEDOUT);
  assert_loom_err(r.rc[2], UV_ETIMEDOUT);
}

/* ---- wait_for ------------------------------------------------------------------------- */

static int wait_for_main(void *arg) {
  (void)arg;
  job_t j[3] = {{5000, 0, 0, 0}, {5, 9, 0, 0}, {5, 9, 0, 0}};
  memcpy(jobs, j, sizeof(j));
  uint64_t t0 = wall_ms();
  r.rc[0] = loom_wait_for(20, job, &jobs[0], &r.st[0]);
  r.ms = wall_ms() - t0;
  r.rc[1] = jobs[0].ended; /* awaited before wait_for returned */
  r.rc[2] = loom_wait_for(5000, job, &jobs[1], &r.st[1]);
  r.rc[3] = loom_wait_for(0, job, &jobs[2], &r.st[2]);
  loom_task_t *t;
  loom_spawn(&t, job, &jobs[1]);
  r.rc[4] = loom_wait_for_task(5000, t, &r.st[3]);
  r.rc[5] = loom_wait_for_task(5000, t, NULL); /* consumed */
  return 0;
}
static void test_wait_for(void **state) {
  (void)state;
  run(wait_for_main, NULL);
  assert_loom_err(r.rc[0], UV_ETIMEDOUT);
  assert_loom_err(r.st[0], UV_ECANCELED);
  assert_true(r.ms < 2000);
  assert_int_equal(r.rc[1], 1);
  assert_loom_ok(r.rc[2]);
  assert_int_equal(r.st[1], 9);
  assert_loom_err(r.rc[3], UV_ETIMEDOUT); /* timeout 0 */
  assert_loom_err(r.st[2], UV_ECANCELED);
  assert_loom_ok(r.rc[4]);
  assert_int_equal(r.st[3], 9);
  assert_loom_err(r.rc[5], LOOM_EBADTASK);
}

/* The inner task ignores the first cancellation and cleans up (shielded)
 * before returning a value: wait_for waits for it and reports its status. */
static int stubborn(void *arg) {
  (void)arg;
  int rc = loom_sleep(5000);
  if (rc == UV_ECANCELED) {
    loom_scope_t sh;
    loom_shield_enter(&sh);
    loom_sleep(30);
    loom_scope_exit(&sh);
  }
  return 42;
}
static int stubborn_main(void *arg) {
  (void)arg;
  uint64_t t0 = wall_ms();
  r.rc[0] = loom_wait_for(10, stubborn, NULL, &r.st[0]);
  r.ms = wall_ms() - t0;
  return 0;
}
static void test_wait_for_inner_ignores_cancel(void **state) {
  (void)state;
  run(stubborn_main, NULL);
  assert_loom_err(r.rc[0], UV_ETIMEDOUT);
  assert_int_equal(r.st[0], 42);
}

/* ---- task groups --------------------------------------------------------------------- */

static int group_ok_main(void *arg) {
  (void)arg;
  job_t j[3] = {{10, 0, 0, 0}, {20, 0, 0, 0}, {5, 0, 0, 0}};
  memcpy(jobs, j, sizeof(j));
  loom_group_t *g;
  loom_task_t *kept;
  r.rc[0] = loom_group_open(&g);
  loom_group_spawn(g, NULL, job, &jobs[0]);
  loom_group_spawn(g, &kept, job, &jobs[1]);
  loom_group_spawn(g, NULL, job, &jobs[2]);
  r.rc[1] = loom_group_wait(g);
  r.rc[2] = loom_join(kept, &r.st[0]); /* per-child status */
  loom_group_open(&g);
  r.rc[3] = loom_group_cancel(g);
  r.rc[4] = loom_group_spawn(g, NULL, job, &jobs[0]); /* closed */
  r.st[1] = loom_group_wait(g);
  r.rc[5] = jobs[0].ended + jobs[1].ended + jobs[2].ended;
  return 0;
}
static void test_group_ok(void **state) {
  (void)state;
  run(group_ok_main, NULL);
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_loom_ok(r.rc[2]);
  assert_loom_ok(r.st[0]);
  assert_loom_ok(r.rc[3]);
  assert_loom_err(r.rc[4], LOOM_ECLOSED);
  assert_loom_err(r.st[1], UV_ECANCELED);
  assert_int_equal(r.rc[5], 3);
}

static int group_fail_main(void *arg) {
  (void)arg;
  job_t j[3] = {{5000, 0, 0, 0}, {10, UV_ENOENT, 0, 0}, {5000, 0, 0, 0}};
  memcpy(jobs, j, sizeof(j));
  loom_group_t *g;
  loom_task_t *t[3];
  loom_group_open(&g);
  for (int i = 0; i < 3; i++) loom_group_spawn(g, &t[i], job, &jobs[i]);
  uint64_t t0 = wall_ms();
  r.rc[0] = loom_group_wait(g);
  r.ms = wall_ms() - t0;
  for (int i = 0; i < 3; i++) loom_join(t[i], &r.st[i]);
  return 0;
}
static void test_group_first_failure_cancels_rest(void **state) {
  (void)state;
  run(group_fail_main, NULL);
  assert_loom_err(r.rc[0], UV_ENOENT);
  assert_loom_err(r.st[0], UV_ECANCELED);
  assert_loom_err(r.st[1], UV_ENOENT);
  assert_loom_err(r.st[2], UV_ECANCELED);
  assert_true(r.ms < 2000);
}

/* The body fails while children run: it cancels the group, which then
 * reports the cancellation; the body keeps its own error. */
static int group_body_fails_main(void *arg) {
  (void)arg;
  job_t j[2] = {{5000, 0, 0, 0}, {5000, 0, 0, 0}};
  memcpy(jobs, j, sizeof(j));
  loom_group_t *g;
  loom_group_open(&g);
  for (int i = 0; i < 2; i++) loom_group_spawn(g, NULL, job, &jobs[i]);
  loom_sleep(5);
  int body_error = UV_EPROTO; /* what the body ran into */
  r.rc[0] = loom_group_cancel(g);
  r.rc[1] = loom_group_spawn(g, NULL, job, &jobs[0]); /* aborting */
  r.rc[2] = loom_group_wait(g);
  r.rc[3] = jobs[0].ended && jobs[1].ended;
  r.rc[4] = body_error;
  return 0;
}
static void test_group_body_fails(void **state) {
  (void)state;
  run(group_body_fails_main, NULL);
  assert_loom_ok(r.rc[0]);
  assert_loom_err(r.rc[1], LOOM_ECLOSED);
  assert_loom_err(r.rc[2], UV_ECANCELED);
  assert_int_equal(r.rc[3], 1);
  assert_loom_err(jobs[0].rc, UV_ECANCELED);
}

static int group_opener(void *arg) {
  (void)arg;
  loom_group_t *g;
  loom_group_open(&g);
  for (int i = 0; i < 2; i++) loom_group_spawn(g, NULL, job, &jobs[i]);
  r.rc[0] = loom_group_wait(g);
  r.rc[1] = jobs[0].ended && jobs[1].ended;
  return r.rc[0];
}
static int group_cancelled_main(void *arg) {
  (void)arg;
  job_t j[2] = {{5000, 0, 0, 0}, {5000, 0, 0, 0}};
  memcpy(jobs, j, sizeof(j));
  loom_task_t *o;
  loom_spawn(&o, group_opener, NULL);
  loom_sleep(10);
  loom_cancel(o);
  loom_join(o, &r.rc[2]);
  return 0;
}
static void test_group_cancelled_from_outside(void **state) {
  (void)state;
  run(group_cancelled_main, NULL);
  assert_loom_err(r.rc[0], UV_ECANCELED);
  assert_int_equal(r.rc[1], 1);
  assert_loom_err(r.rc[2], UV_ECANCELED);
}

/* Inheritance: the scope enclosing the group expires while the opener is
 * busy elsewhere; the children are cancelled at once anyway. */
static int group_scope_main(void *arg) {
  (void)arg;
  job_t j[2] = {{5000, 0, 0, 0}, {5000, 0, 0, 0}};
  memcpy(jobs, j, sizeof(j));
  loom_scope_t s, sh;
  loom_group_t *g;
  loom_timeout_enter(&s, 20);
  loom_group_open(&g);
  for (int i = 0; i < 2; i++) loom_group_spawn(g, NULL, job, &jobs[i]);
  loom_shield_enter(&sh);
  loom_sleep(60); /* shielded: the opener does not see the expiry ... */
  r.rc[0] = jobs[0].ended && jobs[1].ended; /* ... but the children did */
  loom_scope_exit(&sh);
  r.rc[1] = loom_group_wait(g);
  r.rc[2] = loom_scope_exit(&s);
  return 0;
}
static void test_group_inherits_scope(void **state) {
  (void)state;
  run(group_scope_main, NULL);
  assert_int_equal(r.rc[0], 1);
  assert_loom_err(jobs[0].rc, UV_ECANCELED);
  assert_loom_err(r.rc[1], UV_ETIMEDOUT);
  assert_loom_err(r.rc[2], UV_ETIMEDOUT);
}

/* Children spawn siblings while the opener waits. */
static loom_group_t *shared_group;
static int spawner(void *arg) {
  int depth = (int)(intptr_t)arg;
  if (depth > 0)
    loom_group_spawn(shared_group, NULL, spawner, (void *)(intptr_t)(depth - 1));
  loom_sleep(1);
  r.st[0]++;
  return 0;
}
static int group_siblings_main(void *arg) {
  (void)arg;
  loom_group_t *g;
  r.st[0] = 0;
  loom_group_open(&g);
  shared_group = g;
  loom_group_spawn(g, NULL, spawner, (void *)5);
  r.rc[0] = loom_group_wait(g);
  return 0;
}
static void test_group_children_spawn_siblings(void **state) {
  (void)state;
  run(group_siblings_main, NULL);
  assert_loom_ok(r.rc[0]);
  assert_int_equal(r.st[0], 6);
}

static int forgets_wait(void *arg) {
  (void)arg;
  loom_group_t *g;
  loom_group_open(&g);
  loom_group_spawn(g, NULL, job, &jobs[0]);
  return 0; /* returns with the group open */
}
static int forgot_main(void *arg) {
  (void)arg;
  job_t j = {5000, 0, 0, 0};
  jobs[0] = j;
  loom_task_opts_t o = {.name = "forgetful", .stack_size = 0};
  loom_task_t *t;
  loom_spawn_ex(&t, forgets_wait, NULL, &o);
  loom_join(t, NULL);
  return jobs[0].ended ? 0 : 1;
}
static void forgot_child(void *arg) {
  (void)arg;
  exit(loom_run(forgot_main, NULL));
}
static void test_group_left_open(void **state) {
  (void)state;
  char out[4096];
  int st = run_in_child(forgot_child, NULL, out, sizeof(out));
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  assert_non_null(strstr(out, "task 'forgetful' returned with a task group open"));
}

/* ---- cancellation at every suspension point of a scenario ------------------------------ */

static int leaf(void *arg) {
  (void)arg;
  int rc = loom_sleep(3);
  return rc ? rc : loom_yield();
}
static int scenario(void *arg) {
  int *ended = arg;
  loom_task_t *t[2];
  loom_spawn(&t[0], leaf, NULL);
  loom_spawn(&t[1], leaf, NULL);
  loom_gather(t, 2, NULL, 0);
  int st;
  loom_wait_for(50, leaf, NULL, &st);
  loom_group_t *g;
  loom_group_open(&g);
  loom_group_spawn(g, NULL, leaf, NULL);
  loom_group_spawn(g, NULL, leaf, NULL);
  loom_sleep(2);
  loom_group_wait(g);
  loom_spawn(&t[0], leaf, NULL);
  loom_spawn(&t[1], leaf, NULL);
  size_t nd;
  loom_wait(t, 2, 50, LOOM_ALL_COMPLETED, &nd);
  loom_as_completed_t it;
  loom_task_t *next;
  if (loom_as_completed_init(&it, t, 2, 50) == 0) {
    while (loom_as_completed_next(&it, &next) == 0) {}
    loom_as_completed_close(&it);
  }
  loom_gather(t, 2, NULL, 0);
  *ended = 1;
  return 0;
}
static int scenario_main(void *arg) {
  int point = (int)(intptr_t)arg;
  int ended = 0;
  loom_task_t *t;
  loom_spawn(&t, scenario, &ended);
  for (int i = 0; i < point; i++) loom_yield();
  loom_cancel(t);
  loom_join(t, NULL);
  return ended ? 0 : -1;
}
static void test_cancel_at_each_suspension_point(void **state) {
  (void)state;
  for (int p = 0; p < 40; p++) {
    uint64_t t0 = wall_ms();
    assert_loom_ok(loom_run(scenario_main, (void *)(intptr_t)p));
    assert_true(wall_ms() - t0 < 2000);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gather_all_succeed),
      cmocka_unit_test(test_gather_one_fails),
      cmocka_unit_test(test_gather_fail_fast),
      cmocka_unit_test(test_gather_cancelled_from_outside),
      cmocka_unit_test(test_gather_inherits_timeout),
      cmocka_unit_test(test_gather_misuse),
      cmocka_unit_test(test_gather_map),
      cmocka_unit_test(test_wait),
      cmocka_unit_test(test_as_completed),
      cmocka_unit_test(test_as_completed_timeout),
      cmocka_unit_test(test_wait_for),
      cmocka_unit_test(test_wait_for_inner_ignores_cancel),
      cmocka_unit_test(test_group_ok),
      cmocka_unit_test(test_group_first_failure_cancels_rest),
      cmocka_unit_test(test_group_body_fails),
      cmocka_unit_test(test_group_cancelled_from_outside),
      cmocka_unit_test(test_group_inherits_scope),
      cmocka_unit_test(test_group_children_spawn_siblings),
      cmocka_unit_test(test_group_left_open),
      cmocka_unit_test(test_cancel_at_each_suspension_point),
  };
  return HARNESS_RUN(tests);
}
