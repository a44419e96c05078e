/* The life every io object shares: streams, listeners, UDP sockets and
 * servers each embed one loom__obj_t, which ties the object to three things
 * in the same way for all of them.
 *
 *   - The runtime's list of open io objects (loom__io_add): on it from
 *     creation until the memory is freed, so that shutdown closes what a
 *     program left open.
 *   - The handle table (core/handle.h): the token the user holds. Dropping
 *     it on close makes every later call with that handle return UV_EBADF.
 *   - Deferred freeing, for the objects that own a libuv handle (all but
 *     servers): the struct is freed once libuv's close callback has run
 *     (`dead`) and no public call on it is still in progress (`refs`),
 *     whichever comes last. A task blocked in a read, an accept or a receive
 *     when another task closes the object thus wakes with UV_EBADF and
 *     returns without touching freed memory:
 *
 *       close callback:  dead = 1;  refs == 0 ?  -> free
 *       call returns:    --refs;    refs == 0 && dead ?  -> free
 *
 * Everything here is inline: stream reads and writes take a reference per
 * call.
 */
#ifndef LOOM_IO_OBJ_H
#define LOOM_IO_OBJ_H

#include <stdlib.h>

#include "core/internal.h"
#include "util/container.h"

typedef struct loom__obj_s loom__obj_t;
struct loom__obj_s {
  loom_t *rt;
  loom__io_t io;               /* on the runtime's list until freed */
  void *token;                 /* the user's handle; NULL once closed */
  int refs;                    /* public calls in progress */
  int dead;                    /* the libuv handle's close callback has run */
  void *self;                  /* the object that holds this one: what the
                                  handle table returns, and what is freed */
  void (*release)(void *self); /* frees what self owns besides its own
                                  memory (a buffer); NULL: nothing */
};

/* Sets up an object the caller has just allocated zero-filled (self, in
 * which o is embedded): puts it on the runtime's list as `what`, with
 * `close` for shutdown, and initialises its libuv handle h, if any, with
 * h->data = self: type UV_TCP, UV_NAMED_PIPE, UV_UDP, UV_TTY on fd (fd
 * is used for nothing else), or UV_IDLE. On failure self is freed and
 * nothing is left to undo. */
static inline int loom__obj_setup(loom__obj_t *o, void *self, loom_t *rt,
                                  const char *what,
                                  int (*close)(loom__io_t *io, int force), uv_handle_t *h,
                                  uv_handle_type type, int fd) {
  int rc = 0;
  if (h) {
    switch (type) {
    case UV_TCP: rc = uv_tcp_init(rt->loop, (uv_tcp_t *)h); break;
    case UV_NAMED_PIPE: rc = uv_pipe_init(rt->loop, (uv_pipe_t *)h, 0); break;
    case UV_UDP: rc = uv_udp_init(rt->loop, (uv_udp_t *)h); break;
    case UV_TTY: rc = uv_tty_init(rt->loop, (uv_tty_t *)h, fd, 0); break;
    case UV_IDLE: rc = uv_idle_init(rt->loop, (uv_idle_t *)h); break;
    default: rc = UV_EINVAL; break;
    }
    if (rc) {
      free(self);
      return rc;
    }
    h->data = self;
  }
  o->rt = rt;
  o->self = self;
  loom__io_add(rt, &o->io, what, close);
  return 0;
}

/* The object holding io (an io_close callback's argument). */
static inline void *loom__obj_of(loom__io_t *io) {
  return loom__container_of(io, loom__obj_t, io)->self;
}

/* Gives the object its public handle (o->token), of kind LOOM__H_*.
 * UV_ENOMEM if the handle table cannot grow: the caller closes the
 * object. */
static inline int loom__obj_publish(loom__obj_t *o, int kind) {
  return loom__handle_new(o->rt, kind, o->self, &o->token);
}

/* Makes the handle stale; the object itself lives until freed. */
static inline void loom__obj_unpublish(loom__obj_t *o) {
  if (!o->token) return;
  loom__handle_drop(o->rt, o->token);
  o->token = NULL;
}

/* Frees the object at once (its libuv handle is closed or was never
 * initialised). */
static inline void loom__obj_free(loom__obj_t *o) {
  void *self = o->self;
  loom__obj_unpublish(o);
  loom__io_remove(o->rt, &o->io);
  if (o->release) o->release(self);
  free(self);
}

static inline void loom__obj_ref(loom__obj_t *o) { o->refs++; }

/* Ends a call; frees the object if it was the last one after the close. */
static inline void loom__obj_unref(loom__obj_t *o) {
  if (--o->refs == 0 && o->dead) loom__obj_free(o);
}

/* From the libuv handle's close callback. */
static inline void loom__obj_closed(loom__obj_t *o) {
  o->dead = 1;
  if (o->refs == 0) loom__obj_free(o);
}

#endif
