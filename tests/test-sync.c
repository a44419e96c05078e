/* Locks, semaphores, events, conditions, barriers and queues: each rule of
 * docs/sync.md, the cancellation cases (queued, and woken-then-cancelled),
 * misuse, and property tests with fixed seeds (a longer randomised run is
 * behind LOOM_PROPERTY_RUNS; see tests/CMakeLists.txt). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"

typedef struct {
  int rc[12];
  char log[64];
  int n;
} rec_t;
static rec_t r;

static void note(char c) { r.log[r.n++] = c; }

static void run(loom_fn fn, void *arg) {
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(fn, arg));
}

/* ---- lock ------------------------------------------------------------------------- */

static loom_lock_t lock;

static int locker(void *arg) {
  char c = (char)(intptr_t)arg;
  int rc = loom_lock_acquire(&lock);
  if (rc) return rc;
  note(c);
  loom_sleep(1);
  return loom_lock_release(&lock);
}

static int lock_fifo_main(void *arg) {
  (void)arg;
  loom_lock_init(&lock);
  loom_task_t *t[3];
  r.rc[0] = loom_lock_acquire(&lock);
  for (int i = 0; i < 3; i++) loom_spawn(&t[i], locker, (void *)(intptr_t)('a' + i));
  loom_yield(); /* all three queue up */
  r.rc[1] = loom_lock_try_acquire(&lock);
  r.rc[2] = loom_lock_locked(&lock);
  loom_lock_release(&lock);
  r.rc[3] = loom_lock_try_acquire(&lock); /* handed to 'a', not free */
  loom_gather(t, 3, NULL, 0);
  r.rc[4] = loom_lock_release(&lock); /* not held any more */
  r.rc[5] = loom_lock_locked(&lock);
  return 0;
}
static void test_lock_fifo(void **state) {
  (void)state;
  run(lock_fifo_main, NULL);
  assert_string_equal(r.log, "abc");
  assert_loom_ok(r.rc[0]);
  assert_loom_err(r.rc[1], UV_EAGAIN);
  assert_int_equal(r.rc[2], 1);
  assert_loom_err(r.rc[3], UV_EAGAIN);
  assert_loom_err(r.rc[4], UV_EPERM);
  assert_loom_ok(r.rc[5]);
  loom_lock_t l;
  loom_lock_init(&l);
  assert_loom_err(loom_lock_acquire(&l), LOOM_ENOTASK);
  assert_loom_err(loom_lock_release(&l), UV_EPERM);
}

static int lock_cancel_main(void *arg) {
  (void)arg;
  loom_lock_init(&lock);
  loom_task_t *t[3];
  int st[3];
  loom_lock_acquire(&lock);
  for (int i = 0; i < 3; i++) loom_spawn(&t[i], locker, (void *)(intptr_t)('a' + i));
  loom_yield();
  loom_cancel(t[1]); /* queued: leaves the queue */
  loom_lock_release(&lock);
  loom_cancel(t[0]); /* woken (granted) but not run: passes the lock on */
  loom_gather(t, 3, st, 0);
  r.rc[0] = st[0];
  r.rc[1] = st[1];
  r.rc[2] = st[2];
  r.rc[3] = loom_lock_locked(&lock);
  /* A timeout while waiting. */
  loom_lock_acquire(&lock);
  loom_task_t *w;
  loom_spawn(&w, locker, (void *)'x');
  loom_scope_t s;
  loom_timeout_enter(&s, 10);
  r.rc[4] = loom_sleep(1000); /* hold the lock past w's patience? no: ours */
  loom_scope_exit(&s);
  loom_cancel(w);
  loom_join(w, &r.rc[5]);
  loom_lock_release(&lock);
  return 0;
}
static void test_lock_cancellation(void **state) {
  (void)state;
  run(lock_cancel_main, NULL);
  assert_loom_err(r.rc[0], UV_ECANCELED);
  assert_loom_err(r.rc[1], UV_ECANCELED);
  assert_loom_ok(r.rc[2]);
  assert_string_equal(r.log, "c");
  assert_loom_ok(r.rc[3]);
  assert_loom_err(r.rc[4], UV_ETIMEDOUT);
  assert_loom_err(r.rc[5], UV_ECANCELED);
}

/* ---- semaphore ------------------------------------------------------------------------ */

static loom_sem_t sem;

