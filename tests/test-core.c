/* The core: loom_run, spawn/join/detach/cancel, yield and sleep, ordering,
 * fairness, cancellation at every suspension point, misuse, embedding,
 * SIGINT and stack overflow reports. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/internal.h"
#include "harness.h"
#include "helpers.h"
#include "loom-child.h"
#include "loom.h"
#include "stack-overflow.h"

/* ---- loom_run ------------------------------------------------------------ */

static int return_arg(void *arg) { return (int)(intptr_t)arg; }

static void test_run_returns_main_status(void **state) {
  (void)state;
  assert_int_equal(loom_run(return_arg, (void *)7), 7);
  assert_loom_err(loom_run(return_arg, (void *)(intptr_t)UV_EINVAL), UV_EINVAL);
  assert_loom_err(loom_run(NULL, NULL), UV_EINVAL);
}

/* ---- spawn ordering --------------------------------------------------------- */

typedef struct {
  char log[64];
  int n;
} order_t;

static order_t order;

static int log_letter(void *arg) {
  order.log[order.n++] = (char)(intptr_t)arg;
  return 0;
}

static int spawn_order_main(void *arg) {
  (void)arg;
  loom_task_t *t[3];
  for (int i = 0; i < 3; i++) loom_spawn(&t[i], log_letter, (void *)(intptr_t)('a' + i));
  order.log[order.n++] = 'M'; /* spawn never runs the child first */
  loom_yield();               /* every ready child runs before we do */
  order.log[order.n++] = 'Y';
  for (int i = 0; i < 3; i++) loom_join(t[i], NULL);
  return 0;
}

static void test_spawn_schedules_fifo(void **state) {
  (void)state;
  memset(&order, 0, sizeof(order));
  assert_loom_ok(loom_run(spawn_order_main, NULL));
  assert_string_equal(order.log, "MabcY");
}

/* ---- join ---------------------------------------------------------------------- */

typedef struct {
  int join_rc, status, second_join, self_join, bogus_join, after_detach;
  int detach_twice, cancel_done;
} join_t;

static int fail_with(void *arg) { return (int)(intptr_t)arg; }

static int self_join_task(void *arg) {
  join_t *j = arg;
  j->self_join = loom_join(loom_current(), NULL);
  return 0;
}

static int join_main(void *arg) {
  join_t *j = arg;
  loom_task_t *t, *d, *s;
  loom_spawn(&t, fail_with, (void *)(intptr_t)UV_EPIPE);
  j->join_rc = loom_join(t, &j->status);
  j->second_join = loom_join(t, NULL);
  j->bogus_join = loom_join((loom_task_t *)(uintptr_t)0x12345678, NULL);
  loom_spawn(&d, fail_with, 0);
  loom_detach(d);
  j->after_detach = loom_join(d, NULL);
  j->detach_twice = loom_detach(d);
  loom_spawn(&s, self_join_task, j);
  loom_join(s, NULL);
  loom_spawn(&t, fail_with, 0);
  loom_yield();
  j->cancel_done = loom_cancel(t); /* ended but not joined: no-op */
  loom_join(t, NULL);
  return 0;
}

static void test_join_rules(void **state) {
  (void)state;
  join_t j;
  memset(&j, 0x55, sizeof(j));
  assert_loom_ok(loom_run(join_main, &j));
  assert_loom_ok(j.join_rc);
  assert_loom_err(j.status, UV_EPIPE);
  assert_loom_err(j.second_join, LOOM_EBADTASK);
  assert_loom_err(j.bogus_join, LOOM_EBADTASK);
  assert_loom_err(j.after_detach, LOOM_EBADTASK);
  assert_loom_err(j.detach_twice, LOOM_EBADTASK);
  assert_loom_err(j.self_join, LOOM_EDEADLK);
  assert_int_equal(j.cancel_done, 0);
}

/* ---- outside a task ------------------------------------------------------------- */

static void test_outside_a_task(void **state) {
  (void)state;
  assert_loom_err(loom_sleep(1), LOOM_ENOTASK);
  assert_loom_err(loom_yield(), LOOM_ENOTASK);
  assert_loom_err(loom_join((loom_task_t *)1, NULL), LOOM_ENOTASK);
  assert_loom_err(loom_spawn(NULL, return_arg, NULL), LOOM_ENOTASK);
  assert_null(loom_current());
  assert_null(loom_runtime());
  assert_int_equal(loom_cancelled(), 0);
  assert_loom_err(loom_cancel((loom_task_t *)1), LOOM_EBADTASK);
}

