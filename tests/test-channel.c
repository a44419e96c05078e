/* Channels between runtimes: items from a task of one runtime to a task of
 * another, in order, with backpressure; cancellation and timeouts of a put
 * or get waiting on the other runtime; close, plain and immediate; a
 * runtime ending while the other waits (the channel closes itself: a clear
 * LOOM_ESHUTDOWN, nothing leaked); plain threads with try_put / try_get.
 *
 * Threads record what they see; the test asserts on its own thread once
 * they are joined. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"

/* Runs fn(arg) under loom_run on a new thread. */
typedef struct {
  pthread_t th;
  loom_fn fn;
  void *arg;
  int status;
} runner_t;

static void *runner_main(void *p) {
  runner_t *r = p;
  r->status = loom_run(r->fn, r->arg);
  return NULL;
}

static void start(runner_t *r, loom_fn fn, void *arg) {
  r->fn = fn;
  r->arg = arg;
  r->status = -1;
  assert_int_equal(pthread_create(&r->th, NULL, runner_main, r), 0);
}

static void finish(runner_t *r) { pthread_join(r->th, NULL); }

/* Waits (in a task) until *flag reaches v. */
static int await_flag(atomic_int *flag, int v) {
  while (atomic_load(flag) < v)
    if (loom_sleep(1)) return -1;
  return 0;
}

/* ---- misuse ---------------------------------------------------------------- */

static int outside_main(void *arg) {
  loom_channel_t *ch = arg;
  void *item;
  return loom_channel_get(ch, NULL) == UV_EINVAL &&
                 loom_channel_get(NULL, &item) == UV_EINVAL
             ? 0
             : -1;
}

static void test_misuse(void **state) {
  (void)state;
  loom_channel_t *ch;
  void *item;
  assert_loom_err(loom_channel_new(&ch, 0), UV_EINVAL);
  assert_loom_err(loom_channel_new(NULL, 1), UV_EINVAL);
  assert_loom_err(loom_channel_new(&ch, SIZE_MAX), UV_EINVAL);
  assert_loom_ok(loom_channel_new(&ch, 2));
  assert_loom_err(loom_channel_put(ch, &item), LOOM_ENOTASK);
  assert_loom_err(loom_channel_get(ch, &item), LOOM_ENOTASK);
  assert_loom_err(loom_channel_try_get(ch, &item), UV_EAGAIN);
  assert_loom_ok(loom_channel_try_put(ch, &item));
  assert_loom_ok(loom_channel_try_put(ch, ch));
  assert_loom_err(loom_channel_try_put(ch, ch), UV_EAGAIN);
  assert_int_equal(loom_channel_size(ch), 2);
  assert_loom_ok(loom_run(outside_main, ch));
  assert_loom_err(loom_channel_put(NULL, NULL), UV_EINVAL);
  assert_loom_err(loom_channel_try_put(NULL, NULL), UV_EINVAL);
  assert_loom_err(loom_channel_close(NULL, 0), UV_EINVAL);
  assert_int_equal(loom_channel_size(NULL), 0);
  assert_int_equal(loom_channel_closed(NULL), 0);
  loom_channel_release(NULL);
  loom_channel_release(ch); /* drops the two items */
}

/* ---- one runtime --------------------------------------------------------------- */

typedef struct {
  loom_channel_t *ch;
  intptr_t n;
  intptr_t got, out_of_order;
  size_t max_size;
  int put_rc, get_rc;
} flow_t;

static int producer(void *arg) {
  flow_t *f = arg;
  for (intptr_t i = 1; i <= f->n; i++) {
    int rc = loom_channel_put(f->ch, (void *)i);
    if (rc) return f->put_rc = rc;
  }
  return 0;
}

static int consumer(void *arg) {
  flow_t *f = arg;
  for (intptr_t i = 1; i <= f->n; i++) {
    void *item;
    size_t size = loom_channel_size(f->ch);
    if (size > f->max_size) f->max_size = size;
    int rc = loom_channel_get(f->ch, &item);
    if (rc) return f->get_rc = rc;
    if ((intptr_t)item != i) f->out_of_order++;
    f->got++;
  }
  return 0;
}