static int sem_user(void *arg) {
  char c = (char)(intptr_t)arg;
  int rc = loom_sem_acquire(&sem);
  if (rc) return rc;
  note(c);
  loom_sleep(2);
  return loom_sem_release(&sem);
}

static int sem_main(void *arg) {
  (void)arg;
  loom_sem_init(&sem, 0);
  loom_task_t *t[3];
  int st[3];
  for (int i = 0; i < 3; i++) loom_spawn(&t[i], sem_user, (void *)(intptr_t)('a' + i));
  loom_yield();
  r.rc[0] = loom_sem_locked(&sem);
  loom_sem_release(&sem);               /* permit handed to 'a' ... */
  loom_cancel(t[0]);                    /* ... who leaves: 'b' gets it */
  r.rc[1] = loom_sem_try_acquire(&sem); /* no queue jumping: 'b' has it */
  r.rc[2] = (int)loom_sem_value(&sem);
  loom_gather(t, 3, st, 0);
  r.rc[3] = st[0];
  r.rc[4] = st[1];
  r.rc[5] = st[2];
  r.rc[6] = (int)loom_sem_value(&sem); /* the one permit is back */
  loom_sem_init_bounded(&sem, 2);
  r.rc[7] = loom_sem_acquire(&sem);
  r.rc[8] = loom_sem_release(&sem);
  r.rc[9] = loom_sem_release(&sem); /* over-release */
  r.rc[10] = (int)loom_sem_value(&sem);
  return 0;
}
static void test_semaphore(void **state) {
  (void)state;
  run(sem_main, NULL);
  assert_int_equal(r.rc[0], 1);
  assert_loom_err(r.rc[1], UV_EAGAIN);
  assert_loom_ok(r.rc[2]);
  assert_loom_err(r.rc[3], UV_ECANCELED);
  assert_loom_ok(r.rc[4]);
  assert_loom_ok(r.rc[5]);
  assert_string_equal(r.log, "bc");
  assert_int_equal(r.rc[6], 1);
  assert_loom_ok(r.rc[7]);
  assert_loom_ok(r.rc[8]);
  assert_loom_err(r.rc[9], UV_EOVERFLOW);
  assert_int_equal(r.rc[10], 2);
}

/* ---- event ------------------------------------------------------------------------------ */

static loom_event_t ev;

static int ev_waiter(void *arg) {
  (void)arg;
  return loom_event_wait(&ev);
}
static int event_main(void *arg) {
  (void)arg;
  loom_event_init(&ev);
  loom_task_t *t[3];
  int st[3];
  for (int i = 0; i < 3; i++) loom_spawn(&t[i], ev_waiter, NULL);
  loom_yield();
  loom_cancel(t[2]);
  loom_event_set(&ev);
  loom_event_clear(&ev); /* before the waiters run: they still return 0 */
  r.rc[0] = loom_event_is_set(&ev);
  loom_gather(t, 3, st, 0);
  r.rc[1] = st[0];
  r.rc[2] = st[1];
  r.rc[3] = st[2];
  loom_event_set(&ev);
  r.rc[4] = loom_event_wait(&ev); /* set: no wait */
  loom_event_clear(&ev);
  loom_scope_t s;
  loom_timeout_enter(&s, 5);
  r.rc[5] = loom_event_wait(&ev);
  loom_scope_exit(&s);
  return 0;
}
static void test_event(void **state) {
  (void)state;
  run(event_main, NULL);
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_loom_ok(r.rc[2]);
  assert_loom_err(r.rc[3], UV_ECANCELED);
  assert_loom_ok(r.rc[4]);
  assert_loom_err(r.rc[5], UV_ETIMEDOUT);
}

/* ---- condition --------------------------------------------------------------------------- */

static loom_cond_t cond;
static int ready_items;

static int cond_waiter(void *arg) {
  char c = (char)(intptr_t)arg;
  loom_lock_acquire(&lock);
  int rc = loom_cond_wait(&cond);
  int held = loom_lock_locked(&lock);
  note(held ? c : '!');
  loom_lock_release(&lock);
  return rc;
}

