/* Spawning a task, and the end of its life.
 *
 * A task's record sits at the top of its own stack (internal.h), so a spawn
 * is a pool pop, a few stores, a handle and a queue append: no malloc. The
 * task runs `entry` on its fiber; once its function returns it is DONE, and
 * whoever lands on the next stack finishes it (loom__task_finished): its
 * watchers are told, and a detached task is released at once. A joined one
 * keeps its stack until the join has read its status.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#ifdef LOOM__TSAN
#include <sanitizer/tsan_interface.h>
#endif

#define TASK_BYTES LOOM__TASK_BYTES
#define COLOUR_BYTES LOOM__COLOUR_BYTES
/* Task records sit at the top of page-aligned stacks, so without care every
 * record would map to the same cache sets; a batch of tasks would then evict
 * each other's records. Records are shifted by one of LOOM__COLOURS cache
 * lines, taken from the stack's address (loom__record_top), so a stack
 * keeps its colour from one task to the next: a record then falls on the
 * lines the stack's last task used, still in cache (a colour taken from the
 * task id moved it, and a batch of 1,000 tasks touched 16 lines more per
 * stack over time). */
_Static_assert(LOOM_MAX_STACK_SIZE + TASK_BYTES + COLOUR_BYTES <= LOOM__STACK_MAX,
               "the largest stack a task may ask for must fit the stack pool");
_Static_assert(LOOM_MIN_STACK_SIZE == LOOM__STACK_MIN,
               "loom/core.h and the fiber layer disagree on the smallest stack");
/* A spawn writes the first four lines of a record and no more (internal.h):
 * name[0] is its last store. With the assembly backends' one-word context
 * only: a ucontext_t is ~1 KiB, and no layout keeps the lines few then. */
#ifndef LOOM_FIBER_UCONTEXT
_Static_assert(offsetof(loom_task_t, name) < 4 * 64 &&
                   offsetof(loom_task_t, member) >= offsetof(loom_task_t, name) + 1,
               "the fields a spawn writes must stay on a record's first four lines");
#endif

/* Frees a finished task whose handle is gone: handle and stack. */
void loom__release(loom_t *rt, loom_task_t *t) {
  /* t lives in that stack: copied out first. */
  loom__stack_t st = {.lo = t->stack.lo,
                      .size = t->stack.size,
                      .guard_lo = t->fiber.guard_lo,
                      .guard_size = t->fiber.guard_size};
  loom__handle_free_slot(rt, t->slot);
  loom__stack_put(&rt->stacks, &st);
}

static void entry(void *p) {
  loom_task_t *t = p;
  loom__fiber_started();
  /* A batch of thousands of new tasks touches a record and a stack page
   * per task, more than the caches and the TLB hold, and the ready queue
   * is a linked list that cannot be read ahead without a miss per link:
   * the spawn left in t the record of the task spawned LOOM__AHEAD after
   * it, which starts that many switches from now. Here, at a task's
   * start, rather than at every switch: a yield pays nothing for it. */
  loom__run_prefetch(t->rt, t);
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
  loom__timers_check_none_in(t->rt, t->stack.lo, (char *)t->stack.lo + t->stack.size);
  t->state = LOOM__DONE;
  loom__suspend(t, 1);
}

/* The spawn itself; pc: where it was asked for (dumps), or NULL. */
static inline int spawn_at(loom_t *rt, loom_task_t **out, loom_fn fn, void *arg,
                           const loom_task_opts_t *opts, int is_main, void *pc) {
  if (!fn) return UV_EINVAL;
  if (rt->open_handles) return LOOM_ECLOSED; /* handles are being closed */
  size_t size = opts && opts->stack_size ? opts->stack_size : rt->stack_size;
  /* Checked before the record and colour are added: SIZE_MAX would wrap. */
  if (size > LOOM_MAX_STACK_SIZE) return UV_EINVAL;
  loom__stack_t st;
  char *lo; /* the stack the spawn LOOM__AHEAD after this one will get */
  int rc = loom__stack_get_ahead(&rt->stacks, size + TASK_BYTES + COLOUR_BYTES, &st,
                                 LOOM__AHEAD - 1, (void **)&lo);
  if (rc) return UV_ENOMEM;
  size_t top = loom__record_top(st.lo);
  loom_task_t *t = (loom_task_t *)((char *)st.lo + st.size - top);
  /* Field by field rather than memset: the record is ~400 bytes, of which
   * a spawn needs to write its first four lines only (internal.h), and
   * this is the spawn fast path. */
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
    loom__stack_put(&rt->stacks, &st);
    return UV_ENOMEM;
  }
  t->slot = (uint32_t)(uintptr_t)handle - 1u;
  t->rt = rt;
  t->fn = fn;
  t->arg = arg;
  t->stack.lo = st.lo;
  t->stack.size = st.size;
  t->fiber.id = ++rt->next_id;
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
#ifdef LOOM__TSAN
  /* ThreadSanitizer's reports then say which task a fiber ran. */
  __tsan_set_fiber_name(t->fiber.asan_fake, loom__task_name(t));
#endif
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
  /* Batches of spawns are bound by cache and TLB misses on task records:
   * start fetching the one LOOM__AHEAD spawns ahead now (one ahead is too
   * close to hide a page walk and a miss to memory behind a ~40 ns spawn),
   * and leave its address for the run and the join of this task to fetch
   * it again. */
  t->ahead = NULL;
  if (lo) {
    char *rec = lo + st.size - loom__record_top(lo);
    if (rt->nalive >= LOOM__PREFETCH_MIN) t->ahead = rec;
    /* The part of the record a spawn writes, and the line below it where
     * the first frame goes. */
    for (size_t off = 0; off <= offsetof(loom_task_t, name) + 64; off += 64)
      __builtin_prefetch(rec - 64 + off, 1);
  }
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
