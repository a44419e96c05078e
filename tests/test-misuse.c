/* Misuse and hostile input get error codes, never undefined behaviour:
 * NULL and half-initialised sync objects, sizes near the limits, task
 * groups used after loom_group_wait, allocation failures inside the
 * combinators, and error strings that stay valid side by side.
 *
 * Allocation failures are injected through the counting allocator every
 * test program links (harness.h): its fail hook below fails the k-th
 * allocation made by loom's static library or by this file once armed, and
 * its watch hook keeps track of the blocks allocated while armed. libuv's
 * own allocations are never failed here. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"

/* ---- allocation fault hook -------------------------------------------------- */

enum { TRACK_CAP = 4096 };

static struct {
  int armed;             /* counting and tracking */
  long fail_at;          /* the allocation to fail (1-based); 0: none */
  long calls;            /* allocations since armed */
  int failed;            /* the kind of the allocation that was failed, or 0 */
  void *live[TRACK_CAP]; /* blocks allocated while armed, not yet freed */
  size_t nlive;
} fault;

/* 1 if this allocation is the one to fail. */
static int fault_hit(int kind, int from_uv) {
  if (!fault.armed || from_uv) return 0;
  if (++fault.calls != fault.fail_at) return 0;
  fault.failed = kind;
  return 1;
}
static void track(void *p) {
  if (p && fault.armed && fault.nlive < TRACK_CAP) fault.live[fault.nlive++] = p;
}
static void untrack(void *p) {
  for (size_t i = 0; p && i < fault.nlive; i++)
    if (fault.live[i] == p) {
      fault.live[i] = fault.live[--fault.nlive];
      return;
    }
}
static void fault_watch(void *freed, void *allocated, int from_uv) {
  if (from_uv) return;
  untrack(freed);
  track(allocated);
}

static void fault_arm(long fail_at) {
  memset(&fault, 0, sizeof(fault));
  fault.fail_at = fail_at;
  fault.armed = 1;
  harness_alloc_set_hooks(
      &(harness_alloc_hooks_t){.should_fail = fault_hit, .watch = fault_watch});
}
static void fault_disarm(void) {
  fault.armed = 0;
  harness_alloc_set_hooks(NULL);
}

/* ---- error strings ------------------------------------------------------------ */

static void test_err_zero(void **state) {
  (void)state;
  assert_string_equal(loom_err_name(0), "OK");
  assert_string_equal(loom_strerror(0), "success");
}

static void test_err_two_in_one_call(void **state) {
  (void)state;
  char buf[256];
  snprintf(buf, sizeof(buf), "%s|%s|%s", loom_strerror(UV_EINVAL),
           loom_strerror(UV_ENOMEM), loom_strerror(LOOM_EBROKEN));
  assert_string_equal(buf, "invalid argument|not enough memory|"
                           "barrier is broken (reset or aborted)");
  snprintf(buf, sizeof(buf), "%s|%s|%s", loom_err_name(UV_EINVAL),
           loom_err_name(UV_ENOMEM), loom_err_name(LOOM_ESHUTDOWN));
  assert_string_equal(buf, "EINVAL|ENOMEM|LOOM_ESHUTDOWN");
}

/* Every libuv code has a static name and message, the same as libuv's. */
static void test_err_every_libuv_code(void **state) {
  (void)state;
  static const int codes[] = {
#define CODE_(name, msg) UV_##name,
      UV_ERRNO_MAP(CODE_)
#undef CODE_
  };
  for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
    const char *msg = loom_strerror(codes[i]);
    const char *name = loom_err_name(codes[i]);
    /* Other calls in between do not touch them. */
    loom_strerror(-123456789);
    loom_err_name(-123456789);
    loom_strerror(UV_EOF);
    loom_err_name(UV_EOF);
    assert_string_equal(msg, uv_strerror(codes[i]));
    assert_string_equal(name, uv_err_name(codes[i]));
    assert_ptr_equal(msg, loom_strerror(codes[i]));
    assert_ptr_equal(name, loom_err_name(codes[i]));
  }
}

/* Only unknown codes are formatted, into per-thread buffers (one per
 * function), which known codes never overwrite. */