static int cond_main(void *arg) {
  (void)arg;
  loom_lock_init(&lock);
  loom_cond_init(&cond, &lock);
  r.rc[0] = loom_cond_wait(&cond);      /* lock not held */
  r.rc[1] = loom_cond_notify(&cond, 1); /* lock not held */
  loom_task_t *t[3];
  int st[3];
  for (int i = 0; i < 3; i++) loom_spawn(&t[i], cond_waiter, (void *)(intptr_t)('a' + i));
  loom_sleep(1);
  loom_lock_acquire(&lock);
  loom_cond_notify(&cond, 1); /* 'a' is notified ... */
  loom_cancel(t[0]);          /* ... and cancelled: 'b' gets the notification */
  loom_cancel(t[2]);          /* 'c', still waiting, is cancelled too */
  loom_sleep(5);              /* they must wait for the lock before returning */
  note('M');
  loom_lock_release(&lock);
  loom_gather(t, 3, st, 0);
  r.rc[2] = st[0];
  r.rc[3] = st[1];
  r.rc[4] = st[2];
  return 0;
}
static void test_condition(void **state) {
  (void)state;
  run(cond_main, NULL);
  assert_loom_err(r.rc[0], UV_EPERM);
  assert_loom_err(r.rc[1], UV_EPERM);
  assert_loom_err(r.rc[2], UV_ECANCELED);
  assert_loom_ok(r.rc[3]);
  assert_loom_err(r.rc[4], UV_ECANCELED);
  /* Everyone re-acquired the lock before returning, after main let go. */
  assert_int_equal(r.log[0], 'M');
  assert_int_equal(strlen(r.log), 4);
  assert_null(strchr(r.log, '!'));
}

static int have_items(void *arg) {
  (void)arg;
  return ready_items >= 3;
}
static int cond_pred_waiter(void *arg) {
  (void)arg;
  loom_lock_acquire(&lock);
  int rc = loom_cond_wait_for(&cond, have_items, NULL);
  r.rc[1] = ready_items;
  loom_lock_release(&lock);
  return rc;
}
static int cond_pred_main(void *arg) {
  (void)arg;
  loom_lock_init(&lock);
  loom_cond_init(&cond, &lock);
  ready_items = 0;
  loom_task_t *t[2];
  loom_spawn(&t[0], cond_pred_waiter, NULL);
  loom_spawn(&t[1], cond_pred_waiter, NULL);
  for (int i = 0; i < 3; i++) {
    loom_sleep(1);
    loom_lock_acquire(&lock);
    ready_items++;
    loom_cond_notify_all(&cond);
    loom_lock_release(&lock);
  }
  int st[2];
  loom_gather(t, 2, st, 0);
  r.rc[0] = st[0] | st[1];
  /* A timed-out wait still holds the lock when it returns. */
  loom_lock_acquire(&lock);
  loom_scope_t s;
  loom_timeout_enter(&s, 5);
  r.rc[2] = loom_cond_wait(&cond);
  loom_scope_exit(&s);
  r.rc[3] = loom_lock_locked(&lock);
  loom_lock_release(&lock);
  return 0;
}
static void test_condition_predicate_and_timeout(void **state) {
  (void)state;
  run(cond_pred_main, NULL);
  assert_loom_ok(r.rc[0]);
  assert_int_equal(r.rc[1], 3);
  assert_loom_err(r.rc[2], UV_ETIMEDOUT);
  assert_int_equal(r.rc[3], 1);
}

/* ---- barrier --------------------------------------------------------------------------------- */

static loom_barrier_t bar;

static int bar_party(void *arg) {
  int *out = arg;
  out[0] = loom_barrier_wait(&bar);
  out[1] = loom_barrier_wait(&bar); /* reusable at once */
  return 0;
}
static int barrier_main(void *arg) {
  (void)arg;
  r.rc[0] = loom_barrier_init(&bar, 0);
  loom_barrier_init(&bar, 3);
  static int idx[3][2];
  loom_task_t *t[3];
  for (int i = 0; i < 3; i++) loom_spawn(&t[i], bar_party, idx[i]);
  loom_gather(t, 3, NULL, 0);
  int seen0 = 0, seen1 = 0;
  for (int i = 0; i < 3; i++) {
    seen0 |= 1 << idx[i][0];
    seen1 |= 1 << idx[i][1];
  }
  r.rc[1] = seen0;
  r.rc[2] = seen1;
  /* reset breaks the waiting cycle; abort breaks the barrier. */
  for (int i = 0; i < 2; i++) loom_spawn(&t[i], bar_party, idx[i]);
  loom_yield();
  r.rc[3] = (int)loom_barrier_n_waiting(&bar);
  loom_barrier_reset(&bar);
  loom_yield(); /* they come back for the second wait */
  loom_barrier_abort(&bar);
  loom_gather(t, 2, NULL, 0);
  r.rc[4] = idx[0][0];
  r.rc[5] = idx[1][1];
  r.rc[6] = loom_barrier_wait(&bar);
  r.rc[7] = loom_barrier_broken(&bar);
  return 0;
}
static void test_barrier(void **state) {
  (void)state;
  run(barrier_main, NULL);
  assert_loom_err(r.rc[0], UV_EINVAL);
  assert_int_equal(r.rc[1], 7); /* indices 0, 1, 2, each once */
  assert_int_equal(r.rc[2], 7);
  assert_int_equal(r.rc[3], 2);
  assert_loom_err(r.rc[4], LOOM_EBROKEN);
  assert_loom_err(r.rc[5], LOOM_EBROKEN);
  assert_loom_err(r.rc[6], LOOM_EBROKEN);
  assert_int_equal(r.rc[7], 1);
}

