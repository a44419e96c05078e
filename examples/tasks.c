/* tasks: two tasks that sleep at the same time, so two 1-second sleeps take
 * one second, not two.
 *
 * Ports async_sleep1.py (the tutorial "asyncio first steps"):
 *
 *     async def func1():
 *         print('func1() started')
 *         await asyncio.sleep(1)
 *         print('func1() finished')
 *     ...                                  # func2() likewise
 *     async def main():
 *         task1 = asyncio.create_task(func1())
 *         task2 = asyncio.create_task(func2())
 *         await task1
 *         await task2
 *
 * loom_spawn() is asyncio.create_task(): it only schedules the task, which
 * starts when the spawner next suspends (here, in the first loom_join). Both
 * tasks then start, both go to sleep, and the loop wakes each after one
 * second. loom_join() is `await task`: it waits for the task, hands back its
 * status and frees its handle. A task's results travel through its argument:
 * each task writes down when it finished, and main prints that. Output:
 *
 *     func1() started
 *     func2() started
 *     func1() finished
 *     func2() finished
 *     func1() finished after 1.0 s
 *     func2() finished after 1.0 s
 *     total: 1.0 s (one after the other would take 2.0 s)
 *
 * Replace loom_sleep() by the blocking sleep(1) and func2() cannot start
 * before func1() has finished, as in async_sleep2.py: the total becomes 2 s.
 */
#include <stdio.h>

#include <loom.h>

typedef struct {
  const char *name;     /* printed in the messages */
  uint64_t sleep_ms;    /* how long the task sleeps */
  uint64_t t0;          /* loop time when main started (ms) */
  uint64_t finished_ms; /* out: when the task finished, ms after t0 */
} func_arg_t;

static int func(void *p) {
  func_arg_t *a = p;
  printf("%s() started\n", a->name);
  int rc = loom_sleep(a->sleep_ms);
  if (rc < 0) return rc; /* cancelled (Ctrl-C): our status says so */
  printf("%s() finished\n", a->name);
  a->finished_ms = loom_now() - a->t0;
  return 0;
}

static int tasks_main(void *arg) {
  (void)arg;
  uint64_t t0 = loom_now();
  func_arg_t args[2] = {{.name = "func1", .sleep_ms = 1000, .t0 = t0},
                        {.name = "func2", .sleep_ms = 1000, .t0 = t0}};
  loom_task_t *tasks[2];
  int n = 0, rc = 0;

  for (; n < 2; n++) {
    rc = loom_spawn(&tasks[n], func, &args[n]);
    if (rc < 0) {
      fprintf(stderr, "tasks: spawn %s: %s\n", args[n].name, loom_strerror(rc));
      break;
    }
  }
  /* Join every task that was spawned, even after a failure: a handle
   * never joined nor detached is reported as a leak when the runtime ends.
   * If we are cancelled while joining, loom_join cancels the child and still
   * waits for it, so no task outlives main. */
  for (int i = 0; i < n; i++) {
    int status;
    int jrc = loom_join(tasks[i], &status);
    if (jrc < 0 || status < 0) {
      fprintf(stderr, "tasks: %s: %s\n", args[i].name,
              loom_strerror(jrc < 0 ? jrc : status));
      if (rc == 0) rc = jrc < 0 ? jrc : status;
    }
  }
  if (rc < 0) return rc;

  for (int i = 0; i < 2; i++)
    printf("%s() finished after %.1f s\n", args[i].name,
           (double)args[i].finished_ms / 1000.0);
  printf("total: %.1f s (one after the other would take %.1f s)\n",
         (double)(loom_now() - t0) / 1000.0,
         (double)(args[0].sleep_ms + args[1].sleep_ms) / 1000.0);
  return 0;
}

int main(void) {
  int rc = loom_run(tasks_main, NULL);
  if (rc < 0) {
    fprintf(stderr, "tasks: %s\n", loom_strerror(rc));
    return 1;
  }
  return 0;
}