static void test_err_unknown(void **state) {
  (void)state;
  const char *msg = loom_strerror(-123456);
  const char *name = loom_err_name(-654321);
  assert_string_equal(loom_strerror(UV_EINVAL), "invalid argument");
  assert_string_equal(loom_err_name(UV_EINVAL), "EINVAL");
  assert_non_null(strstr(msg, "-123456"));
  assert_non_null(strstr(name, "-654321"));
  assert_non_null(strstr(loom_strerror(LOOM_ERRNO_BASE - 99), "loom"));
  assert_string_equal(loom_err_name(LOOM_ERRNO_BASE - 99), "LOOM_E20099");
}

/* ---- sync: NULL and hostile input ------------------------------------------------ */

static int pred_true(void *arg) {
  (void)arg;
  return 1;
}

/* The waiting calls, with NULL objects and half-initialised ones, from a
 * task (from host code they would fail with LOOM_ENOTASK anyway). */
static struct {
  int rc[32];
  int n;
} sn;

static void note_rc(int rc) { sn.rc[sn.n++] = rc; }

static int sync_null_main(void *arg) {
  (void)arg;
  void *item = NULL;
  loom_queue_t q;
  note_rc(loom_lock_acquire(NULL));
  note_rc(loom_sem_acquire(NULL));
  note_rc(loom_event_wait(NULL));
  note_rc(loom_cond_wait(NULL));
  note_rc(loom_cond_wait_for(NULL, pred_true, NULL));
  note_rc(loom_barrier_wait(NULL));
  note_rc(loom_queue_put(NULL, &item));
  note_rc(loom_queue_get(NULL, &item));
  note_rc(loom_queue_join(NULL));
  loom_queue_init(&q, 0, LOOM_QUEUE_FIFO, NULL);
  note_rc(loom_queue_get(&q, NULL));
  loom_queue_destroy(&q);
  /* A destroyed queue. */
  note_rc(loom_queue_get(&q, &item));
  note_rc(loom_queue_put(&q, item));
  note_rc(loom_queue_join(&q));
  note_rc(loom_queue_shutdown(&q, 0));
  /* A condition never bound to a lock, a barrier never initialised
   * (zero-filled storage, as a static one is). */
  static loom_cond_t c0;
  static loom_barrier_t b0;
  note_rc(loom_cond_wait(&c0));
  note_rc(loom_cond_notify(&c0, 1));
  note_rc(loom_cond_notify_all(&c0));
  note_rc(loom_barrier_wait(&b0));
  return 0;
}

static void test_sync_null_waiting(void **state) {
  (void)state;
  memset(&sn, 0, sizeof(sn));
  assert_loom_ok(loom_run(sync_null_main, NULL));
  assert_int_equal(sn.n, 18);
  for (int i = 0; i < sn.n; i++) assert_loom_err(sn.rc[i], UV_EINVAL);
}