/* ---- queue ------------------------------------------------------------------------------------- */

static int cmp_int(const void *a, const void *b) {
  intptr_t x = (intptr_t)a, y = (intptr_t)b;
  return (x > y) - (x < y);
}

static void drain(loom_queue_t *q, char *out) {
  void *it;
  int k = 0;
  while (loom_queue_try_get(q, &it) == 0) out[k++] = (char)(intptr_t)it;
  out[k] = 0;
}

static void test_queue_orders(void **state) {
  (void)state;
  loom_queue_t q;
  char out[16];
  const char *in = "dbeac";
  assert_loom_ok(loom_queue_init(&q, 0, LOOM_QUEUE_FIFO, NULL));
  for (int i = 0; in[i]; i++) loom_queue_try_put(&q, (void *)(intptr_t)in[i]);
  assert_int_equal(loom_queue_size(&q), 5);
  drain(&q, out);
  assert_string_equal(out, "dbeac");
  assert_loom_ok(loom_queue_destroy(&q));
  assert_loom_ok(loom_queue_init(&q, 0, LOOM_QUEUE_LIFO, NULL));
  for (int i = 0; in[i]; i++) loom_queue_try_put(&q, (void *)(intptr_t)in[i]);
  drain(&q, out);
  assert_string_equal(out, "caebd");
  loom_queue_destroy(&q);
  assert_loom_ok(loom_queue_init(&q, 4, LOOM_QUEUE_PRIORITY, cmp_int));
  for (int i = 0; in[i]; i++) loom_queue_try_put(&q, (void *)(intptr_t)in[i]);
  assert_int_equal(loom_queue_full(&q), 1);
  drain(&q, out);
  assert_string_equal(out, "abde"); /* 'c' did not fit: EAGAIN */
  assert_int_equal(loom_queue_empty(&q), 1);
  void *it;
  assert_loom_err(loom_queue_try_get(&q, &it), UV_EAGAIN);
  loom_queue_destroy(&q);
  assert_loom_err(loom_queue_init(&q, 0, LOOM_QUEUE_PRIORITY, NULL), UV_EINVAL);
  assert_loom_err(loom_queue_init(&q, 0, 7, NULL), UV_EINVAL);
  /* FIFO ring wrapping around and growing. */
  assert_loom_ok(loom_queue_init(&q, 0, LOOM_QUEUE_FIFO, NULL));
  int bad = 0;
  intptr_t next_in = 0, next_out = 0;
  for (int round = 0; round < 50; round++) {
    for (int i = 0; i < round % 7 + 3; i++) loom_queue_try_put(&q, (void *)next_in++);
    for (int i = 0; i < round % 5 + 1; i++)
      if (loom_queue_try_get(&q, &it) == 0 && (intptr_t)it != next_out++) bad++;
  }
  while (loom_queue_try_get(&q, &it) == 0)
    if ((intptr_t)it != next_out++) bad++;
  assert_int_equal(bad, 0);
  assert_int_equal(next_in, next_out);
  loom_queue_destroy(&q);
}

static int eq_first(const void *a, const void *b) {
  return *(const char *)a - *(const char *)b;
}
static void test_queue_priority_ties(void **state) {
  (void)state;
  loom_queue_t q;
  static const char *items[] = {"b1", "a1", "b2", "a2", "a3", "b3"};
  loom_queue_init(&q, 0, LOOM_QUEUE_PRIORITY, eq_first);
  for (int i = 0; i < 6; i++) loom_queue_try_put(&q, (void *)items[i]);
  char out[32] = "";
  void *it;
  while (loom_queue_try_get(&q, &it) == 0) strcat(out, (const char *)it);
  assert_string_equal(out, "a1a2a3b1b2b3");
  loom_queue_destroy(&q);
}

