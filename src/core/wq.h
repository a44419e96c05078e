/* The wait-queue type: a FIFO of tasks waiting on a sync object or a
 * stream (the nodes, loom__wnode_t, and the functions that park and wake
 * them are in internal.h and wq.c).
 *
 * A type of its own, apart from internal.h, so that the private structs of
 * the sync objects (src/sync/internal.h) and of streams can embed one.
 * Zero-filled memory is an empty queue: a zero-filled lock, semaphore,
 * event or queue is valid without an init call.
 */
#ifndef LOOM_CORE_WQ_H
#define LOOM_CORE_WQ_H

#include "../util/list.h"

typedef struct loom__wq_s {
  loom__list_t waiting; /* loom__wnode_t by `link`, oldest
                           first */
} loom__wq_t;

#endif