/* ---- sleep and cancellation ---------------------------------------------------- */

typedef struct {
  int rc[4];
  uint64_t elapsed;
  int status;
  int cancelled_seen;
  uint64_t now_ok;
} sleep_t;

static int sleeper(void *arg) {
  sleep_t *s = arg;
  s->rc[0] = loom_sleep(10000);
  s->rc[1] = loom_sleep(1); /* level-triggered: fails again */
  s->rc[2] = loom_yield();
  s->cancelled_seen = loom_cancelled();
  s->now_ok = loom_now(); /* non-suspending calls still work */
  s->rc[3] = loom_sleep(0);
  return s->rc[0];
}

static int cancel_sleeper_main(void *arg) {
  sleep_t *s = arg;
  loom_task_t *t;
  loom_spawn(&t, sleeper, s);
  loom_sleep(20);
  uint64_t t0 = wall_ms();
  loom_cancel(t);
  loom_join(t, &s->status);
  s->elapsed = wall_ms() - t0;
  return 0;
}

static void test_cancel_wakes_sleeper_and_is_level_triggered(void **state) {
  (void)state;
  sleep_t s;
  memset(&s, 0, sizeof(s));
  assert_loom_ok(loom_run(cancel_sleeper_main, &s));
  for (int i = 0; i < 4; i++) assert_loom_err(s.rc[i], UV_ECANCELED);
  assert_loom_err(s.status, UV_ECANCELED);
  assert_int_equal(s.cancelled_seen, 1);
  assert_true(s.now_ok > 0);
  assert_true(s.elapsed < 1000); /* woken at once, not after 10 s */
}

static int timed_sleep_main(void *arg) {
  uint64_t *elapsed = arg;
  uint64_t t0 = wall_ms(), l0 = loom_now();
  int rc = loom_sleep(50);
  elapsed[0] = wall_ms() - t0;
  elapsed[1] = loom_now() - l0;
  return rc;
}

static void test_sleep_duration(void **state) {
  (void)state;
  uint64_t elapsed[2];
  assert_loom_ok(loom_run(timed_sleep_main, elapsed));
  assert_true(elapsed[0] < 3000); /* wall clock: upper bound only */
  assert_true(elapsed[1] >= 50);
}

/* Sleep sort: deadlines fire in order, ties in spawn order. The bands are
 * 100 ms apart so that a stalled machine (Valgrind, a loaded CI runner)
 * between two spawns cannot swap them. */
static int sorted[8], nsorted;
static int sort_one(void *arg) {
  int v = (int)(intptr_t)arg;
  loom_sleep((uint64_t)(v / 10) * 100);
  sorted[nsorted++] = v;
  return 0;
}
static int sort_main(void *arg) {
  (void)arg;
  static const int in[8] = {30, 10, 20, 11, 0, 31, 21, 1};
  loom_task_t *t[8];
  for (int i = 0; i < 8; i++) loom_spawn(&t[i], sort_one, (void *)(intptr_t)in[i]);
  for (int i = 0; i < 8; i++) loom_join(t[i], NULL);
  return 0;
}
static void test_timers_fire_in_order(void **state) {
  (void)state;
  nsorted = 0;
  assert_loom_ok(loom_run(sort_main, NULL));
  static const int want[8] = {0, 1, 10, 11, 20, 21, 30, 31};
  assert_memory_equal(sorted, want, sizeof(want));
}

/* Timers under random arming and disarming, against a model: many equal
 * deadlines (shared buckets), deadlines 64 ms apart (the same slot of the
 * table of recent buckets), scope-style arming with a seq taken earlier
 * (a bucket of its own), then everything left fires in (deadline, seq)
 * order. */
enum { TM_N = 400 };
typedef struct {
  loom__timer_t tm;
  int armed, fired_at;
} rtimer_t;
static rtimer_t rtm[TM_N];
static int rtm_fired;

static void rtimer_fire(loom__timer_t *tm) {
  rtimer_t *r = loom__container_of(tm, rtimer_t, tm);
  assert_true(r->armed);
  r->armed = 0;
  r->fired_at = rtm_fired++;
}

