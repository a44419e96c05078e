/* Futures, for the layers that hand them out (thread-safe entry, offload):
 * a future bound to an inbox rather than to the calling thread's runtime,
 * and resolution with any status. */
#ifndef LOOM_SYNC_FUTURE_H
#define LOOM_SYNC_FUTURE_H

#include "core/internal.h"

/* Any thread: a pending future of ib's runtime (one reference, ib
 * retained). UV_ENOMEM. */
int loom__future_make(loom__inbox_t *ib, loom_future_t **out);
/* Any thread: resolves f with status and value. 0 or LOOM_EDONE. */
int loom__future_resolve(loom_future_t *f, int status, void *value);

/* On the runtime's thread: while t is set, cancelling f cancels t (t
 * NULL: no longer). */
void loom__future_bind_task(loom_future_t *f, loom_task_t *t);

#endif
