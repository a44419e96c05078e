/* Spawning a task, and the end of its life.
 *
 * A spawn takes a record from the runtime's cache (records.c), a handle
 * and a reservation in the stack pool, and appends the task to the ready
 * queue: no malloc once the caches are warm, and no stack touched. The
 * stack is bound at the task's first switch-in (loom__task_bind) and given
 * back the moment the task ends, before anyone joins it: the status a join
 * reads is in the record.
 *
 * Why apart: a batch of tasks spawned and then joined visits each task
 * three times (spawn, run, join). With the record at the top of the task's
 * stack, each visit touched a page of its own, and past a few thousand
 * tasks every visit was a TLB miss and a page walk (batches of 100,000
 * took 5x what batches of 100 did per task). Records side by side share
 * pages, and a task that runs to its end before the next one starts hands
 * its stack, still warm, to the next: a batch of empty tasks runs on two
 * stacks. The price is the record's bytes beside the stack's first page for
 * a task that waits (docs/stacks.md).
 *
 * The task runs `entry` on its fiber; once its function returns it is DONE,
 * and whoever lands on the next stack finishes it (loom__task_finished): its
 * stack goes back, its watchers are told, and a detached task is released
 * at once. A joined one keeps its record and handle until the join has read
 * its status.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#ifdef LOOM__TSAN
#include <sanitizer/tsan_interface.h>
#endif

_Static_assert(LOOM_MAX_STACK_SIZE <= LOOM__STACK_MAX,
               "the largest stack a task may ask for must fit the stack pool");
_Static_assert(LOOM_MIN_STACK_SIZE == LOOM__STACK_MIN,
               "loom/core.h and the fiber layer disagree on the smallest stack");

/* Gives back the stack of a task that has one bound, and the reservation
 * of one that never ran. */
static void stack_give_back(loom_t *rt, loom_task_t *t) {
  if (!loom__task_has_stack(t)) {
    if (t->state != LOOM__DONE) loom__stack_unreserve(&rt->stacks, t->fiber.stack_size);
    return;
  }
  loom__stack_t st = {.lo = t->fiber.stack_lo,
                      .size = t->fiber.stack_size,
                      .guard_lo = t->fiber.guard_lo,
                      .guard_size = t->fiber.guard_size};
  loom__stack_put(&rt->stacks, &st);
  t->fiber.stack_lo = NULL;
}

/* Frees a finished task whose handle is gone: handle, record and stack. */
void loom__release(loom_t *rt, loom_task_t *t) {
  loom__handle_free_slot(rt, t->slot);
  stack_give_back(rt, t);
  loom__record_free(&rt->records, t);
}

static void entry(void *p) {
  loom_task_t *t = p;
  loom__fiber_started();
  /* A batch of new tasks starts in spawn order, and the ready queue is a
   * linked list that cannot be read ahead without a miss per link: the
   * record of the task spawned LOOM__AHEAD after this one, which starts
   * that many switches from now. Here rather than at every switch: a
   * yield pays nothing for it. */
  loom__prefetch_ahead(t, offsetof(loom_task_t, name));
  loom__landed(t->rt);
  t->status = t->fn(t->arg);
  /* Misuse, cleaned up rather than left to corrupt memory: scopes left
   * open (their frames are gone), then groups left open (they are awaited
   * here, so no child outlives its opener). */
  if (t->scope) loom__scopes_abandon(t);
  while (!loom__list_empty(&t->hooks)) { /* each one unhooks itself */
    loom__hook_t *h = loom__list_entry(t->hooks.head, loom__hook_t, link);
    h->exiting(h);
  }
  loom__timers_check_none_in(t->rt, t->fiber.stack_lo,
                             (char *)t->fiber.stack_lo + t->fiber.stack_size);
  t->state = LOOM__DONE;
  loom__suspend(t, 1);
}

void loom__task_bind(loom_task_t *t) {
  loom_t *rt = t->rt;
  loom__stack_t st;
  loom__stack_take(&rt->stacks, t->fiber.stack_size, &st);
  loom__fiber_init(&t->fiber, st.lo, st.size, entry, t);
  t->fiber.guard_lo = st.guard_lo;
  t->fiber.guard_size = st.guard_size;
  t->fiber.nominal_size = st.size;
#ifdef LOOM__TSAN
  /* ThreadSanitizer's reports then say which task a fiber ran. */
  __tsan_set_fiber_name(t->fiber.asan_fake, loom__task_name(t));
#endif
}