static void test_sync_null_host(void **state) {
  (void)state;
  void *item;
  assert_loom_err(loom_lock_try_acquire(NULL), UV_EINVAL);
  assert_loom_err(loom_lock_release(NULL), UV_EINVAL);
  assert_int_equal(loom_lock_locked(NULL), 0);
  assert_loom_err(loom_sem_try_acquire(NULL), UV_EINVAL);
  assert_loom_err(loom_sem_release(NULL), UV_EINVAL);
  assert_int_equal(loom_sem_value(NULL), 0);
  assert_int_equal(loom_sem_locked(NULL), 0);
  assert_int_equal(loom_event_is_set(NULL), 0);
  assert_loom_err(loom_cond_notify(NULL, 1), UV_EINVAL);
  assert_loom_err(loom_cond_notify_all(NULL), UV_EINVAL);
  assert_loom_err(loom_barrier_init(NULL, 2), UV_EINVAL);
  assert_int_equal(loom_barrier_n_waiting(NULL), 0);
  assert_int_equal(loom_barrier_broken(NULL), 0);
  assert_loom_err(loom_queue_init(NULL, 0, LOOM_QUEUE_FIFO, NULL), UV_EINVAL);
  assert_loom_err(loom_queue_destroy(NULL), UV_EINVAL);
  assert_int_equal(loom_queue_size(NULL), 0);
  assert_int_equal(loom_queue_empty(NULL), 0);
  assert_int_equal(loom_queue_full(NULL), 0);
  assert_loom_err(loom_queue_try_put(NULL, NULL), UV_EINVAL);
  assert_loom_err(loom_queue_try_get(NULL, &item), UV_EINVAL);
  assert_loom_err(loom_queue_task_done(NULL), UV_EINVAL);
  loom_queue_t q;
  assert_loom_ok(loom_queue_init(&q, 4, LOOM_QUEUE_FIFO, NULL));
  assert_loom_ok(loom_queue_try_put(&q, &q));
  assert_loom_err(loom_queue_try_get(&q, NULL), UV_EINVAL);
  assert_int_equal(loom_queue_size(&q), 1); /* nothing was taken */
  assert_loom_ok(loom_queue_destroy(&q));
  /* The formerly void functions. */
  assert_loom_err(loom_lock_init(NULL), UV_EINVAL);
  assert_loom_err(loom_sem_init(NULL, 1), UV_EINVAL);
  assert_loom_err(loom_sem_init_bounded(NULL, 1), UV_EINVAL);
  assert_loom_err(loom_event_init(NULL), UV_EINVAL);
  assert_loom_err(loom_event_set(NULL), UV_EINVAL);
  assert_loom_err(loom_event_clear(NULL), UV_EINVAL);
  assert_loom_err(loom_barrier_reset(NULL), UV_EINVAL);
  assert_loom_err(loom_barrier_abort(NULL), UV_EINVAL);
  assert_loom_err(loom_queue_shutdown(NULL, 1), UV_EINVAL);
  loom_lock_t l;
  loom_cond_t c;
  assert_loom_ok(loom_lock_init(&l));
  assert_loom_err(loom_cond_init(NULL, &l), UV_EINVAL);
  assert_loom_err(loom_cond_init(&c, NULL), UV_EINVAL);
  assert_loom_err(loom_cond_notify(&c, 1), UV_EINVAL);
  assert_loom_err(loom_cond_notify_all(&c), UV_EINVAL);
  assert_loom_ok(loom_cond_init(&c, &l));
  assert_loom_err(loom_cond_notify(&c, 1), UV_EPERM);
  /* Every other init succeeds. */
  loom_sem_t s;
  loom_event_t e;
  assert_loom_ok(loom_sem_init(&s, 1));
  assert_loom_ok(loom_sem_init_bounded(&s, 1));
  assert_loom_err(loom_sem_release(&s), UV_EOVERFLOW);
  assert_loom_ok(loom_event_init(&e));
  assert_loom_ok(loom_event_set(&e));
  assert_int_equal(loom_event_is_set(&e), 1);
  assert_loom_ok(loom_event_clear(&e));
  assert_loom_err(loom_queue_init(&q, 0, 7, NULL), UV_EINVAL);
  assert_loom_err(loom_queue_try_put(&q, &q), UV_EINVAL);
  assert_loom_err(loom_queue_init(&q, 0, LOOM_QUEUE_PRIORITY, NULL), UV_EINVAL);
  assert_loom_err(loom_queue_shutdown(&q, 0), UV_EINVAL);
}

/* A barrier index is returned as an int: more parties than INT_MAX would
 * make indexes look like error codes. */
static void test_barrier_too_many_parties(void **state) {
  (void)state;
  loom_barrier_t b;
  assert_loom_err(loom_barrier_init(&b, (unsigned)INT_MAX + 1u), UV_EINVAL);
  assert_loom_ok(loom_barrier_init(&b, (unsigned)INT_MAX));
}

/* A bounded queue whose maxsize could never be allocated works: its buffer
 * grows on demand up to maxsize. */
