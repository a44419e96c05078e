/* Cancelling a task, and every task of a runtime.
 *
 * Cancellation is a sticky flag on the task and a poke: a task parked in an
 * interruptible wait is woken with UV_ECANCELED at once, and every later
 * suspending call it makes fails the same way (loom__check), until it ends.
 * A shielded wait goes on; the shield's scope decides what the task sees.
 */
#include "internal.h"

void loom__cancel(loom_task_t *t) {
  t->cancelled = 1;
  loom__poke(t); /* a shielded wait goes on */
}

void loom__cancel_all(loom_t *rt) {
  loom__link_t *l;
  loom__list_foreach(l, &rt->alive)
      loom__cancel(loom__list_entry(l, loom_task_t, alive_link));
}

int loom_cancel(loom_task_t *task) {
  loom_task_t *t = loom__task_of(loom__tls_rt, task);
  if (!t) return LOOM_EBADTASK;
  if (t->state != LOOM__DONE) loom__cancel(t);
  return 0;
}

int loom_cancelled(void) {
  loom_task_t *t = loom__self();
  return t ? t->cancelled : 0;
}
