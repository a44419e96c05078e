/* wait: wait for a set of tasks with a timeout, then deal with the ones that
 * have not finished.
 *
 * Ports the asyncio.wait example (the tutorial "asyncio in practice",
 * "asyncio.wait"):
 *
 *     async def job(name, delay):
 *         await asyncio.sleep(delay)
 *         return name
 *
 *     async def waitDemo():
 *         tasks = {
 *             asyncio.create_task(job("fast", 0.5)),
 *             asyncio.create_task(job("medium", 1.0)),
 *             asyncio.create_task(job("slow", 2.0)),
 *         }
 *         done, pending = await asyncio.wait(tasks, timeout=1.5)
 *         print(f"done: {[t.result() for t in done]}")
 *         print(f"pending: {len(pending)}")
 *         for t in pending:
 *             t.cancel()
 *
 * loom_wait(tasks, n, timeout_ms, LOOM_ALL_COMPLETED, &ndone) is
 * asyncio.wait(tasks, timeout=...): it returns when every task has ended or
 * the timeout has passed, and instead of two sets it reorders the array:
 * tasks[0..ndone) have ended, tasks[ndone..n) are still running, each part
 * in its original order. As in asyncio, the timeout is not an error (the
 * call returns 0; ndone tells), and loom_wait never cancels nor consumes a
 * task: the tasks are still ours to join, or to cancel and then join. (The
 * Python original only cancels the pending task; in loom it must also be
 * joined, or the runtime reports a leaked handle when it ends.) Output:
 *
 *     started fast (0.5 s), medium (1.0 s), slow (2.0 s)
 *     wait returned after 1.5 s: 2 done, 1 pending
 *     done: fast
 *     done: medium
 *     pending: 1
 *     slow: cancelled (operation canceled)
 *     total: 1.5 s
 */
#include <stdio.h>

#include <loom.h>

#define NJOBS 3

/* One job: set up by main, filled in by its task. */
typedef struct {
  const char *name;
  uint64_t delay_ms;
  char result[16]; /* out: the job's result (its name, as in the original) */
} job_arg_t;

static int job(void *p) {
  job_arg_t *a = p;
  int rc = loom_sleep(a->delay_ms);
  if (rc < 0) return rc; /* cancelled: no result */
  snprintf(a->result, sizeof a->result, "%s", a->name);
  return 0;
}

/* loom_wait reorders its array, so a task's argument is found through its
 * handle, in the array of handles as they were spawned. */
static job_arg_t *arg_of(loom_task_t *t, loom_task_t **spawned, job_arg_t *args, int n) {
  for (int i = 0; i < n; i++)
    if (spawned[i] == t) return &args[i];
  return NULL; /* cannot happen */
}

static int wait_main(void *arg) {
  (void)arg;
  job_arg_t args[NJOBS] = {{.name = "fast", .delay_ms = 500},
                           {.name = "medium", .delay_ms = 1000},
                           {.name = "slow", .delay_ms = 2000}};
  loom_task_t *spawned[NJOBS]; /* in the order of args[] */
  loom_task_t *tasks[NJOBS];   /* the same handles, for loom_wait to reorder */
  uint64_t t0 = loom_now();
  int n = 0, rc = 0;

  for (; n < NJOBS; n++) {
    rc = loom_spawn(&spawned[n], job, &args[n]);
    if (rc < 0) {
      fprintf(stderr, "wait: spawn %s: %s\n", args[n].name, loom_strerror(rc));
      break;
    }
    tasks[n] = spawned[n];
  }
  size_t ndone = 0;
  if (rc == 0) {
    printf("started fast (0.5 s), medium (1.0 s), slow (2.0 s)\n");
    /* Returns 0 also when the timeout passes; UV_ECANCELED if we are
     * cancelled while waiting, with tasks[] still partitioned. */
    rc = loom_wait(tasks, (size_t)n, 1500, LOOM_ALL_COMPLETED, &ndone);
    if (rc < 0) {
      fprintf(stderr, "wait: %s\n", loom_strerror(rc));
      ndone = 0; /* below, cancel and join them all */
    } else {
      printf("wait returned after %.1f s: %zu done, %zu pending\n",
             (double)(loom_now() - t0) / 1000.0, ndone, (size_t)n - ndone);
    }
  }

  /* The ended tasks: joining them does not wait, it only hands back their
   * status (and frees the handle). */
  for (size_t i = 0; i < ndone; i++) {
    job_arg_t *a = arg_of(tasks[i], spawned, args, n);
    int status = 0;
    int jrc = loom_join(tasks[i], &status);
    if (jrc == 0) jrc = status;
    if (jrc < 0) {
      fprintf(stderr, "wait: %s: %s\n", a->name, loom_strerror(jrc));
      if (rc == 0) rc = jrc;
    } else {
      printf("done: %s\n", a->result);
    }
  }

  /* The pending ones (all of them, after a spawn error or a Ctrl-C):
   * cancel, then join, which waits for the task to notice and return. */
  if (rc == 0) printf("pending: %zu\n", (size_t)n - ndone);
  for (size_t i = ndone; i < (size_t)n; i++) {
    job_arg_t *a = arg_of(tasks[i], spawned, args, n);
    loom_cancel(tasks[i]);
    int status = 0;
    int jrc = loom_join(tasks[i], &status);
    if (jrc < 0) {
      /* We were cancelled while joining; the task was still awaited. */
      if (rc == 0) rc = jrc;
    } else if (status == UV_ECANCELED) {
      if (rc == 0) printf("%s: cancelled (%s)\n", a->name, loom_strerror(status));
    } else if (status < 0) {
      fprintf(stderr, "wait: %s: %s\n", a->name, loom_strerror(status));
      if (rc == 0) rc = status;
    } else if (rc == 0) {
      /* Cancellation is a request: a task may finish its work anyway (in a
       * shield, say) and return 0. Not this job, which returns as soon as
       * its sleep is interrupted. */
      printf("%s: finished despite the cancel: %s\n", a->name, a->result);
    }
  }
  if (rc < 0) return rc;

  printf("total: %.1f s\n", (double)(loom_now() - t0) / 1000.0);
  return 0;
}

int main(void) {
  int rc = loom_run(wait_main, NULL);
  if (rc < 0) {
    fprintf(stderr, "wait: %s\n", loom_strerror(rc));
    return 1;
  }
  return 0;
}
