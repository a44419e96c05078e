/* The cancellation sweep over the thread-facing suspension points: a task
 * goes through each of them in turn, and is interrupted at one of them:
 *   - cancelled by a task that runs as soon as the call has suspended, or
 *   - timed out by a 1 ms timeout scope around the call (whatever it waits
 *     for comes 20 ms later, or never).
 * The points: a future resolved by another thread, a future resolved by a
 * libuv timer callback, loom_to_thread while the job runs, loom_executor_run
 * while the job is queued behind another, a submitted job's future, and a
 * loom_remote_spawn future awaited on its own runtime. The interrupted call
 * must return UV_ECANCELED / UV_ETIMEDOUT at that very point, every call
 * before it must have succeeded, the run must end (the runtime waits for
 * jobs still running) and nothing may leak. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "harness.h"
#include "loom.h"

enum { P_THREAD_FUTURE, P_TIMER_FUTURE, P_TO_THREAD, P_QUEUED, P_SUBMIT, P_REMOTE, P_N };
enum { CANCEL, TIMEOUT };

static const char *point_name[P_N] = {"thread-future", "timer-future", "to_thread",
                                      "queued",        "submit",       "remote"};

typedef struct {
  int point, mode;
  loom_task_t *target;
  int reached;   /* the point the task was at when it returned */
  int rc;        /* what the interrupted call returned */
  int early;     /* a call before the point failed */
  uv_sem_t gate; /* holds the blocking job of the queued point */
} sweep_t;

static int canceller(void *p) {
  sweep_t *s = p;
  return loom_cancel(s->target);
}

/* Arms the interruption for the call about to be made at point i. */
static void arm(sweep_t *s, int i, loom_scope_t *scope) {
  if (i != s->point) return;
  if (s->mode == CANCEL)
    loom_spawn(NULL, canceller, s); /* runs once the call has suspended */
  else
    loom_timeout_enter(scope, 1);
}

/* Checks the call at point i: the interrupted one ends the run (1). */
static int check(sweep_t *s, int i, loom_scope_t *scope, int rc) {
  if (i == s->point) {
    if (s->mode == TIMEOUT) loom_scope_exit(scope);
    s->reached = i;
    s->rc = rc;
    return 1;
  }
  if (rc < 0) {
    s->reached = i;
    s->early = rc;
    return 1;
  }
  return 0;
}

static void resolve_later(void *p) {
  loom_future_t *f = p;
  uv_sleep(20);
  loom_future_set(f, NULL);
  loom_future_release(f);
}

static void on_timer(uv_timer_t *h) { loom_future_set(h->data, NULL); }

static int blocking(void *p) {
  sweep_t *s = p;
  uv_sem_wait(&s->gate);
  return 0;
}

static int slow(void *p) {
  (void)p;
  uv_sleep(20);
  return 0;
}

static int quick(void *p) {
  (void)p;
  return 3;
}

static int sleeper(void *p) {
  (void)p;
  return loom_sleep(20);
}

static int run_points(sweep_t *s) {
  loom_scope_t scope;
  int rc;
  /* a future another thread resolves */
  {
    loom_future_t *f;
    if ((rc = loom_future_new(&f))) return rc;
    uv_thread_t th;
    uv_thread_create(&th, resolve_later, loom_future_retain(f));
    arm(s, P_THREAD_FUTURE, &scope);
    rc = loom_future_await(f, NULL);
    uv_thread_join(&th); /* it only sleeps and resolves */
    loom_future_release(f);
    if (check(s, P_THREAD_FUTURE, &scope, rc)) return 0;
  }
  /* a future a libuv timer callback resolves */
  {
    loom_future_t *f;
    if ((rc = loom_future_new(&f))) return rc;
    uv_timer_t *t = malloc(sizeof(*t));
    uv_timer_init(loom_loop(loom_runtime()), t);
    t->data = f;
    uv_timer_start(t, on_timer, 20, 0);
    arm(s, P_TIMER_FUTURE, &scope);
    rc = loom_future_await(f, NULL);
    /* The timer may still fire: stop it and free it from its close
     * callback; the future outlives it by a reference. */
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
    loom_future_release(f);
    if (check(s, P_TIMER_FUTURE, &scope, rc)) return 0;
  }
  /* loom_to_thread while the job runs (the runtime waits for its end) */
  {
    arm(s, P_TO_THREAD, &scope);
    int st;
    rc = loom_to_thread(slow, NULL, &st);
    if (check(s, P_TO_THREAD, &scope, rc)) return 0;
  }
  /* loom_executor_run queued behind a blocked job on a 1-thread pool */
  {
    loom_executor_t *ex;
    if ((rc = loom_executor_new(&ex, 1))) return rc;
    loom_future_t *busy;
    if ((rc = loom_executor_submit(ex, blocking, s, &busy))) {
      loom_executor_free(ex);
      return rc;
    }
    if (s->point != P_QUEUED) { /* let both through */
      uv_sem_post(&s->gate);
    }
    arm(s, P_QUEUED, &scope);
    int st;
    rc = loom_executor_run(ex, quick, NULL, &st);
    if (s->point == P_QUEUED) { /* release the blocker, wait for it */
      uv_sem_post(&s->gate);
    }
    loom_scope_t shield;
    loom_shield_enter(&shield);
    loom_future_await(busy, NULL);
    loom_scope_exit(&shield);
    loom_future_release(busy);
    loom_executor_free(ex);
    if (check(s, P_QUEUED, &scope, rc)) return 0;
  }
  /* a submitted job's future */
  {
    loom_future_t *f;
    if ((rc = loom_executor_submit(NULL, slow, NULL, &f))) return rc;
    arm(s, P_SUBMIT, &scope);
    rc = loom_future_await(f, NULL);
    loom_future_release(f);
    if (check(s, P_SUBMIT, &scope, rc)) return 0;
  }
  /* a remote spawn's future, awaited on its own runtime */
  {
    loom_remote_t *r;
    if ((rc = loom_remote_open(NULL, &r))) return rc;
    loom_future_t *f;
    rc = loom_remote_spawn(r, sleeper, NULL, &f);
    loom_remote_close(r);
    if (rc) return rc;
    arm(s, P_REMOTE, &scope);
    rc = loom_future_await(f, NULL);
    loom_future_release(f);
    if (check(s, P_REMOTE, &scope, rc)) return 0;
  }
  s->reached = P_N;
  return 0;
}

static int sweep_main(void *p) {
  sweep_t *s = p;
  s->target = loom_current();
  return run_points(s);
}

static void test_sweep(void **state) {
  (void)state;
  int bad = 0;
  for (int mode = CANCEL; mode <= TIMEOUT; mode++) {
    for (int point = 0; point < P_N; point++) {
      sweep_t s = {.point = point, .mode = mode, .reached = -1};
      uv_sem_init(&s.gate, 0);
      int rc = loom_run(sweep_main, &s);
      int want = mode == CANCEL ? UV_ECANCELED : UV_ETIMEDOUT;
      if (rc || s.early || s.reached != point || s.rc != want) {
        fprintf(stderr,
                "thread-sweep: %s at %s: loom_run %s, reached %d, call %s, earlier %s\n",
                mode == CANCEL ? "cancel" : "timeout", point_name[point],
                loom_err_name(rc), s.reached, loom_err_name(s.rc),
                loom_err_name(s.early));
        bad++;
      }
      uv_sem_destroy(&s.gate); /* every post was consumed by its job */
    }
  }
  assert_int_equal(bad, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sweep),
  };
  return HARNESS_RUN(tests);
}