static loom_queue_t queue;

static int getter(void *arg) {
  void **slot = arg;
  return loom_queue_get(&queue, slot);
}
static int putter(void *arg) { return loom_queue_put(&queue, arg); }

static int queue_block_main(void *arg) {
  (void)arg;
  loom_queue_init(&queue, 2, LOOM_QUEUE_FIFO, NULL);
  loom_task_t *p[3], *g[3];
  int st[3];
  static void *got[3];
  loom_queue_put(&queue, (void *)1);
  loom_queue_put(&queue, (void *)2);
  r.rc[0] = loom_queue_try_put(&queue, (void *)9);
  for (int i = 0; i < 3; i++) loom_spawn(&p[i], putter, (void *)(intptr_t)(3 + i));
  loom_yield(); /* all three block: full */
  r.rc[1] = (int)loom_queue_size(&queue);
  void *it;
  loom_queue_get(&queue, &it); /* frees a slot for putter 3 */
  r.rc[2] = (int)(intptr_t)it;
  loom_cancel(p[0]); /* woken, cancelled: slot passes to putter 4 */
  loom_cancel(p[2]); /* putter 5, still queued, leaves the queue */
  loom_gather(p, 3, st, 0);
  r.rc[3] = st[0];
  r.rc[4] = st[1];
  r.rc[5] = st[2];
  char out[8];
  drain(&queue, out);
  r.rc[6] = out[0] == 2 && out[1] == 4 && out[2] == 0;
  /* Getters: woken and cancelled passes the item on. */
  for (int i = 0; i < 3; i++) loom_spawn(&g[i], getter, &got[i]);
  loom_yield();
  loom_queue_put(&queue, (void *)7); /* for g0 ... */
  loom_cancel(g[0]);                 /* ... who leaves: g1 gets it */
  loom_cancel(g[2]);                 /* g2 is cancelled while queued */
  loom_gather(g, 3, st, 0);
  r.rc[7] = st[0];
  r.rc[8] = st[1] == 0 && got[1] == (void *)7;
  r.rc[9] = st[2];
  r.rc[10] = (int)loom_queue_size(&queue);
  r.rc[11] = loom_queue_destroy(&queue);
  return 0;
}
static void test_queue_blocking_and_cancellation(void **state) {
  (void)state;
  run(queue_block_main, NULL);
  assert_loom_err(r.rc[0], UV_EAGAIN);
  assert_int_equal(r.rc[1], 2);
  assert_int_equal(r.rc[2], 1);
  assert_loom_err(r.rc[3], UV_ECANCELED);
  assert_loom_ok(r.rc[4]);
  assert_loom_err(r.rc[5], UV_ECANCELED);
  assert_int_equal(r.rc[6], 1);
  assert_loom_err(r.rc[7], UV_ECANCELED);
  assert_int_equal(r.rc[8], 1);
  assert_loom_err(r.rc[9], UV_ECANCELED);
  assert_loom_ok(r.rc[10]);
  assert_loom_ok(r.rc[11]);
}

/* task_done / join, and misuse. */
static int worker(void *arg) {
  (void)arg;
  void *it;
  while (loom_queue_get(&queue, &it) == 0) {
    loom_sleep(1);
    r.rc[0] += (int)(intptr_t)it;
    loom_queue_task_done(&queue);
  }
  return 0;
}
static int join_main(void *arg) {
  (void)arg;
  loom_queue_init(&queue, 0, LOOM_QUEUE_FIFO, NULL);
  r.rc[1] = loom_queue_task_done(&queue); /* nothing was put */
  r.rc[2] = loom_queue_join(&queue);      /* nothing to wait for */
  loom_task_t *w[2];
  for (int i = 0; i < 2; i++) loom_spawn(&w[i], worker, NULL);
  for (int i = 1; i <= 10; i++) loom_queue_put(&queue, (void *)(intptr_t)i);
  r.rc[3] = loom_queue_join(&queue); /* all 10 processed */
  r.rc[4] = r.rc[0];
  r.rc[5] = loom_queue_destroy(&queue); /* workers still wait on it */
  loom_queue_shutdown(&queue, 0);
  loom_gather(w, 2, NULL, 0);
  r.rc[6] = loom_queue_destroy(&queue);
  return 0;
}
static void test_queue_join(void **state) {
  (void)state;
  run(join_main, NULL);
  assert_loom_err(r.rc[1], UV_EINVAL);
  assert_loom_ok(r.rc[2]);
  assert_loom_ok(r.rc[3]);
  assert_int_equal(r.rc[4], 55);
  assert_loom_err(r.rc[5], LOOM_EBUSY);
  assert_loom_ok(r.rc[6]);
}

