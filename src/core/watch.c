/* Watchers and hooks: who is told when a task ends (join, gather, wait, a
 * group's watch on its children), what follows a task's cancellation and
 * scopes (a group it has open), and waiting for a count of completions.
 *
 * Both lists hang off the task (internal.h). Watchers and hooks go on the
 * front of their lists, so the newest is told first.
 */
#include "internal.h"

void loom__watch(loom_task_t *t, loom__watch_t *w,
                 void (*done)(loom__watch_t *w, loom_task_t *t)) {
  loom__assert(!loom__list_contains(&t->watchers, &w->link),
               "linking a watcher that is already linked");
  w->done = done;
  loom__list_push_front(&t->watchers, &w->link);
  w->linked = 1;
}

void loom__unwatch(loom_task_t *t, loom__watch_t *w) {
  if (!w->linked) return;
  loom__list_remove(&t->watchers, &w->link);
  w->linked = 0;
}

/* Each watcher is off the list before its callback runs, which may free
 * it or unwatch others. */
void loom__notify_watchers(loom_task_t *t) {
  loom__link_t *l;
  while ((l = loom__list_pop_front(&t->watchers))) {
    loom__watch_t *w = loom__list_entry(l, loom__watch_t, link);
    w->linked = 0;
    w->done(w, t);
  }
}

void loom__hook(loom_task_t *t, loom__hook_t *h) {
  loom__assert(!loom__list_contains(&t->hooks, &h->link),
               "linking a hook that is already linked");
  loom__list_push_front(&t->hooks, &h->link);
}

void loom__unhook(loom_task_t *t, loom__hook_t *h) {
  loom__list_remove(&t->hooks, &h->link);
}

int loom__wait_all(loom__waiter_t *w, const size_t *remaining, void (*abort)(void *ctx),
                   void *ctx) {
  int rc = loom__check(w->task);
  while (*remaining && rc == 0) rc = loom__park(w);
  if (*remaining) {
    /* Interrupted: what we wait for must not outlive us. Cancel it and wait,
     * deaf to further interruptions, until it has ended. */
    abort(ctx);
    w->shielded = 1;
    while (*remaining) loom__park(w);
    w->shielded = 0;
  }
  return rc;
}
