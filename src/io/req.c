/* Awaiting one-shot libuv requests: the one way loom waits for a libuv
 * request (getaddrinfo, getnameinfo, connect, shutdown, files), and the way
 * any new kind of request should wait. Two modes, for two kinds of
 * request.
 *
 * Abandon (the default), for requests that own what they work on. Two
 * pieces of memory with two owners:
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
 *
 * Wait out (LOOM__REQ_WAIT_OUT), for requests that point into the
 * caller's memory: a file read fills the caller's buffer from a libuv
 * thread, and the caller may free or reuse the buffer once the call has
 * returned, so the call must not return while the thread may still write:
 *
 *   waiting --callback--> done: returns 0
 *      |
 *   interrupted (cancelled, timed out): uv_cancel
 *      |-- not started: libuv drops the work; the callback comes at the
 *      |   loop's next turn with UV_ECANCELED and nothing happened
 *      '-- running: the system call ends on its own
 *   then waits, deaf to interruptions, for the callback; returns the
 *   interruption.
 *
 * The request then never outlives the call, so it can live in the caller's
 * frame (no allocation per call), and the seam never frees it.
 */
#include <stdlib.h>
#include <string.h>

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
  loom__req_t *r = loom__container_of(w, rwait_t, w)->r;
  if (r->flags & LOOM__REQ_WAIT_OUT)
    uv_cancel(&r->u.req); /* UV_EBUSY once a thread has it: it ends anyway */
  else
    abandon(r);
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
  int wait_out = r->flags & LOOM__REQ_WAIT_OUT;
  if (rc && !wait_out) {
    /* Started but never waited for: abandon it the same way. */
    abandon(r);
    return rc;
  }
  rwait_t rw = {.w = {.task = self, .cancel = on_interrupt}, .r = r};
  r->w = &rw.w;
  loom__wait_on(&rw.w, wait_out ? LOOM__W_FILE : LOOM__W_REQ, &r->u.req);
  if (rc == 0) rc = loom__park(&rw.w);
  /* Woken by the callback (r->w was cleared there), or interrupted: then
   * abandoned (r belongs to the callback now), or, waiting it out,
   * cancelled by on_interrupt (or here, when it came before the wait). */
  if (rc && wait_out && !r->done) {
    uv_cancel(&r->u.req);
    rw.w.shielded = 1;
    while (!r->done) loom__park(&rw.w);
  }
  return rc;
}

int loom__req_begin(loom_task_t **self, loom__req_t **out) {
  *self = loom__self();
  int rc = loom__check(*self);
  if (rc) return rc;
  *out = loom__req_new();
  return *out ? 0 : UV_ENOMEM;
}

int loom__req_init(loom__req_t *r, unsigned flags, loom_task_t **self) {
  *self = loom__self();
  int rc = loom__check(*self);
  if (rc) return rc;
  memset(r, 0, sizeof(*r));
  r->u.req.data = r;
  r->flags = flags;
  return 0;
}

int loom__req_finish(loom__req_t *r, int start_rc) {
  if (start_rc) { /* libuv never calls back then */
    if (!(r->flags & LOOM__REQ_WAIT_OUT)) free(r);
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
  r->done = 1;
  r->w = NULL;
  /* Last: a request in the task's frame is gone once the task has run. */
  if (r->flags & LOOM__REQ_WAKE_NOW)
    loom__wake_now(w, 0);
  else
    loom__wake(w, 0);
  return 0;
}