/* Shutdown, Python 3.13 semantics. */
static int shutdown_main(void *arg) {
  int immediate = (int)(intptr_t)arg;
  loom_queue_init(&queue, 2, LOOM_QUEUE_FIFO, NULL);
  loom_queue_put(&queue, (void *)1);
  loom_queue_put(&queue, (void *)2);
  loom_task_t *p, *j, *g[2];
  static void *got[2];
  loom_spawn(&p, putter, (void *)3); /* blocks: full */
  loom_spawn(&j, (loom_fn)loom_queue_join, &queue);
  loom_yield();
  loom_queue_shutdown(&queue, immediate);
  r.rc[0] = loom_queue_put(&queue, (void *)4);
  r.rc[1] = loom_queue_try_put(&queue, (void *)4);
  loom_join(p, &r.rc[2]); /* the blocked putter was woken */
  for (int i = 0; i < 2; i++) loom_spawn(&g[i], getter, &got[i]);
  int st[2];
  loom_gather(g, 2, st, 0);
  r.rc[3] = st[0];
  r.rc[4] = st[1];
  void *it;
  r.rc[5] = loom_queue_get(&queue, &it); /* empty and shut down */
  loom_queue_task_done(&queue);
  loom_queue_task_done(&queue);
  loom_join(j, &r.rc[6]);
  r.rc[7] = loom_queue_destroy(&queue);
  return 0;
}
static void test_queue_shutdown(void **state) {
  (void)state;
  run(shutdown_main, (void *)0);
  assert_loom_err(r.rc[0], LOOM_ESHUTDOWN);
  assert_loom_err(r.rc[1], LOOM_ESHUTDOWN);
  assert_loom_err(r.rc[2], LOOM_ESHUTDOWN);
  assert_loom_ok(r.rc[3]); /* the remaining items drain */
  assert_loom_ok(r.rc[4]);
  assert_loom_err(r.rc[5], LOOM_ESHUTDOWN);
  assert_loom_ok(r.rc[6]);
  assert_loom_ok(r.rc[7]);
}
static void test_queue_shutdown_immediate(void **state) {
  (void)state;
  run(shutdown_main, (void *)1);
  assert_loom_err(r.rc[0], LOOM_ESHUTDOWN);
  assert_loom_err(r.rc[2], LOOM_ESHUTDOWN);
  assert_loom_err(r.rc[3], LOOM_ESHUTDOWN); /* emptied at once */
  assert_loom_err(r.rc[4], LOOM_ESHUTDOWN);
  assert_loom_err(r.rc[5], LOOM_ESHUTDOWN);
  assert_loom_ok(r.rc[6]); /* join released by the drain */
  assert_loom_ok(r.rc[7]);
}

/* A draining shutdown while the last item is promised to a woken getter:
 * a newcomer's get fails at once instead of waiting forever. */
static int promised_main(void *arg) {
  (void)arg;
  loom_queue_init(&queue, 0, LOOM_QUEUE_FIFO, NULL);
  loom_task_t *g;
  static void *got;
  loom_spawn(&g, getter, &got);
  loom_yield();
  loom_queue_put(&queue, (void *)5); /* promised to g, which has not run */
  loom_queue_shutdown(&queue, 0);
  void *it;
  loom_scope_t s;
  loom_timeout_enter(&s, 1000);
  r.rc[0] = loom_queue_get(&queue, &it);
  loom_scope_exit(&s);
  r.rc[1] = loom_queue_try_get(&queue, &it);
  loom_join(g, &r.rc[2]);
  r.rc[3] = got == (void *)5;
  r.rc[4] = loom_queue_destroy(&queue);
  return 0;
}
static void test_queue_shutdown_with_promised_item(void **state) {
  (void)state;
  run(promised_main, NULL);
  assert_loom_err(r.rc[0], LOOM_ESHUTDOWN);
  assert_loom_err(r.rc[1], LOOM_ESHUTDOWN);
  assert_loom_ok(r.rc[2]);
  assert_int_equal(r.rc[3], 1);
  assert_loom_ok(r.rc[4]);
}

