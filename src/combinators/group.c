/* Task groups (asyncio.TaskGroup, Trio nurseries).
 *
 * A group lives on the heap (so that a task returning with a group open can
 * still be cleaned up after: its frames are gone, the group is not).
 * Children are on the group's list through the member_link of their task
 * structs and watched through the watch node embedded there, so spawning
 * into a group allocates nothing beyond the task. The group hooks itself
 * onto the opener: when the opener is cancelled or a scope enclosing the
 * group expires, the hook cancels the children even while the opener is
 * busy elsewhere; if the opener returns with the group still open, the hook
 * cancels and awaits the children before the opener's stack (and the group
 * with it) goes away.
 *
 * The public loom_group_t * is not the group's address but a
 * generation-checked handle (core/handle.h), resolved by every public
 * function: a group used after loom_group_wait freed it (or waited twice)
 * is answered with UV_EBADF instead of touching freed memory. The handle is
 * dropped just before the group is freed.
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/internal.h"
#include "util/list.h"

enum { G_OPEN = 1, G_WAITING, G_ABORTING };

struct loom_group_s {
  loom__hook_t hook; /* on the opener's hook list */
  loom_task_t *opener;
  loom_scope_t *scope;   /* the opener's scope at open */
  loom__list_t children; /* unfinished children, newest first,
                            linked by their member_link */
  size_t alive;
  int first_error; /* first child failure */
  int state;
  int cancelled;          /* loom_group_cancel was called */
  loom__waiter_t *waiter; /* the opener, inside loom_group_wait */
  void *handle;           /* the public token for this group */
};

/* The group behind a public handle, or NULL if it is stale or not a
 * group's (looked up in the calling thread's runtime). */
static loom_group_t *resolve(const loom_group_t *h) {
  return loom__handle_get(NULL, h, LOOM__H_GROUP);
}

static void abort_group(void *p);
static int wait_group(loom_group_t *g, loom_task_t *self);

static void cancel_group(loom_group_t *g) {
  g->cancelled = 1;
  abort_group(g);
}

static loom__hook_t *hook_of(loom_group_t *g) { return &g->hook; }

static loom_group_t *group_of(loom__hook_t *h) {
  return loom__container_of(h, loom_group_t, hook);
}

/* Cancels every unfinished child; the group takes no new ones. */
static void abort_group(void *p) {
  loom_group_t *g = p;
  if (g->state == G_OPEN || g->state == G_WAITING) g->state = G_ABORTING;
  loom__link_t *link;
  loom__list_foreach(link, &g->children)
      loom__cancel(loom__container_of(link, loom_task_t, member_link));
}

static void child_done(loom__watch_t *w, loom_task_t *t) {
  loom_group_t *g = t->owner;
  (void)w;
  loom__list_remove(&g->children, &t->member_link);
  t->owner = NULL;
  g->alive--;
  if (t->status < 0 && t->status != UV_ECANCELED && !g->first_error) {
    g->first_error = t->status;
    abort_group(g);
  }
  if (g->alive == 0 && g->waiter) loom__wake(g->waiter, 0);
}

static void on_poked(loom__hook_t *h) {
  loom_group_t *g = group_of(h);
  if (loom__check_from(g->opener, g->scope)) abort_group(g);
}

static void on_exiting(loom__hook_t *h) {
  loom_group_t *g = group_of(h);
  fprintf(stderr,
          "loom: task '%s' returned with a task group open; "
          "cancelling and awaiting its children\n",
          loom_task_name(loom_current()));
  g->scope = NULL; /* it was in a frame that has returned */
  cancel_group(g);
  wait_group(g, g->opener); /* unhooks and frees g */
}

int loom_group_open(loom_group_t **out) {
  loom_task_t *self = loom__self();
  if (!out) return UV_EINVAL;
  *out = NULL;
  if (!self) return LOOM_ENOTASK;
  loom_group_t *g = calloc(1, sizeof(*g));
  if (!g) return UV_ENOMEM;
  if (loom__handle_new(self->rt, LOOM__H_GROUP, g, &g->handle) != 0) {
    free(g);
    return UV_ENOMEM;
  }
  g->opener = self;
  g->scope = self->scope;
  g->state = G_OPEN;
  loom__hook_t *h = hook_of(g);
  h->poked = on_poked;
  h->exiting = on_exiting;
  loom__hook(self, h);
  *out = g->handle;
  return 0;
}

int loom_group_spawn_ex(loom_group_t *gh, loom_task_t **task, loom_fn fn, void *arg,
                        const loom_task_opts_t *opts) {
  if (!gh || !fn) return UV_EINVAL;
  if (!loom__self()) return LOOM_ENOTASK;
  loom_group_t *g = resolve(gh);
  if (!g) return UV_EBADF;
  if (g->state != G_OPEN && g->state != G_WAITING) return LOOM_ECLOSED;
  loom_t *rt = g->opener->rt;
  loom_task_t *h;
  rt->spawn_pc = __builtin_return_address(0); /* for dumps */
  int rc = loom__spawn(rt, &h, fn, arg, opts, 0);
  if (rc) return rc;
  loom_task_t *t = loom__task_of(rt, h);
  if (task) {
    *task = h;
  } else {
    t->detached = t->consumed = 1;
    t->quiet = 1; /* its failure is the group's to report */
  }
  t->owner = g;
  loom__list_push_front(&g->children, &t->member_link);
  g->alive++;
  loom__watch(t, &t->member, child_done);
  /* A child of a group whose context is already cancelled starts so. */
  if (loom__check_from(g->opener, g->scope)) loom__cancel(t);
  return 0;
}

int loom_group_spawn(loom_group_t *g, loom_task_t **task, loom_fn fn, void *arg) {
  return loom_group_spawn_ex(g, task, fn, arg, NULL);
}

int loom_group_cancel(loom_group_t *gh) {
  if (!gh) return UV_EINVAL;
  loom_group_t *g = resolve(gh);
  if (!g) return UV_EBADF;
  cancel_group(g);
  return 0;
}

int loom_group_wait(loom_group_t *gh) {
  loom_task_t *self = loom__self();
  if (!self) return LOOM_ENOTASK;
  if (!gh) return UV_EINVAL;
  loom_group_t *g = resolve(gh);
  if (!g) return UV_EBADF;
  if (g->opener != self) return LOOM_EBADTASK;
  return wait_group(g, self);
}

static int wait_group(loom_group_t *g, loom_task_t *self) {
  if (g->state == G_OPEN) g->state = G_WAITING;
  loom__waiter_t w = {.task = self};
  loom__wait_on(&w, LOOM__W_GROUP, g);
  g->waiter = &w;
  int rc = loom__wait_all(&w, &g->alive, abort_group, g);
  loom__unhook(self, hook_of(g));
  if (rc == 0) rc = g->first_error;
  if (rc == 0 && g->cancelled) rc = UV_ECANCELED;
  loom__handle_drop(self->rt, g->handle);
  free(g);
  return rc;
}

loom_task_t *loom__group_opener(const void *g) {
  return ((const loom_group_t *)g)->opener;
}
