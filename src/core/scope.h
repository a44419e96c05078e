/* The private layout of a scope (include/loom/scope.h).
 *
 * A loom_scope_t is caller-owned storage of a fixed size (LOOM_SCOPE_SIZE)
 * that loom views through this struct; the asserts below keep the two
 * honest on every target the library is built for. Accesses go through a
 * may_alias type, so the compiler knows this view and the caller's array of
 * words are the same memory.
 *
 * A scope holds no timer of its own: the task it belongs to has one timer
 * for the earliest deadline among its open scopes (scope.c). Scopes left
 * open in a frame that has returned are then never read again: the task's
 * record, not the dead frame, is what sits in the timer heap.
 */
#ifndef LOOM_CORE_SCOPE_H
#define LOOM_CORE_SCOPE_H

#include <stdint.h>

#include "../util/container.h"
#include "loom.h"

typedef struct LOOM__MAY_ALIAS loom__scope_s {
  loom_scope_t *parent;     /* enclosing open scope of the task */
  loom_scope_t *outer_kept; /* enclosing open scope of the task
                               that is stored outside its stack */
  loom_task_t *task;        /* the task that entered it */
  uint64_t deadline;        /* loop time; LOOM_NO_DEADLINE: none */
  uint64_t seq;             /* when the deadline was set, in the
                               timers' arming order: equal deadlines
                               fire in it (timer.h) */
  uint8_t shield;           /* hides outer cancellation/timeouts */
  uint8_t expired;          /* deadline passed while open */
  uint8_t fired;            /* expired, and nothing outer had */
  uint8_t open;
} loom__scope_t;

_Static_assert(sizeof(loom__scope_t) <= sizeof(loom_scope_t),
               "a scope's private layout must fit LOOM_SCOPE_SIZE");
_Static_assert(_Alignof(loom__scope_t) <= _Alignof(loom_scope_t),
               "a scope's private layout must fit loom_scope_t's alignment");

static inline loom__scope_t *loom__scope_of(loom_scope_t *s) {
  return (loom__scope_t *)(void *)s;
}

static inline const loom__scope_t *loom__scope_of_const(const loom_scope_t *s) {
  return (const loom__scope_t *)(const void *)s;
}

#endif
