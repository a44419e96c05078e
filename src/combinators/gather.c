/* loom_gather and loom_gather_map (asyncio.gather).
 *
 * One watch node per task points back at the gather's state on the caller's
 * stack; the caller sleeps until the last task ends, so n tasks cost one
 * wake-up, not n. Nothing outlives the call: an interrupted caller cancels
 * and awaits every task (loom__wait_all).
 *
 * The gather proper (gather_nodes) allocates nothing: loom_gather_map
 * allocates its task array and the gather's nodes together, before it
 * spawns anything, so no allocation can fail once tasks exist and nothing
 * it spawned is left behind, whether a spawn fails midway or not.
 */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "util/container.h"

typedef struct gather_s gather_t;

typedef struct {
  loom__watch_t watch;
  gather_t *g;
  loom_task_t *t;
  size_t i;
} node_t;

struct gather_s {
  loom__waiter_t w;
  size_t remaining;
  int first_error;
  unsigned flags;
  int *statuses;
  node_t *nodes;
  size_t n;
};

static void cancel_rest(void *p) {
  gather_t *g = p;
  for (size_t i = 0; i < g->n; i++)
    if (g->nodes[i].t->state != LOOM__DONE) loom__cancel(g->nodes[i].t);
}

static void record(gather_t *g, size_t i, int status) {
  if (g->statuses) g->statuses[i] = status;
  if (status < 0 && !g->first_error) {
    g->first_error = status;
    if (g->flags & LOOM_FAIL_FAST) cancel_rest(g);
  }
}

static void on_done(loom__watch_t *w, loom_task_t *t) {
  node_t *node = loom__container_of(w, node_t, watch);
  gather_t *g = node->g;
  record(g, node->i, t->status);
  if (--g->remaining == 0) loom__wake(&g->w, 0);
}

/* Validates tasks[0..n) and gathers them over nodes[0..n), which the caller
 * provides. Allocates nothing. */
static int gather_nodes(loom_task_t *self, loom_task_t **tasks, size_t n, int *statuses,
                        unsigned flags, node_t *nodes) {
  loom_t *rt = self->rt;
  /* Validate everything before consuming anything; `consumed` also catches
   * a handle listed twice. */
  for (size_t i = 0; i < n; i++) {
    loom_task_t *t = loom__task_of(rt, tasks[i]);
    if (!t || t->consumed || t == self) {
      for (size_t j = 0; j < i; j++) nodes[j].t->consumed = 0;
      return t == self ? LOOM_EDEADLK : LOOM_EBADTASK;
    }
    t->consumed = 1;
    nodes[i].t = t;
  }
  gather_t g = {
      .w = {.task = self}, .flags = flags, .statuses = statuses, .nodes = nodes, .n = n};
  for (size_t i = 0; i < n; i++) {
    nodes[i].g = &g;
    nodes[i].i = i;
    if (nodes[i].t->state == LOOM__DONE) {
      record(&g, i, nodes[i].t->status);
    } else {
      g.remaining++;
      loom__watch(nodes[i].t, &nodes[i].watch, on_done);
    }
  }
  loom__wait_on(&g.w, LOOM__W_GATHER, n);
  int rc = loom__wait_all(&g.w, &g.remaining, cancel_rest, &g);
  for (size_t i = 0; i < n; i++) loom__release(rt, nodes[i].t);
  return rc ? rc : g.first_error;
}

int loom_gather(loom_task_t **tasks, size_t n, int *statuses, unsigned flags) {
  loom_task_t *self = loom__self();
  if (!self) return LOOM_ENOTASK;
  if (n == 0) return 0;
  if (!tasks || (flags & ~LOOM_FAIL_FAST) || n > SIZE_MAX / sizeof(node_t))
    return UV_EINVAL;
  node_t stack_nodes[8];
  node_t *nodes = n <= 8 ? stack_nodes : malloc(n * sizeof(*nodes));
  if (!nodes) return UV_ENOMEM;
  int rc = gather_nodes(self, tasks, n, statuses, flags, nodes);
  if (nodes != stack_nodes) free(nodes);
  return rc;
}

int loom_gather_map(loom_fn fn, void *args, size_t size, size_t n, int *statuses,
                    unsigned flags) {
  loom_task_t *self = loom__self();
  if (!self) return LOOM_ENOTASK;
  if (!fn || (n && !args && size) || (flags & ~LOOM_FAIL_FAST) ||
      (size && n > SIZE_MAX / size) ||
      n > SIZE_MAX / (sizeof(node_t) + sizeof(loom_task_t *)))
    return UV_EINVAL;
  if (n == 0) return 0;
  /* Everything the gather needs, allocated before anything is spawned:
   * nodes first, then the task handles (a node is pointer-aligned). */
  node_t stack_nodes[8];
  loom_task_t *stack_tasks[8];
  node_t *nodes = stack_nodes;
  loom_task_t **tasks = stack_tasks;
  void *block = NULL;
  if (n > 8) {
    block = malloc(n * (sizeof(node_t) + sizeof(loom_task_t *)));
    if (!block) return UV_ENOMEM;
    nodes = block;
    tasks = (loom_task_t **)(nodes + n);
  }
  int rc = 0;
  size_t spawned = 0;
  for (; spawned < n; spawned++) {
    rc = loom_spawn(&tasks[spawned], fn, (char *)args + spawned * size);
    if (rc) break;
  }
  if (rc) {
    /* Nothing may be left behind: stop what started, await it, report. */
    for (size_t i = 0; i < spawned; i++) loom_cancel(tasks[i]);
    gather_nodes(self, tasks, spawned, statuses, 0, nodes);
  } else {
    rc = gather_nodes(self, tasks, n, statuses, flags, nodes);
  }
  free(block);
  return rc;
}