static int rtimer_main(void *arg) {
  (void)arg;
  loom_t *rt = loom__tls_rt;
  uint64_t base = loom_now() + 40, saved[16];
  unsigned seed = 777;
  for (int i = 0; i < 16; i++) saved[i] = loom__timer_next_seq(rt);
  for (int round = 0; round < 20000; round++) {
    seed = seed * 1103515245u + 12345u;
    rtimer_t *r = &rtm[(seed >> 8) % TM_N];
    if (r->armed) {
      loom__timer_remove(rt, &r->tm);
      r->armed = 0;
      continue;
    }
    uint64_t d = base + ((seed >> 4) % 4) + 64 * ((seed >> 12) % 2);
    r->tm.fire = rtimer_fire;
    if ((seed >> 20) % 8 == 0)
      loom__timer_add_seq(rt, &r->tm, d, saved[(seed >> 24) % 16]);
    else
      loom__timer_add(rt, &r->tm, d);
    r->armed = 1;
  }
  size_t armed = 0;
  for (int i = 0; i < TM_N; i++) {
    rtm[i].fired_at = -1;
    armed += (size_t)rtm[i].armed;
  }
  assert_int_equal(rt->timers.n, armed);
  rtm_fired = 0;
  loom_sleep(200); /* everything armed is due by then */
  assert_int_equal(rtm_fired, (int)armed);
  assert_int_equal(rt->timers.n, 0);
  for (int i = 0; i < TM_N; i++)
    for (int j = 0; j < TM_N; j++) {
      const rtimer_t *a = &rtm[i], *b = &rtm[j];
      if (a->fired_at < 0 || b->fired_at < 0) continue;
      if (a->tm.deadline < b->tm.deadline ||
          (a->tm.deadline == b->tm.deadline && a->tm.seq < b->tm.seq))
        assert_true(a->fired_at < b->fired_at);
    }
  return 0;
}

static void test_timers_random_order(void **state) {
  (void)state;
  assert_loom_ok(loom_run(rtimer_main, NULL));
}

/* ---- a cancelled joiner cancels and awaits the child --------------------------- */

typedef struct {
  loom_task_t *child;
  int join_rc, child_status, child_ended_first, joiner_status;
  int ended;
} cj_t;

static int long_child(void *arg) {
  cj_t *c = arg;
  int rc = loom_sleep(10000);
  c->ended = 1;
  return rc;
}

static int joiner(void *arg) {
  cj_t *c = arg;
  c->join_rc = loom_join(c->child, &c->child_status);
  c->child_ended_first = c->ended;
  return c->join_rc;
}

static int cancel_joiner_main(void *arg) {
  cj_t *c = arg;
  loom_task_t *j;
  loom_spawn(&c->child, long_child, c);
  loom_spawn(&j, joiner, c);
  loom_yield();
  loom_yield();
  loom_cancel(j);
  loom_join(j, &c->joiner_status);
  return 0;
}

static void test_cancelled_joiner_cancels_child(void **state) {
  (void)state;
  cj_t c;
  memset(&c, 0, sizeof(c));
  assert_loom_ok(loom_run(cancel_joiner_main, &c));
  assert_loom_err(c.join_rc, UV_ECANCELED);
  assert_loom_err(c.child_status, UV_ECANCELED);
  assert_int_equal(c.child_ended_first, 1);
  assert_loom_err(c.joiner_status, UV_ECANCELED);
}

/* Cancellation at each suspension point of a small scenario: spawn, sleep,
 * yield, join. Nothing may hang and every task must end. */
typedef struct {
  int point; /* which suspension the canceller aims at */
  int ended;
} scen_t;

static int scen_child(void *arg) {
  (void)arg;
  return loom_sleep(5);
}

static int scenario(void *arg) {
  scen_t *s = arg;
  loom_task_t *c;
  loom_spawn(&c, scen_child, NULL);
  loom_yield();
  loom_sleep(5);
  loom_yield();
  loom_join(c, NULL);
  loom_sleep(5);
  s->ended = 1;
  return 0;
}

static int scen_main(void *arg) {
  scen_t *s = arg;
  loom_task_t *t;
  loom_spawn(&t, scenario, s);
  for (int i = 0; i < s->point; i++) loom_yield();
  loom_cancel(t);
  int st;
  loom_join(t, &st);
  return 0;
}

static void test_cancel_at_every_point(void **state) {
  (void)state;
  for (int p = 0; p < 12; p++) {
    scen_t s = {.point = p};
    assert_loom_ok(loom_run(scen_main, &s));
    assert_int_equal(s.ended, 1);
  }
}

