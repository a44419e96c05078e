/* loom scopes: timeouts and shields (asyncio.timeout / timeout_at,
 * asyncio.shield, Trio's cancel scopes).
 *
 * A scope is caller-owned storage, entered and exited by the same task in
 * LIFO order, usually on that task's stack:
 *
 *   loom_scope_t s;
 *   loom_timeout_enter(&s, 500);
 *   rc = loom_sleep(1000);          // UV_ETIMEDOUT after 500 ms
 *   if (loom_scope_exit(&s) == UV_ETIMEDOUT) ...   // this scope fired
 *
 * Rules (docs/scope.md):
 * - While a timeout scope is expired, every suspending call inside it returns
 *   UV_ETIMEDOUT; a scope whose deadline has already passed when entered
 *   fires at the first suspension.
 * - Scopes nest. An inner expiry does not touch the outer scope; an outer
 *   expiry or the task's cancellation beats an inner one (cancellation makes
 *   calls return UV_ECANCELED).
 * - Inside a shield scope, cancellation and timeouts from outside are not
 *   seen, so cleanup can still do I/O. A shield may carry its own timeout.
 * - Gathers and task groups opened inside a scope have their children
 *   cancelled when the scope expires or the opener is cancelled.
 */
#ifndef LOOM_SCOPE_H
#define LOOM_SCOPE_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* No deadline: a timeout scope that never expires (until rescheduled). */
#define LOOM_NO_DEADLINE UINT64_MAX

/* A scope: caller-owned storage of LOOM_SCOPE_SIZE bytes, aligned as a
 * uint64_t (8 bytes on 64-bit targets), usually a local variable. Its
 * contents are private to loom and need no initialisation: entering the
 * scope sets them up. The size is part of the ABI; loom checks at build time
 * that its private layout fits it on every target. */
#define LOOM_SCOPE_SIZE 64

typedef struct loom_scope_s {
  uint64_t opaque[LOOM_SCOPE_SIZE / sizeof(uint64_t)]; /* private */
} loom_scope_t;

/* Enters a timeout scope that expires `ms` from now (LOOM_NO_DEADLINE:
 * never), or at the absolute loop time `deadline` (compare loom_now()).
 * Errors: LOOM_ENOTASK outside a task, UV_EINVAL for a NULL scope. */
LOOM_EXTERN int loom_timeout_enter(loom_scope_t *s, uint64_t ms);
LOOM_EXTERN int loom_timeout_enter_at(loom_scope_t *s, uint64_t deadline);

/* Enters a shield scope, without or with a timeout of its own. */
LOOM_EXTERN int loom_shield_enter(loom_scope_t *s);
LOOM_EXTERN int loom_shield_enter_timeout(loom_scope_t *s, uint64_t ms);

/* Moves the deadline of an open scope that has not expired (relative, or
 * absolute). UV_EINVAL if it has expired already or is not open. */
LOOM_EXTERN int loom_scope_reschedule(loom_scope_t *s, uint64_t ms);
LOOM_EXTERN int loom_scope_reschedule_at(loom_scope_t *s, uint64_t deadline);

/* 1 if the scope's deadline has passed while it was open. */
LOOM_EXTERN int loom_scope_expired(const loom_scope_t *s);
/* The scope's deadline (LOOM_NO_DEADLINE if none). */
LOOM_EXTERN uint64_t loom_scope_deadline(const loom_scope_t *s);

/* Leaves the scope, which must be the task's innermost one. Returns
 * UV_ETIMEDOUT if this scope fired (it expired while no enclosing scope had
 * expired and the task was not cancelled), 0 otherwise, LOOM_ESCOPE if it is
 * not the innermost open scope of the calling task. */
LOOM_EXTERN int loom_scope_exit(loom_scope_t *s);

#ifdef __cplusplus
}
#endif
#endif /* LOOM_SCOPE_H */
