/* Thread offload and thread-safe entry (include/loom/thread.h).
 *
 * Offload: jobs run on worker threads while other tasks go on; an awaiting
 * task that is cancelled or times out returns at once, a queued job is
 * dropped, a running one finishes and the runtime waits for it at
 * shutdown; bounded executors never run more jobs at once than their
 * threads; blocking jobs do not delay DNS (libuv's pool is not used).
 * Entry: calls and spawns from other threads, many at once, during and
 * after the runtime's shutdown, cancelled through their future.
 *
 * Jobs that must block until the test lets them go wait on a uv_sem_t the
 * test posts: no sleep is used to order events, only to make work take
 * time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"

/* ---- offload ---------------------------------------------------------- */

typedef struct {
  uv_thread_t thread; /* where it ran */
  int ran;
  int ms;            /* sleeps that long */
  uv_sem_t *gate;    /* or waits for this */
  uv_sem_t *started; /* posted when it starts */
  _Atomic int *active, *peak;
  int result;
} job_t;

static int job(void *p) {
  job_t *j = p;
  j->thread = uv_thread_self();
  if (j->active) {
    int now = atomic_fetch_add(j->active, 1) + 1;
    int peak = atomic_load(j->peak);
    while (now > peak && !atomic_compare_exchange_weak(j->peak, &peak, now)) {}
  }
  if (j->started) uv_sem_post(j->started);
  if (j->gate) uv_sem_wait(j->gate);
  if (j->ms) uv_sleep((unsigned)j->ms);
  if (j->active) atomic_fetch_sub(j->active, 1);
  j->ran = 1;
  return j->result;
}

/* The two semaphores of a job that the test holds: `started`, posted when
 * the job starts, and `gate`, which it waits on until the test lets it
 * go. */
typedef struct {
  uv_sem_t gate, started;
} gates_t;

/* Both unposted; job j (NULL: none yet) uses them. */
static void gates_init(gates_t *g, job_t *j) {
  uv_sem_init(&g->gate, 0);
  uv_sem_init(&g->started, 0);
  if (j) {
    j->gate = &g->gate;
    j->started = &g->started;
  }
}

static void gates_destroy(gates_t *g) {
  uv_sem_destroy(&g->gate);
  uv_sem_destroy(&g->started);
}

typedef struct {
  int rc, status, ticks;
  job_t j;
  uv_thread_t self;
} basic_t;

static int ticker(void *p) {
  int *ticks = p;
  while (loom_sleep(10) == 0) (*ticks)++;
  return 0;
}

static int basic_main(void *p) {
  basic_t *b = p;
  b->self = uv_thread_self();
  loom_task_t *t;
  loom_spawn(&t, ticker, &b->ticks);
  b->j.ms = 200;
  b->j.result = 42;
  b->rc = loom_to_thread(job, &b->j, &b->status);
  loom_cancel(t);
  loom_join(t, NULL);
  return 0;
}

static void test_to_thread_runs_elsewhere(void **state) {
  (void)state;
  basic_t b = {0};
  assert_loom_ok(loom_run(basic_main, &b));
  assert_loom_ok(b.rc);
  assert_int_equal(b.status, 42);
  assert_int_equal(b.j.ran, 1);
  assert_false(uv_thread_equal(&b.j.thread, &b.self));
  /* The heartbeat went on while the job blocked (tolerant: 5 of ~20). */
  assert_true(b.ticks >= 5);
}

/* Cancelled while the job runs: returns at once; the job goes on, its
 * result is dropped, and loom_run waits for it. */
typedef struct {
  job_t j;
  gates_t g;
  int rc, status;
  uv_thread_t releaser;
} running_t;

static int run_job_task(void *p) {
  running_t *r = p;
  r->status = -1;
  r->rc = loom_to_thread(job, &r->j, &r->status);
  return 0;
}

static void release_later(void *p) {
  running_t *r = p;
  uv_sleep(50);
  uv_sem_post(&r->g.gate);
}