/* ---- fairness ------------------------------------------------------------------- */

static int ping_log[16], nping;
static int pinger(void *arg) {
  for (int i = 0; i < 4; i++) {
    ping_log[nping++] = (int)(intptr_t)arg;
    loom_yield();
  }
  return 0;
}
static int pingpong_main(void *arg) {
  (void)arg;
  loom_task_t *a, *b;
  loom_spawn(&a, pinger, (void *)1);
  loom_spawn(&b, pinger, (void *)2);
  loom_join(a, NULL);
  loom_join(b, NULL);
  return 0;
}
static void test_yield_alternates(void **state) {
  (void)state;
  nping = 0;
  assert_loom_ok(loom_run(pingpong_main, NULL));
  static const int want[8] = {1, 2, 1, 2, 1, 2, 1, 2};
  assert_memory_equal(ping_log, want, sizeof(want));
}

static volatile int flag;
static long spins;
static int spinner(void *arg) {
  (void)arg;
  while (!flag && spins < 100000000) {
    spins++;
    loom_yield();
  }
  return 0;
}
static int timer_setter(void *arg) {
  (void)arg;
  loom_sleep(20);
  flag = 1;
  return 0;
}
static int starve_timer_main(void *arg) {
  (void)arg;
  loom_task_t *a, *b;
  flag = 0;
  spins = 0;
  loom_spawn(&a, spinner, NULL);
  loom_spawn(&b, timer_setter, NULL);
  loom_join(a, NULL);
  loom_join(b, NULL);
  return flag ? 0 : -1;
}
static void test_yield_cannot_starve_timers(void **state) {
  (void)state;
  assert_loom_ok(loom_run(starve_timer_main, NULL));
  assert_true(spins < 100000000);
}

/* I/O: a uv_async woken from another thread is seen while a task spins. */
static uv_async_t io_async;
static void on_io_async(uv_async_t *h) {
  (void)h;
  flag = 1;
  uv_close((uv_handle_t *)h, NULL);
}
static void *poke(void *arg) {
  (void)arg;
  usleep(20000);
  uv_async_send(&io_async);
  return NULL;
}
static int starve_io_main(void *arg) {
  (void)arg;
  flag = 0;
  spins = 0;
  uv_async_init(loom_loop(loom_runtime()), &io_async, on_io_async);
  pthread_t th;
  pthread_create(&th, NULL, poke, NULL);
  spinner(NULL);
  pthread_join(th, NULL);
  return flag ? 0 : -1;
}
static void test_yield_cannot_starve_io(void **state) {
  (void)state;
  assert_loom_ok(loom_run(starve_io_main, NULL));
}

/* ---- end of loom_run: leftovers ----------------------------------------------- */

static int forever_rc;
static int forever(void *arg) {
  (void)arg;
  forever_rc = loom_sleep(1000000);
  return forever_rc;
}
static int leave_detached_main(void *arg) {
  (void)arg;
  loom_spawn(NULL, forever, NULL);
  loom_yield();
  return 3;
}
static void test_run_cancels_leftovers(void **state) {
  (void)state;
  forever_rc = 1;
  uint64_t t0 = wall_ms();
  assert_int_equal(loom_run(leave_detached_main, NULL), 3);
  assert_loom_err(forever_rc, UV_ECANCELED);
  assert_true(wall_ms() - t0 < 2000);
}

static int named_fail(void *arg) {
  (void)arg;
  return UV_ECONNRESET;
}
static int misuse_main(void *arg) {
  (void)arg;
  loom_task_opts_t o = {.name = "forgotten", .stack_size = 0};
  loom_task_t *t;
  loom_spawn_ex(&t, return_arg, NULL, &o);
  o.name = "failing-worker";
  loom_spawn_ex(NULL, named_fail, NULL, &o);
  loom_yield();
  return 0;
}
static void test_unjoined_and_failed_detached_are_reported(void **state) {
  (void)state;
  char out[4096];
  int st = run_loom_in_child(misuse_main, NULL, out, sizeof(out));
  assert_true(WIFEXITED(st));
  assert_non_null(strstr(out, "task 'forgotten' was never joined nor detached"));
  assert_non_null(strstr(out, "detached task 'failing-worker' failed: ECONNRESET"));
}

/* ---- names, ids, errors ------------------------------------------------------------ */

