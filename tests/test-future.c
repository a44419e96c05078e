/* Futures (include/loom/future.h): resolution from a task, a libuv
 * callback and other threads; several waiters; cancellation and timeout
 * scopes at the one suspension point (before, while parked, woken then
 * cancelled); resolving twice; results after the runtime has ended; NULL
 * arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"

static int V1 = 1, V2 = 2;

/* ---- waiters, values, errors -------------------------------------------- */

typedef struct {
  loom_future_t *f;
  int rc;
  void *value;
} waiter_t;

static int await_task(void *p) {
  waiter_t *w = p;
  w->rc = loom_future_await(w->f, &w->value);
  return 0;
}

enum { NW = 200 };

typedef struct {
  waiter_t w[NW];
  int rc_set, rc_set2, rc_fail2, rc_cancel2, rc_result, rc_done;
  void *result;
} many_t;

static int many_main(void *p) {
  many_t *m = p;
  loom_future_t *f;
  int rc = loom_future_new(&f);
  if (rc) return rc;
  loom_task_t *t[NW];
  for (int i = 0; i < NW; i++) {
    m->w[i].f = f;
    m->w[i].rc = 1;
    loom_spawn(&t[i], await_task, &m->w[i]);
  }
  loom_yield(); /* every waiter is parked */
  m->rc_done = loom_future_done(f);
  m->rc_set = loom_future_set(f, &V1);
  m->rc_set2 = loom_future_set(f, &V2);
  m->rc_fail2 = loom_future_fail(f, UV_EIO);
  m->rc_cancel2 = loom_future_cancel(f);
  m->rc_result = loom_future_result(f, &m->result);
  loom_gather(t, NW, NULL, 0);
  loom_future_release(f);
  return 0;
}

static void test_many_waiters_resolve_twice(void **state) {
  (void)state;
  static many_t m;
  memset(&m, 0, sizeof(m));
  assert_loom_ok(loom_run(many_main, &m));
  assert_int_equal(m.rc_done, 0);
  assert_loom_ok(m.rc_set);
  assert_loom_err(m.rc_set2, LOOM_EDONE);
  assert_loom_err(m.rc_fail2, LOOM_EDONE);
  assert_loom_err(m.rc_cancel2, LOOM_EDONE);
  assert_loom_ok(m.rc_result);
  assert_ptr_equal(m.result, &V1);
  for (int i = 0; i < NW; i++) {
    assert_loom_ok(m.w[i].rc);
    assert_ptr_equal(m.w[i].value, &V1);
  }
}

typedef struct {
  int rc_fail, rc_await_fail, rc_cancel, rc_await_cancel, rc_bad_fail;
  int rc_done_first, rc_await_done;
  void *v;
} errs_t;

static int errs_main(void *p) {
  errs_t *e = p;
  loom_future_t *a, *b;
  if (loom_future_new(&a) || loom_future_new(&b)) return UV_ENOMEM;
  e->rc_bad_fail = loom_future_fail(a, 0);
  e->rc_fail = loom_future_fail(a, UV_EIO);
  e->v = &V1;
  e->rc_await_fail = loom_future_await(a, &e->v);
  e->rc_cancel = loom_future_cancel(b);
  e->rc_await_cancel = loom_future_await(b, NULL);
  /* Resolved already: await returns at once, with no wait. */
  e->rc_done_first = loom_future_done(a);
  e->rc_await_done = loom_future_await(a, NULL);
  loom_future_release(a);
  loom_future_release(b);
  return 0;
}

static void test_fail_and_cancel(void **state) {
  (void)state;
  errs_t e = {0};
  assert_loom_ok(loom_run(errs_main, &e));
  assert_loom_err(e.rc_bad_fail, UV_EINVAL);
  assert_loom_ok(e.rc_fail);
  assert_loom_err(e.rc_await_fail, UV_EIO);
  assert_null(e.v); /* a failed future has no value */
  assert_loom_ok(e.rc_cancel);
  assert_loom_err(e.rc_await_cancel, UV_ECANCELED);
  assert_int_equal(e.rc_done_first, 1);
  assert_loom_err(e.rc_await_done, UV_EIO);
}

/* ---- cancellation and scopes at the suspension point --------------------- */

