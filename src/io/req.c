/* One-shot libuv requests that a task waits for (getaddrinfo, connect,
 * shutdown, UDP send...). The request is heap memory that libuv owns until
 * its callback has run: a task interrupted while waiting abandons it (and
 * asks libuv to cancel it where libuv can), and the callback frees it. So
 * cancellation never frees memory libuv still points to. */
#include <stdlib.h>

#include "io.h"

static void on_interrupt(loom__waiter_t *w) {
  loom__req_t *r = (loom__req_t *)((char *)w - offsetof(loom__req_t, w));
  r->abandoned = 1;
  if (r->on_abandon)
    r->on_abandon(r);
  else
    uv_cancel(&r->u.req); /* thread-pool requests only; others complete */
}

loom__req_t *loom__req_new(loom_task_t *self) {
  loom__req_t *r = calloc(1, sizeof(*r));
  if (!r) return NULL;
  r->w.task = self;
  r->w.cancel = on_interrupt;
  r->u.req.data = r;
  return r;
}

int loom__req_wait(loom__req_t *r) {
  int rc = loom__check(r->w.task);
  if (rc) {
    /* Started but never waited for: abandon it the same way. */
    on_interrupt(&r->w);
    return rc;
  }
  return loom__park(&r->w); /* nonzero: abandoned, the callback frees it */
}

int loom__req_done(loom__req_t *r, int status) {
  if (r->abandoned) {
    free(r);
    return 1;
  }
  r->status = status;
  loom__wake(&r->w, 0);
  return 0;
}
