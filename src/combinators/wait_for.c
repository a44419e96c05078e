/* loom_wait_for (asyncio.wait_for): a join under a timeout scope. The join
 * does the hard part: when the scope expires it cancels the task and awaits
 * it, and still reports its status. */
#include "core/internal.h"

int loom_wait_for_task(uint64_t ms, loom_task_t *task, int *status) {
  loom_scope_t s;
  int rc = loom_timeout_enter(&s, ms);
  if (rc) return rc;
  rc = loom_join(task, status);
  int fired = loom_scope_exit(&s);
  return fired ? fired : rc;
}

int loom_wait_for(uint64_t ms, loom_fn fn, void *arg, int *status) {
  loom_task_t *t;
  int rc = loom_spawn(&t, fn, arg);
  if (rc) return rc;
  return loom_wait_for_task(ms, t, status);
}