static int running_main(void *p) {
  running_t *r = p;
  loom_task_t *t;
  loom_spawn(&t, run_job_task, r);
  loom_yield();               /* the job is submitted */
  uv_sem_wait(&r->g.started); /* and running (blocks this thread briefly) */
  loom_cancel(t);
  loom_join(t, NULL);
  /* Back at once, the job still blocked on its gate. */
  if (r->j.ran) return UV_EIO;
  uv_thread_create(&r->releaser, release_later, r);
  return 0; /* loom_run must wait for the job */
}

static void test_cancel_running_job(void **state) {
  (void)state;
  running_t r = {0};
  gates_init(&r.g, &r.j);
  r.j.result = 7;
  assert_loom_ok(loom_run(running_main, &r));
  assert_loom_err(r.rc, UV_ECANCELED);
  assert_int_equal(r.status, -1); /* the dropped result */
  assert_int_equal(r.j.ran, 1);   /* loom_run returned after the job */
  uv_thread_join(&r.releaser);
  gates_destroy(&r.g);
}

/* A one-thread executor: the second job queues behind the first; its
 * awaiter is cancelled (and a third one times out): neither ever runs. */
typedef struct {
  loom_executor_t *ex;
  job_t a, b, c;
  gates_t g;
  int rc_a, rc_b, rc_c, st_a;
} queued_t;

typedef struct {
  loom_executor_t *ex;
  job_t *j;
  int *rc, *st;
  uint64_t timeout;
} exrun_t;

static int exrun_task(void *p) {
  exrun_t *e = p;
  loom_scope_t s;
  if (e->timeout) loom_timeout_enter(&s, e->timeout);
  *e->rc = loom_executor_run(e->ex, job, e->j, e->st);
  if (e->timeout) loom_scope_exit(&s);
  return 0;
}

static int queued_main(void *p) {
  queued_t *q = p;
  int rc = loom_executor_new(&q->ex, 1);
  if (rc) return rc;
  exrun_t ea = {q->ex, &q->a, &q->rc_a, &q->st_a, 0};
  exrun_t eb = {q->ex, &q->b, &q->rc_b, NULL, 0};
  exrun_t ec = {q->ex, &q->c, &q->rc_c, NULL, 20};
  loom_task_t *ta, *tb, *tc;
  loom_spawn(&ta, exrun_task, &ea);
  loom_spawn(&tb, exrun_task, &eb);
  loom_spawn(&tc, exrun_task, &ec);
  loom_yield();
  uv_sem_wait(&q->g.started); /* a runs; b and c are queued */
  loom_cancel(tb);
  loom_join(tb, NULL);
  loom_join(tc, NULL); /* times out in its queue */
  uv_sem_post(&q->g.gate);
  loom_join(ta, NULL);
  loom_executor_free(q->ex);
  return 0;
}

static void test_cancel_queued_job(void **state) {
  (void)state;
  queued_t q = {0};
  gates_init(&q.g, &q.a);
  q.a.result = 3;
  assert_loom_ok(loom_run(queued_main, &q));
  assert_loom_ok(q.rc_a);
  assert_int_equal(q.st_a, 3);
  assert_loom_err(q.rc_b, UV_ECANCELED);
  assert_loom_err(q.rc_c, UV_ETIMEDOUT);
  assert_int_equal(q.b.ran, 0);
  assert_int_equal(q.c.ran, 0);
  gates_destroy(&q.g);
}

/* run_in_executor: futures from a bounded pool of 2; 6 jobs of 40 ms run
 * two at a time, never more. */
enum { NJOBS = 6 };

typedef struct {
  job_t j[NJOBS];
  int rc[NJOBS];
  _Atomic int active, peak;
  uint64_t elapsed;
} bounded_t;