typedef struct {
  char main_name[32], named[32], dflt[32];
  uint64_t main_id;
} names_t;
static int names_main(void *arg) {
  names_t *n = arg;
  strcpy(n->main_name, loom_task_name(loom_current()));
  n->main_id = loom_task_id(loom_current());
  loom_task_opts_t o = {.name = "a-rather-long-task-name-that-will-be-cut",
                        .stack_size = 32 * 1024};
  loom_task_t *a, *b;
  loom_spawn_ex(&a, return_arg, NULL, &o);
  loom_spawn(&b, return_arg, NULL);
  strcpy(n->named, loom_task_name(a));
  snprintf(n->dflt, sizeof(n->dflt), "%s=%llu", loom_task_name(b),
           (unsigned long long)loom_task_id(b));
  loom_join(a, NULL);
  loom_join(b, NULL);
  return 0;
}
static void test_names(void **state) {
  (void)state;
  names_t n;
  assert_loom_ok(loom_run(names_main, &n));
  assert_string_equal(n.main_name, "main");
  assert_int_equal(n.main_id, 1);
  assert_int_equal(strlen(n.named), LOOM_TASK_NAME_MAX);
  assert_string_equal(n.dflt, "task-3=3");
}

static void test_errors(void **state) {
  (void)state;
  assert_string_equal(loom_err_name(LOOM_ENOTASK), "LOOM_ENOTASK");
  assert_string_equal(loom_err_name(LOOM_EBADTASK), "LOOM_EBADTASK");
  assert_string_equal(loom_err_name(UV_ECANCELED), "ECANCELED");
  assert_string_equal(loom_strerror(UV_ETIMEDOUT), uv_strerror(UV_ETIMEDOUT));
  assert_non_null(strstr(loom_strerror(LOOM_ENOTASK), "inside a loom task"));
  assert_non_null(strstr(loom_strerror(LOOM_ERRNO_BASE - 77), "unknown loom error"));
  assert_non_null(loom_strerror(-123456));
  assert_non_null(loom_err_name(-123456));
  /* Both in one call: they must not share a buffer. */
  char both[128];
  snprintf(both, sizeof(both), "%s|%s", loom_err_name(UV_ECANCELED),
           loom_strerror(UV_ECANCELED));
  assert_string_equal(both, "ECANCELED|operation canceled");
  assert_int_equal(loom_version(), LOOM_VERSION_HEX);
  assert_string_equal(loom_version_string(), LOOM_VERSION_STRING);
}

/* ---- many tasks, custom stacks ------------------------------------------------------- */

#define MANY 2000
static int many_done;
static int many_task(void *arg) {
  int rc = loom_sleep((uint64_t)(intptr_t)arg % 7);
  many_done++;
  return rc;
}
static int many_main(void *arg) {
  (void)arg;
  static loom_task_t *t[MANY];
  many_done = 0;
  for (int i = 0; i < MANY; i++) {
    loom_task_opts_t o = {.name = NULL, .stack_size = (size_t)(i % 3) * 64 * 1024};
    if (loom_spawn_ex(&t[i], many_task, (void *)(intptr_t)i, &o)) return -1;
  }
  int bad = 0;
  for (int i = 0; i < MANY; i++) {
    int st;
    if (loom_join(t[i], &st) || st) bad++;
  }
  return bad;
}
static void test_many_tasks(void **state) {
  (void)state;
  assert_loom_ok(loom_run(many_main, NULL));
  assert_int_equal(many_done, MANY);
}

/* ---- SIGINT ---------------------------------------------------------------------------- */

static int sigint_main(void *arg) {
  int *rc = arg;
  raise(SIGINT);
  *rc = loom_sleep(10000);
  return *rc;
}
static void test_sigint_cancels_main(void **state) {
  (void)state;
  int rc = 0;
  uint64_t t0 = wall_ms();
  assert_loom_err(loom_run(sigint_main, &rc), UV_ECANCELED);
  assert_loom_err(rc, UV_ECANCELED);
  assert_true(wall_ms() - t0 < 2000);
}

static int stubborn_main(void *arg) {
  (void)arg;
  raise(SIGINT);
  loom_sleep(10000); /* cancelled by the first SIGINT ... */
  raise(SIGINT);     /* ... the second kills even a task that spins */
  for (;;) {}
  return 0;
}
static void test_second_sigint_aborts(void **state) {
  (void)state;
  char out[4096];
  int st = run_loom_in_child(stubborn_main, NULL, out, sizeof(out));
  assert_true(WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGINT);
  assert_non_null(strstr(out, "second SIGINT"));
}

