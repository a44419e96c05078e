/* A task's identity: its handle, its name and its id, and the running
 * task.
 *
 * A task handle is a token of the runtime's generation-checked handle table
 * (handle.h), of kind LOOM__H_TASK, as streams and groups are: a handle
 * used after join or detach is recognised instead of touching memory that
 * may now serve another task. The task's record keeps its slot.
 */
#include <inttypes.h>
#include <stdio.h>

#include "internal.h"

void loom__task_handle_renew(loom_task_t *t) { t->rt->handles[t->slot].gen++; }

const char *loom__task_name(loom_task_t *t) {
  if (!t->name[0]) snprintf(t->name, sizeof(t->name), "task-%" PRIu64, t->fiber.id);
  return t->name;
}

loom_task_t *loom_current(void) {
  loom_task_t *t = loom__self();
  return t ? loom__handle_of(t) : NULL;
}

const char *loom_task_name(loom_task_t *task) {
  loom_task_t *t = loom__task_of(loom__tls_rt, task);
  return t ? loom__task_name(t) : NULL;
}

uint64_t loom_task_id(loom_task_t *task) {
  loom_task_t *t = loom__task_of(loom__tls_rt, task);
  return t ? t->fiber.id : 0; /* the task's id */
}