typedef struct {
  int before, parked, woken_then_cancelled, timeout, after_timeout, other;
  void *v;
} cancel_t;

static int cancelled_before(void *p) {
  cancel_t *c = p;
  loom_future_t *f;
  loom_future_new(&f);
  loom_future_set(f, &V1);
  loom_cancel(loom_current());
  c->before = loom_future_await(f, NULL); /* resolved, but cancelled */
  loom_future_release(f);
  return 0;
}

typedef struct {
  loom_future_t *f;
  int *rc;
} fw_t;

static int fw_task(void *p) {
  fw_t *w = p;
  *w->rc = loom_future_await(w->f, NULL);
  return 0;
}

static int cancel_main(void *p) {
  cancel_t *c = p;
  loom_task_t *t;
  loom_spawn(&t, cancelled_before, c);
  loom_join(t, NULL);

  loom_future_t *f;
  loom_future_new(&f);
  /* Parked: cancelled while waiting; the other waiter is unaffected. */
  fw_t a = {f, &c->parked}, b = {f, &c->other};
  loom_task_t *ta, *tb;
  loom_spawn(&ta, fw_task, &a);
  loom_spawn(&tb, fw_task, &b);
  loom_yield();
  loom_cancel(ta);
  loom_join(ta, NULL);
  /* Woken by the resolution, cancelled before it could run. */
  loom_task_t *tc;
  fw_t cc = {f, &c->woken_then_cancelled};
  loom_spawn(&tc, fw_task, &cc);
  loom_yield();
  loom_future_set(f, &V2);
  loom_cancel(tc);
  loom_join(tc, NULL);
  loom_join(tb, NULL);
  loom_future_release(f);

  /* A timeout scope: the future is left pending, and can be awaited
   * again. */
  loom_future_new(&f);
  loom_scope_t s;
  loom_timeout_enter(&s, 20);
  c->timeout = loom_future_await(f, NULL);
  loom_scope_exit(&s);
  loom_future_set(f, &V1);
  c->after_timeout = loom_future_await(f, &c->v);
  loom_future_release(f);
  return 0;
}

static void test_cancel_and_timeout(void **state) {
  (void)state;
  cancel_t c = {0};
  assert_loom_ok(loom_run(cancel_main, &c));
  assert_loom_err(c.before, UV_ECANCELED);
  assert_loom_err(c.parked, UV_ECANCELED);
  assert_loom_ok(c.other);
  assert_loom_err(c.woken_then_cancelled, UV_ECANCELED);
  assert_loom_err(c.timeout, UV_ETIMEDOUT);
  assert_loom_ok(c.after_timeout);
  assert_ptr_equal(c.v, &V1);
}

/* ---- resolved from a libuv callback ------------------------------------- */

typedef struct {
  uv_timer_t timer;
  loom_future_t *f;
  int rc;
  void *v;
  uint64_t waited;
} timer_case_t;

static void on_timer(uv_timer_t *h) {
  timer_case_t *tc = h->data;
  loom_future_set(tc->f, &V2);
  uv_close((uv_handle_t *)h, NULL);
}

static int timer_main(void *p) {
  timer_case_t *tc = p;
  int rc = loom_future_new(&tc->f);
  if (rc) return rc;
  uv_timer_init(loom_loop(loom_runtime()), &tc->timer);
  tc->timer.data = tc;
  uv_timer_start(&tc->timer, on_timer, 30, 0);
  uint64_t t0 = loom_now();
  tc->rc = loom_future_await(tc->f, &tc->v);
  tc->waited = loom_now() - t0;
  loom_future_release(tc->f);
  return 0;
}

static void test_resolve_from_libuv_callback(void **state) {
  (void)state;
  timer_case_t tc = {0};
  assert_loom_ok(loom_run(timer_main, &tc));
  assert_loom_ok(tc.rc);
  assert_ptr_equal(tc.v, &V2);
  assert_true(tc.waited >= 25);
}

/* ---- other threads -------------------------------------------------------- */

typedef struct {
  loom_future_t *f;
  int delay_ms;
  int rc;
  uv_thread_t th;
} resolver_t;

static void resolver(void *p) {
  resolver_t *r = p;
  if (r->delay_ms) uv_sleep((unsigned)r->delay_ms);
  r->rc = loom_future_set(r->f, &V1);
  loom_future_release(r->f);
}