static void test_queue_huge_maxsize(void **state) {
  (void)state;
  loom_queue_t q;
  size_t sizes[] = {SIZE_MAX, SIZE_MAX / 2, SIZE_MAX / 64, (size_t)1 << 40};
  for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
    assert_loom_ok(loom_queue_init(&q, sizes[k], LOOM_QUEUE_FIFO, NULL));
    for (uintptr_t i = 1; i <= 100; i++)
      assert_loom_ok(loom_queue_try_put(&q, (void *)i));
    assert_int_equal(loom_queue_full(&q), 0);
    void *item;
    for (uintptr_t i = 1; i <= 100; i++) {
      assert_loom_ok(loom_queue_try_get(&q, &item));
      assert_ptr_equal(item, (void *)i);
    }
    assert_loom_ok(loom_queue_destroy(&q));
  }
}

/* A bounded queue larger than what init allocates grows up to maxsize and
 * no further, keeping FIFO order across a wrapped ring. */
static void test_queue_bounded_growth(void **state) {
  (void)state;
  loom_queue_t q;
  const size_t max = 5000;
  void *item;
  assert_loom_ok(loom_queue_init(&q, max, LOOM_QUEUE_FIFO, NULL));
  uintptr_t next_in = 1, next_out = 1;
  /* Wrap the ring first. */
  for (int i = 0; i < 700; i++) assert_loom_ok(loom_queue_try_put(&q, (void *)next_in++));
  for (int i = 0; i < 600; i++) {
    assert_loom_ok(loom_queue_try_get(&q, &item));
    assert_ptr_equal(item, (void *)next_out++);
  }
  while (!loom_queue_full(&q)) assert_loom_ok(loom_queue_try_put(&q, (void *)next_in++));
  assert_int_equal(loom_queue_size(&q), max);
  assert_loom_err(loom_queue_try_put(&q, NULL), UV_EAGAIN);
  while (loom_queue_try_get(&q, &item) == 0) assert_ptr_equal(item, (void *)next_out++);
  assert_int_equal(next_out, next_in);
  assert_loom_ok(loom_queue_destroy(&q));
}

/* After destroy, a queue answers UV_EINVAL (until initialised again); a
 * second destroy is harmless. */
static void test_queue_destroyed(void **state) {
  (void)state;
  loom_queue_t q;
  void *item;
  assert_loom_ok(loom_queue_init(&q, 0, LOOM_QUEUE_FIFO, NULL));
  assert_loom_ok(loom_queue_try_put(&q, &q));
  assert_loom_ok(loom_queue_destroy(&q));
  assert_loom_err(loom_queue_try_put(&q, &q), UV_EINVAL);
  assert_loom_err(loom_queue_try_get(&q, &item), UV_EINVAL);
  assert_loom_err(loom_queue_task_done(&q), UV_EINVAL);
  assert_int_equal(loom_queue_size(&q), 0);
  assert_loom_ok(loom_queue_destroy(&q));
  assert_loom_ok(loom_queue_init(&q, 2, LOOM_QUEUE_LIFO, NULL));
  assert_loom_ok(loom_queue_try_put(&q, &q));
  assert_loom_ok(loom_queue_destroy(&q));
}

/* ---- task groups used after wait --------------------------------------------------- */

static int child_ok(void *arg) {
  (void)arg;
  return loom_yield();
}

static struct {
  long rc[16];
  int same;
} gr;

static int group_stale_main(void *arg) {
  (void)arg;
  loom_group_t *g, *g2;
  gr.rc[0] = loom_group_open(&g);
  gr.rc[1] = loom_group_spawn(g, NULL, child_ok, NULL);
  gr.rc[2] = loom_group_wait(g);
  /* g is gone; a new group may well reuse its memory. */
  gr.rc[3] = loom_group_open(&g2);
  gr.same = g == g2;
  gr.rc[4] = loom_group_spawn(g, NULL, child_ok, NULL);
  gr.rc[5] = loom_group_cancel(g);
  gr.rc[6] = loom_group_wait(g);
  gr.rc[7] = loom_group_spawn_ex(g, NULL, child_ok, NULL, NULL);
  /* The new group is unharmed. */
  gr.rc[8] = loom_group_spawn(g2, NULL, child_ok, NULL);
  gr.rc[9] = loom_group_wait(g2);
  gr.rc[10] = loom_group_wait(g2);
  /* Not a group at all. */
  gr.rc[11] = loom_group_cancel((loom_group_t *)(uintptr_t)0x7777);
  gr.rc[12] = loom_group_spawn(NULL, NULL, child_ok, NULL);
  return 0;
}

