/* as_completed: take each task's result as soon as it is ready, in the
 * order the tasks finish rather than the order they were started.
 *
 * Ports the asyncio.as_completed example
 * (the tutorial "asyncio in practice", "asyncio.as_completed"):
 *
 *     async def job(name, delay):
 *         await asyncio.sleep(delay)
 *         return f"{name} ({delay}s)"
 *
 *     async def asCompletedDemo():
 *         tasks = [
 *             asyncio.create_task(job("slow", 3)),
 *             asyncio.create_task(job("fast", 1)),
 *             asyncio.create_task(job("medium", 2)),
 *         ]
 *         for coro in asyncio.as_completed(tasks):
 *             result = await coro
 *             print(f"completed: {result}")
 *
 * loom_as_completed_init() starts an iterator over the tasks (with an
 * overall timeout, or LOOM_WAIT_FOREVER), and each loom_as_completed_next()
 * waits for the next task to end and hands back its handle; it returns
 * UV_EOF once every task has been handed back. The iterator does not
 * consume the tasks: joining the handle it hands back gives the task's
 * status at once (the task has ended) and frees the handle. Always close
 * the iterator, and join whatever it did not hand back (after a Ctrl-C).
 * Output:
 *
 *     completed: fast (1s) after 1.0 s
 *     completed: medium (2s) after 2.0 s
 *     completed: slow (3s) after 3.0 s
 *     total: 3.0 s (one after the other would take 6.0 s)
 */
#include <stdio.h>

#include <loom.h>

#define NJOBS 3

/* One job: set up by main, filled in by its task. */
typedef struct {
  const char *name;
  uint64_t delay_ms;
  char result[32]; /* out: "<name> (<delay>s)", as in the original */
} job_arg_t;

static int job(void *p) {
  job_arg_t *a = p;
  int rc = loom_sleep(a->delay_ms);
  if (rc < 0) return rc; /* cancelled: no result */
  snprintf(a->result, sizeof a->result, "%s (%llus)", a->name,
           (unsigned long long)(a->delay_ms / 1000));
  return 0;
}

static int as_completed_main(void *arg) {
  (void)arg;
  job_arg_t args[NJOBS] = {{.name = "slow", .delay_ms = 3000},
                           {.name = "fast", .delay_ms = 1000},
                           {.name = "medium", .delay_ms = 2000}};
  /* tasks[i] runs args[i]; set to NULL once joined. */
  loom_task_t *tasks[NJOBS] = {NULL};
  uint64_t t0 = loom_now();
  int n = 0, rc = 0;

  for (; n < NJOBS; n++) {
    rc = loom_spawn(&tasks[n], job, &args[n]);
    if (rc < 0) {
      fprintf(stderr, "as_completed: spawn %s: %s\n", args[n].name, loom_strerror(rc));
      break;
    }
  }

  if (rc == 0) {
    loom_as_completed_t it;
    rc = loom_as_completed_init(&it, tasks, (size_t)n, LOOM_WAIT_FOREVER);
    if (rc < 0) {
      fprintf(stderr, "as_completed: %s\n", loom_strerror(rc));
    } else {
      for (;;) {
        loom_task_t *next;
        rc = loom_as_completed_next(&it, &next);
        if (rc == UV_EOF) { /* every task has been handed back */
          rc = 0;
          break;
        }
        if (rc < 0) { /* UV_ECANCELED on Ctrl-C (UV_ETIMEDOUT with a timeout) */
          fprintf(stderr, "as_completed: %s\n", loom_strerror(rc));
          break;
        }
        /* The iterator hands back handles; find the argument by handle. */
        int i = 0;
        while (i < n && tasks[i] != next) i++;
        int status = 0;
        rc = loom_join(next, &status); /* it has ended: join does not wait */
        tasks[i] = NULL;
        if (rc == 0) rc = status;
        if (rc < 0) {
          fprintf(stderr, "as_completed: %s: %s\n", args[i].name, loom_strerror(rc));
          break;
        }
        printf("completed: %s after %.1f s\n", args[i].result,
               (double)(loom_now() - t0) / 1000.0);
      }
      loom_as_completed_close(&it);
    }
  }

  /* Whatever was not handed back and joined (after an error) is cancelled
   * and joined here, so that no task outlives main. */
  for (int i = 0; i < n; i++) {
    if (!tasks[i]) continue;
    loom_cancel(tasks[i]);
    loom_join(tasks[i], NULL);
  }
  if (rc < 0) return rc;

  uint64_t sum = 0;
  for (int i = 0; i < NJOBS; i++) sum += args[i].delay_ms;
  printf("total: %.1f s (one after the other would take %.1f s)\n",
         (double)(loom_now() - t0) / 1000.0, (double)sum / 1000.0);
  return 0;
}

int main(void) {
  int rc = loom_run(as_completed_main, NULL);
  if (rc < 0) {
    fprintf(stderr, "as_completed: %s\n", loom_strerror(rc));
    return 1;
  }
  return 0;
}