static int same_runtime_main(void *arg) {
  loom_task_t *t[2];
  loom_spawn(&t[0], consumer, arg);
  loom_spawn(&t[1], producer, arg);
  return loom_gather(t, 2, NULL, 0);
}

static void test_same_runtime(void **state) {
  (void)state;
  flow_t f = {.n = 2000};
  assert_loom_ok(loom_channel_new(&f.ch, 3)); /* not a power of two */
  assert_loom_ok(loom_run(same_runtime_main, &f));
  assert_int_equal(f.got, 2000);
  assert_int_equal(f.out_of_order, 0);
  assert_true(f.max_size <= 3);
  loom_channel_release(f.ch);
}

/* ---- two runtimes ------------------------------------------------------------------ */

static void test_two_runtimes(void **state) {
  (void)state;
  flow_t f = {.n = 20000};
  assert_loom_ok(loom_channel_new(&f.ch, 12));
  runner_t a, b;
  start(&b, consumer, &f);
  start(&a, producer, &f);
  finish(&a);
  finish(&b);
  assert_loom_ok(a.status);
  assert_loom_ok(b.status);
  assert_int_equal(f.got, f.n);
  assert_int_equal(f.out_of_order, 0);
  assert_true(f.max_size <= 12);
  loom_channel_release(f.ch);
}

/* Several producers and consumers on four runtimes, several tasks each. */
typedef struct {
  loom_channel_t *ch;
  atomic_long sum;
  atomic_long count;
} many_t;

/* Items per producer task: enough for every interleaving of six tasks on
 * four threads, few enough that a loaded machine, where each hand-off
 * waits for a CPU, still gets through them in seconds. */
enum { MANY_ITEMS = 2000 };

static int many_put(void *arg) {
  many_t *m = arg;
  for (long i = 1; i <= MANY_ITEMS; i++)
    if (loom_channel_put(m->ch, (void *)(intptr_t)i)) return -1;
  return 0;
}

static int many_get(void *arg) {
  many_t *m = arg;
  void *item;
  int rc;
  while ((rc = loom_channel_get(m->ch, &item)) == 0) {
    atomic_fetch_add(&m->sum, (long)(intptr_t)item);
    atomic_fetch_add(&m->count, 1);
  }
  return rc == LOOM_ESHUTDOWN ? 0 : rc;
}

static int producers_main(void *arg) {
  loom_task_t *t[3];
  for (int i = 0; i < 3; i++) loom_spawn(&t[i], many_put, arg);
  return loom_gather(t, 3, NULL, 0);
}

static int consumers_main(void *arg) {
  loom_task_t *t[3];
  for (int i = 0; i < 3; i++) loom_spawn(&t[i], many_get, arg);
  return loom_gather(t, 3, NULL, 0);
}

static void many_to_many(size_t capacity) {
  many_t m = {0};
  assert_loom_ok(loom_channel_new(&m.ch, capacity));
  runner_t r[4];
  start(&r[0], consumers_main, &m);
  start(&r[1], consumers_main, &m);
  start(&r[2], producers_main, &m);
  start(&r[3], producers_main, &m);
  finish(&r[2]);
  finish(&r[3]);
  /* The producers' runtimes have ended, leaving the two consumers':
   * close explicitly (two runtimes are still attached). */
  loom_channel_close(m.ch, 0);
  finish(&r[0]);
  finish(&r[1]);
  for (int i = 0; i < 4; i++) assert_loom_ok(r[i].status);
  assert_int_equal(atomic_load(&m.count), 6 * MANY_ITEMS);
  assert_int_equal(atomic_load(&m.sum), 6L * MANY_ITEMS * (MANY_ITEMS + 1) / 2);
  loom_channel_release(m.ch);
}

/* Every item delivered exactly once: capacity 1 (a cell alternating
 * between full and free) and 8. */
static void test_many_to_many(void **state) {
  (void)state;
  many_to_many(1);
  many_to_many(8);
}

/* ---- cancellation and timeouts across runtimes ------------------------------------- */

typedef struct {
  loom_channel_t *ch;
  atomic_int stage;
  int cancelled_rc, timeout_rc, scope_rc, later_rc;
  void *later_item;
  int put_cancelled_rc, put_timeout_rc;
  size_t size_after_put;
} cancel_t;