static int bounded_main(void *p) {
  bounded_t *b = p;
  loom_executor_t *ex;
  int rc = loom_executor_new(&ex, 2);
  if (rc) return rc;
  loom_future_t *f[NJOBS];
  uint64_t t0 = loom_now();
  for (int i = 0; i < NJOBS; i++) {
    b->j[i] = (job_t){.ms = 40, .active = &b->active, .peak = &b->peak, .result = i};
    rc = loom_executor_submit(ex, job, &b->j[i], &f[i]);
    if (rc) return rc;
  }
  for (int i = 0; i < NJOBS; i++) {
    b->rc[i] = loom_future_await(f[i], NULL);
    loom_future_release(f[i]);
  }
  b->elapsed = loom_now() - t0;
  loom_executor_free(ex);
  return 0;
}

static void test_bounded_executor(void **state) {
  (void)state;
  bounded_t b = {0};
  assert_loom_ok(loom_run(bounded_main, &b));
  for (int i = 0; i < NJOBS; i++) assert_int_equal(b.rc[i], i);
  assert_int_equal(atomic_load(&b.peak), 2);
  assert_true(b.elapsed >= 110); /* three rounds of 40 ms, not one */
}

/* loom_config_t.offload_threads sizes an embedded runtime's default
 * executor: 6 jobs of 40 ms from 6 tasks run two at a time. Out of range:
 * loom_init refuses. */
typedef struct {
  job_t j[NJOBS];
  _Atomic int active, peak;
  int done;
} cfg_jobs_t;

typedef struct {
  cfg_jobs_t *c;
  int i;
} cfg_job_arg_t;

static int cfg_task(void *p) {
  cfg_job_arg_t *a = p;
  int st = -1;
  int rc = loom_to_thread(job, &a->c->j[a->i], &st);
  if (rc == 0 && st == a->i) a->c->done++;
  return 0;
}

static void cfg_shut(void *p) { (void)p; }

static void test_config_offload_threads(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  loom_t *rt;
  loom_config_t bad = {.offload_threads = LOOM_EXECUTOR_MAX_THREADS + 1};
  assert_loom_err(loom_init(&rt, &loop, &bad), UV_EINVAL);
  loom_config_t cfg = {.offload_threads = 2};
  assert_loom_ok(loom_init(&rt, &loop, &cfg));
  cfg_jobs_t c = {0};
  cfg_job_arg_t args[NJOBS];
  for (int i = 0; i < NJOBS; i++) {
    c.j[i] = (job_t){.ms = 40, .active = &c.active, .peak = &c.peak, .result = i};
    args[i] = (cfg_job_arg_t){&c, i};
    assert_loom_ok(loom_spawn_on(rt, NULL, cfg_task, &args[i]));
  }
  while (c.done < NJOBS) uv_run(&loop, UV_RUN_ONCE);
  assert_loom_ok(loom_shutdown(rt, cfg_shut, NULL));
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_loom_ok(uv_loop_close(&loop));
  assert_int_equal(atomic_load(&c.peak), 2);
}

/* A submitted job whose future is cancelled before a thread takes it
 * never runs; an unawaited, released future's job still runs, and the
 * runtime waits for it. */
typedef struct {
  job_t a, b, c;
  gates_t g;
  int rc_b;
} submit_t;

static int submit_main(void *p) {
  submit_t *s = p;
  loom_executor_t *ex;
  int rc = loom_executor_new(&ex, 1);
  if (rc) return rc;
  loom_future_t *fa, *fb, *fc;
  loom_executor_submit(ex, job, &s->a, &fa);
  loom_executor_submit(ex, job, &s->b, &fb);
  loom_executor_submit(ex, job, &s->c, &fc);
  uv_sem_wait(&s->g.started);
  loom_future_cancel(fb);
  s->rc_b = loom_future_await(fb, NULL);
  uv_sem_post(&s->g.gate);
  loom_future_release(fb);
  loom_future_release(fc); /* unawaited: c still runs */
  /* Freed with job c in flight or not, the executor is gone before
   * loom_run returns: c's end, which holds the runtime open, frees it. */
  loom_future_await(fa, NULL);
  loom_future_release(fa);
  loom_executor_free(ex);
  return 0;
}

