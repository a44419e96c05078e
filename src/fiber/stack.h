/* Task stacks: carved from large mmap'd slabs, committed lazily, pooled.
 *
 * Linux allows 65,530 mappings per process, and a guard page splits a
 * mapping in two, so one guard per stack would stop a process near 32k
 * stacks. loom spends a process-wide budget of guard pages (a quarter of
 * vm.max_map_count) and, once it is spent, lays stacks out back to back in
 * unguarded slabs (one mapping each, merged by the kernel) with a canary at
 * the bottom (bytes that must stay zero, fiber.h) that the scheduler checks
 * at every switch. The switch is said
 * once on stderr.
 *
 * Slab of n stacks (guarded):    [G|stack 0][G|stack 1] ... [G|stack n-1]
 * Slab of n stacks (unguarded):  [0|stack 0][0|stack 1] ... (0 = zero canary)
 */
#ifndef LOOM_FIBER_STACK_H
#define LOOM_FIBER_STACK_H

#include <stddef.h>

typedef struct loom__stack_s {
  void *lo;       /* lowest usable byte */
  size_t size;    /* usable bytes (a multiple of the page size) */
  void *guard_lo; /* the guard page below lo, NULL when canary-only */
} loom__stack_t;

typedef struct loom__stack_pool_s {
  struct loom__slab_s *slabs;          /* every slab, unmapped at destroy */
  struct loom__stack_class_s *classes; /* free stacks, one list per size */
  size_t page;                         /* system page size */
} loom__stack_pool_t;

void loom__stack_pool_init(loom__stack_pool_t *pool);
void loom__stack_pool_destroy(loom__stack_pool_t *pool);

/* Hands out a stack of at least `size` usable bytes (rounded up to pages and
 * to LOOM_MIN_STACK_SIZE). Returns 0 or UV_ENOMEM-style -ENOMEM. */
int loom__stack_get(loom__stack_pool_t *pool, size_t size, loom__stack_t *out);
/* The lowest byte of the stack the next get of `size` would hand out, or
 * NULL if unknown; for prefetching. */
void *loom__stack_peek(loom__stack_pool_t *pool, size_t size);
/* Gives a stack back to the pool for reuse. */
void loom__stack_put(loom__stack_pool_t *pool, const loom__stack_t *s);

/* Guard pages in use and the budget, process-wide (for tests and reports). */
size_t loom__stack_guards_used(void);
size_t loom__stack_guard_budget(void);
/* Test hook: replaces the budget (0 = recompute from vm.max_map_count). */
void loom__stack_set_guard_budget(size_t n);

#endif