static int waiting_get(void *arg) {
  cancel_t *c = arg;
  void *item = NULL;
  atomic_store(&c->stage, 1);
  c->cancelled_rc = loom_channel_get(c->ch, &item);
  return item ? -1 : 0; /* nothing taken */
}

/* Runtime B: a getter waiting for runtime A is cancelled, another times
 * out; then a third gets what A puts afterwards (no wake-up was lost). */
static int getter_side(void *arg) {
  cancel_t *c = arg;
  loom_task_t *t;
  loom_spawn(&t, waiting_get, c);
  while (atomic_load(&c->stage) < 1) loom_yield();
  loom_sleep(5); /* parked on the channel by now */
  loom_cancel(t);
  int st = -1;
  loom_join(t, &st);
  loom_scope_t s;
  void *item = NULL;
  loom_timeout_enter(&s, 10);
  c->timeout_rc = loom_channel_get(c->ch, &item);
  c->scope_rc = loom_scope_exit(&s);
  atomic_store(&c->stage, 2); /* A may put now */
  c->later_rc = loom_channel_get(c->ch, &c->later_item);
  return st;
}

static int putter_side(void *arg) {
  cancel_t *c = arg;
  if (await_flag(&c->stage, 2)) return -1;
  return loom_channel_put(c->ch, (void *)(intptr_t)42);
}

static void test_cancel_get_waiting_on_other_runtime(void **state) {
  (void)state;
  cancel_t c = {0};
  assert_loom_ok(loom_channel_new(&c.ch, 1));
  runner_t a, b;
  start(&b, getter_side, &c);
  start(&a, putter_side, &c);
  finish(&a);
  finish(&b);
  assert_loom_ok(a.status);
  assert_loom_ok(b.status);
  assert_loom_err(c.cancelled_rc, UV_ECANCELED);
  assert_loom_err(c.timeout_rc, UV_ETIMEDOUT);
  assert_loom_err(c.scope_rc, UV_ETIMEDOUT);
  assert_loom_ok(c.later_rc);
  assert_int_equal((intptr_t)c.later_item, 42);
  loom_channel_release(c.ch);
}

static int waiting_put(void *arg) {
  cancel_t *c = arg;
  atomic_store(&c->stage, 1);
  c->put_cancelled_rc = loom_channel_put(c->ch, (void *)(intptr_t)2);
  return 0;
}

/* A putter waiting for room that only the other runtime can make. */
static int full_side(void *arg) {
  cancel_t *c = arg;
  if (loom_channel_put(c->ch, (void *)(intptr_t)1)) return -1; /* now full */
  loom_task_t *t;
  loom_spawn(&t, waiting_put, c);
  while (atomic_load(&c->stage) < 1) loom_yield();
  loom_sleep(5);
  loom_cancel(t);
  loom_join(t, NULL);
  loom_scope_t s;
  loom_timeout_enter(&s, 10);
  c->put_timeout_rc = loom_channel_put(c->ch, (void *)(intptr_t)3);
  loom_scope_exit(&s);
  c->size_after_put = loom_channel_size(c->ch);
  atomic_store(&c->stage, 2);
  return loom_channel_put(c->ch, (void *)(intptr_t)4); /* room comes */
}

static int drain_side(void *arg) {
  cancel_t *c = arg;
  if (await_flag(&c->stage, 2)) return -1;
  void *a = NULL, *b = NULL;
  if (loom_channel_get(c->ch, &a) || loom_channel_get(c->ch, &b)) return -2;
  return (intptr_t)a == 1 && (intptr_t)b == 4 ? 0 : -3;
}

static void test_cancel_put_waiting_on_other_runtime(void **state) {
  (void)state;
  cancel_t c = {0};
  assert_loom_ok(loom_channel_new(&c.ch, 1));
  runner_t a, b;
  start(&a, full_side, &c);
  start(&b, drain_side, &c);
  finish(&a);
  finish(&b);
  assert_loom_ok(a.status);
  assert_loom_ok(b.status);
  assert_loom_err(c.put_cancelled_rc, UV_ECANCELED);
  assert_loom_err(c.put_timeout_rc, UV_ETIMEDOUT);
  assert_int_equal(c.size_after_put, 1); /* neither 2 nor 3 went in */
  loom_channel_release(c.ch);
}

