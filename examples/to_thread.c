/* to_thread: run blocking and CPU-bound C functions on a worker thread
 * while the runtime's other tasks keep running.
 *
 * Ports asyncio.to_thread (the tutorial "asyncio in practice", "to_thread"
 * and "run_in_executor" with the default pool):
 *
 *     def blockingIo():
 *         time.sleep(2)
 *         return "blocking I/O done"
 *
 *     def syncCpuBound(n):
 *         return sum(i * i for i in range(n))
 *
 *     async def toThreadDemo():
 *         result = await asyncio.to_thread(blockingIo)
 *         print(result)
 *         result = await loop.run_in_executor(None, syncCpuBound, 10**7)
 *         print(f"default thread pool result: {result}")
 *
 * plus a heartbeat task that ticks every 0.3 s: called directly from a task,
 * the 2 s sleep would freeze it (and every other task) for 2 s; offloaded,
 * it keeps ticking. loom_to_thread(fn, arg, &status) runs fn(arg) on a
 * thread of the runtime's default executor (its own threads, not libuv's
 * pool, so DNS and file work are never stuck behind such jobs) and returns
 * once it has run, with fn's return value in status; results travel
 * through arg, as for a task. Output:
 *
 *     to_thread: blocking_io on a worker thread (sleeps 2.0 s)
 *     to_thread: blocking I/O done after 2.0 s
 *     heartbeat: ticked 6 times meanwhile (every 0.3 s)
 *     to_thread: cpu_bound(10000000) = 333333283333335000000
 *     heartbeat: still ticking after the CPU work
 *     total: 2.0 s
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <loom.h>

/* blocking_io's argument: its result. */
typedef struct {
  char result[32];
} io_arg_t;

/* A plain blocking C function: it knows nothing of loom. */
static int blocking_io(void *p) {
  io_arg_t *a = p;
  uv_sleep(2000);
  strcpy(a->result, "blocking I/O done");
  return 0;
}

typedef struct {
  uint64_t n;
  unsigned __int128 sum; /* sum of i*i for i < n: 3.3e20 for 10^7 */
} cpu_arg_t;

static int cpu_bound(void *p) {
  cpu_arg_t *a = p;
  unsigned __int128 s = 0;
  for (uint64_t i = 0; i < a->n; i++) s += (unsigned __int128)i * i;
  a->sum = s;
  return 0;
}

/* Decimal digits of a 128-bit number (printf has no format for it). */
static const char *u128_str(unsigned __int128 v, char buf[40]) {
  char *p = buf + 39;
  *p = '\0';
  do {
    *--p = (char)('0' + (int)(v % 10));
    v /= 10;
  } while (v);
  return p;
}

static int heartbeat(void *p) {
  int *ticks = p;
  while (loom_sleep(300) == 0) (*ticks)++;
  return 0; /* cancelled by main */
}

static double since(uint64_t t0) { return (double)(loom_now() - t0) / 1000.0; }

static int main_task(void *arg) {
  (void)arg;
  uint64_t t0 = loom_now();
  int ticks = 0;
  loom_task_t *hb;
  int rc = loom_spawn(&hb, heartbeat, &ticks);
  if (rc) return rc;

  printf("to_thread: blocking_io on a worker thread (sleeps 2.0 s)\n");
  io_arg_t io = {{0}};
  int status;
  rc = loom_to_thread(blocking_io, &io, &status);
  if (rc == 0) rc = status;
  if (rc == 0) {
    printf("to_thread: %s after %.1f s\n", io.result, since(t0));
    printf("heartbeat: ticked %d times meanwhile (every 0.3 s)\n", ticks);
    cpu_arg_t cpu = {.n = 10000000};
    int before = ticks;
    rc = loom_to_thread(cpu_bound, &cpu, &status);
    if (rc == 0) rc = status;
    char buf[40];
    if (rc == 0) {
      printf("to_thread: cpu_bound(%" PRIu64 ") = %s\n", cpu.n, u128_str(cpu.sum, buf));
      /* One more tick shows the loop was free during the CPU work too. */
      while (ticks == before && loom_sleep(50) == 0) {}
      printf("heartbeat: still ticking after the CPU work\n");
    }
  }
  loom_cancel(hb);
  loom_join(hb, NULL);
  if (rc) {
    fprintf(stderr, "to_thread: %s\n", loom_strerror(rc));
    return rc;
  }
  printf("total: %.1f s\n", since(t0));
  return 0;
}

int main(void) { return loom_run(main_task, NULL) == 0 ? 0 : 1; }