static void test_group_after_wait(void **state) {
  (void)state;
  memset(&gr, 0, sizeof(gr));
  assert_loom_ok(loom_run(group_stale_main, NULL));
  assert_int_equal(gr.same, 0);
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_OK, RC_OK, RC_OK},                                             // 0
      {RC_ERR(UV_EBADF), RC_ERR(UV_EBADF), RC_ERR(UV_EBADF), RC_ERR(UV_EBADF)}, // 4
      {RC_OK, RC_OK, RC_ERR(UV_EBADF), RC_ERR(UV_EBADF)},                       // 8
      {RC_ERR(UV_EINVAL)},                                                      // 12
  };
  assert_rcs(gr.rc, 0, want);
  /* From host code, with no runtime: not a live group either. */
  assert_loom_err(loom_group_cancel((loom_group_t *)(uintptr_t)0x7777), UV_EBADF);
}

/* ---- allocation failures in the combinators ------------------------------------------- */

enum { MAP_N = 300 };

static struct {
  int started, ended; /* by the gather_map tasks */
  int rc;             /* gather_map's */
  int started_at_return, ended_at_return;
  int started_later, ended_later;
  int failed; /* the kind of allocation failed, 0: none */
  long calls;
} gm;

static int map_fn(void *arg) {
  int *slot = arg;
  gm.started++;
  int rc = loom_sleep(2);
  *slot = 1;
  gm.ended++;
  return rc;
}

static int gather_map_main(void *arg) {
  long k = *(long *)arg;
  int args[MAP_N] = {0};
  int statuses[MAP_N];
  fault_arm(k);
  gm.rc = loom_gather_map(map_fn, args, sizeof(args[0]), MAP_N, statuses, 0);
  fault_disarm();
  gm.failed = fault.failed;
  gm.calls = fault.calls;
  gm.started_at_return = gm.started;
  gm.ended_at_return = gm.ended;
  /* Anything left behind would run now. */
  loom_sleep(20);
  gm.started_later = gm.started;
  gm.ended_later = gm.ended;
  return 0;
}

/* Failing each allocation of loom_gather_map in turn (MAP_N is large
 * enough for spawns to allocate midway: stack slabs, the task table): it
 * returns 0 or UV_ENOMEM, and nothing it spawned outlives it. */
static void test_gather_map_alloc_failure(void **state) {
  (void)state;
  int failures = 0;
  for (long k = 1; k < 200; k++) {
    memset(&gm, 0, sizeof(gm));
    assert_loom_ok(loom_run(gather_map_main, &k));
    if (!gm.failed) {
      /* Every allocation succeeded: the sweep is over. */
      assert_loom_ok(gm.rc);
      assert_int_equal(gm.ended_at_return, MAP_N);
      break;
    }
    failures++;
    /* A failure the library can absorb (an optional allocation) may leave
     * the call successful. */
    assert_true(gm.rc == UV_ENOMEM || gm.rc == 0);
    assert_int_equal(gm.started_at_return, gm.ended_at_return);
    assert_int_equal(gm.started_later, gm.started_at_return);
    assert_int_equal(gm.ended_later, gm.ended_at_return);
  }
  /* The nodes and handles, stacks and task slots midway through the
   * spawns, the children's own timers. */
  assert_true(failures >= 5);
}

static struct {
  int rc;
  int failed;
  size_t leaked;
  int woken; /* the caller was woken by the failed iterator */
  int rc_next;
} acs;

static int ac_child(void *arg) {
  loom_event_t *ev = arg;
  return loom_event_wait(ev);
}