/* ---- a runtime ending while the other waits ------------------------------------- */

typedef struct {
  loom_channel_t *ch;
  atomic_int stage;
  int first_rc, second_rc;
  void *first;
} ending_t;

static int short_producer(void *arg) {
  ending_t *e = arg;
  int rc = loom_channel_put(e->ch, (void *)(intptr_t)7);
  if (rc) return rc;
  /* End once the consumer is (about to be) waiting for more. */
  return await_flag(&e->stage, 1);
}

static int patient_consumer(void *arg) {
  ending_t *e = arg;
  e->first_rc = loom_channel_get(e->ch, &e->first);
  atomic_store(&e->stage, 1);
  void *item = NULL;
  e->second_rc = loom_channel_get(e->ch, &item); /* the producer ends */
  return 0;
}

static void test_producer_runtime_ends_while_consumer_waits(void **state) {
  (void)state;
  ending_t e = {0};
  assert_loom_ok(loom_channel_new(&e.ch, 4));
  runner_t a, b;
  start(&b, patient_consumer, &e);
  start(&a, short_producer, &e);
  finish(&a);
  finish(&b);
  assert_loom_ok(a.status);
  assert_loom_ok(b.status);
  assert_loom_ok(e.first_rc);
  assert_int_equal((intptr_t)e.first, 7);
  assert_loom_err(e.second_rc, LOOM_ESHUTDOWN);
  assert_int_equal(loom_channel_closed(e.ch), 1);
  loom_channel_release(e.ch);
}

typedef struct {
  loom_channel_t *ch;
  atomic_int stage;
  int rc;
} stuck_t;

/* Puts 1 (taken by the consumer), 2 (fills the channel), then 3, which
 * waits for room that only the consumer, which ends, could make. */
static int stuck_putter(void *arg) {
  stuck_t *s = arg;
  if (loom_channel_put(s->ch, (void *)1) || loom_channel_put(s->ch, (void *)2)) return -1;
  atomic_store(&s->stage, 1);
  s->rc = loom_channel_put(s->ch, (void *)3);
  return 0;
}

static int quitting_consumer(void *arg) {
  stuck_t *s = arg;
  void *item;
  if (loom_channel_get(s->ch, &item)) return -1;
  return await_flag(&s->stage, 1);
}

static void test_consumer_runtime_ends_while_producer_waits(void **state) {
  (void)state;
  stuck_t s = {0};
  assert_loom_ok(loom_channel_new(&s.ch, 1));
  runner_t a, b;
  start(&a, stuck_putter, &s);
  start(&b, quitting_consumer, &s);
  finish(&b);
  finish(&a);
  assert_loom_ok(a.status);
  assert_loom_ok(b.status);
  assert_loom_err(s.rc, LOOM_ESHUTDOWN);
  assert_int_equal(loom_channel_size(s.ch), 1); /* 2 is still there */
  loom_channel_release(s.ch);
}

/* A runtime shut down (embedded) while one of its tasks waits on the
 * channel: the task is cancelled, the runtime detaches, nothing leaks. */
typedef struct {
  loom_channel_t *ch;
  loom_t *rt;
  int waiting, rc;
} embedded_wait_t;

static int embedded_getter(void *arg) {
  embedded_wait_t *w = arg;
  void *item;
  w->waiting = 1; /* and parks in the get, before the loop runs again */
  w->rc = loom_channel_get(w->ch, &item);
  return 0;
}

/* Shuts the runtime down once the getter waits. */
static void on_stop(uv_timer_t *t) {
  embedded_wait_t *w = t->data;
  if (!w->waiting) return;
  loom_shutdown(w->rt, NULL, NULL);
  uv_close((uv_handle_t *)t, NULL);
}

