/* Yielding and sleeping: the two simplest suspensions, and the model for
 * every other one (check, start, park; interruption unhooks). */
#include "internal.h"

int loom_yield(void) {
  loom_task_t *t = loom__self();
  int rc = loom__check(t);
  if (rc) return rc;
  /* Back of the ready queue: every task that was ready runs first. */
  loom__make_ready(t);
  loom__suspend(t, 0);
  return loom__check(t); /* cancelled or timed out while queued */
}

typedef struct {
  loom__waiter_t w;
  loom__timer_t tm;
} sleeper_t;

static void sleep_fire(loom__timer_t *tm) {
  sleeper_t *s = loom__container_of(tm, sleeper_t, tm);
  loom__wake(&s->w, 0);
}

static void sleep_unhook(loom__waiter_t *w) {
  sleeper_t *s = loom__container_of(w, sleeper_t, w);
  loom__timer_remove(w->task->rt, &s->tm);
}

int loom_sleep(uint64_t ms) {
  if (ms == 0) return loom_yield();
  loom_task_t *t = loom__self();
  int rc = loom__check(t);
  if (rc) return rc;
  loom_t *rt = t->rt;
  sleeper_t s = {.w = {.task = t, .cancel = sleep_unhook}, .tm = {.fire = sleep_fire}};
  uint64_t now = uv_now(rt->loop);
  uint64_t deadline = ms > UINT64_MAX - now ? UINT64_MAX : now + ms;
  loom__timer_add(rt, &s.tm, deadline);
  loom__wait_on(&s.w, LOOM__W_SLEEP, (uintptr_t)deadline);
  return loom__park(&s.w);
}

uint64_t loom_now(void) {
  loom_t *rt = loom__tls_rt ? loom__tls_rt : loom__tls_home;
  return rt ? uv_now(rt->loop) : 0;
}
