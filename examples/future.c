/* future: a one-shot result cell that tasks await and anyone resolves: a
 * task, a plain libuv callback, or another thread.
 *
 * Ports the Future example (the tutorial "asyncio in practice", "Task vs
 * Future"):
 *
 *     async def futureDemo():
 *         loop = asyncio.get_running_loop()
 *         future = loop.create_future()
 *
 *         async def setValue():
 *             await asyncio.sleep(1)
 *             future.set_result("the future is now")
 *
 *         asyncio.create_task(setValue())
 *         result = await future
 *         print(f"Future result: {result}")
 *
 * and goes on with what futures are for in C: wrapping a callback API. A
 * libuv timer's callback resolves one (any libuv request or C library
 * callback is wrapped the same way: see docs/future.md), a plain pthread
 * resolves another, three tasks await the same future, a second resolution
 * is refused with LOOM_EDONE, and a waiter under a timeout scope gives up
 * while the future stays pending. Output:
 *
 *     Future result: the future is now (after 1.0 s)
 *     from a libuv timer callback: tick (after 0.5 s)
 *     from another thread: computed on a thread (after 0.5 s)
 *     three waiters got: shared, shared, shared
 *     resolving twice: LOOM_EDONE (future is already resolved)
 *     a waiter with a 0.2 s timeout: ETIMEDOUT; the future is still pending
 *     a cancelled future: ECANCELED
 */
#include <stdio.h>

#include <loom.h>

static double since(uint64_t t0) { return (double)(loom_now() - t0) / 1000.0; }

/* ---- resolved by a task ---------------------------------------------- */

static int set_value(void *p) {
  loom_future_t *f = p;
  int rc = loom_sleep(1000);
  if (rc) return rc;
  return loom_future_set(f, "the future is now");
}

static int from_task(void) {
  loom_future_t *f;
  int rc = loom_future_new(&f);
  if (rc) return rc;
  uint64_t t0 = loom_now();
  loom_task_t *t;
  rc = loom_spawn(&t, set_value, f);
  void *v = NULL;
  if (rc == 0) rc = loom_future_await(f, &v);
  if (rc == 0) printf("Future result: %s (after %.1f s)\n", (char *)v, since(t0));
  loom_join(t, NULL); /* (cancels it first if the await failed) */
  loom_future_release(f);
  return rc;
}

/* ---- resolved by a libuv callback ------------------------------------- */

/* The callback API being wrapped: a libuv timer. Its callback resolves
 * the future the task awaits. A handle may be freed only after its close
 * callback has run, so that is awaited too, through a second future, in a
 * shield scope: even a cancelled task must not leave its frame (where the
 * handle lives) before libuv is done with it. */
typedef struct {
  uv_timer_t timer;
  loom_future_t *fired, *closed;
} timer_req_t;

static void on_timer(uv_timer_t *h) {
  timer_req_t *r = h->data;
  loom_future_set(r->fired, "tick");
}

static void on_closed(uv_handle_t *h) {
  timer_req_t *r = h->data;
  loom_future_set(r->closed, NULL);
}

static int from_callback(void) {
  timer_req_t r;
  int rc = loom_future_new(&r.fired);
  if (rc) return rc;
  rc = loom_future_new(&r.closed);
  if (rc) {
    loom_future_release(r.fired);
    return rc;
  }
  uint64_t t0 = loom_now();
  uv_timer_init(loom_loop(loom_runtime()), &r.timer);
  r.timer.data = &r;
  uv_timer_start(&r.timer, on_timer, 500, 0);
  void *v = NULL;
  rc = loom_future_await(r.fired, &v);
  if (rc == 0)
    printf("from a libuv timer callback: %s (after %.1f s)\n", (char *)v, since(t0));
  uv_close((uv_handle_t *)&r.timer, on_closed);
  loom_scope_t shield;
  loom_shield_enter(&shield);
  loom_future_await(r.closed, NULL);
  loom_scope_exit(&shield);
  loom_future_release(r.fired);
  loom_future_release(r.closed);
  return rc;
}

/* ---- resolved by another thread --------------------------------------- */

static void worker(void *p) {
  loom_future_t *f = p;
  uv_sleep(500); /* some blocking work */
  loom_future_set(f, "computed on a thread");
  loom_future_release(f); /* the thread's reference */
}

static int from_thread(void) {
  loom_future_t *f;
  int rc = loom_future_new(&f);
  if (rc) return rc;
  uint64_t t0 = loom_now();
  uv_thread_t th;
  loom_future_retain(f); /* one reference for the thread */
  rc = uv_thread_create(&th, worker, f);
  if (rc) {
    loom_future_release(f);
    loom_future_release(f);
    return rc;
  }
  void *v = NULL;
  rc = loom_future_await(f, &v);
  if (rc == 0) printf("from another thread: %s (after %.1f s)\n", (char *)v, since(t0));
  uv_thread_join(&th);
  loom_future_release(f);
  return rc;
}

/* ---- many waiters, twice, timeouts, cancel ------------------------------ */

typedef struct {
  loom_future_t *f;
  const char *got;
} waiter_t;

static int waiter(void *p) {
  waiter_t *w = p;
  void *v;
  int rc = loom_future_await(w->f, &v);
  if (rc == 0) w->got = v;
  return rc;
}

static int the_rest(void) {
  loom_future_t *f;
  int rc = loom_future_new(&f);
  if (rc) return rc;
  waiter_t w[3] = {{f, NULL}, {f, NULL}, {f, NULL}};
  loom_task_t *t[3];
  int n = 0;
  for (; n < 3 && rc == 0; n++) rc = loom_spawn(&t[n], waiter, &w[n]);
  if (rc == 0) rc = loom_yield(); /* all three wait */
  if (rc == 0) rc = loom_future_set(f, "shared");
  int st = loom_gather(t, (size_t)n, NULL, 0);
  if (rc == 0) rc = st;
  if (rc == 0) printf("three waiters got: %s, %s, %s\n", w[0].got, w[1].got, w[2].got);
  if (rc == 0) {
    int twice = loom_future_set(f, "again");
    printf("resolving twice: %s (%s)\n", loom_err_name(twice), loom_strerror(twice));
  }
  loom_future_release(f);
  if (rc) return rc;

  rc = loom_future_new(&f);
  if (rc) return rc;
  loom_scope_t s;
  loom_timeout_enter(&s, 200);
  int waited = loom_future_await(f, NULL);
  loom_scope_exit(&s);
  printf("a waiter with a 0.2 s timeout: %s; the future is %s\n", loom_err_name(waited),
         loom_future_done(f) ? "resolved" : "still pending");
  loom_future_cancel(f);
  printf("a cancelled future: %s\n", loom_err_name(loom_future_await(f, NULL)));
  loom_future_release(f);
  return 0;
}

static int main_task(void *arg) {
  (void)arg;
  int rc = from_task();
  if (rc == 0) rc = from_callback();
  if (rc == 0) rc = from_thread();
  if (rc == 0) rc = the_rest();
  if (rc) fprintf(stderr, "future: %s\n", loom_strerror(rc));
  return rc;
}

int main(void) { return loom_run(main_task, NULL) == 0 ? 0 : 1; }
