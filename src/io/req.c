/* Awaiting one-shot libuv requests: the one way loom waits for a libuv
 * request (getaddrinfo, getnameinfo, connect, shutdown), and the way any
 * new kind of request (files, processes, thread jobs) should wait.
 *
 * Two pieces of memory with two owners:
 *
 *   task frame                          heap (loom__req_t)
 *   +--------------------+              +---------------------------+
 *   | rwait_t            |  r->w ---->  | libuv request (union)     |
 *   |   waiter           |  <---- rw->r | w: the frame's waiter     |
 *   +--------------------+              | status, data, on_abandon  |
 *                                       +---------------------------+
 *
 * libuv points at the request until its callback has run, so the request
 * is freed only after that: by the task once the callback has woken it, or
 * by the callback itself when the task stopped waiting. The waiter lives in
 * the task's frame, where the callback never looks once the task has gone:
 * an interrupted task clears r->w (the request is "abandoned") before it
 * can resume, and from then on neither side touches the other's memory.
 * A task interrupted while libuv holds the request thus returns at once
 * with its error and never reads the request again, whenever libuv
 * finishes with it.
 */
#include <stdlib.h>

#include "io.h"

typedef struct {
  loom__waiter_t w;
  loom__req_t *r;
} rwait_t;

/* The task stops waiting: the request is the callback's to free. */
static void abandon(loom__req_t *r) {
  r->w = NULL;
  if (r->on_abandon)
    r->on_abandon(r);
  else
    uv_cancel(&r->u.req); /* thread-pool requests only; others complete */
}

static void on_interrupt(loom__waiter_t *w) {
  abandon(loom__container_of(w, rwait_t, w)->r);
}

loom__req_t *loom__req_new(void) {
  loom__req_t *r = calloc(1, sizeof(*r));
  if (!r) return NULL;
  r->u.req.data = r;
  return r;
}

int loom__req_wait(loom__req_t *r) {
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) {
    /* Started but never waited for: abandon it the same way. */
    abandon(r);
    return rc;
  }
  rwait_t rw = {.w = {.task = self, .cancel = on_interrupt}, .r = r};
  r->w = &rw.w;
  loom__wait_on(&rw.w, LOOM__W_REQ, &r->u.req);
  rc = loom__park(&rw.w);
  /* Woken by the callback (r->w was cleared there), or interrupted
   * (abandoned: r belongs to the callback now). */
  return rc;
}

int loom__req_begin(loom_task_t **self, loom__req_t **out) {
  *self = loom__self();
  int rc = loom__check(*self);
  if (rc) return rc;
  *out = loom__req_new();
  return *out ? 0 : UV_ENOMEM;
}

int loom__req_finish(loom__req_t *r, int start_rc) {
  if (start_rc) {
    free(r);
    return start_rc;
  }
  return loom__req_wait(r);
}

int loom__req_done(loom__req_t *r, int status) {
  loom__waiter_t *w = r->w;
  if (!w) { /* abandoned */
    free(r);
    return 1;
  }
  r->status = status;
  r->w = NULL;
  loom__wake(w, 0);
  return 0;
}