/* ---- stack overflow in a task --------------------------------------------------------- */

static void test_stack_overflow_names_task(void **state) {
  (void)state;
  char out[8192];
  int st = overflow_in_child("recurse", 64 * 1024, overflow_recurse, out, sizeof(out));
  assert_true(WIFSIGNALED(st));
  assert_non_null(strstr(out, "loom: stack overflow in task 'recurse' (stack size"));
}

/* ---- embedding ---------------------------------------------------------------------------- */

typedef struct {
  loom_t *rt;
  int ran, sleep_rc, shut_down, spawn_after;
  uv_timer_t kick, stop;
} embed_t;

static int embedded_task(void *arg) {
  embed_t *e = arg;
  e->ran++;
  e->sleep_rc = loom_sleep(100000); /* ended by the shutdown */
  return 0;
}
static void on_shut_down(void *data) {
  embed_t *e = data;
  e->shut_down = 1;
}
static void on_kick(uv_timer_t *h) {
  embed_t *e = h->data;
  loom_spawn_on(e->rt, NULL, embedded_task, e);
  uv_close((uv_handle_t *)h, NULL);
}
static void on_stop(uv_timer_t *h) {
  embed_t *e = h->data;
  loom_shutdown(e->rt, on_shut_down, e);
  e->spawn_after = loom_spawn_on(e->rt, NULL, embedded_task, e);
  uv_close((uv_handle_t *)h, NULL);
}
static int quick(void *arg) {
  (void)arg;
  return 0;
}
static void test_host_detach_after_end(void **state) {
  (void)state;
  uv_loop_t loop;
  loom_t *rt;
  loom_task_t *t;
  assert_loom_ok(uv_loop_init(&loop));
  assert_loom_ok(loom_init(&rt, &loop, NULL));
  assert_loom_ok(loom_spawn_on(rt, &t, quick, NULL));
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(loom_task_done(t), 1);
  assert_loom_ok(loom_detach(t)); /* from host code, task ended */
  assert_loom_err(loom_detach(t), LOOM_EBADTASK);
  assert_loom_ok(loom_shutdown(rt, NULL, NULL));
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_loom_ok(uv_loop_close(&loop));
}

static void test_embedding(void **state) {
  (void)state;
  uv_loop_t loop;
  embed_t e;
  memset(&e, 0, sizeof(e));
  assert_loom_ok(uv_loop_init(&loop));
  assert_loom_ok(loom_init(&e.rt, &loop, NULL));
  /* An idle runtime does not keep the host loop alive. */
  assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
  uv_timer_init(&loop, &e.kick);
  uv_timer_init(&loop, &e.stop);
  e.kick.data = e.stop.data = &e;
  uv_timer_start(&e.kick, on_kick, 1, 0);
  uv_timer_start(&e.stop, on_stop, 30, 0);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(e.ran, 1);
  assert_loom_err(e.sleep_rc, UV_ECANCELED);
  assert_int_equal(e.shut_down, 1);
  assert_loom_err(e.spawn_after, LOOM_ECLOSED);
  assert_loom_ok(uv_loop_close(&loop)); /* no loom handle left */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_run_returns_main_status),
      cmocka_unit_test(test_spawn_schedules_fifo),
      cmocka_unit_test(test_join_rules),
      cmocka_unit_test(test_outside_a_task),
      cmocka_unit_test(test_cancel_wakes_sleeper_and_is_level_triggered),
      cmocka_unit_test(test_sleep_duration),
      cmocka_unit_test(test_timers_fire_in_order),
      cmocka_unit_test(test_timers_random_order),
      cmocka_unit_test(test_cancelled_joiner_cancels_child),
      cmocka_unit_test(test_cancel_at_every_point),
      cmocka_unit_test(test_yield_alternates),
      cmocka_unit_test(test_yield_cannot_starve_timers),
      cmocka_unit_test(test_yield_cannot_starve_io),
      cmocka_unit_test(test_run_cancels_leftovers),
      cmocka_unit_test(test_unjoined_and_failed_detached_are_reported),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_many_tasks),
      cmocka_unit_test(test_sigint_cancels_main),
      cmocka_unit_test(test_second_sigint_aborts),
      cmocka_unit_test(test_stack_overflow_names_task),
      cmocka_unit_test(test_embedding),
      cmocka_unit_test(test_host_detach_after_end),
  };
  return HARNESS_RUN(tests);
}