/* ---- property tests ------------------------------------------------------------------------ */

/* A small deterministic generator, one per test run. */
static uint64_t rng_state;
static uint32_t rnd(uint32_t n) {
  rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (uint32_t)(rng_state >> 33) % n;
}

#define NPROD 4
#define NCONS 4
#define PER_PROD 60
#define NITEMS (NPROD * PER_PROD)

typedef struct {
  loom_queue_t q;
  unsigned char put_ok[NITEMS]; /* put returned 0 */
  unsigned char got[NITEMS];    /* times got */
  int next[NPROD];              /* producer i's next item (0-based) */
  loom_task_t *p[NPROD], *c[NCONS];
} prop_t;
static prop_t pq;

/* Short random timeouts (0 = expired at entry), else a long one. */
static uint64_t patience(void) { return rnd(4) == 0 ? rnd(3) : 1000; }

static int prop_producer(void *arg) {
  int i = (int)(intptr_t)arg;
  while (pq.next[i] < PER_PROD) {
    int item = i * PER_PROD + pq.next[i];
    if (rnd(3) == 0) loom_yield();
    if (rnd(8) == 0) loom_sleep(rnd(2));
    loom_scope_t s;
    loom_timeout_enter(&s, patience());
    int rc = loom_queue_put(&pq.q, (void *)(intptr_t)(item + 1));
    loom_scope_exit(&s);
    if (rc == 0) pq.put_ok[item] = 1;
    if (rc == UV_ECANCELED) return 0; /* a replacement retries this item */
    pq.next[i]++;                     /* put, or reported as not put */
  }
  return 0;
}

static int prop_consumer(void *arg) {
  (void)arg;
  for (;;) {
    if (rnd(3) == 0) loom_yield();
    loom_scope_t s;
    loom_timeout_enter(&s, patience());
    void *it;
    int rc = loom_queue_get(&pq.q, &it);
    loom_scope_exit(&s);
    if (rc == 0) {
      pq.got[(intptr_t)it - 1]++;
      if (rnd(8) == 0) loom_sleep(rnd(2));
    } else if (rc != UV_ETIMEDOUT) {
      return 0; /* cancelled or shut down */
    }
  }
}

static int prop_queue_main(void *arg) {
  (void)arg;
  memset(&pq, 0, sizeof(pq));
  loom_queue_init(&pq.q, 1 + rnd(4), LOOM_QUEUE_FIFO, NULL);
  for (int i = 0; i < NPROD; i++)
    loom_spawn(&pq.p[i], prop_producer, (void *)(intptr_t)i);
  for (int i = 0; i < NCONS; i++) loom_spawn(&pq.c[i], prop_consumer, NULL);
  /* Cancel producers and consumers at random moments, often right after a
   * put or get has woken them, and replace them: a producer's replacement
   * retries the item whose put was cancelled. */
  for (int k = 0; k < 60; k++) {
    for (uint32_t y = rnd(6); y > 0; y--) loom_yield();
    loom_task_t **victim;
    loom_fn fn;
    void *arg2 = NULL;
    if (rnd(2)) {
      int i = (int)rnd(NPROD);
      victim = &pq.p[i], fn = prop_producer, arg2 = (void *)(intptr_t)i;
    } else {
      victim = &pq.c[rnd(NCONS)], fn = prop_consumer;
    }
    loom_cancel(*victim);
    loom_join(*victim, NULL); /* it has left the queue for good */
    loom_spawn(victim, fn, arg2);
  }
  loom_gather(pq.p, NPROD, NULL, 0);
  loom_queue_shutdown(&pq.q, 0); /* consumers drain, then stop */
  loom_gather(pq.c, NCONS, NULL, 0);
  void *it; /* whatever is left (the last consumers may have timed out) */
  while (loom_queue_try_get(&pq.q, &it) == 0) pq.got[(intptr_t)it - 1]++;
  return loom_queue_destroy(&pq.q);
}

static int check_prop_queue(void) {
  int bad = 0;
  for (int i = 0; i < NITEMS; i++)
    if (pq.got[i] != pq.put_ok[i]) bad++; /* got exactly once iff put */
  return bad;
}

