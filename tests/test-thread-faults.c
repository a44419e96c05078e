/* Allocation-failure sweep over futures, offload and thread-safe entry.
 *
 * One scenario does a small but complete piece of cross-thread work in
 * loom_run: a future resolved by another thread, a loom_to_thread, a
 * submitted job awaited through its future, a remote call and a remote
 * spawn made from another thread. The sweep counts the allocations the
 * runtime's thread makes once the scenario has armed it, then for every k
 * fails the k-th one only ("one"), and every one from the k-th on ("from").
 * Every run must end with loom_run returning 0 with correct results, or an
 * error code: no crash, no hang, no leak (the live-allocation count after
 * loom_run is the one before it), no sanitizer report.
 *
 * Only the runtime's thread's allocations are failed: the other threads'
 * (remote calls, resolutions) succeed, so the runtime is always answered.
 * Runs in this process (no fork): a crash or hang fails the test program.
 * The broader sweep with its isolation is tests/test-faults.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "harness.h"
#include "loom.h"

static __thread int on_runtime_thread;
static _Atomic int armed;
static long seen, fail_at; /* runtime thread only */
static int fail_from;

static int hook_fail(int kind, int from_uv) {
  (void)kind;
  (void)from_uv;
  if (!on_runtime_thread || !atomic_load(&armed)) return 0;
  seen++;
  return fail_at > 0 && (fail_from ? seen >= fail_at : seen == fail_at);
}

static int sq(void *p) {
  int *x = p;
  return *x * *x;
}

static void resolver(void *p) {
  loom_future_t *f = p;
  loom_future_set(f, (void *)(uintptr_t)7);
  loom_future_release(f);
}

typedef struct {
  loom_remote_t *r;
  int called, spawn_status, rc;
} remote_arg_t;

static void remote_call_fn(loom_t *rt, void *p) {
  remote_arg_t *a = p;
  if (rt) a->called++;
}

static void remote_thread(void *p) {
  remote_arg_t *a = p;
  a->rc = loom_remote_call(a->r, remote_call_fn, a);
  if (a->rc) return;
  int x = 6;
  loom_future_t *f;
  a->rc = loom_remote_spawn(a->r, sq, &x, &f);
  if (a->rc) return;
  a->spawn_status = loom_future_wait(f, -1, NULL);
  loom_future_release(f);
}

static int scenario(void *arg) {
  (void)arg;
  on_runtime_thread = 1;
  atomic_store(&armed, 1);
  int rc;
  /* A future resolved by another thread. */
  loom_future_t *f;
  if ((rc = loom_future_new(&f))) return rc;
  uv_thread_t th;
  loom_future_retain(f);
  if ((rc = uv_thread_create(&th, resolver, f))) {
    loom_future_release(f);
    loom_future_release(f);
    return rc;
  }
  void *v = NULL;
  rc = loom_future_await(f, &v);
  uv_thread_join(&th);
  loom_future_release(f);
  if (rc) return rc;
  if ((uintptr_t)v != 7) return UV_EPROTO;
  /* Offload, both ways. */
  int x = 5, st = 0;
  if ((rc = loom_to_thread(sq, &x, &st))) return rc;
  if (st != 25) return UV_EPROTO;
  int y = 4;
  if ((rc = loom_executor_submit(NULL, sq, &y, &f))) return rc;
  rc = loom_future_await(f, NULL);
  loom_future_release(f);
  if (rc != 16) return rc < 0 ? rc : UV_EPROTO;
  /* Entry from another thread. */
  remote_arg_t ra = {0};
  if ((rc = loom_remote_open(NULL, &ra.r))) return rc;
  if ((rc = uv_thread_create(&th, remote_thread, &ra))) {
    loom_remote_close(ra.r);
    return rc;
  }
  /* Wait for the thread's work without blocking the loop it needs. */
  while (!ra.rc && !(ra.called && ra.spawn_status)) {
    if ((rc = loom_sleep(1))) break;
  }
  uv_thread_join(&th);
  loom_remote_close(ra.r);
  if (rc) return rc;
  if (ra.rc) return ra.rc;
  if (ra.called != 1) return UV_EPROTO;
  /* The spawned task's status, or a failure to spawn it (the runtime's
   * allocation for the task may be the one that failed). */
  if (ra.spawn_status != 36 && ra.spawn_status >= 0) return UV_EPROTO;
  return 0;
}

static int run_once(long k, int from, int *status) {
  seen = 0;
  fail_at = k;
  fail_from = from;
  long before = harness_alloc_live();
  *status = loom_run(scenario, NULL);
  atomic_store(&armed, 0);
  on_runtime_thread = 0;
  return harness_alloc_live() == before;
}

static void test_sweep(void **state) {
  (void)state;
  int status;
  assert_true(run_once(0, 0, &status));
  assert_loom_ok(status);
  long n = seen;
  assert_true(n > 0);
  int bad = 0, errors = 0;
  for (int from = 0; from < 2; from++) {
    for (long k = 1; k <= n; k++) {
      int no_leak = run_once(k, from, &status);
      if (status == UV_EPROTO || !no_leak) {
        fprintf(stderr, "thread-faults: %s k=%ld: status %s, %s\n", from ? "from" : "one",
                k, loom_err_name(status), no_leak ? "no leak" : "LEAK");
        bad++;
      } else if (status) {
        errors++;
      }
    }
  }
  fprintf(stderr,
          "thread-faults: %ld allocations, %ld runs, %d ended with an error code\n", n,
          2 * n, errors);
  assert_int_equal(bad, 0);
}

int main(void) {
  harness_alloc_set_hooks(
      &(harness_alloc_hooks_t){.should_fail = hook_fail, .watch = NULL});
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sweep),
  };
  return HARNESS_RUN(tests);
}
