/* Joining and detaching a task, and asking whether it has ended.
 *
 * Either consumes the task's handle: a join frees the task once it has
 * ended, a detach lets it free itself when it ends. A joiner that is
 * interrupted cancels the child and still waits for it (loom__wait_all), so
 * no child outlives the call that joined it.
 */
#include "internal.h"

typedef struct {
  loom__watch_t watch;
  loom__waiter_t w;
  size_t remaining;
} joining_t;

static void join_done(loom__watch_t *watch, loom_task_t *t) {
  joining_t *j = loom__container_of(watch, joining_t, watch);
  (void)t;
  j->remaining = 0;
  loom__wake(&j->w, 0);
}

static void join_abort(void *child) { loom__cancel(child); }

int loom_join(loom_task_t *task, int *status) {
  loom_task_t *self = loom__self();
  if (!self) return LOOM_ENOTASK;
  loom_t *rt = self->rt;
  loom_task_t *t = loom__task_of(rt, task);
  if (t == self) return LOOM_EDEADLK;
  if (!t || t->consumed) return LOOM_EBADTASK;
  t->consumed = 1;
  int rc = 0;
  if (t->state != LOOM__DONE) {
    joining_t j = {.w = {.task = self}, .remaining = 1};
    loom__watch(t, &j.watch, join_done);
    loom__wait_on(&j.w, LOOM__W_JOIN, t);
    rc = loom__wait_all(&j.w, &j.remaining, join_abort, t);
  }
  if (status) *status = t->status;
  /* Tasks spawned in a batch are mostly joined in spawn order: what the
   * join of the one spawned LOOM__AHEAD after t reads (a hint). */
  loom__prefetch_ahead(t, offsetof(loom_task_t, fiber));
  loom__release(rt, t);
  return rc;
}

int loom_task_done(loom_task_t *task) {
  loom_task_t *t = loom__task_of(loom__tls_rt, task);
  return t && t->state == LOOM__DONE;
}

int loom_detach(loom_task_t *task) {
  loom_task_t *t = loom__task_of(loom__tls_rt, task);
  if (!t || t->consumed) return LOOM_EBADTASK;
  t->consumed = t->detached = 1;
  /* The handle given up is stale from now on (cancel, name, id: as after a
   * join); the task's own loom_current() yields a fresh one. */
  loom__task_handle_renew(t);
  if (t->state == LOOM__DONE) loom__release(t->rt, t);
  return 0;
}
