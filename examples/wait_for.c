/* wait_for: give up on an operation that takes too long, in the two forms
 * asyncio offers: a timeout around a task (asyncio.wait_for), and a timeout
 * scope around any stretch of code (async with asyncio.timeout()).
 *
 * Ports the timeout example (the tutorial "asyncio in practice",
 * "timeout control"; wait_for alone is also in "Async I/O patterns"):
 *
 *     async def slowTask():
 *         await asyncio.sleep(5)
 *         return "done"
 *
 *     async def timeoutDemo():
 *         try:
 *             result = await asyncio.wait_for(slowTask(), timeout=2)
 *         except asyncio.TimeoutError:
 *             print("the task timed out!")
 *
 *         try:
 *             async with asyncio.timeout(2):
 *                 await slowTask()
 *         except TimeoutError:
 *             print("asyncio.timeout timed out!")
 *
 * loom_wait_for(ms, fn, arg, &status) runs fn(arg) as a task and waits for
 * it at most ms milliseconds. On expiry it cancels the task, waits for it to
 * return (nothing outlives the call), stores the status the task returned,
 * and returns UV_ETIMEDOUT. The task itself sees a cancellation: its sleep
 * returns UV_ECANCELED.
 *
 * A timeout scope needs no task: loom_timeout_enter(&s, ms) arms a deadline
 * for the calling task, and while it has passed every suspending call
 * inside the scope returns UV_ETIMEDOUT (slow_task is called directly here,
 * as `await slowTask()` runs the coroutine in the awaiting task).
 * loom_scope_exit(&s) returns UV_ETIMEDOUT if this scope is the one that
 * fired: that is the `except TimeoutError`. Output:
 *
 *     wait_for: a 5.0 s task with a 2.0 s timeout
 *     slow_task: interrupted: operation canceled
 *     wait_for: timed out after 2.0 s (connection timed out)
 *     wait_for: the task was cancelled and awaited; it returned ECANCELED
 *     timeout: a 5.0 s operation in a 2.0 s timeout scope
 *     slow_task: interrupted: connection timed out
 *     timeout: the scope fired after 2.0 s
 *     total: 4.0 s
 */
#include <stdio.h>

#include <loom.h>

#define SLOW_MS 5000    /* how long slow_task takes */
#define TIMEOUT_MS 2000 /* how long we are prepared to wait */

/* slow_task's argument: filled in only if it gets to the end. */
typedef struct {
  char result[16]; /* out: "done" */
} slow_arg_t;

static int slow_task(void *p) {
  slow_arg_t *a = p;
  int rc = loom_sleep(SLOW_MS);
  if (rc < 0) {
    /* UV_ECANCELED when cancelled (by wait_for, or by Ctrl-C), UV_ETIMEDOUT
     * when a timeout scope of the calling task has expired. */
    printf("slow_task: interrupted: %s\n", loom_strerror(rc));
    return rc;
  }
  snprintf(a->result, sizeof a->result, "done");
  return 0;
}

/* The first form: a task under a timeout. */
static int demo_wait_for(void) {
  slow_arg_t arg = {.result = ""};
  uint64_t t0 = loom_now();
  printf("wait_for: a %.1f s task with a %.1f s timeout\n", SLOW_MS / 1000.0,
         TIMEOUT_MS / 1000.0);
  int status = 0;
  int rc = loom_wait_for(TIMEOUT_MS, slow_task, &arg, &status);
  if (rc == 0) {
    /* In time: the task's own status says whether it succeeded. */
    if (status < 0) {
      fprintf(stderr, "wait_for: slow_task: %s\n", loom_strerror(status));
      return status;
    }
    printf("wait_for: result: %s\n", arg.result);
    return 0;
  }
  if (rc != UV_ETIMEDOUT) {
    /* UV_ECANCELED (Ctrl-C): the task was cancelled and awaited as well. */
    fprintf(stderr, "wait_for: %s\n", loom_strerror(rc));
    return rc;
  }
  printf("wait_for: timed out after %.1f s (%s)\n", (double)(loom_now() - t0) / 1000.0,
         loom_strerror(rc));
  /* By now the task has returned: status is what it returned, usually
   * UV_ECANCELED (a task may also finish its work anyway and return 0). */
  printf("wait_for: the task was cancelled and awaited; it returned %s\n",
         status < 0 ? loom_err_name(status) : "0");
  return 0;
}

/* The second form: a timeout scope around a stretch of code. */
static int demo_timeout_scope(void) {
  slow_arg_t arg = {.result = ""};
  uint64_t t0 = loom_now();
  printf("timeout: a %.1f s operation in a %.1f s timeout scope\n", SLOW_MS / 1000.0,
         TIMEOUT_MS / 1000.0);
  loom_scope_t s;
  int rc = loom_timeout_enter(&s, TIMEOUT_MS);
  if (rc < 0) {
    fprintf(stderr, "timeout: %s\n", loom_strerror(rc));
    return rc;
  }
  int op = slow_task(&arg); /* runs in this task, under the scope */
  /* Always exit the scope, whatever the code inside returned; enter and
   * exit belong in one function. */
  rc = loom_scope_exit(&s);
  if (rc == UV_ETIMEDOUT) {
    printf("timeout: the scope fired after %.1f s\n", (double)(loom_now() - t0) / 1000.0);
    return 0;
  }
  if (rc < 0) { /* LOOM_ESCOPE: not our innermost scope (cannot happen) */
    fprintf(stderr, "timeout: exit: %s\n", loom_strerror(rc));
    return rc;
  }
  if (op < 0) {
    /* Not our timeout: UV_ECANCELED after Ctrl-C. */
    fprintf(stderr, "timeout: %s\n", loom_strerror(op));
    return op;
  }
  printf("timeout: in time, result: %s\n", arg.result);
  return 0;
}

static int wait_for_main(void *arg) {
  (void)arg;
  uint64_t t0 = loom_now();
  int rc = demo_wait_for();
  if (rc == 0) rc = demo_timeout_scope();
  if (rc < 0) return rc;
  printf("total: %.1f s\n", (double)(loom_now() - t0) / 1000.0);
  return 0;
}

int main(void) {
  int rc = loom_run(wait_for_main, NULL);
  if (rc < 0) {
    fprintf(stderr, "wait_for: %s\n", loom_strerror(rc));
    return 1;
  }
  return 0;
}
