/* gather_errors: gather tasks of which one fails, and look at each task's
 * outcome, the way asyncio.gather(..., return_exceptions=True) returns
 * exceptions in place of results.
 *
 * Ports the exception-handling example
 * (the tutorial "asyncio in practice", "exception handling"):
 *
 *     async def riskyOp(name):
 *         await asyncio.sleep(0.5)
 *         if name == "bad":
 *             raise ValueError(f"error in {name}")
 *         return f"{name}_ok"
 *
 *     async def errorHandling():
 *         results = await asyncio.gather(
 *             riskyOp("good1"), riskyOp("bad"), riskyOp("good2"),
 *             return_exceptions=True,
 *         )
 *         for r in results:
 *             if isinstance(r, Exception):
 *                 print(f"error: {r}")
 *             else:
 *                 print(f"ok: {r}")
 *
 * C has no exceptions: a failing task returns a negative error code (here
 * UV_EINVAL, standing in for ValueError), and loom_gather_map stores every
 * task's status in statuses[i], in argument order, while successful tasks
 * leave their results in their arguments. Without flags, a failure does
 * not disturb the other tasks (they run to the end, as with
 * return_exceptions=True), and the call returns the first failure in
 * completion order, or 0. With LOOM_FAIL_FAST, the first failure would
 * cancel the tasks still running instead (they would usually report
 * UV_ECANCELED; here none is left: all three wake at the same moment, and a
 * woken task finishes its step). Output:
 *
 *     ok: good1_ok
 *     error: bad: EINVAL: invalid argument
 *     ok: good2_ok
 *     gather returned EINVAL (the first failure), after 0.5 s
 */
#include <stdio.h>
#include <string.h>

#include <loom.h>

#define NOPS 3

/* One operation: set up by main, filled in by its task on success. */
typedef struct {
  const char *name;
  char result[32]; /* out: "<name>_ok" */
} op_arg_t;

static int risky_op(void *p) {
  op_arg_t *a = p;
  int rc = loom_sleep(500);
  if (rc < 0) return rc;                             /* cancelled (Ctrl-C) */
  if (strcmp(a->name, "bad") == 0) return UV_EINVAL; /* the "raise" */
  snprintf(a->result, sizeof a->result, "%s_ok", a->name);
  return 0;
}

static int gather_errors_main(void *arg) {
  (void)arg;
  op_arg_t args[NOPS] = {{.name = "good1"}, {.name = "bad"}, {.name = "good2"}};
  int statuses[NOPS] = {0};
  uint64_t t0 = loom_now();

  int rc = loom_gather_map(risky_op, args, sizeof args[0], NOPS, statuses, 0);
  /* A failing task is an outcome to report, not an error of ours. But the
   * call itself can fail: if we are cancelled (Ctrl-C), the tasks have been
   * cancelled and awaited and there is nothing to report; and an error that
   * no task returned (UV_ENOMEM from a spawn) is the call's own. */
  int from_a_task = 0;
  for (int i = 0; i < NOPS; i++) from_a_task |= rc < 0 && statuses[i] == rc;
  if (rc < 0 && (!from_a_task || loom_cancelled())) {
    fprintf(stderr, "gather_errors: %s\n", loom_strerror(rc));
    return rc;
  }
  for (int i = 0; i < NOPS; i++) {
    if (statuses[i] < 0)
      /* loom_err_name and loom_strerror have separate buffers, so one
       * printf may use both. */
      printf("error: %s: %s: %s\n", args[i].name, loom_err_name(statuses[i]),
             loom_strerror(statuses[i]));
    else
      printf("ok: %s\n", args[i].result);
  }
  printf("gather returned %s%s, after %.1f s\n", rc < 0 ? loom_err_name(rc) : "0",
         rc < 0 ? " (the first failure)" : "", (double)(loom_now() - t0) / 1000.0);
  return 0;
}

int main(void) {
  int rc = loom_run(gather_errors_main, NULL);
  if (rc < 0) {
    fprintf(stderr, "gather_errors: %s\n", loom_strerror(rc));
    return 1;
  }
  return 0;
}
