/* FIFO wait queues: the waiter primitive (sched.c) specialised for the sync
 * layer. A node lives in the waiting task's frame; it is on the queue while
 * the task waits, and off it once woken or interrupted, so a waker never
 * sees a node whose task has gone.
 */
#include "internal.h"

static void unlink_node(loom__wnode_t *n) {
  if (!n->q) return;
  loom__list_remove(&n->q->waiting, &n->link);
  n->q = NULL;
}

void loom__wq_on_interrupt(loom__waiter_t *w) {
  unlink_node(loom__container_of(w, loom__wnode_t, w));
}

loom__wnode_t *loom__wq_wake_first(loom__wq_t *q, int result) {
  loom__link_t *l = q->waiting.head;
  if (!l) return NULL;
  loom__wnode_t *n = loom__list_entry(l, loom__wnode_t, link);
  unlink_node(n);
  loom__wake(&n->w, result);
  return n;
}

size_t loom__wq_wake_all(loom__wq_t *q, int result) {
  size_t k = 0;
  while (loom__wq_wake_one(q, result)) k++;
  return k;
}