static void test_submit_cancel_and_unawaited(void **state) {
  (void)state;
  submit_t s = {0};
  gates_init(&s.g, &s.a);
  s.c.ms = 30;
  assert_loom_ok(loom_run(submit_main, &s));
  assert_loom_err(s.rc_b, UV_ECANCELED);
  assert_int_equal(s.a.ran, 1);
  assert_int_equal(s.b.ran, 0);
  assert_int_equal(s.c.ran, 1); /* loom_run waited for it */
  gates_destroy(&s.g);
}

/* Blocking jobs fill more threads than libuv's pool has (4): they block
 * until DNS has answered, so DNS sharing their threads would time out. */
typedef struct {
  job_t j[8];
  gates_t g; /* shared by all eight */
  int rc_dns;
} dns_t;

static int dns_main(void *p) {
  dns_t *d = p;
  loom_future_t *f[8];
  for (int i = 0; i < 8; i++) {
    d->j[i].gate = &d->g.gate;
    d->j[i].started = &d->g.started;
    int rc = loom_executor_submit(NULL, job, &d->j[i], &f[i]);
    if (rc) return rc;
  }
  for (int i = 0; i < 8; i++) uv_sem_wait(&d->g.started); /* all blocked */
  struct addrinfo *res = NULL;
  loom_scope_t s;
  loom_timeout_enter(&s, 10000);
  d->rc_dns = loom_getaddrinfo("localhost", "80", NULL, &res);
  loom_scope_exit(&s);
  if (res) uv_freeaddrinfo(res);
  for (int i = 0; i < 8; i++) uv_sem_post(&d->g.gate);
  for (int i = 0; i < 8; i++) {
    loom_future_await(f[i], NULL);
    loom_future_release(f[i]);
  }
  return 0;
}

static void test_offload_does_not_starve_dns(void **state) {
  (void)state;
  dns_t d = {0};
  gates_init(&d.g, NULL);
  assert_loom_ok(loom_run(dns_main, &d));
  assert_loom_ok(d.rc_dns);
  gates_destroy(&d.g);
}

static int misuse_main(void *p) {
  int *rc = p;
  rc[0] = loom_to_thread(NULL, NULL, NULL);
  rc[1] = loom_executor_submit(NULL, job, NULL, NULL);
  rc[2] = loom_executor_submit(NULL, NULL, NULL, (loom_future_t **)&rc);
  loom_cancel(loom_current());
  rc[3] = loom_to_thread(job, NULL, NULL); /* cancelled: never submitted */
  return 0;
}

/* An embedded runtime shut down while a job runs: the task is cancelled at
 * once, the shutdown completes only once the job has ended. */
typedef struct {
  job_t j;
  uv_sem_t started;
  int rc, shut_down, job_ran_at_shutdown;
} embed_t;

static int embed_task(void *p) {
  embed_t *e = p;
  e->rc = loom_to_thread(job, &e->j, NULL);
  return 0;
}

static void embed_done(void *p) {
  embed_t *e = p;
  e->shut_down = 1;
  e->job_ran_at_shutdown = e->j.ran;
}

static void test_embedded_shutdown_waits_for_job(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  loom_t *rt;
  assert_loom_ok(loom_init(&rt, &loop, NULL));
  embed_t e = {.j = {.ms = 100}};
  uv_sem_init(&e.started, 0);
  e.j.started = &e.started;
  assert_loom_ok(loom_spawn_on(rt, NULL, embed_task, &e));
  while (uv_sem_trywait(&e.started) != 0) uv_run(&loop, UV_RUN_NOWAIT);
  assert_loom_ok(loom_shutdown(rt, embed_done, &e));
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(e.shut_down, 1);
  assert_int_equal(e.job_ran_at_shutdown, 1);
  assert_loom_err(e.rc, UV_ECANCELED);
  assert_loom_ok(uv_loop_close(&loop));
  uv_sem_destroy(&e.started);
}

