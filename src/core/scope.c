/* Timeout and shield scopes (include/loom/scope.h).
 *
 * A task keeps its open scopes as a linked stack (t->scope, innermost
 * first). What a suspending call returns is computed from that stack by
 * loom__scope_check: walk outward to the nearest shield; an expired scope on
 * the way means UV_ETIMEDOUT; reaching the top without a shield means the
 * task's own cancellation applies too, and beats any timeout.
 *
 * Deadlines: the task record holds one timer (t->scope_timer), armed for
 * the earliest deadline among its open, unexpired scopes. When it fires,
 * that scope is marked expired, the timer is re-armed for the next one, and
 * the task is poked: if its wait must now end, it is interrupted like any
 * cancelled wait. Scopes nest a few deep, so finding the earliest is a short
 * walk, done only when the earliest one leaves or moves. Keeping the timer
 * in the task record rather than in each scope is what makes a task that
 * ends with scopes open safe: the heap never links through its dead frames
 * (loom__scopes_abandon).
 */
#include <stdio.h>

#include "internal.h"

#define S(p) loom__scope_of(p)

int loom__check_from(loom_task_t *t, loom_scope_t *from) {
  int err = 0;
  for (loom_scope_t *p = from; p; p = S(p)->parent) {
    if (S(p)->expired) err = UV_ETIMEDOUT;
    if (S(p)->shield) return err;
  }
  return t->cancelled ? UV_ECANCELED : err;
}

int loom__scope_check(loom_task_t *t) { return loom__check_from(t, t->scope); }

void loom__poke(loom_task_t *t) {
  int err = loom__check(t);
  if (err) loom__interrupt(t, err);
  /* Groups the task has open judge from their own scope (a shield entered
   * after the group does not protect the group's children). */
  loom__link_t *l, *next;
  loom__list_foreach_safe(l, next, &t->hooks) {
    loom__hook_t *h = loom__list_entry(l, loom__hook_t, link);
    h->poked(h);
  }
}

/* Whether something outside s already makes the task's calls fail: then s
 * expiring now changes nothing and s does not "fire". */
static int beaten(const loom__scope_t *s) {
  if (s->shield) return 0;
  for (const loom_scope_t *p = s->parent; p; p = loom__scope_of_const(p)->parent) {
    const loom__scope_t *o = loom__scope_of_const(p);
    if (o->expired) return 1;
    if (o->shield) return 0;
  }
  return s->task->cancelled;
}

static void expire(loom__scope_t *s) {
  s->expired = 1;
  s->fired = (uint8_t)!beaten(s);
}

/* Whether s has a deadline still to come. */
static int pending(const loom__scope_t *s) {
  return !s->expired && s->deadline != LOOM_NO_DEADLINE;
}

/* Whether a's deadline comes before b's: of equal ones, the one set first
 * (as when each scope had a timer of its own). */
