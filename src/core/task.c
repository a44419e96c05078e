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

loom_task_t *loom__handle_of(const loom_task_t *t) {
  loom__slot_t *s = &t->rt->slots[t->slot];
  return (loom_task_t *)(uintptr_t)(((uint64_t)s->gen << 32) | (t->slot + 1u));
}

/* The task behind a handle, or NULL if the handle is stale or foreign.
 * Outside a scheduler pass, the runtime is the one initialised on this
 * thread (one runtime per thread). */
loom_task_t *loom__task_of(loom_t *rt, const loom_task_t *h) {
  if (!rt) rt = loom__tls_home;
  uint64_t v = (uint64_t)(uintptr_t)h;
  uint32_t slot = (uint32_t)v - 1u, gen = (uint32_t)(v >> 32);
  if (!rt || !h || (uint32_t)v == 0 || slot >= rt->nslots) return NULL;
  loom__slot_t *s = &rt->slots[slot];
  return s->gen == gen ? s->task : NULL;
}

int loom__task_slot_new(loom_t *rt, loom_task_t *t) {
  uint32_t i;
  if (rt->free_slot) {
    i = rt->free_slot - 1;
    rt->free_slot = rt->slots[i].next_free;
  } else {
    if (rt->nslots == rt->slots_cap) {
      uint32_t cap = rt->slots_cap ? rt->slots_cap * 2 : 256;
      loom__slot_t *s = realloc(rt->slots, cap * sizeof(*s));
      if (!s) return UV_ENOMEM;
      rt->slots = s;
      rt->slots_cap = cap;
    }
    i = rt->nslots++;
    rt->slots[i].gen = 1;
  }
  rt->slots[i].task = t;
  t->slot = i;
  return 0;
}

void loom__task_slot_free(loom_t *rt, loom_task_t *t) {
  loom__slot_t *s = &rt->slots[t->slot];
  s->task = NULL;
  s->gen++; /* every handle to this slot is stale from now on */
  s->next_free = rt->free_slot;
  rt->free_slot = t->slot + 1;
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
