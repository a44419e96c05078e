/* FIFO wait queues: the waiter primitive (sched.c) specialised for the sync
 * layer. A node lives in the waiting task's frame; it is on the queue while
 * the task waits, and off it once woken or interrupted, so a waker never
 * sees a node whose task has gone. */
#include "internal.h"

static void unlink_node(loom__wnode_t *n) {
  loom__wq_t *q = n->q;
  if (!q) return;
  if (n->prev)
    n->prev->next = n->next;
  else
    q->head = n->next;
  if (n->next)
    n->next->prev = n->prev;
  else
    q->tail = n->prev;
  n->q = NULL;
}

void loom__wq_on_interrupt(loom__waiter_t *w) { unlink_node((loom__wnode_t *)w); }

loom__wnode_t *loom__wq_wake_first(loom__wq_t *q, int result) {
  loom__wnode_t *n = q->head;
  if (!n) return NULL;
  unlink_node(n);
  loom__wake(&n->w, result);
  return n;
}

size_t loom__wq_wake_all(loom__wq_t *q, int result) {
  size_t k = 0;
  while (loom__wq_wake_one(q, result)) k++;
  return k;
}