enum { NRACE = 8 };

typedef struct {
  int rc;
  void *v;
  resolver_t r[NRACE];
  int wait_same_thread, wait_poll;
} thread_case_t;

static int thread_main(void *p) {
  thread_case_t *c = p;
  loom_future_t *f;
  int rc = loom_future_new(&f);
  if (rc) return rc;
  c->wait_poll = loom_future_wait(f, 0, NULL);
  c->wait_same_thread = loom_future_wait(f, 1000, NULL);
  /* Several threads race to resolve; the await waits for a thread (not a
   * deadlock, although nothing on this loop can wake it). */
  for (int i = 0; i < NRACE; i++) {
    c->r[i].f = loom_future_retain(f);
    c->r[i].delay_ms = 30;
    uv_thread_create(&c->r[i].th, resolver, &c->r[i]);
  }
  loom_future_release(f); /* the waiter keeps it alive */
  c->rc = loom_future_await(f, &c->v);
  for (int i = 0; i < NRACE; i++) uv_thread_join(&c->r[i].th);
  return 0;
}

static void test_resolve_from_threads(void **state) {
  (void)state;
  thread_case_t c = {0};
  assert_loom_ok(loom_run(thread_main, &c));
  assert_loom_err(c.wait_poll, UV_ETIMEDOUT);
  assert_loom_err(c.wait_same_thread, LOOM_EDEADLK);
  assert_loom_ok(c.rc);
  assert_ptr_equal(c.v, &V1);
  int won = 0;
  for (int i = 0; i < NRACE; i++) {
    if (c.r[i].rc == 0)
      won++;
    else
      assert_loom_err(c.r[i].rc, LOOM_EDONE);
  }
  assert_int_equal(won, 1);
}

/* A thread resolves while the waiter is being cancelled, many times over,
 * in both orders: every outcome is one of the two, nothing crashes or
 * leaks. */
enum { NROUNDS = 300 };

typedef struct {
  int ok, cancelled, other;
} race_t;

static int race_main(void *p) {
  race_t *r = p;
  for (int i = 0; i < NROUNDS; i++) {
    loom_future_t *f;
    int rc = loom_future_new(&f);
    if (rc) return rc;
    int wrc = 1;
    fw_t w = {f, &wrc};
    loom_task_t *t;
    loom_spawn(&t, fw_task, &w);
    loom_yield();
    resolver_t res = {.f = loom_future_retain(f)};
    uv_thread_create(&res.th, resolver, &res);
    if (i % 3) loom_yield();
    loom_cancel(t);
    loom_join(t, NULL);
    uv_thread_join(&res.th);
    if (wrc == 0)
      r->ok++;
    else if (wrc == UV_ECANCELED)
      r->cancelled++;
    else
      r->other++;
    loom_future_release(f);
  }
  return 0;
}

static void test_resolve_while_waiter_cancelled(void **state) {
  (void)state;
  race_t r = {0};
  assert_loom_ok(loom_run(race_main, &r));
  assert_int_equal(r.other, 0);
  assert_int_equal(r.ok + r.cancelled, NROUNDS);
}

/* ---- after the runtime ---------------------------------------------------- */

static int keep_main(void *p) { return loom_future_new((loom_future_t **)p); }

typedef struct {
  loom_future_t *f;
  int rc;
  void *v;
  uv_thread_t th;
} sleeper_t;

static void sleeper(void *p) {
  sleeper_t *s = p;
  s->rc = loom_future_wait(s->f, -1, &s->v);
}

static void test_resolve_after_runtime_ended(void **state) {
  (void)state;
  loom_future_t *f = NULL;
  assert_loom_ok(loom_run(keep_main, &f));
  assert_non_null(f);
  sleeper_t s = {.f = f};
  uv_thread_create(&s.th, sleeper, &s);
  assert_loom_err(loom_future_wait(f, 10, NULL), UV_ETIMEDOUT);
  assert_loom_ok(loom_future_set(f, &V2));
  assert_loom_err(loom_future_set(f, &V1), LOOM_EDONE);
  uv_thread_join(&s.th);
  assert_loom_ok(s.rc);
  assert_ptr_equal(s.v, &V2);
  void *v;
  assert_loom_ok(loom_future_wait(f, -1, &v));
  assert_ptr_equal(v, &V2);
  loom_future_release(f);
}

