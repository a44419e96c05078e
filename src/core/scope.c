/* Timeout and shield scopes (include/loom/scope.h).
 *
 * A task keeps its open scopes as a linked stack (t->scope, innermost
 * first). What a suspending call returns is computed from that stack by
 * loom__scope_check: walk outward to the nearest shield; an expired scope on
 * the way means UV_ETIMEDOUT; reaching the top without a shield means the
 * task's own cancellation applies too, and beats any timeout. A scope's
 * deadline is a loom__timer_t in the runtime's heap; when it fires, the scope
 * is marked expired and the task is poked: if its wait must now end, it is
 * interrupted like any cancelled wait.
 */
#include <stdio.h>

#include "internal.h"

int loom__check_from(loom_task_t *t, loom_scope_t *from) {
  int err = 0;
  for (loom_scope_t *s = from; s; s = s->parent) {
    if (s->expired) err = UV_ETIMEDOUT;
    if (s->shield) return err;
  }
  return t->cancelled ? UV_ECANCELED : err;
}

int loom__scope_check(loom_task_t *t) { return loom__check_from(t, t->scope); }

void loom__poke(loom_task_t *t) {
  int err = loom__check(t);
  if (err) loom__interrupt(t, err);
  /* Groups the task has open judge from their own scope (a shield entered
   * after the group does not protect the group's children). */
  for (loom__hook_t *h = t->hooks, *next; h; h = next) {
    next = h->next;
    h->poked(h);
  }
}

/* Whether something outside s already makes the task's calls fail: then s
 * expiring now changes nothing and s does not "fire". */
static int beaten(const loom_scope_t *s) {
  if (s->shield) return 0;
  for (const loom_scope_t *p = s->parent; p; p = p->parent) {
    if (p->expired) return 1;
    if (p->shield) return 0;
  }
  return s->task->cancelled;
}

static void expire(loom_scope_t *s) {
  s->expired = 1;
  s->fired = (uint8_t)!beaten(s);
}

static void on_deadline(loom__timer_t *tm) {
  loom_scope_t *s = (loom_scope_t *)((char *)tm - offsetof(loom_scope_t, timer));
  s->armed = 0;
  expire(s);
  loom__poke(s->task);
}

/* Sets the deadline of an open, unexpired scope. */
static int set_deadline(loom_scope_t *s, uint64_t deadline) {
  loom_t *rt = s->task->rt;
  if (s->armed) {
    loom__timer_remove(rt, &s->timer);
    s->armed = 0;
  }
  s->timer.deadline = deadline;
  if (deadline == LOOM_NO_DEADLINE) return 0;
  if (deadline <= uv_now(rt->loop)) {
    expire(s); /* fires at the first suspension */
    return 0;
  }
  s->timer.fire = on_deadline;
  int rc = loom__timer_add(rt, &s->timer, deadline);
  if (rc == 0) s->armed = 1;
  return rc;
}

static int on_stack(const loom_task_t *t, const void *p) {
  const char *lo = t->stack.lo;
  return (const char *)p >= lo && (const char *)p < lo + t->stack.size;
}

static int enter(loom_scope_t *s, int shield, uint64_t deadline) {
  loom_task_t *t = loom__self();
  if (!s) return UV_EINVAL;
  if (!t) return LOOM_ENOTASK;
  s->parent = t->scope;
  s->task = t;
  s->shield = (uint8_t)shield;
  s->armed = s->expired = s->fired = 0;
  s->open = 1;
  int rc = set_deadline(s, deadline);
  if (rc) {
    s->open = 0;
    return rc;
  }
  t->scope = s;
  /* Scopes outside the task's stack also go on a chain of their own, which
   * stays safe to walk when the task ends with them open. */
  if (!on_stack(t, s)) {
    s->outer_kept = t->kept_scope;
    t->kept_scope = s;
  }
  return 0;
}

static uint64_t after(uint64_t ms) {
  loom_t *rt = loom__tls_rt;
  uint64_t now = rt ? uv_now(rt->loop) : 0;
  return ms >= LOOM_NO_DEADLINE - now ? LOOM_NO_DEADLINE : now + ms;
}

int loom_timeout_enter(loom_scope_t *s, uint64_t ms) { return enter(s, 0, after(ms)); }

int loom_timeout_enter_at(loom_scope_t *s, uint64_t deadline) {
  return enter(s, 0, deadline);
}

int loom_shield_enter(loom_scope_t *s) { return enter(s, 1, LOOM_NO_DEADLINE); }

int loom_shield_enter_timeout(loom_scope_t *s, uint64_t ms) {
  return enter(s, 1, after(ms));
}

int loom_scope_reschedule_at(loom_scope_t *s, uint64_t deadline) {
  if (!s || !s->open || s->expired) return UV_EINVAL;
  return set_deadline(s, deadline);
}

int loom_scope_reschedule(loom_scope_t *s, uint64_t ms) {
  return loom_scope_reschedule_at(s, after(ms));
}

int loom_scope_expired(const loom_scope_t *s) { return s && s->expired; }

uint64_t loom_scope_deadline(const loom_scope_t *s) {
  return s ? s->timer.deadline : LOOM_NO_DEADLINE;
}

int loom_scope_exit(loom_scope_t *s) {
  loom_task_t *t = loom__self();
  if (!t) return LOOM_ENOTASK;
  if (!s || !s->open || t->scope != s) return LOOM_ESCOPE;
  if (s->armed) loom__timer_remove(t->rt, &s->timer);
  s->armed = 0;
  s->open = 0;
  t->scope = s->parent;
  if (t->kept_scope == s) t->kept_scope = s->outer_kept; /* innermost */
  return s->fired ? UV_ETIMEDOUT : 0;
}

/* A task ended inside open scopes. Those stored in its stack were in frames
 * that have returned and may already be overwritten, so nothing in them is
 * read: the heap drops every deadline that lives in the task's stack. Those
 * stored elsewhere (static, heap, another task's frame) are intact and on
 * their own chain: each is disarmed and closed, so its deadline never pokes
 * whatever comes to occupy the task's memory. */
void loom__scopes_abandon(loom_task_t *t) {
  fprintf(stderr,
          "loom: task '%s' ended inside an open scope (missing "
          "loom_scope_exit)\n",
          loom_task_name(loom_current()));
  for (loom_scope_t *s = t->kept_scope; s; s = s->outer_kept) {
    if (s->armed) loom__timer_remove(t->rt, &s->timer);
    s->armed = 0;
    s->open = 0;
  }
  t->kept_scope = NULL;
  t->scope = NULL;
  loom__timer_purge(t->rt, t->stack.lo, (char *)t->stack.lo + t->stack.size);
}
