/* Foreign file descriptors: tasks waiting until a descriptor loom does not
 * own is readable or writable (loom_fd_*).
 *
 * A watch is one uv_poll_t on the descriptor (libuv allows one per
 * descriptor and loop) plus the tasks waiting on it, each with the events
 * it wants; the poll is started for the union of what is waited for and
 * stopped when nobody waits, so an idle watch keeps no loop alive and costs
 * no wake-ups. A poll event wakes every waiter whose events hold: a reader
 * and a writer share one watch.
 *
 *   loom_fd_t (obj: list, handle, refs)
 *     h: uv_poll_t, started for `events`
 *     waiters ──> [fwait_t READABLE, task A's frame] ──> [fwait_t WRITABLE] ...
 *
 * libuv reports an error condition (POLLERR: a failed connect, a reset) as
 * UV_EBADF and stops the poll. The descriptor itself is fine, so the
 * waiters get what they waited for plus LOOM_FD_ERROR, as select() would
 * say: the driver's next call on the descriptor returns the real error. The
 * next wait starts the poll again.
 */
#include <stdlib.h>

#include "io.h"
#include "loom/fd.h"

_Static_assert((int)LOOM_FD_READABLE == (int)UV_READABLE &&
                   (int)LOOM_FD_WRITABLE == (int)UV_WRITABLE &&
                   (int)LOOM_FD_DISCONNECT == (int)UV_DISCONNECT,
               "loom's fd events are libuv's poll events");
#define FD_EVENTS (LOOM_FD_READABLE | LOOM_FD_WRITABLE | LOOM_FD_DISCONNECT)

struct loom_fd_s {
  uv_poll_t h;
  loom__obj_t obj; /* list, handle, refs (obj.h) */
  int fd;
  int events;             /* what the poll is started for; 0: stopped */
  int closed;             /* loom_fd_close or shutdown ran */
  loom__list_t waiters;   /* fwait_t, in the waiting tasks' frames */
  loom__link_t open_link; /* on `watches` until closed */
};

/* The thread's open watches. libuv refuses a second uv_poll_t on a
 * descriptor only while the first is started; a second one started later
 * would steal or lose events, so loom refuses it from the open on. A list:
 * watches are opened once per connection, and few are open at a time. */
static LOOM__TLS loom__list_t watches;

typedef struct {
  loom__waiter_t w;
  loom__link_t link; /* on f->waiters while waiting */
  loom_fd_t *f;
  int want; /* events waited for */
} fwait_t;

static loom_fd_t *fget(loom_fd_t *h) { return loom__handle_get(NULL, h, LOOM__H_FD); }

static void on_closed(uv_handle_t *h) {
  loom_fd_t *f = h->data;
  loom__obj_closed(&f->obj);
}

/* Starts, restarts or stops the poll for what the waiters want. */
static int repoll(loom_fd_t *f);

static void on_poll(uv_poll_t *h, int status, int events) {
  loom_fd_t *f = h->data;
  if (status == UV_EBADF) f->events = 0; /* libuv stopped the poll */
  loom__link_t *l, *next;
  loom__list_foreach_safe(l, next, &f->waiters) {
    fwait_t *fw = loom__list_entry(l, fwait_t, link);
    int got;
    if (status == UV_EBADF)
      got = fw->want | LOOM_FD_ERROR;
    else if (status < 0)
      got = status;
    else
      got = events & fw->want;
    if (!got) continue;
    loom__list_remove(&f->waiters, &fw->link);
    loom__wake(&fw->w, got);
  }
  if (status < 0 && status != UV_EBADF) {
    uv_poll_stop(&f->h);
    f->events = 0;
  }
  repoll(f);
}

static int repoll(loom_fd_t *f) {
  int want = 0;
  loom__link_t *l;
  loom__list_foreach(l, &f->waiters) want |= loom__list_entry(l, fwait_t, link)->want;
  if (want == f->events) return 0;
  int rc = want ? uv_poll_start(&f->h, want, on_poll) : uv_poll_stop(&f->h);
  if (rc == 0) f->events = want;
  return rc;
}

static void fd_close(loom_fd_t *f) {
  loom__obj_unpublish(&f->obj);
  if (f->closed) return;
  f->closed = 1;
  loom__list_remove(&watches, &f->open_link);
  while (!loom__list_empty(&f->waiters)) {
    fwait_t *fw = loom__list_entry(loom__list_pop_front(&f->waiters), fwait_t, link);
    loom__wake(&fw->w, UV_EBADF);
  }
  /* Stops the poll and takes fd out of the loop's poll set at once. */
  uv_close((uv_handle_t *)&f->h, on_closed);
}

static int io_close(loom__io_t *o, int force) {
  loom_fd_t *f = loom__obj_of(o);
  (void)force;
  if (f->closed) return 0;
  fd_close(f);
  return 1;
}

int loom_fd_open(loom_fd_t **out, int fd) {
  if (!out) return UV_EINVAL;
  *out = NULL;
  if (fd < 0) return UV_EBADF;
  loom_t *rt = loom_runtime();
  if (!rt) return LOOM_ENOTASK;
  loom__link_t *l;
  loom__list_foreach(l, &watches) {
    loom_fd_t *o = loom__list_entry(l, loom_fd_t, open_link);
    if (o->fd == fd && o->obj.rt == rt) return UV_EEXIST;
  }
  loom_fd_t *f = calloc(1, sizeof(*f));
  if (!f) return UV_ENOMEM;
  /* libuv checks the descriptor (UV_EBADF, UV_EPERM, UV_EEXIST) before it
   * registers anything: on failure there is nothing to close. */
  int rc = uv_poll_init(rt->loop, &f->h, fd);
  if (rc) {
    free(f);
    return rc;
  }
  f->h.data = f;
  f->fd = fd;
  loom__list_push_back(&watches, &f->open_link);
  rc = loom__obj_setup(&f->obj, f, rt, "fd watch", io_close, NULL, UV_UNKNOWN_HANDLE, -1);
  if (rc == 0) rc = loom__obj_publish(&f->obj, LOOM__H_FD);
  if (rc) {
    fd_close(f);
    return rc;
  }
  *out = f->obj.token;
  return 0;
}

static void unhook(loom__waiter_t *w) {
  fwait_t *fw = loom__container_of(w, fwait_t, w);
  loom__list_remove(&fw->f->waiters, &fw->link);
  repoll(fw->f);
}

int loom_fd_wait(loom_fd_t *h, int events) {
  if (!h || !events || (events & ~FD_EVENTS)) return UV_EINVAL;
  loom_fd_t *f = fget(h);
  if (!f) return UV_EBADF;
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  fwait_t fw = {.w = {.task = self, .cancel = unhook}, .f = f, .want = events};
  loom__list_push_back(&f->waiters, &fw.link);
  rc = repoll(f);
  if (rc) {
    loom__list_remove(&f->waiters, &fw.link);
    return rc;
  }
  loom__obj_ref(&f->obj); /* a close while we wait must not free f */
  loom__wait_on(&fw.w, LOOM__W_FD, f);
  rc = loom__park(&fw.w);
  loom__obj_unref(&f->obj);
  return rc;
}

int loom_fd_fileno(loom_fd_t *h) {
  if (!h) return UV_EINVAL;
  loom_fd_t *f = fget(h);
  return f ? f->fd : UV_EBADF;
}

int loom_fd_close(loom_fd_t *h) {
  if (!h) return UV_EINVAL;
  loom_fd_t *f = fget(h);
  if (!f) return UV_EBADF;
  fd_close(f);
  return 0;
}