/* ---- a task of another runtime -------------------------------------------- */

/* Runtime A (this thread) makes the futures; tasks of runtime B (another
 * thread) await them: a timeout scope, a plain await resolved by A, and
 * rounds of waiters cancelled while A resolves their futures (each ends
 * with the value or UV_ECANCELED, and nothing leaks). */
enum { XROUNDS = 200 };

typedef struct {
  loom_future_t *f1, *g[XROUNDS];
  uv_sem_t ready;
  int timeout, rc, ok, cancelled, other;
  void *v;
} cross_t;

typedef struct {
  loom_future_t *f;
  int rc;
} xw_t;

static int xw_task(void *p) {
  xw_t *w = p;
  w->rc = loom_future_await(w->f, NULL);
  return 0;
}

static int cross_b_main(void *p) {
  cross_t *c = p;
  loom_scope_t s;
  loom_timeout_enter(&s, 20);
  c->timeout = loom_future_await(c->f1, NULL);
  loom_scope_exit(&s);
  uv_sem_post(&c->ready);
  c->rc = loom_future_await(c->f1, &c->v);
  for (int i = 0; i < XROUNDS; i++) {
    xw_t w = {c->g[i], -1};
    loom_task_t *t;
    loom_spawn(&t, xw_task, &w);
    loom_yield();
    if (i % 2) loom_cancel(t);
    loom_join(t, NULL);
    if (w.rc == 0)
      c->ok++;
    else if (w.rc == UV_ECANCELED)
      c->cancelled++;
    else
      c->other++;
  }
  return 0;
}

static void cross_b_thread(void *p) {
  int rc = loom_run(cross_b_main, p);
  if (rc) ((cross_t *)p)->other = rc;
}

static int cross_a_main(void *p) {
  cross_t *c = p;
  loom_future_new(&c->f1);
  for (int i = 0; i < XROUNDS; i++) loom_future_new(&c->g[i]);
  uv_thread_t th;
  if (uv_thread_create(&th, cross_b_thread, c)) return -1;
  uv_sem_wait(&c->ready); /* B has timed out, and awaits f1 next */
  loom_future_set(c->f1, &V2);
  for (int i = 0; i < XROUNDS; i++) {
    loom_future_set(c->g[i], &V1);
    if (i % 8 == 0) loom_yield();
  }
  uv_thread_join(&th);
  loom_future_release(c->f1);
  for (int i = 0; i < XROUNDS; i++) loom_future_release(c->g[i]);
  return 0;
}

static void test_await_from_another_runtime(void **state) {
  (void)state;
  cross_t c = {0};
  uv_sem_init(&c.ready, 0);
  assert_loom_ok(loom_run(cross_a_main, &c));
  uv_sem_destroy(&c.ready);
  assert_loom_err(c.timeout, UV_ETIMEDOUT);
  assert_loom_ok(c.rc);
  assert_ptr_equal(c.v, &V2);
  assert_int_equal(c.other, 0);
  assert_int_equal(c.ok + c.cancelled, XROUNDS);
  assert_true(c.ok >= XROUNDS / 2); /* the rounds not cancelled */
}

/* A future whose runtime has ended, awaited by a task of a later runtime
 * and resolved by a plain thread. */
typedef struct {
  loom_future_t *f;
  int rc;
  void *v;
} late_t;

static void late_setter(void *p) { loom_future_set(((late_t *)p)->f, &V1); }

static int late_main(void *p) {
  late_t *l = p;
  uv_thread_t th;
  if (uv_thread_create(&th, late_setter, l)) return -1;
  l->rc = loom_future_await(l->f, &l->v);
  uv_thread_join(&th);
  return 0;
}

static void test_await_after_its_runtime_ended(void **state) {
  (void)state;
  late_t l = {0};
  assert_loom_ok(loom_run(keep_main, &l.f));
  assert_loom_ok(loom_run(late_main, &l));
  assert_loom_ok(l.rc);
  assert_ptr_equal(l.v, &V1);
  loom_future_release(l.f);
}