static void test_offload_misuse(void **state) {
  (void)state;
  int rc[4];
  assert_loom_ok(loom_run(misuse_main, rc));
  assert_loom_err(rc[0], UV_EINVAL);
  assert_loom_err(rc[1], UV_EINVAL);
  assert_loom_err(rc[2], UV_EINVAL);
  assert_loom_err(rc[3], UV_ECANCELED);
  assert_loom_err(loom_to_thread(job, NULL, NULL), LOOM_ENOTASK);
  loom_future_t *f;
  assert_loom_err(loom_executor_submit(NULL, job, NULL, &f), LOOM_ENOTASK);
  loom_executor_t *ex;
  assert_loom_err(loom_executor_new(&ex, 0), UV_EINVAL);
  assert_loom_err(loom_executor_new(&ex, LOOM_EXECUTOR_MAX_THREADS + 1), UV_EINVAL);
  assert_loom_err(loom_executor_new(NULL, 1), UV_EINVAL);
  loom_executor_free(NULL);
  /* An executor never used frees at once; one that is closed refuses. */
  assert_loom_ok(loom_executor_new(&ex, 4));
  loom_executor_free(ex);
}

/* ---- thread-safe entry --------------------------------------------------- */

enum { NTH = 4, NSPAWN = 100 };

typedef struct entry_s entry_t;
typedef struct {
  entry_t *e;
  int id;
  uv_thread_t th;
  int bad;
} poster_t;

struct entry_s {
  loom_remote_t *r;
  uv_thread_t rt_thread;
  int calls[NTH]; /* per thread: calls run, in order */
  int out_of_order, wrong_thread;
  _Atomic int finished; /* threads done */
  poster_t p[NTH];
};

typedef struct {
  entry_t *e;
  int thread, seq;
} call_arg_t;

static void on_call(loom_t *rt, void *p) {
  call_arg_t *c = p;
  if (rt) {
    uv_thread_t me = uv_thread_self();
    if (!uv_thread_equal(&me, &c->e->rt_thread)) c->e->wrong_thread++;
    if (c->seq != c->e->calls[c->thread]) c->e->out_of_order++;
    c->e->calls[c->thread]++;
  }
  free(c);
}

static int square(void *p) {
  int *x = p;
  loom_yield();
  return *x * *x;
}

static void poster(void *p) {
  poster_t *ps = p;
  entry_t *e = ps->e;
  for (int i = 0; i < NSPAWN; i++) {
    call_arg_t *c = malloc(sizeof(*c));
    *c = (call_arg_t){e, ps->id, i};
    if (loom_remote_call(e->r, on_call, c)) {
      free(c);
      ps->bad++;
    }
    int x = i + ps->id;
    loom_future_t *f;
    if (loom_remote_spawn(e->r, square, &x, &f)) {
      ps->bad++;
      continue;
    }
    if (loom_future_wait(f, -1, NULL) != x * x) ps->bad++;
    loom_future_release(f);
  }
  atomic_fetch_add(&e->finished, 1);
}

static int entry_main(void *p) {
  entry_t *e = p;
  e->rt_thread = uv_thread_self();
  int rc = loom_remote_open(NULL, &e->r);
  if (rc) return rc;
  for (int i = 0; i < NTH; i++) {
    e->p[i] = (poster_t){.e = e, .id = i};
    uv_thread_create(&e->p[i].th, poster, &e->p[i]);
  }
  /* Keep the loop running until every thread is done (joining a thread
   * still waiting for a spawned task would block the loop that is to run
   * the task). */
  while (atomic_load(&e->finished) < NTH) loom_sleep(1);
  for (int i = 0; i < NTH; i++) uv_thread_join(&e->p[i].th);
  return 0;
}

