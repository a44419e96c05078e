/* Task stacks: carved from large mmap'd slabs, committed lazily, pooled.
 *
 * Below every stack lies address space that no other stack uses, so that a
 * frame larger than what is left of its stack (a big local array, compiled
 * without -fstack-clash-protection, touches memory far below the last byte
 * it probed) lands there rather than in a neighbour:
 *
 * - a guard zone of LOOM__GUARD_BYTES, PROT_NONE: the first access faults
 *   and the SIGSEGV handler names the task (overflow.c). It costs address
 *   space and one extra mapping, no memory.
 * - past the guard budget, a dead zone of LOOM__DEAD_BYTES, readable and
 *   writable but never touched by loom: no extra mapping. A stack there is
 *   protected by a canary at its bottom (bytes that must stay zero, fiber.h)
 *   that the scheduler checks at every switch; a frame that reaches into
 *   the dead zone corrupts nothing and is reported if it wrote the canary.
 *
 * Linux allows 65,530 mappings per process, and a guard zone splits a
 * mapping in two, so one guard per stack would stop a process near 32k
 * stacks. loom spends a process-wide budget of guard zones (a quarter of
 * vm.max_map_count) and, once it is spent, lays stacks out in unguarded
 * slabs (one mapping each, merged by the kernel). The switch is said once
 * on stderr.
 *
 * Slab of n stacks (guarded):    [G|stack 0][G|stack 1] ... [G|stack n-1]
 * Slab of n stacks (unguarded):  [D|0 stack 0][D|0 stack 1] ...
 *                                (G = guard zone, D = dead zone, 0 = canary)
 */
#ifndef LOOM_FIBER_STACK_H
#define LOOM_FIBER_STACK_H

#include <stddef.h>
#include <stdint.h>

#include "../util/list.h"

/* The smallest stack loom__stack_get hands out. The fiber layer sits below
 * the core and does not include its public header: the core checks with a
 * _Static_assert that LOOM_MIN_STACK_SIZE (loom/core.h) is this value. */
#define LOOM__STACK_MIN ((size_t)16 * 1024)

/* The guard zone below a guarded stack, and the dead zone below an
 * unguarded one (each rounded up to whole pages). See docs/stacks.md for
 * why these sizes. */
#define LOOM__GUARD_BYTES ((size_t)256 * 1024)
#define LOOM__DEAD_BYTES ((size_t)64 * 1024)

/* The largest stack loom__stack_get hands out. Far below SIZE_MAX, so that
 * rounding a size and adding a guard zone can never wrap; callers adding
 * room of their own to a user's size should check against it first. */
#if SIZE_MAX > 0xffffffffu
#define LOOM__STACK_MAX ((size_t)1 << 40) /* 1 TiB */
#else
#define LOOM__STACK_MAX ((size_t)1 << 30)
#endif

typedef struct loom__stack_s {
  void *lo;          /* lowest usable byte */
  size_t size;       /* usable bytes (a multiple of the page size) */
  void *guard_lo;    /* the guard zone below lo, NULL when canary-only */
  size_t guard_size; /* bytes of that guard zone (lo - guard_lo), or 0 */
} loom__stack_t;

typedef struct loom__stack_pool_s {
  loom__list_t slabs;               /* every slab (loom__slab_t), unmapped at destroy */
  loom__list_t classes;             /* one size class (loom__stack_class_t) per stack
                           size, each with its free stacks; newest first */
  struct loom__stack_class_s *last; /* the class last looked up, or NULL */
  int valgrind;                     /* running under Valgrind */
  size_t page;                      /* system page size */
  size_t guard;                     /* guard zone, whole pages */
  size_t dead;                      /* dead zone, whole pages */
  /* A monotonic clock in ns that the owner keeps current (the runtime
   * points it at its scheduler's coarse pass clock; a test at a variable
   * it advances by hand). Read at every put to decay the warm count; NULL
   * means time stands still and the warm count never shrinks. */
  const int64_t *clock;
} loom__stack_pool_t;

