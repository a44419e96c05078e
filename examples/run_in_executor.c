/* run_in_executor: blocking functions on a bounded pool of threads,
 * awaited through futures.
 *
 * Ports loop.run_in_executor with a ThreadPoolExecutor (the tutorial
 * "Async I/O patterns", "coexisting with blocking I/O"; "asyncio first
 * steps" shows max_workers=1 making the jobs run one after the other):
 *
 *     def blocking_io(n):
 *         time.sleep(n)
 *         return f"slept {n}s"
 *
 *     async def main():
 *         loop = asyncio.get_running_loop()
 *         with ThreadPoolExecutor() as pool:
 *             tasks = [loop.run_in_executor(pool, blocking_io, 1),
 *                      loop.run_in_executor(pool, blocking_io, 2)]
 *             results = await asyncio.gather(*tasks)
 *         print("Blocking results:", results)
 *
 * loom_executor_new(&pool, n) makes a pool of at most n threads (started as
 * jobs need them); loom_executor_submit(pool, fn, arg, &future) queues
 * fn(arg) and returns at once with a loom_future_t that the job's end
 * resolves with fn's return value; loom_future_await waits for it (any
 * number of futures can be in flight: this is the gather). With 2 threads
 * the two jobs overlap (2 s); with 1 thread (max_workers=1) the second
 * waits for the first (3 s). loom_executor_free lets queued jobs finish and
 * frees the pool. Output:
 *
 *     pool of 2 threads:
 *       submitted blocking_io(1)
 *       submitted blocking_io(2)
 *       blocking_io(1) returns on its thread
 *       blocking_io(2) returns on its thread
 *       Blocking results: ['slept 1s', 'slept 2s'] after 2.0 s
 *     pool of 1 thread (max_workers=1):
 *       ...
 *       Blocking results: ['slept 1s', 'slept 2s'] after 3.0 s
 */
#include <stdio.h>

#include <loom.h>

typedef struct {
  int n;           /* seconds to sleep */
  char result[16]; /* out: "slept <n>s" */
} io_arg_t;

static int blocking_io(void *p) {
  io_arg_t *a = p;
  uv_sleep((unsigned)a->n * 1000u);
  snprintf(a->result, sizeof(a->result), "slept %ds", a->n);
  printf("  blocking_io(%d) returns on its thread\n", a->n);
  return 0;
}

static int run_pool(size_t threads) {
  printf("pool of %zu thread%s%s:\n", threads, threads == 1 ? "" : "s",
         threads == 1 ? " (max_workers=1)" : "");
  loom_executor_t *pool;
  int rc = loom_executor_new(&pool, threads);
  if (rc) return rc;
  uint64_t t0 = loom_now();
  io_arg_t args[2] = {{.n = 1}, {.n = 2}};
  loom_future_t *futures[2] = {NULL, NULL};
  for (int i = 0; i < 2 && rc == 0; i++) {
    rc = loom_executor_submit(pool, blocking_io, &args[i], &futures[i]);
    if (rc == 0) printf("  submitted blocking_io(%d)\n", args[i].n);
  }
  /* Await every future that was made, even after a failure: the jobs use
   * args, which live in this frame. */
  for (int i = 0; i < 2; i++) {
    if (!futures[i]) continue;
    int st = loom_future_await(futures[i], NULL);
    if (rc == 0) rc = st;
    loom_future_release(futures[i]);
  }
  loom_executor_free(pool);
  if (rc) return rc;
  printf("  Blocking results: ['%s', '%s'] after %.1f s\n", args[0].result,
         args[1].result, (double)(loom_now() - t0) / 1000.0);
  return 0;
}

static int main_task(void *arg) {
  (void)arg;
  int rc = run_pool(2);
  if (rc == 0) rc = run_pool(1);
  if (rc) fprintf(stderr, "run_in_executor: %s\n", loom_strerror(rc));
  return rc;
}

int main(void) { return loom_run(main_task, NULL) == 0 ? 0 : 1; }