static void test_many_threads_enter(void **state) {
  (void)state;
  entry_t e = {0};
  assert_loom_ok(loom_run(entry_main, &e));
  for (int i = 0; i < NTH; i++) {
    assert_int_equal(e.p[i].bad, 0);
    assert_int_equal(e.calls[i], NSPAWN);
  }
  assert_int_equal(e.out_of_order, 0);
  assert_int_equal(e.wrong_thread, 0);
  /* The runtime has ended: a clear error, nothing leaked. */
  call_arg_t *c = malloc(sizeof(*c));
  assert_loom_err(loom_remote_call(e.r, on_call, c), LOOM_ECLOSED);
  free(c);
  loom_future_t *f = NULL;
  int x = 2;
  assert_loom_err(loom_remote_spawn(e.r, square, &x, &f), LOOM_ECLOSED);
  assert_null(f);
  loom_remote_close(e.r);
}

/* A call still queued when the runtime ends runs with rt NULL, so that its
 * argument can be freed. */
typedef struct {
  int with_rt, without_rt;
} pend_t;

static void pend_call(loom_t *rt, void *p) {
  pend_t *pd = p;
  if (rt)
    pd->with_rt++;
  else
    pd->without_rt++;
}

static int pend_main(void *p) {
  loom_remote_t *r;
  int rc = loom_remote_open(NULL, &r);
  if (rc) return rc;
  rc = loom_remote_call(r, pend_call, p);
  loom_remote_close(r);
  return rc; /* before the loop polls: the call is still queued */
}

static void test_call_pending_at_shutdown(void **state) {
  (void)state;
  pend_t pd = {0};
  assert_loom_ok(loom_run(pend_main, &pd));
  assert_int_equal(pd.with_rt, 0);
  assert_int_equal(pd.without_rt, 1);
}

/* A spawn that arrives once shutdown has begun fails with LOOM_ECLOSED;
 * a spawned task is cancelled through its future. */
typedef struct {
  loom_remote_t *r;
  uv_sem_t go;
  uv_thread_t th;
  _Atomic int rc_late, long_ran;
  int rc_cancel, fn_ran;
  loom_event_t cancelled_seen;
} shut_t;

static int long_task(void *p) {
  shut_t *s = p;
  s->long_ran = 1;
  int rc = loom_sleep(10000);
  if (rc == UV_ECANCELED) loom_event_set(&s->cancelled_seen);
  return rc;
}

static int never(void *p) {
  ((shut_t *)p)->fn_ran = 1;
  return 0;
}

static void shut_thread(void *p) {
  shut_t *s = p;
  loom_future_t *f;
  /* Cancelling a spawned task through its future. */
  if (loom_remote_spawn(s->r, long_task, s, &f) == 0) {
    while (!loom_future_done(f) && !s->long_ran) uv_sleep(1);
    loom_future_cancel(f);
    s->rc_cancel = loom_future_wait(f, -1, NULL);
    loom_future_release(f);
  }
  uv_sem_wait(&s->go); /* main has returned: shutdown has begun */
  s->rc_late = 1;
  if (loom_remote_spawn(s->r, never, s, &f) == 0) {
    s->rc_late = loom_future_wait(f, -1, NULL);
    loom_future_release(f);
  } else {
    s->rc_late = LOOM_ECLOSED;
  }
}

static int lingering(void *p) {
  shut_t *s = p;
  loom_scope_t sh;
  loom_shield_enter(&sh);
  /* Alive past main's end, until the late spawn has been answered. */
  while (s->rc_late == 1 || s->rc_late == 0) loom_sleep(1);
  loom_scope_exit(&sh);
  return 0;
}

static int shut_main(void *p) {
  shut_t *s = p;
  int rc = loom_remote_open(NULL, &s->r);
  if (rc) return rc;
  loom_event_init(&s->cancelled_seen);
  uv_thread_create(&s->th, shut_thread, s);
  loom_event_wait(&s->cancelled_seen);
  loom_spawn(NULL, lingering, s);
  uv_sem_post(&s->go);
  return 0;
}