static int due_before(const loom__scope_t *a, const loom__scope_t *b) {
  return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

/* The open scope of t whose deadline comes first. NULL if none has a
 * deadline to come. */
static loom__scope_t *first_due(loom_task_t *t) {
  loom__scope_t *best = NULL;
  for (loom_scope_t *p = t->scope; p; p = S(p)->parent)
    if (pending(S(p)) && (!best || due_before(S(p), best))) best = S(p);
  return best;
}

static void disarm(loom_task_t *t) {
  if (!t->scope_armed) return;
  loom__timer_remove(t->rt, &t->scope_timer);
  t->scope_armed = 0;
}

static void on_deadline(loom__timer_t *tm);

/* Points t's scope timer at s's deadline (s NULL: disarms it). */
static void arm_for(loom_task_t *t, const loom__scope_t *s) {
  if (t->scope_armed && s && t->scope_timer.deadline == s->deadline &&
      t->scope_timer.seq == s->seq)
    return;
  disarm(t);
  if (!s) return;
  t->scope_timer.fire = on_deadline;
  loom__timer_add_seq(t->rt, &t->scope_timer, s->deadline, s->seq);
  t->scope_armed = 1;
}

/* The earliest deadline may have left or moved: find it again. */
static void rearm(loom_task_t *t) { arm_for(t, first_due(t)); }

static void on_deadline(loom__timer_t *tm) {
  loom_task_t *t = loom__container_of(tm, loom_task_t, scope_timer);
  t->scope_armed = 0;
  loom__scope_t *s = first_due(t);
  loom__assert(s && s->deadline <= tm->deadline,
               "a task's scope timer fired with no scope due");
  expire(s);
  rearm(t); /* a next one already due fires in the same timer callback */
  loom__poke(t);
}

/* Sets the deadline of an open, unexpired scope; t's timer is the caller's
 * to update. A deadline already passed expires the scope at once: it fires
 * at the first suspension. */
static void set_deadline(loom__scope_t *s, uint64_t deadline) {
  s->deadline = deadline;
  s->seq = loom__timer_next_seq(s->task->rt);
  if (deadline != LOOM_NO_DEADLINE && deadline <= uv_now(s->task->rt->loop)) expire(s);
}

static int on_stack(const loom_task_t *t, const void *p) {
  const char *lo = t->fiber.stack_lo;
  return lo && (const char *)p >= lo && (const char *)p < lo + t->fiber.stack_size;
}

static int enter(loom_scope_t *p, int shield, uint64_t deadline) {
  loom_task_t *t = loom__self();
  if (!p) return UV_EINVAL;
  if (!t) return LOOM_ENOTASK;
  loom__scope_t *s = S(p);
  s->parent = t->scope;
  s->task = t;
  s->shield = (uint8_t)shield;
  s->expired = s->fired = 0;
  s->open = 1;
  set_deadline(s, deadline);
  t->scope = p;
  /* An inner deadline equal to or later than the armed one changes
   * nothing: no walk. */
  if (pending(s) && (!t->scope_armed || deadline < t->scope_timer.deadline))
    arm_for(t, s);
  /* Scopes outside the task's stack also go on a chain of their own, which
   * stays safe to walk when the task ends with them open. */
  if (!on_stack(t, p)) {
    s->outer_kept = t->kept_scope;
    t->kept_scope = p;
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

int loom_scope_reschedule_at(loom_scope_t *p, uint64_t deadline) {
  if (!p || !S(p)->open || S(p)->expired) return UV_EINVAL;
  set_deadline(S(p), deadline);
  rearm(S(p)->task);
  return 0;
}

int loom_scope_reschedule(loom_scope_t *s, uint64_t ms) {
  return loom_scope_reschedule_at(s, after(ms));
}

int loom_scope_expired(const loom_scope_t *s) {
  return s && loom__scope_of_const(s)->expired;
}

uint64_t loom_scope_deadline(const loom_scope_t *s) {
  return s ? loom__scope_of_const(s)->deadline : LOOM_NO_DEADLINE;
}

int loom_scope_exit(loom_scope_t *p) {
  loom_task_t *t = loom__self();
  if (!t) return LOOM_ENOTASK;
  if (!p || !S(p)->open || t->scope != p) return LOOM_ESCOPE;
  loom__scope_t *s = S(p);
  s->open = 0;
  t->scope = s->parent;
  if (t->kept_scope == p) t->kept_scope = s->outer_kept; /* innermost */
  /* Leaving the scope the timer is armed for: the next one, if any. */
  if (pending(s) && t->scope_armed && s->deadline == t->scope_timer.deadline) rearm(t);
  return s->fired ? UV_ETIMEDOUT : 0;
}

/* A task ended inside open scopes. Those stored in its stack were in frames
 * that have returned and may already be overwritten, so nothing in them is
 * read: the task's scope timer, in the task record, is all the timer heap
 * holds for them. Those stored elsewhere (static, heap, another task's
 * frame) are intact and on their own chain: each is closed, so a later
 * exit on it returns LOOM_ESCOPE and nothing pokes whatever comes to occupy
 * the task's memory. */
void loom__scopes_abandon(loom_task_t *t) {
  fprintf(stderr,
          "loom: task '%s' ended inside an open scope (missing "
          "loom_scope_exit)\n",
          loom_task_name(loom_current()));
  disarm(t);
  for (loom_scope_t *p = t->kept_scope; p; p = S(p)->outer_kept) S(p)->open = 0;
  t->kept_scope = NULL;
  t->scope = NULL;
}