static void test_embedded_shutdown_while_waiting(void **state) {
  (void)state;
  embedded_wait_t w = {0};
  assert_loom_ok(loom_channel_new(&w.ch, 1));
  uv_loop_t loop;
  loom_t *rt;
  assert_loom_ok(uv_loop_init(&loop));
  assert_loom_ok(loom_init(&rt, &loop, NULL));
  w.rt = rt;
  assert_loom_ok(loom_spawn_on(rt, NULL, embedded_getter, &w));
  uv_timer_t stop;
  uv_timer_init(&loop, &stop);
  stop.data = &w;
  uv_timer_start(&stop, on_stop, 1, 1);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_loom_ok(uv_loop_close(&loop));
  assert_loom_err(w.rc, UV_ECANCELED);
  assert_int_equal(loom_channel_closed(w.ch), 1); /* its only runtime ended */
  loom_channel_release(w.ch);
}

/* ---- close ----------------------------------------------------------------------- */

typedef struct {
  loom_channel_t *ch;
  atomic_int stage;
  int immediate;
  int put_rc, late_put_rc, drained, get_rc, getter_rc;
} closing_t;

static int blocked_getter(void *arg) {
  closing_t *c = arg;
  void *item;
  atomic_store(&c->stage, 1);
  c->getter_rc = loom_channel_get(c->ch, &item);
  return 0;
}

static int blocked_putter(void *arg) {
  closing_t *c = arg;
  if (loom_channel_put(c->ch, (void *)1) || loom_channel_put(c->ch, (void *)2)) return -1;
  atomic_store(&c->stage, 1);
  c->put_rc = loom_channel_put(c->ch, (void *)3); /* full: waits for the close */
  c->late_put_rc = loom_channel_put(c->ch, (void *)4);
  return 0;
}

static int closer(void *arg) {
  closing_t *c = arg;
  if (await_flag(&c->stage, 1)) return -1;
  loom_sleep(5);
  return loom_channel_close(c->ch, c->immediate);
}

static int drainer(void *arg) {
  closing_t *c = arg;
  void *item;
  while ((c->get_rc = loom_channel_get(c->ch, &item)) == 0) c->drained++;
  return 0;
}

static void test_close_wakes_putters_and_drains(void **state) {
  (void)state;
  for (int immediate = 0; immediate < 2; immediate++) {
    closing_t c = {.immediate = immediate};
    assert_loom_ok(loom_channel_new(&c.ch, 2));
    runner_t a, b;
    start(&a, blocked_putter, &c);
    start(&b, closer, &c);
    finish(&a);
    finish(&b);
    assert_loom_ok(a.status);
    assert_loom_ok(b.status);
    assert_loom_err(c.put_rc, LOOM_ESHUTDOWN);
    assert_loom_err(c.late_put_rc, LOOM_ESHUTDOWN);
    assert_loom_ok(loom_run(drainer, &c));
    assert_int_equal(c.drained, immediate ? 0 : 2);
    assert_loom_err(c.get_rc, LOOM_ESHUTDOWN);
    loom_channel_release(c.ch);
  }
}

static void test_close_wakes_getters(void **state) {
  (void)state;
  for (int immediate = 0; immediate < 2; immediate++) {
    closing_t c = {.immediate = immediate};
    assert_loom_ok(loom_channel_new(&c.ch, 2));
    runner_t a, b;
    start(&a, blocked_getter, &c);
    start(&b, closer, &c);
    finish(&a);
    finish(&b);
    assert_loom_ok(a.status);
    assert_loom_ok(b.status);
    assert_loom_err(c.getter_rc, LOOM_ESHUTDOWN);
    loom_channel_release(c.ch);
  }
}

/* ---- plain threads ------------------------------------------------------------------ */

typedef struct {
  loom_channel_t *ch;
  long n;
  long got, bad;
  int rc;
} plain_t;

static void *plain_producer(void *arg) {
  plain_t *p = arg;
  for (long i = 1; i <= p->n;) {
    int rc = loom_channel_try_put(p->ch, (void *)(intptr_t)i);
    if (rc == 0)
      i++;
    else if (rc == UV_EAGAIN)
      sched_yield();
    else
      return NULL;
  }
  loom_channel_close(p->ch, 0);
  return NULL;
}

static int task_consumer(void *arg) {
  plain_t *p = arg;
  void *item;
  while ((p->rc = loom_channel_get(p->ch, &item)) == 0)
    if ((intptr_t)item != ++p->got) p->bad++;
  return 0;
}