static void test_spawn_during_shutdown(void **state) {
  (void)state;
  shut_t s = {0};
  uv_sem_init(&s.go, 0);
  assert_loom_ok(loom_run(shut_main, &s));
  uv_thread_join(&s.th);
  assert_loom_err(s.rc_cancel, UV_ECANCELED);
  assert_loom_err(s.rc_late, LOOM_ECLOSED);
  assert_int_equal(s.fn_ran, 0);
  loom_remote_close(s.r);
  uv_sem_destroy(&s.go);
}

static void test_entry_misuse(void **state) {
  (void)state;
  loom_remote_t *r = NULL;
  assert_loom_err(loom_remote_open(NULL, &r), LOOM_ENOTASK);
  assert_loom_err(loom_remote_open(NULL, NULL), UV_EINVAL);
  assert_loom_err(loom_remote_call(NULL, pend_call, NULL), UV_EINVAL);
  assert_loom_err(loom_remote_spawn(NULL, never, NULL, NULL), UV_EINVAL);
  loom_remote_close(NULL);
}

/* An executor freed while a job is in flight stays alive until the job's
 * end has been handled: the awaiting task, interrupted after the job ended
 * but before its runtime read the end, still locks the executor. (Its last
 * worker used to free it as it exited: a use after free under ASan or
 * Valgrind.) */
typedef struct {
  loom_executor_t *ex;
  job_t j;
  uv_sem_t started;
  int rc, status;
} orphan_t;

static int orphan_runner(void *p) {
  orphan_t *o = p;
  o->rc = loom_executor_run(o->ex, job, &o->j, &o->status);
  return 0;
}

static int orphan_main(void *p) {
  orphan_t *o = p;
  int rc = loom_executor_new(&o->ex, 1);
  if (rc) return rc;
  loom_task_t *a;
  if ((rc = loom_spawn(&a, orphan_runner, o)) != 0) return rc;
  loom_yield();             /* the runner submits its job */
  uv_sem_wait(&o->started); /* the job runs */
  loom_executor_free(o->ex);
  /* The loop stays blocked while the job ends and its worker exits, so
   * the job's end waits in the inbox when the task is cancelled. */
  uv_sleep(60);
  loom_cancel(a);
  return loom_join(a, NULL);
}

static void test_free_executor_with_job_in_flight(void **state) {
  (void)state;
  orphan_t o = {.j = {.ms = 20, .result = 7}};
  uv_sem_init(&o.started, 0);
  o.j.started = &o.started;
  assert_loom_ok(loom_run(orphan_main, &o));
  assert_int_equal(o.j.ran, 1);
  /* Cancelled after its job ended: the result, or the cancellation. */
  assert_true(o.rc == 0 || o.rc == UV_ECANCELED);
  if (o.rc == 0) assert_int_equal(o.status, 7);
  uv_sem_destroy(&o.started);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_to_thread_runs_elsewhere),
      cmocka_unit_test(test_cancel_running_job),
      cmocka_unit_test(test_cancel_queued_job),
      cmocka_unit_test(test_bounded_executor),
      cmocka_unit_test(test_config_offload_threads),
      cmocka_unit_test(test_submit_cancel_and_unawaited),
      cmocka_unit_test(test_offload_does_not_starve_dns),
      cmocka_unit_test(test_embedded_shutdown_waits_for_job),
      cmocka_unit_test(test_offload_misuse),
      cmocka_unit_test(test_many_threads_enter),
      cmocka_unit_test(test_call_pending_at_shutdown),
      cmocka_unit_test(test_spawn_during_shutdown),
      cmocka_unit_test(test_entry_misuse),
      cmocka_unit_test(test_free_executor_with_job_in_flight),
  };
  return HARNESS_RUN(tests);
}
