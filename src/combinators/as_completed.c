/* as_completed: an iterator that hands tasks back in the order they end,
 * with an optional deadline for the whole iteration.
 *
 * The iterator's state is on the heap (its watch nodes must stay put while
 * tasks end, whatever the caller does with its own frame between calls), so
 * it must be closed with loom_as_completed_close.
 */
#include <stdlib.h>

#include "core/internal.h"
#include "util/list.h"

/* The public loom_as_completed_t points to this. */
typedef struct loom_as_completed_state_s ac_t;

typedef struct {
  loom__watch_t watch;
  ac_t *ac;
  loom_task_t *t;
  loom__link_t ended; /* on ac->ended once its task has ended */
} node_t;

struct loom_as_completed_state_s {
  loom_task_t *self;
  loom__waiter_t w;
  loom__timer_t tm;
  uint64_t deadline; /* LOOM_NO_DEADLINE: none */
  int armed;
  int timed_out;
  size_t n, handed;
  loom__list_t ended; /* ended, not yet handed back, in order of ending */
  node_t nodes[];
};

static void on_done(loom__watch_t *w, loom_task_t *t) {
  node_t *node = loom__container_of(w, node_t, watch);
  (void)t;
  loom__list_push_back(&node->ac->ended, &node->ended);
  loom__wake(&node->ac->w, 0);
}

static void on_deadline(loom__timer_t *tm) {
  ac_t *ac = loom__container_of(tm, ac_t, tm);
  ac->armed = 0;
  ac->timed_out = 1;
  loom__wake(&ac->w, 0);
}

int loom_as_completed_init(loom_as_completed_t *it, loom_task_t **tasks, size_t n,
                           int64_t timeout_ms) {
  loom_task_t *self = loom__self();
  if (!it) return UV_EINVAL;
  it->state = NULL;
  if (!self) return LOOM_ENOTASK;
  if ((n && !tasks) || timeout_ms < LOOM_WAIT_FOREVER ||
      n > (SIZE_MAX - sizeof(ac_t)) / sizeof(node_t))
    return UV_EINVAL;
  loom_t *rt = self->rt;
  for (size_t i = 0; i < n; i++) {
    loom_task_t *t = loom__task_of(rt, tasks[i]);
    if (!t || t->consumed) return LOOM_EBADTASK;
  }
  ac_t *ac = calloc(1, sizeof(*ac) + n * sizeof(node_t));
  if (!ac) return UV_ENOMEM;
  ac->self = self;
  ac->w.task = self;
  ac->tm.fire = on_deadline;
  ac->n = n;
  uint64_t now = uv_now(rt->loop);
  ac->deadline = timeout_ms < 0 || (uint64_t)timeout_ms > UINT64_MAX - now
                     ? LOOM_NO_DEADLINE
                     : now + (uint64_t)timeout_ms;
  /* Arming the timer cannot fail (timer.h). */
  if (ac->deadline != LOOM_NO_DEADLINE) {
    if (ac->deadline <= now) {
      ac->timed_out = 1;
    } else {
      loom__timer_add(rt, &ac->tm, ac->deadline);
      ac->armed = 1;
    }
  }
  for (size_t i = 0; i < n; i++) {
    node_t *node = &ac->nodes[i];
    node->ac = ac;
    node->t = loom__task_of(rt, tasks[i]);
    if (node->t->state == LOOM__DONE)
      loom__list_push_back(&ac->ended, &node->ended);
    else
      loom__watch(node->t, &node->watch, on_done);
  }
  it->state = ac;
  return 0;
}

int loom_as_completed_next(loom_as_completed_t *it, loom_task_t **task) {
  if (!it || !it->state || !task) return UV_EINVAL;
  ac_t *ac = it->state;
  if (loom__self() != ac->self) return LOOM_ENOTASK;
  for (;;) {
    loom__link_t *link = loom__list_pop_front(&ac->ended);
    if (link) {
      node_t *node = loom__container_of(link, node_t, ended);
      ac->handed++;
      *task = loom__handle_of(node->t);
      return 0;
    }
    if (ac->handed == ac->n) return UV_EOF;
    if (ac->timed_out) return UV_ETIMEDOUT;
    int rc = loom__check(ac->self);
    loom__wait_on(&ac->w, LOOM__W_AS_COMPLETED, ac);
    if (rc == 0) rc = loom__park(&ac->w);
    if (rc) return rc;
  }
}

void loom_as_completed_close(loom_as_completed_t *it) {
  if (!it || !it->state) return;
  ac_t *ac = it->state;
  for (size_t i = 0; i < ac->n; i++) loom__unwatch(ac->nodes[i].t, &ac->nodes[i].watch);
  if (ac->armed) loom__timer_remove(ac->self->rt, &ac->tm);
  free(ac);
  it->state = NULL;
}