static void test_plain_thread_producer(void **state) {
  (void)state;
  plain_t p = {.n = 20000};
  assert_loom_ok(loom_channel_new(&p.ch, 8));
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, plain_producer, &p), 0);
  assert_loom_ok(loom_run(task_consumer, &p));
  pthread_join(th, NULL);
  assert_int_equal(p.got, p.n);
  assert_int_equal(p.bad, 0);
  assert_loom_err(p.rc, LOOM_ESHUTDOWN);
  loom_channel_release(p.ch);
}

/* Puts from plain threads race a close: every put that returned 0 has its
 * item delivered (a get after the close takes it), none is delivered twice,
 * and every put after the close fails. */
enum { RACE_PUTTERS = 3, RACE_ROUNDS = 100 };

typedef struct {
  loom_channel_t *ch;
  atomic_int go;
  long ok[RACE_PUTTERS];
} race_t;

typedef struct {
  race_t *r;
  int idx;
} racer_t;

static void *race_putter(void *arg) {
  racer_t *me = arg;
  race_t *r = me->r;
  while (!atomic_load(&r->go))
    sched_yield(); /* a bare spin starves the closer under Valgrind */
  for (long i = 0;; i++) {
    /* Item: which putter, and its count of successes so far. */
    int rc = loom_channel_try_put(
        r->ch, (void *)(intptr_t)(me->idx + 1 + 4 * (r->ok[me->idx] + 1)));
    if (rc == 0)
      r->ok[me->idx]++;
    else if (rc == LOOM_ESHUTDOWN)
      break;
    else if (i % 64 == 0)
      sched_yield();
  }
  return NULL;
}

static void test_close_races_puts(void **state) {
  (void)state;
  for (int round = 0; round < RACE_ROUNDS; round++) {
    race_t r = {0};
    assert_loom_ok(loom_channel_new(&r.ch, 64));
    pthread_t th[RACE_PUTTERS];
    racer_t me[RACE_PUTTERS];
    for (int i = 0; i < RACE_PUTTERS; i++) {
      me[i] = (racer_t){&r, i};
      assert_int_equal(pthread_create(&th[i], NULL, race_putter, &me[i]), 0);
    }
    atomic_store(&r.go, 1);
    for (int i = 0; i < round % 16; i++) sched_yield();
    assert_loom_ok(loom_channel_close(r.ch, 0));
    /* Drained while the putters may still be in a put that claimed its
     * place before the close: each putter's items come out in its order,
     * and all of them. */
    long got[RACE_PUTTERS] = {0};
    void *item;
    int rc;
    while ((rc = loom_channel_try_get(r.ch, &item)) == 0) {
      intptr_t v = (intptr_t)item;
      int who = (int)((v - 1) % 4);
      assert_true(who >= 0 && who < RACE_PUTTERS);
      assert_int_equal((v - 1) / 4, ++got[who]);
    }
    assert_loom_err(rc, LOOM_ESHUTDOWN);
    for (int i = 0; i < RACE_PUTTERS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < RACE_PUTTERS; i++) assert_int_equal(got[i], r.ok[i]);
    assert_loom_err(loom_channel_try_put(r.ch, (void *)1), LOOM_ESHUTDOWN);
    loom_channel_release(r.ch);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_misuse),
      cmocka_unit_test(test_same_runtime),
      cmocka_unit_test(test_two_runtimes),
      cmocka_unit_test(test_many_to_many),
      cmocka_unit_test(test_cancel_get_waiting_on_other_runtime),
      cmocka_unit_test(test_cancel_put_waiting_on_other_runtime),
      cmocka_unit_test(test_producer_runtime_ends_while_consumer_waits),
      cmocka_unit_test(test_consumer_runtime_ends_while_producer_waits),
      cmocka_unit_test(test_embedded_shutdown_while_waiting),
      cmocka_unit_test(test_close_wakes_putters_and_drains),
      cmocka_unit_test(test_close_wakes_getters),
      cmocka_unit_test(test_plain_thread_producer),
      cmocka_unit_test(test_close_races_puts),
  };
  return HARNESS_RUN(tests);
}