/* The state of one size class, for tests and reports. */
typedef struct loom__stack_stats_s {
  size_t total;    /* stacks of this size mapped */
  size_t free;     /* of which free */
  size_t warm;     /* of the free ones, those with resident pages */
  size_t keep;     /* free stacks currently allowed to stay resident */
  size_t peak;     /* most in use at once in the current demand window */
  size_t reserved; /* of the free ones, those promised (loom__stack_reserve) */
} loom__stack_stats_t;

void loom__stack_pool_init(loom__stack_pool_t *pool);
void loom__stack_pool_destroy(loom__stack_pool_t *pool);

/* Hands out a stack of at least `size` usable bytes (rounded up to pages and
 * to LOOM__STACK_MIN). Returns 0, -EINVAL if size exceeds
 * LOOM__STACK_MAX (nothing is handed out or filled in), or -ENOMEM if
 * memory or mappings ran out. */
int loom__stack_get(loom__stack_pool_t *pool, size_t size, loom__stack_t *out);
/* Reserves a stack of `size` for a later loom__stack_take, which then
 * cannot fail: what may fail (a size class, a slab to map) fails here.
 * Nothing is touched or made resident; the free stacks of a size are never
 * fewer than its reservations, and loom__stack_get leaves those alone.
 * Returns 0, -EINVAL (size beyond LOOM__STACK_MAX) or -ENOMEM. */
int loom__stack_reserve(loom__stack_pool_t *pool, size_t size);
/* Hands out a stack reserved with the same `size`: the most recently freed
 * one, whose pages are most likely still resident and in cache. */
void loom__stack_take(loom__stack_pool_t *pool, size_t size, loom__stack_t *out);
/* Gives up a reservation of `size` that will never be taken. */
void loom__stack_unreserve(loom__stack_pool_t *pool, size_t size);
/* Gives a stack back to the pool for reuse. Its pages stay resident: it is
 * the next one handed out. When that makes the resident free stacks of its
 * size more than recent demand (stack.c), the least recently used of them
 * go back to the kernel, a few per put. */
void loom__stack_put(loom__stack_pool_t *pool, const loom__stack_t *s);
/* An idle point of the owner (nothing to run, about to wait): the warm
 * counts decay by the clock as at a put, and a bounded step of the free
 * stacks beyond them goes back to the kernel. So a runtime that stops
 * spawning still gives memory back, as long as its loop wakes up now and
 * then (each wake-up gives back at most 256 stacks). */
void loom__stack_pool_idle(loom__stack_pool_t *pool);
/* Fills *out for the size class `size` would get (all zero but keep if no
 * stack of that size was ever asked for). -EINVAL if size is too large. */
/* Stacks mapped and, of them, free, over every size class. */
void loom__stack_pool_totals(const loom__stack_pool_t *pool, size_t *total,
                             size_t *nfree);
int loom__stack_pool_stats(const loom__stack_pool_t *pool, size_t size,
                           loom__stack_stats_t *out);

/* Guard zones in use and the budget, process-wide (for tests and reports).
 * The budget is read from vm.max_map_count once; if that read fails, the
 * default (65,530 mappings) is used and the read is tried again next time. */
size_t loom__stack_guards_used(void);
size_t loom__stack_guard_budget(void);
/* Test hook: replaces the budget (0 = recompute from vm.max_map_count). */
void loom__stack_set_guard_budget(size_t n);
/* Test hook: reads the mapping limit from `path` (NULL = the real one). */
void loom__stack_set_map_count_path(const char *path);
/* Parses the contents of vm.max_map_count: a positive decimal number and
 * the newline the kernel ends it with (so a short read is no number).
 * Returns the number, or -1. */
long loom__stack_parse_map_count(const char *buf, size_t n);

#endif
