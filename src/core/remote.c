/* Thread-safe entry (include/loom/thread.h): calls and spawns posted to a
 * runtime's inbox from any thread.
 *
 * A loom_remote_t is a reference to the inbox, which outlives the runtime;
 * each call or spawn is one allocated message, freed on the runtime's
 * thread when it has run (or been handed back at shutdown), or by the
 * caller when the post is refused.
 */
#include <stdlib.h>

#include "internal.h"
#include "sync/future.h"

struct loom_remote_s {
  loom__inbox_t *ib;
};

int loom_remote_open(loom_t *rt, loom_remote_t **out) {
  if (!out) return UV_EINVAL;
  if (!rt) {
    if (!loom__self()) return LOOM_ENOTASK;
    rt = loom__tls_rt;
  }
  loom_remote_t *r = malloc(sizeof(*r));
  if (!r) return UV_ENOMEM;
  int rc = loom__inbox_get(rt, &r->ib);
  if (rc) {
    free(r);
    return rc;
  }
  loom__inbox_sender(r->ib, 1);
  *out = r;
  return 0;
}

void loom_remote_close(loom_remote_t *r) {
  if (!r) return;
  loom__inbox_sender(r->ib, -1);
  loom__inbox_release(r->ib);
  free(r);
}

typedef struct {
  loom__msg_t m;
  loom__inbox_t *ib; /* alive while the message is queued */
  loom_call_fn fn;
  void *arg;
} call_msg_t;

static void run_call(loom__msg_t *m, int status) {
  call_msg_t *c = loom__container_of(m, call_msg_t, m);
  c->fn(status ? NULL : loom__inbox_rt(c->ib), c->arg);
  free(c);
}

int loom_remote_call(loom_remote_t *r, loom_call_fn fn, void *arg) {
  if (!r || !fn) return UV_EINVAL;
  call_msg_t *c = malloc(sizeof(*c));
  if (!c) return UV_ENOMEM;
  *c = (call_msg_t){.m.run = run_call, .ib = r->ib, .fn = fn, .arg = arg};
  int rc = loom__inbox_post(r->ib, &c->m);
  if (rc) free(c);
  return rc;
}

typedef struct {
  loom__msg_t m;
  loom__inbox_t *ib;
  loom_fn fn;
  void *arg;
  loom_future_t *f; /* one reference, for the task */
} spawn_msg_t;

static int spawned(void *p) {
  spawn_msg_t *s = p;
  loom_future_t *f = s->f;
  int status;
  if (loom_future_done(f)) { /* cancelled before the task began */
    status = UV_ECANCELED;
  } else {
    loom__future_bind_task(f, loom__self());
    status = s->fn(s->arg);
    loom__future_bind_task(f, NULL);
  }
  free(s);
  loom__future_resolve(f, status, NULL); /* LOOM_EDONE if cancelled: fine */
  loom_future_release(f);
  return 0; /* the status went to the future: nothing for loom to report */
}

static void run_spawn(loom__msg_t *m, int status) {
  spawn_msg_t *s = loom__container_of(m, spawn_msg_t, m);
  loom_t *rt = status ? NULL : loom__inbox_rt(s->ib);
  /* From the start of shutdown on, no new work (tasks would be born
   * cancelled): say so plainly. */
  int rc = !rt || rt->closing ? LOOM_ECLOSED : loom__spawn(rt, NULL, spawned, s, NULL, 0);
  if (rc == 0) return;
  loom__future_resolve(s->f, rc, NULL);
  loom_future_release(s->f);
  free(s);
}

int loom_remote_spawn(loom_remote_t *r, loom_fn fn, void *arg, loom_future_t **out) {
  if (!r || !fn) return UV_EINVAL;
  spawn_msg_t *s = malloc(sizeof(*s));
  if (!s) return UV_ENOMEM;
  int rc = loom__future_make(r->ib, &s->f);
  if (rc) {
    free(s);
    return rc;
  }
  s->m.run = run_spawn;
  s->ib = r->ib;
  s->fn = fn;
  s->arg = arg;
  loom_future_t *f = out ? loom_future_retain(s->f) : NULL;
  rc = loom__inbox_post(r->ib, &s->m);
  if (rc) {
    loom_future_release(s->f);
    if (f) loom_future_release(f);
    free(s);
    return rc;
  }
  if (out) *out = f;
  return 0;
}