/* A timeout too large for nanoseconds waits as long as it takes (it used
 * to wrap around and time out at once). */
static void big_setter(void *p) {
  loom_future_t *f = p;
  /* Give the waiter time to start waiting: if it has not, it finds the
   * future resolved, which passes too. */
  uv_sleep(20);
  loom_future_set(f, &V2);
}

static void test_wait_huge_timeout(void **state) {
  (void)state;
  loom_future_t *f = NULL;
  assert_loom_ok(loom_run(keep_main, &f));
  uv_thread_t th;
  assert_int_equal(uv_thread_create(&th, big_setter, f), 0);
  void *v = NULL;
  assert_loom_ok(loom_future_wait(f, INT64_MAX, &v));
  assert_ptr_equal(v, &V2);
  uv_thread_join(&th);
  loom_future_t *g = NULL;
  assert_loom_ok(loom_run(keep_main, &g));
  assert_int_equal(uv_thread_create(&th, big_setter, g), 0);
  assert_loom_ok(loom_future_wait(g, INT64_MAX / 1000 + 7, &v));
  uv_thread_join(&th);
  loom_future_release(f);
  loom_future_release(g);
}

/* ---- misuse --------------------------------------------------------------- */

static int null_main(void *p) {
  int *rc = p;
  rc[0] = loom_future_new(NULL);
  rc[1] = loom_future_await(NULL, NULL);
  loom_future_t *f;
  loom_future_new(&f);
  loom_task_t *self = loom_current();
  (void)self;
  rc[2] = loom_future_result(f, NULL);
  loom_future_release(f);
  return 0;
}

static void test_null_and_outside(void **state) {
  (void)state;
  int rc[3];
  assert_loom_ok(loom_run(null_main, rc));
  assert_loom_err(rc[0], UV_EINVAL);
  assert_loom_err(rc[1], UV_EINVAL);
  assert_loom_err(rc[2], UV_EAGAIN);
  loom_future_t *f = NULL;
  assert_loom_err(loom_future_new(&f), LOOM_ENOTASK); /* no runtime here */
  assert_loom_err(loom_future_set(NULL, NULL), UV_EINVAL);
  assert_loom_err(loom_future_fail(NULL, UV_EIO), UV_EINVAL);
  assert_loom_err(loom_future_cancel(NULL), UV_EINVAL);
  assert_loom_err(loom_future_wait(NULL, 0, NULL), UV_EINVAL);
  assert_loom_err(loom_future_result(NULL, NULL), UV_EINVAL);
  assert_int_equal(loom_future_done(NULL), 0);
  assert_null(loom_future_retain(NULL));
  loom_future_release(NULL);
}

/* Awaiting outside a task: LOOM_ENOTASK. From a host loop with loom_init. */
typedef struct {
  loom_t *rt;
  int rc_await;
  loom_future_t *f;
} host_t;

static void host_done(void *p) { (void)p; }

static void test_host_code(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  host_t h = {0};
  assert_loom_ok(loom_init(&h.rt, &loop, NULL));
  assert_loom_ok(loom_future_new(&h.f)); /* host code on its thread */
  assert_loom_err(loom_future_await(h.f, NULL), LOOM_ENOTASK);
  assert_loom_ok(loom_future_set(h.f, NULL));
  assert_loom_ok(loom_future_wait(h.f, -1, NULL));
  loom_future_release(h.f);
  assert_loom_ok(loom_shutdown(h.rt, host_done, NULL));
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_loom_ok(uv_loop_close(&loop));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_many_waiters_resolve_twice),
      cmocka_unit_test(test_fail_and_cancel),
      cmocka_unit_test(test_cancel_and_timeout),
      cmocka_unit_test(test_resolve_from_libuv_callback),
      cmocka_unit_test(test_resolve_from_threads),
      cmocka_unit_test(test_resolve_while_waiter_cancelled),
      cmocka_unit_test(test_resolve_after_runtime_ended),
      cmocka_unit_test(test_await_from_another_runtime),
      cmocka_unit_test(test_await_after_its_runtime_ended),
      cmocka_unit_test(test_wait_huge_timeout),
      cmocka_unit_test(test_null_and_outside),
      cmocka_unit_test(test_host_code),
  };
  return HARNESS_RUN(tests);
}