static int ac_main(void *arg) {
  long k = *(long *)arg;
  loom_event_t ev, never;
  loom_event_init(&ev);
  loom_event_init(&never);
  loom_task_t *t[3];
  for (int i = 0; i < 3; i++) loom_spawn(&t[i], ac_child, &ev);
  loom_as_completed_t it;
  fault_arm(k);
  acs.rc = loom_as_completed_init(&it, t, 3, 5000);
  fault_disarm();
  acs.failed = fault.failed;
  acs.leaked = fault.nlive;
  if (acs.rc == 0) {
    loom_event_set(&ev);
    loom_task_t *next;
    while ((acs.rc_next = loom_as_completed_next(&it, &next)) == 0) loom_join(next, NULL);
    loom_as_completed_close(&it);
    return 0;
  }
  /* The children end; a failed iterator must not be watching them. */
  loom_event_set(&ev);
  loom_scope_t s;
  loom_timeout_enter(&s, 20);
  acs.woken = loom_event_wait(&never) == 0;
  loom_scope_exit(&s);
  return loom_gather(t, 3, NULL, 0);
}

/* Failing each allocation of loom_as_completed_init in turn (only the
 * iterator: arming its deadline cannot fail): it returns UV_ENOMEM with
 * nothing kept and nothing watching the tasks. */
static void test_as_completed_alloc_failure(void **state) {
  (void)state;
  for (long k = 1; k < 20; k++) {
    memset(&acs, 0, sizeof(acs));
    assert_loom_ok(loom_run(ac_main, &k));
    if (!acs.failed) {
      assert_loom_ok(acs.rc);
      assert_loom_err(acs.rc_next, UV_EOF);
      break;
    }
    assert_loom_err(acs.rc, UV_ENOMEM);
    assert_int_equal(acs.leaked, 0);
    assert_int_equal(acs.woken, 0);
  }
}

/* Counts that no array could hold, and bad flags, are refused before
 * anything is allocated or spawned. */
static struct {
  int rc[8];
  int started;
} lim;

static int limits_main(void *arg) {
  (void)arg;
  loom_task_t *t[1];
  int args[4] = {0};
  size_t ndone;
  loom_as_completed_t it;
  loom_spawn(&t[0], child_ok, NULL);
  lim.rc[0] = loom_gather(t, SIZE_MAX, NULL, 0);
  lim.rc[1] = loom_gather(t, SIZE_MAX / 16, NULL, 0);
  lim.rc[2] = loom_wait(t, SIZE_MAX / 8, 0, LOOM_ALL_COMPLETED, &ndone);
  lim.rc[3] = loom_as_completed_init(&it, t, SIZE_MAX / 8, LOOM_WAIT_FOREVER);
  lim.rc[4] = loom_gather_map(map_fn, args, sizeof(args[0]), SIZE_MAX / 2, NULL, 0);
  lim.rc[5] = loom_gather_map(map_fn, args, sizeof(args[0]), 4, NULL, 0x80);
  loom_sleep(10);
  lim.started = gm.started;
  lim.rc[6] = loom_join(t[0], NULL);
  return 0;
}

static void test_combinator_limits(void **state) {
  (void)state;
  memset(&lim, 0, sizeof(lim));
  memset(&gm, 0, sizeof(gm));
  assert_loom_ok(loom_run(limits_main, NULL));
  for (int i = 0; i < 6; i++) assert_loom_err(lim.rc[i], UV_EINVAL);
  assert_int_equal(lim.started, 0);
  assert_loom_ok(lim.rc[6]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_err_zero),
      cmocka_unit_test(test_err_two_in_one_call),
      cmocka_unit_test(test_err_every_libuv_code),
      cmocka_unit_test(test_err_unknown),
      cmocka_unit_test(test_sync_null_waiting),
      cmocka_unit_test(test_sync_null_host),
      cmocka_unit_test(test_barrier_too_many_parties),
      cmocka_unit_test(test_queue_huge_maxsize),
      cmocka_unit_test(test_queue_bounded_growth),
      cmocka_unit_test(test_queue_destroyed),
      cmocka_unit_test(test_group_after_wait),
      cmocka_unit_test(test_gather_map_alloc_failure),
      cmocka_unit_test(test_as_completed_alloc_failure),
      cmocka_unit_test(test_combinator_limits),
  };
  return HARNESS_RUN(tests);
}