/* The spawn itself; pc: where it was asked for (dumps), or NULL. */
static inline int spawn_at(loom_t *rt, loom_task_t **out, loom_fn fn, void *arg,
                           const loom_task_opts_t *opts, int is_main, void *pc) {
  if (!fn) return UV_EINVAL;
  if (rt->open_handles) return LOOM_ECLOSED; /* handles are being closed */
  size_t size = opts && opts->stack_size ? opts->stack_size : rt->stack_size;
  if (size > LOOM_MAX_STACK_SIZE) return UV_EINVAL;
  if (loom__stack_reserve(&rt->stacks, size)) return UV_ENOMEM;
  loom_task_t *t = loom__record_new(&rt->records);
  if (!t) {
    loom__stack_unreserve(&rt->stacks, size);
    return UV_ENOMEM;
  }
  /* Field by field rather than memset: the record is ~400 bytes, of which
   * a spawn needs to write a few lines only (internal.h), and this is the
   * spawn fast path. */
  t->next_ready = NULL;
  t->wait = NULL;
  loom__list_init(&t->watchers);
  loom__list_init(&t->hooks);
  t->owner = NULL;
  t->scope = t->kept_scope = NULL;
  t->scope_armed = 0;
  t->status = 0;
  t->cancelled = t->detached = t->consumed = t->quiet = t->system = 0;
  t->name[0] = 0;
  t->spawn_pc = pc;
  t->parent_id = rt->current ? rt->current->fiber.id : 0;
  void *handle;
  if (loom__handle_new(rt, LOOM__H_TASK, t, &handle)) {
    loom__record_free(&rt->records, t);
    loom__stack_unreserve(&rt->stacks, size);
    return UV_ENOMEM;
  }
  t->slot = (uint32_t)(uintptr_t)handle - 1u;
  t->rt = rt;
  t->fn = fn;
  t->arg = arg;
  t->fiber.id = ++rt->next_id;
  t->is_main = (uint8_t)is_main;
  if (is_main) rt->main = t;
  if (opts && opts->name) {
    strncpy(t->name, opts->name, LOOM_TASK_NAME_MAX);
    t->name[LOOM_TASK_NAME_MAX] = 0;
  }
  /* No stack yet: what it will ask for, and a name to report. */
  t->fiber.stack_lo = NULL;
  t->fiber.stack_size = size;
  t->fiber.name = t->name;
  /* The statistics cost a spawn nothing: the count of spawns is next_id,
   * and the peak of nalive is taken when it falls (loom__task_finished). */
  loom__list_push_front(&rt->alive, &t->alive_link);
  rt->nalive++;
  if (rt->closing) t->cancelled = 1; /* born during shutdown */
  if (out)
    *out = handle;
  else
    t->detached = t->consumed = 1;
  loom__make_ready(t);
  return 0;
}

int loom__spawn(loom_t *rt, loom_task_t **out, loom_fn fn, void *arg,
                const loom_task_opts_t *opts, int is_main) {
  void *pc = rt->spawn_pc; /* a caller's, if it left one (groups) */
  rt->spawn_pc = NULL;
  return spawn_at(rt, out, fn, arg, opts, is_main, pc);
}

void loom__task_finished(loom_t *rt, loom_task_t *t) {
  loom__list_remove(&rt->alive, &t->alive_link);
  /* Its frames are gone: the next task to start takes the stack warm. */
  stack_give_back(rt, t);
  /* A maximum of nalive is where it starts to fall: here (loom_stats_get
   * takes the current count into account for one still rising). */
  if (rt->nalive > rt->stats.peak) rt->stats.peak = rt->nalive;
  rt->nalive--;
  loom__notify_watchers(t);
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
      fprintf(stderr, "loom: detached task '%s' failed: %s (%s)\n", loom__task_name(t),
              loom_err_name(t->status), loom_strerror(t->status));
    loom__release(rt, t);
  }
}

/* At shutdown: tasks that ended but were never joined nor detached. */
void loom__reap_unconsumed(loom_t *rt) {
  for (uint32_t i = 0; i < rt->nhandles; i++) {
    loom_task_t *t = loom__handle_at(rt, i, LOOM__H_TASK);
    if (!t || t->consumed) continue;
    fprintf(stderr, "loom: task '%s' was never joined nor detached\n",
            loom__task_name(t));
    if (LOOM__UNLIKELY(rt->debug_mode)) loom__debug_unjoined(rt, t);
    loom__release(rt, t);
  }
}

/* ---- public API -------------------------------------------------------- */

/* The public spawns pass their caller's address down: a dump shows where
 * a task was spawned. */
static inline int spawn_on(loom_t *rt, loom_task_t **task, loom_fn fn, void *arg,
                           const loom_task_opts_t *opts, void *pc) {
  if (!rt) return UV_EINVAL;
  /* Once shutdown has begun, only tasks may still spawn (their children are
   * born cancelled); the host may not start new work. */
  if (rt->closing && !loom__self()) return LOOM_ECLOSED;
  return spawn_at(rt, task, fn, arg, opts, 0, pc);
}

static inline int spawn_ex(loom_task_t **task, loom_fn fn, void *arg,
                           const loom_task_opts_t *opts, void *pc) {
  loom_task_t *self = loom__self();
  if (!self) return LOOM_ENOTASK;
  return spawn_at(self->rt, task, fn, arg, opts, 0, pc);
}

int loom_spawn_on_ex(loom_t *rt, loom_task_t **task, loom_fn fn, void *arg,
                     const loom_task_opts_t *opts) {
  return spawn_on(rt, task, fn, arg, opts, __builtin_return_address(0));
}

int loom_spawn_on(loom_t *rt, loom_task_t **task, loom_fn fn, void *arg) {
  return spawn_on(rt, task, fn, arg, NULL, __builtin_return_address(0));
}

int loom_spawn_ex(loom_task_t **task, loom_fn fn, void *arg,
                  const loom_task_opts_t *opts) {
  return spawn_ex(task, fn, arg, opts, __builtin_return_address(0));
}

int loom_spawn(loom_task_t **task, loom_fn fn, void *arg) {
  return spawn_ex(task, fn, arg, NULL, __builtin_return_address(0));
}
