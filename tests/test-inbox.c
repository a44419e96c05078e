/* The runtime's inbox (src/core/inbox.h), through its internal API:
 * messages from many threads all run, in order per thread, on the runtime's
 * thread; holds keep loom_run alive; messages pending at shutdown are
 * handed back with LOOM_ECLOSED; a post after the runtime has gone is
 * refused, and nothing leaks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/internal.h"
#include "harness.h"

enum { NTHREADS = 4, NMSG = 2000 };

typedef struct inbox_test_s inbox_test_t;
typedef struct {
  loom__msg_t m;
  inbox_test_t *t;
  int thread, seq;
} tmsg_t;

struct inbox_test_s {
  loom__inbox_t *ib;
  uv_thread_t self;
  int last[NTHREADS]; /* last seq seen per thread */
  int ran, closed, wrong_thread, out_of_order;
  loom_event_t all_done;
  uv_thread_t threads[NTHREADS];
  int ids[NTHREADS];
};

static void on_msg(loom__msg_t *m, int status) {
  tmsg_t *tm = loom__container_of(m, tmsg_t, m);
  inbox_test_t *t = tm->t;
  uv_thread_t me = uv_thread_self();
  if (!uv_thread_equal(&me, &t->self)) t->wrong_thread++;
  if (status == 0) {
    if (tm->seq != t->last[tm->thread] + 1) t->out_of_order++;
    t->last[tm->thread] = tm->seq;
    t->ran++;
    loom__inbox_unhold(loom__inbox_rt(t->ib));
    if (t->ran == NTHREADS * NMSG) loom_event_set(&t->all_done);
  } else {
    t->closed++;
  }
  free(tm);
}

typedef struct {
  inbox_test_t *t;
  int id;
} poster_arg_t;

static inbox_test_t *g_t;

static void poster(void *p) {
  int id = *(int *)p;
  for (int i = 1; i <= NMSG; i++) {
    tmsg_t *tm = malloc(sizeof(*tm));
    tm->m.run = on_msg;
    tm->t = g_t;
    tm->thread = id;
    tm->seq = i;
    if (loom__inbox_post(g_t->ib, &tm->m)) free(tm);
  }
}

static int many_main(void *arg) {
  inbox_test_t *t = arg;
  loom_t *rt = loom_runtime();
  t->self = uv_thread_self();
  int rc = loom__inbox_get(rt, &t->ib);
  if (rc) return rc;
  loom_event_init(&t->all_done);
  /* Every message is one the runtime waits for. */
  for (int i = 0; i < NTHREADS * NMSG; i++) loom__inbox_hold(rt);
  for (int i = 0; i < NTHREADS; i++) {
    t->ids[i] = i;
    uv_thread_create(&t->threads[i], poster, &t->ids[i]);
  }
  rc = loom_event_wait(&t->all_done);
  for (int i = 0; i < NTHREADS; i++) uv_thread_join(&t->threads[i]);
  return rc;
}

static void test_many_threads(void **state) {
  (void)state;
  inbox_test_t t = {0};
  g_t = &t;
  assert_loom_ok(loom_run(many_main, &t));
  assert_int_equal(t.ran, NTHREADS * NMSG);
  assert_int_equal(t.out_of_order, 0);
  assert_int_equal(t.wrong_thread, 0);
  /* The runtime has gone: the inbox refuses, and the last reference frees
   * it. */
  assert_false(loom__inbox_on_thread(t.ib));
  tmsg_t late = {.m.run = on_msg, .t = &t};
  assert_loom_err(loom__inbox_post(t.ib, &late.m), LOOM_ECLOSED);
  loom__inbox_release(t.ib);
}

/* Messages still queued when the runtime closes run with LOOM_ECLOSED. */
static int pending_main(void *arg) {
  inbox_test_t *t = arg;
  t->self = uv_thread_self();
  int rc = loom__inbox_get(loom_runtime(), &t->ib);
  if (rc) return rc;
  for (int i = 0; i < 3; i++) {
    tmsg_t *tm = calloc(1, sizeof(*tm));
    tm->m.run = on_msg;
    tm->t = t;
    rc = loom__inbox_post(t->ib, &tm->m);
    if (rc) return rc;
  }
  return 0; /* before the loop polls: all three are still queued */
}

static void test_pending_at_close(void **state) {
  (void)state;
  inbox_test_t t = {0};
  assert_loom_ok(loom_run(pending_main, &t));
  assert_int_equal(t.ran, 0);
  assert_int_equal(t.closed, 3);
  assert_int_equal(t.wrong_thread, 0);
  loom__inbox_release(t.ib);
}

/* A hold keeps loom_run from finishing until the message arrives from a
 * thread that takes its time. */
typedef struct {
  loom__msg_t m;
  loom__inbox_t *ib;
  int ran;
  uv_thread_t th;
} late_t;

static void late_run(loom__msg_t *m, int status) {
  late_t *l = loom__container_of(m, late_t, m);
  if (status == 0) {
    l->ran = 1;
    loom__inbox_unhold(loom__inbox_rt(l->ib));
  }
}

static void late_thread(void *p) {
  late_t *l = p;
  uv_sleep(50);
  l->m.run = late_run;
  loom__inbox_post(l->ib, &l->m);
}

static int hold_main(void *arg) {
  late_t *l = arg;
  loom_t *rt = loom_runtime();
  int rc = loom__inbox_get(rt, &l->ib);
  if (rc) return rc;
  loom__inbox_hold(rt);
  uv_thread_create(&l->th, late_thread, l);
  return 0; /* main ends at once; the runtime waits for the message */
}

static void test_hold_keeps_runtime(void **state) {
  (void)state;
  late_t l = {0};
  assert_loom_ok(loom_run(hold_main, &l));
  assert_int_equal(l.ran, 1);
  uv_thread_join(&l.th);
  loom__inbox_release(l.ib);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_many_threads),
      cmocka_unit_test(test_pending_at_close),
      cmocka_unit_test(test_hold_keeps_runtime),
  };
  return HARNESS_RUN(tests);
}