typedef struct {
  loom_sem_t sem;
  loom_lock_t lock;
  unsigned inside, max_inside, holders, max_holders, entries;
} guard_t;
static guard_t pg;

static int prop_sem_user(void *arg) {
  (void)arg;
  for (int i = 0; i < 20; i++) {
    loom_scope_t s;
    loom_timeout_enter(&s, rnd(3) == 0 ? rnd(3) : 1000);
    int rc = loom_sem_acquire(&pg.sem);
    if (rc == 0) {
      if (++pg.inside > pg.max_inside) pg.max_inside = pg.inside;
      int lrc = loom_lock_acquire(&pg.lock);
      if (lrc == 0) {
        if (++pg.holders > pg.max_holders) pg.max_holders = pg.holders;
        pg.entries++;
        loom_sleep(rnd(2));
        pg.holders--;
        loom_lock_release(&pg.lock);
      }
      loom_sleep(rnd(2));
      pg.inside--;
      loom_sem_release(&pg.sem);
    }
    loom_scope_exit(&s);
    if (rc == UV_ECANCELED) return 0;
  }
  return 0;
}

static int prop_sem_main(void *arg) {
  (void)arg;
  memset(&pg, 0, sizeof(pg));
  loom_sem_init(&pg.sem, 3);
  loom_lock_init(&pg.lock);
  loom_task_t *t[12];
  for (int i = 0; i < 12; i++) loom_spawn(&t[i], prop_sem_user, NULL);
  for (int k = 0; k < 4; k++) {
    loom_sleep(rnd(4));
    loom_cancel(t[rnd(12)]);
  }
  loom_gather(t, 12, NULL, 0);
  return 0;
}

static int property_runs(void) {
  const char *e = getenv("LOOM_PROPERTY_RUNS");
  return e ? atoi(e) : 0;
}

static void test_property_queue(void **state) {
  (void)state;
  int runs = property_runs();
  uint64_t seeds[] = {1, 2, 3, 42, 1234, 99991};
  int n = runs > 0 ? runs : (int)(sizeof(seeds) / sizeof(seeds[0]));
  for (int i = 0; i < n; i++) {
    uint64_t seed = runs > 0 ? (uint64_t)wall_ms() * 7919u + (uint64_t)i : seeds[i];
    rng_state = seed;
    assert_loom_ok(loom_run(prop_queue_main, NULL));
    int bad = check_prop_queue();
    if (bad)
      print_error("seed %llu: %d items lost or duplicated\n", (unsigned long long)seed,
                  bad);
    assert_int_equal(bad, 0);
  }
}

static void test_property_sem_and_lock(void **state) {
  (void)state;
  int runs = property_runs();
  uint64_t seeds[] = {7, 8, 9, 77, 4321};
  int n = runs > 0 ? runs : (int)(sizeof(seeds) / sizeof(seeds[0]));
  for (int i = 0; i < n; i++) {
    rng_state = runs > 0 ? (uint64_t)wall_ms() * 104729u + (uint64_t)i : seeds[i];
    assert_loom_ok(loom_run(prop_sem_main, NULL));
    assert_true(pg.max_inside <= 3);
    assert_true(pg.max_inside >= 1);
    assert_int_equal(pg.max_holders, 1);
    assert_int_equal(pg.inside, 0);
    assert_int_equal(loom_sem_value(&pg.sem), 3); /* every permit came back */
    assert_true(pg.entries > 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lock_fifo),
      cmocka_unit_test(test_lock_cancellation),
      cmocka_unit_test(test_semaphore),
      cmocka_unit_test(test_event),
      cmocka_unit_test(test_condition),
      cmocka_unit_test(test_condition_predicate_and_timeout),
      cmocka_unit_test(test_barrier),
      cmocka_unit_test(test_queue_orders),
      cmocka_unit_test(test_queue_priority_ties),
      cmocka_unit_test(test_queue_blocking_and_cancellation),
      cmocka_unit_test(test_queue_join),
      cmocka_unit_test(test_queue_shutdown),
      cmocka_unit_test(test_queue_shutdown_immediate),
      cmocka_unit_test(test_queue_shutdown_with_promised_item),
      cmocka_unit_test(test_property_queue),
      cmocka_unit_test(test_property_sem_and_lock),
  };
  return HARNESS_RUN(tests);
}
