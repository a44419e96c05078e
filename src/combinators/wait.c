/* loom_wait (asyncio.wait): wait for a condition over a set of tasks, with
 * an optional timeout, then partition the set into ended and pending.
 * Watches only; never cancels, never consumes. */
#include <stdlib.h>

#include "core/internal.h"
#include "util/container.h"

typedef struct wait_s wait_t;

typedef struct {
  loom__watch_t watch;
  wait_t *st;
  loom_task_t *t;
} node_t;

struct wait_s {
  loom__waiter_t w;
  loom__timer_t tm;
  int armed;
  int when;
  int failed;
  size_t ndone, n;
};

static int satisfied(const wait_t *st) {
  switch (st->when) {
  case LOOM_FIRST_COMPLETED: return st->ndone > 0;
  case LOOM_FIRST_FAILED: return st->failed || st->ndone == st->n;
  default: return st->ndone == st->n;
  }
}

static void count(wait_t *st, const loom_task_t *t) {
  st->ndone++;
  if (t->status < 0 && t->status != UV_ECANCELED) st->failed = 1;
}

static void on_done(loom__watch_t *w, loom_task_t *t) {
  wait_t *st = loom__container_of(w, node_t, watch)->st;
  count(st, t);
  if (satisfied(st)) loom__wake(&st->w, 0);
}

static void on_timeout(loom__timer_t *tm) {
  wait_t *st = loom__container_of(tm, wait_t, tm);
  st->armed = 0;
  loom__wake(&st->w, 0); /* a timeout is not an error for wait */
}

/* Ended tasks first, then pending ones, each in their original order. */
static void partition(loom_task_t **tasks, size_t n, const node_t *nodes, size_t *ndone) {
  size_t d = 0;
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < n; i++) {
      int done = nodes[i].t->state == LOOM__DONE;
      if (done == (pass == 0)) tasks[d++] = loom__handle_of(nodes[i].t);
      if (pass == 0 && done && ndone) ++*ndone;
    }
}

int loom_wait(loom_task_t **tasks, size_t n, int64_t timeout_ms, int return_when,
              size_t *ndone) {
  loom_task_t *self = loom__self();
  if (!self) return LOOM_ENOTASK;
  if ((n && !tasks) || return_when < LOOM_FIRST_COMPLETED ||
      return_when > LOOM_ALL_COMPLETED || timeout_ms < LOOM_WAIT_FOREVER ||
      n > SIZE_MAX / sizeof(node_t))
    return UV_EINVAL;
  loom_t *rt = self->rt;
  node_t stack_nodes[8];
  node_t *nodes = n <= 8 ? stack_nodes : malloc(n * sizeof(*nodes));
  if (n && !nodes) return UV_ENOMEM;
  wait_t st = {
      .w = {.task = self}, .tm = {.fire = on_timeout}, .when = return_when, .n = n};
  for (size_t i = 0; i < n; i++) {
    loom_task_t *t = loom__task_of(rt, tasks[i]);
    if (!t || t->consumed) {
      if (nodes != stack_nodes) free(nodes);
      return LOOM_EBADTASK;
    }
    nodes[i].t = t;
    nodes[i].st = &st;
    nodes[i].watch.linked = 0;
    if (t->state == LOOM__DONE) count(&st, t);
  }
  int rc = 0;
  if (!satisfied(&st) && timeout_ms != 0) rc = loom__check(self);
  if (!satisfied(&st) && timeout_ms != 0 && rc == 0) {
    for (size_t i = 0; i < n; i++)
      if (nodes[i].t->state != LOOM__DONE)
        loom__watch(nodes[i].t, &nodes[i].watch, on_done);
    if (timeout_ms > 0) {
      loom__timer_add(rt, &st.tm, uv_now(rt->loop) + (uint64_t)timeout_ms);
      st.armed = 1;
    }
    loom__wait_on(&st.w, LOOM__W_WAIT, n);
    rc = loom__park(&st.w);
    if (st.armed) loom__timer_remove(rt, &st.tm);
    for (size_t i = 0; i < n; i++) loom__unwatch(nodes[i].t, &nodes[i].watch);
  }
  if (ndone) *ndone = 0;
  partition(tasks, n, nodes, ndone);
  if (nodes != stack_nodes) free(nodes);
  return rc;
}
