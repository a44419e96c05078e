/* The task table and a task's identity: its handle, its name and its id,
 * and the running task.
 *
 * A task handle is not the task's address but a token of the runtime's
 * table of task slots: (generation << 32) | (slot + 1). Freeing the slot
 * (join, or the end of a detached task) bumps its generation, so a handle
 * used after join or detach is recognised instead of touching memory that
 * may now serve another task. The heap objects of the other layers have a
 * table of the same shape (handle.h); tasks are to move into it, which
 * waits for the test harness (tests/harness.c), as it reads this one.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

int loom__task_slots_grow(loom_t *rt) {
  uint32_t cap = rt->slots_cap ? rt->slots_cap * 2 : 256;
  loom__slot_t *s = realloc(rt->slots, cap * sizeof(*s));
  if (!s) return UV_ENOMEM;
  rt->slots = s;
  rt->slots_cap = cap;
  return 0;
}

void loom__task_handle_renew(loom_task_t *t) { t->rt->slots[t->slot].gen++; }

const char *loom__task_name(loom_task_t *t) {
  if (!t->name[0]) snprintf(t->name, sizeof(t->name), "task-%" PRIu64, t->id);
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
  return t ? t->id : 0;
}
