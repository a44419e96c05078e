/* loom channels: a bounded queue between runtimes (N runtimes on N threads).
 *
 *   loom_channel_t *ch;
 *   loom_channel_new(&ch, 128);          // any thread
 *   ... give ch to tasks of other runtimes (loom_channel_retain each) ...
 *   loom_channel_put(ch, item);          // a task of runtime A: waits while full
 *   loom_channel_get(ch, &item);         // a task of runtime B: waits while empty
 *   loom_channel_close(ch, 0);           // no more puts; gets drain, then fail
 *   loom_channel_release(ch);
 *
 * What loom_queue_t is to tasks of one runtime, a channel is to tasks of
 * several runtimes, each on its own thread (Go's buffered channel between
 * goroutines, with asyncio.Queue's rules). Items are void pointers; what
 * they point to passes from the putting thread to the getting one (the
 * channel orders the two: whatever the putter wrote before the put, the
 * getter sees after its get).
 *
 * - Backpressure: at most `capacity` items are held; put waits while the
 *   channel is full, get while it is empty. Items come out in the order
 *   they went in. Unlike loom_queue_t, waiters are not served first come
 *   first served: a task that arrives may take an item before one that
 *   was woken for it (the woken one waits again), and between runtimes
 *   there is no order.
 * - Cancellation and scopes, as for every suspending call: a waiting put
 *   or get returns UV_ECANCELED / UV_ETIMEDOUT and has then put or taken
 *   nothing. Outside a task: LOOM_ENOTASK (try_put / try_get work from any
 *   thread, task or not).
 * - Close (Python 3.13's Queue.shutdown): puts fail with LOOM_ESHUTDOWN
 *   from then on, waiting putters too; gets take what is left, then fail
 *   with LOOM_ESHUTDOWN. immediate: the items left are dropped at once and
 *   waiting getters fail too. Closing twice is harmless.
 * - Runtimes ending: a runtime that has used the channel (put or got) is
 *   attached to it until it ends. When a runtime ends and at most one
 *   runtime is still attached, nobody is left to answer that one's tasks,
 *   and the channel closes itself (as loom_channel_close(ch, 0)): a
 *   consumer gets the items left, then LOOM_ESHUTDOWN, instead of waiting
 *   forever for a producer that has gone; a producer waiting for room gets
 *   LOOM_ESHUTDOWN. Plain threads using try_put / try_get are not counted.
 * - Lifetime: reference-counted, thread-safe. loom_channel_new gives one
 *   reference; each runtime attached holds one more until it ends, so a
 *   channel is never freed under a task that waits on it.
 *
 * A NULL channel is answered with UV_EINVAL (size: 0). See
 * docs/runtimes.md.
 */
#ifndef LOOM_CHANNEL_H
#define LOOM_CHANNEL_H

#include <stddef.h>

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_channel_s loom_channel_t;

/* A channel holding up to `capacity` items (at least 1). Any thread.
 * 0, UV_EINVAL (capacity 0, or too large to allocate), UV_ENOMEM. */
LOOM_EXTERN int loom_channel_new(loom_channel_t **ch, size_t capacity);
/* Any thread: one more reference (returns ch) / one less; the last frees
 * the channel and drops the items still in it. */
LOOM_EXTERN loom_channel_t *loom_channel_retain(loom_channel_t *ch);
LOOM_EXTERN void loom_channel_release(loom_channel_t *ch);

/* In a task: waits while the channel is full, then adds item. 0,
 * LOOM_ESHUTDOWN (closed), UV_ECANCELED, UV_ETIMEDOUT, LOOM_ENOTASK,
 * UV_ENOMEM (the first use by a runtime could not attach it). */
LOOM_EXTERN int loom_channel_put(loom_channel_t *ch, void *item);
/* In a task: waits while the channel is empty, then takes the oldest item
 * into *item. 0, LOOM_ESHUTDOWN (closed and empty, or closed at once),
 * UV_ECANCELED, UV_ETIMEDOUT, LOOM_ENOTASK, UV_ENOMEM, UV_EINVAL (item
 * NULL). */
LOOM_EXTERN int loom_channel_get(loom_channel_t *ch, void **item);
/* Any thread, never waiting: UV_EAGAIN when full / empty, else as above. */
LOOM_EXTERN int loom_channel_try_put(loom_channel_t *ch, void *item);
LOOM_EXTERN int loom_channel_try_get(loom_channel_t *ch, void **item);
/* Any thread. 0 or UV_EINVAL. */
LOOM_EXTERN int loom_channel_close(loom_channel_t *ch, int immediate);
/* Items held now (a snapshot when other threads use the channel). */
LOOM_EXTERN size_t loom_channel_size(loom_channel_t *ch);
/* 1 once closed (by loom_channel_close or by its runtimes ending). */
LOOM_EXTERN int loom_channel_closed(loom_channel_t *ch);

#ifdef __cplusplus
}
#endif
#endif /* LOOM_CHANNEL_H */
