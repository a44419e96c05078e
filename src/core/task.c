/* Tasks: spawn, join, detach, cancel, and the handle table.
 *
 * A task's struct sits at the top of its stack (internal.h), so a spawn is a
 * pool pop, a few stores and a queue append. A finished task keeps its stack
 * until its handle is consumed by join (or at once when detached).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define TASK_BYTES ((sizeof(loom_task_t) + 63) & ~(size_t)63)
/* Task records sit at the top of page-aligned stacks, so without care every
 * record would map to the same cache sets; a batch of tasks would then evict
 * each other's records. Records are shifted by one of LOOM__COLOURS cache
 * lines, taken from the task id. */
#define LOOM__COLOURS 16
#define COLOUR_BYTES ((size_t)LOOM__COLOURS * 64)
_Static_assert(LOOM_MAX_STACK_SIZE + TASK_BYTES + COLOUR_BYTES <= LOOM__STACK_MAX,
               "the largest stack a task may ask for must fit the stack pool");

/* ---- handle table ---------------------------------------------------- */

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

static int slot_alloc(loom_t *rt, loom_task_t *t) {
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

static void slot_free(loom_t *rt, uint32_t i) {
  loom__slot_t *s = &rt->slots[i];
  s->task = NULL;
  s->gen++; /* every handle to this slot is stale from now on */
  s->next_free = rt->free_slot;
  rt->free_slot = i + 1;
}

static const char *name_of(loom_task_t *t) {
  if (!t->name[0]) snprintf(t->name, sizeof(t->name), "task-%" PRIu64, t->id);
  return t->name;
}

/* Frees a finished task whose handle is gone: slot and stack. */
void loom__release(loom_t *rt, loom_task_t *t) {
  loom__stack_t st = t->stack; /* t lives in that stack */
  slot_free(rt, t->slot);
  loom__stack_put(&rt->stacks, &st);
}

/* ---- watchers and hooks ------------------------------------------------------ */

/* Whether node is on the list from head (debug checks only: a walk). */
#define ON_LIST(head, node, found)                        \
  do {                                                    \
    found = 0;                                            \
    for (__typeof__(head) p_ = (head); p_; p_ = p_->next) \
      if (p_ == (node)) found = 1;                        \
  } while (0)

void loom__watch(loom_task_t *t, loom__watch_t *w,
                 void (*done)(loom__watch_t *w, loom_task_t *t)) {
#if LOOM_DEBUG
  int linked;
  ON_LIST(t->watchers, w, linked);
  loom__assert(!linked, "linking a watcher that is already linked");
#endif
  w->done = done;
  w->prev = NULL;
  w->next = t->watchers;
  if (t->watchers) t->watchers->prev = w;
  t->watchers = w;
  w->linked = 1;
}

void loom__unwatch(loom_task_t *t, loom__watch_t *w) {
  if (!w->linked) return;
  if (w->prev)
    w->prev->next = w->next;
  else
    t->watchers = w->next;
  if (w->next) w->next->prev = w->prev;
  w->linked = 0;
}

static void notify_watchers(loom_task_t *t) {
  loom__watch_t *w = t->watchers;
  t->watchers = NULL;
  while (w) {
    loom__watch_t *next = w->next;
    w->linked = 0;
    w->done(w, t);
    w = next;
  }
}

void loom__hook(loom_task_t *t, loom__hook_t *h) {
#if LOOM_DEBUG
  int linked;
  ON_LIST(t->hooks, h, linked);
  loom__assert(!linked, "linking a hook that is already linked");
#endif
  h->prev = NULL;
  h->next = t->hooks;
  if (t->hooks) t->hooks->prev = h;
  t->hooks = h;
}

void loom__unhook(loom_task_t *t, loom__hook_t *h) {
  if (h->prev)
    h->prev->next = h->next;
  else
    t->hooks = h->next;
  if (h->next) h->next->prev = h->prev;
  h->next = h->prev = NULL;
}

int loom__wait_all(loom__waiter_t *w, const size_t *remaining, void (*abort)(void *ctx),
                   void *ctx) {
  int rc = loom__check(w->task);
  while (*remaining && rc == 0) rc = loom__park(w);
  if (*remaining) {
    /* Interrupted: what we wait for must not outlive us. Cancel it and wait,
     * deaf to further interruptions, until it has ended. */
    abort(ctx);
    w->shielded = 1;
    while (*remaining) loom__park(w);
    w->shielded = 0;
  }
  return rc;
}

/* ---- life of a task ------------------------------------------------------ */

static void entry(void *p) {
  loom_task_t *t = p;
  loom__fiber_started();
  loom__landed(t->rt);
  t->status = t->fn(t->arg);
  /* Misuse, cleaned up rather than left to corrupt memory: scopes left
   * open (their frames are gone), then groups left open (they are awaited
   * here, so no child outlives its opener). */
  if (t->scope) loom__scopes_abandon(t);
  while (t->hooks) t->hooks->exiting(t->hooks);
  loom__timers_check_none_in(t->rt, t->stack.lo, (char *)t->stack.lo + t->stack.size);
  t->state = LOOM__DONE;
  loom__suspend(t, 1);
}

int loom__spawn(loom_t *rt, loom_task_t **out, loom_fn fn, void *arg,
                const loom_task_opts_t *opts, int is_main) {
  if (!fn) return UV_EINVAL;
  if (rt->open_handles) return LOOM_ECLOSED; /* handles are being closed */
  size_t size = opts && opts->stack_size ? opts->stack_size : rt->stack_size;
  /* Checked before the record and colour are added: SIZE_MAX would wrap. */
  if (size > LOOM_MAX_STACK_SIZE) return UV_EINVAL;
  loom__stack_t st;
  int rc = loom__stack_get(&rt->stacks, size + TASK_BYTES + COLOUR_BYTES, &st);
  if (rc) return UV_ENOMEM;
  size_t top = TASK_BYTES + (size_t)(rt->next_id % LOOM__COLOURS) * 64;
  loom_task_t *t = (loom_task_t *)((char *)st.lo + st.size - top);
  /* Field by field rather than memset: the record is ~300 bytes, mostly a
   * name buffer that needs one zero byte, and this is the spawn fast path. */
  t->next_ready = t->alive_prev = NULL;
  t->wait = NULL;
  t->watchers = NULL;
  t->hooks = NULL;
  t->member.linked = 0;
  t->owner = NULL;
  t->member_prev = t->member_next = NULL;
  t->scope = t->kept_scope = NULL;
  t->scope_armed = 0;
  t->status = 0;
  t->cancelled = t->detached = t->consumed = t->quiet = 0;
  t->name[0] = 0;
  if (slot_alloc(rt, t)) {
    loom__stack_put(&rt->stacks, &st);
    return UV_ENOMEM;
  }
  t->rt = rt;
  t->fn = fn;
  t->arg = arg;
  t->stack = st;
  t->id = ++rt->next_id;
  t->is_main = (uint8_t)is_main;
  if (is_main) rt->main = t;
  if (opts && opts->name) {
    strncpy(t->name, opts->name, LOOM_TASK_NAME_MAX);
    t->name[LOOM_TASK_NAME_MAX] = 0;
  }
  loom__fiber_init(&t->fiber, st.lo, st.size - top, entry, t);
  t->fiber.guard_lo = st.guard_lo;
  t->fiber.guard_size = st.guard_size;
  /* Overflow reports print what the task really had, not what was asked
   * for: a 1-byte request gets (and reports) the minimum stack. */
  t->fiber.nominal_size = st.size - top;
  t->fiber.name = t->name;
  t->fiber.id = t->id;
  t->alive_next = rt->alive;
  if (rt->alive) rt->alive->alive_prev = t;
  rt->alive = t;
  rt->nalive++;
  if (rt->closing) t->cancelled = 1; /* born during shutdown */
  if (out)
    *out = loom__handle_of(t);
  else
    t->detached = t->consumed = 1;
  loom__make_ready(t);
  /* Batches of spawns are bound by cache misses on fresh task records:
   * start fetching the next one now. */
  char *next = loom__stack_peek(&rt->stacks, size + TASK_BYTES + COLOUR_BYTES);
  if (next) {
    next += st.size - TASK_BYTES - (size_t)(rt->next_id % LOOM__COLOURS) * 64;
    /* The record, and the line below it where the first frame goes. */
    for (size_t off = 0; off < TASK_BYTES + 64; off += 64)
      __builtin_prefetch(next - 64 + off, 1);
  }
  return 0;
}

void loom__task_finished(loom_t *rt, loom_task_t *t) {
  if (t->alive_prev)
    t->alive_prev->alive_next = t->alive_next;
  else
    rt->alive = t->alive_next;
  if (t->alive_next) t->alive_next->alive_prev = t->alive_prev;
  rt->nalive--;
  notify_watchers(t);
  if (t->is_main) {
    rt->main_status = t->status;
    rt->main = NULL;
    rt->closing = 1;
    loom__cancel_all(rt);
    loom__release(rt, t);
    return;
  }
  if (t->detached) {
    if (t->status < 0 && t->status != UV_ECANCELED && !t->quiet)
      fprintf(stderr, "loom: detached task '%s' failed: %s (%s)\n", name_of(t),
              loom_err_name(t->status), loom_strerror(t->status));
    loom__release(rt, t);
  }
}

void loom__cancel(loom_task_t *t) {
  t->cancelled = 1;
  loom__poke(t); /* a shielded wait goes on */
}

void loom__cancel_all(loom_t *rt) {
  for (loom_task_t *t = rt->alive; t; t = t->alive_next) loom__cancel(t);
}

/* At shutdown: tasks that ended but were never joined nor detached. */
void loom__reap_unconsumed(loom_t *rt) {
  for (uint32_t i = 0; i < rt->nslots; i++) {
    loom_task_t *t = rt->slots[i].task;
    if (!t || t->consumed) continue;
    fprintf(stderr, "loom: task '%s' was never joined nor detached\n", name_of(t));
    loom__release(rt, t);
  }
}

/* ---- public API -------------------------------------------------------- */

int loom_spawn_on_ex(loom_t *rt, loom_task_t **task, loom_fn fn, void *arg,
                     const loom_task_opts_t *opts) {
  if (!rt) return UV_EINVAL;
  /* Once shutdown has begun, only tasks may still spawn (their children are
   * born cancelled); the host may not start new work. */
  if (rt->closing && !loom__self()) return LOOM_ECLOSED;
  return loom__spawn(rt, task, fn, arg, opts, 0);
}

int loom_spawn_on(loom_t *rt, loom_task_t **task, loom_fn fn, void *arg) {
  return loom_spawn_on_ex(rt, task, fn, arg, NULL);
}

int loom_spawn_ex(loom_task_t **task, loom_fn fn, void *arg,
                  const loom_task_opts_t *opts) {
  loom_task_t *self = loom__self();
  if (!self) return LOOM_ENOTASK;
  return loom__spawn(self->rt, task, fn, arg, opts, 0);
}

int loom_spawn(loom_task_t **task, loom_fn fn, void *arg) {
  return loom_spawn_ex(task, fn, arg, NULL);
}

typedef struct {
  loom__watch_t watch;
  loom__waiter_t w;
  size_t remaining;
} joining_t;

static void join_done(loom__watch_t *watch, loom_task_t *t) {
  joining_t *j = (joining_t *)watch;
  (void)t;
  j->remaining = 0;
  loom__wake(&j->w, 0);
}

static void join_abort(void *child) { loom__cancel(child); }

int loom_join(loom_task_t *task, int *status) {
  loom_task_t *self = loom__self();
  if (!self) return LOOM_ENOTASK;
  loom_t *rt = self->rt;
  loom_task_t *t = loom__task_of(rt, task);
  if (t == self) return LOOM_EDEADLK;
  if (!t || t->consumed) return LOOM_EBADTASK;
  t->consumed = 1;
  int rc = 0;
  if (t->state != LOOM__DONE) {
    joining_t j = {.w = {self, NULL, 0, 0}, .remaining = 1};
    loom__watch(t, &j.watch, join_done);
    rc = loom__wait_all(&j.w, &j.remaining, join_abort, t);
  }
  if (status) *status = t->status;
  loom__release(rt, t);
  return rc;
}

int loom_task_done(loom_task_t *task) {
  loom_task_t *t = loom__task_of(loom__tls_rt, task);
  return t && t->state == LOOM__DONE;
}

int loom_detach(loom_task_t *task) {
  loom_task_t *t = loom__task_of(loom__tls_rt, task);
  if (!t || t->consumed) return LOOM_EBADTASK;
  t->consumed = t->detached = 1;
  /* The handle given up is stale from now on (cancel, name, id: as after a
   * join); the task's own loom_current() yields a fresh one. */
  t->rt->slots[t->slot].gen++;
  if (t->state == LOOM__DONE) loom__release(t->rt, t);
  return 0;
}

int loom_cancel(loom_task_t *task) {
  loom_task_t *t = loom__task_of(loom__tls_rt, task);
  if (!t) return LOOM_EBADTASK;
  if (t->state != LOOM__DONE) loom__cancel(t);
  return 0;
}

loom_task_t *loom_current(void) {
  loom_task_t *t = loom__self();
  return t ? loom__handle_of(t) : NULL;
}

int loom_cancelled(void) {
  loom_task_t *t = loom__self();
  return t ? t->cancelled : 0;
}

const char *loom_task_name(loom_task_t *task) {
  loom_task_t *t = loom__task_of(loom__tls_rt, task);
  return t ? name_of(t) : NULL;
}

uint64_t loom_task_id(loom_task_t *task) {
  loom_task_t *t = loom__task_of(loom__tls_rt, task);
  return t ? t->id : 0;
}
