/* Servers: a listener, an acceptor task, and a task per connection.
 *
 * The acceptor task owns a task group holding the connection handlers, so
 * no handler outlives the server. loom_serve waits until the acceptor has
 * opened its group, so a server that cannot start reports it. With
 * max_connections, the acceptor takes a permit from a semaphore before each
 * accept: at the limit it simply stops accepting, and new connections wait
 * in the kernel's backlog. An accept that fails for want of memory is
 * retried after a pause (10 ms, doubling up to 1 s) rather than at once, so
 * the rest of the program keeps running.
 *
 * Closing stops accepting (the listener is closed, which wakes the
 * acceptor), then the acceptor waits for its handlers inside a shield whose
 * timeout is the grace period: when it expires the group cancels the
 * handlers and awaits them. Closed from one of its own handlers, the server
 * cannot wait for itself: the close returns at once and the acceptor frees
 * the server when its last handler has ended.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "io.h"

struct loom_server_s {
  loom__obj_t obj;           /* list and handle (obj.h); no libuv handle
                                of its own, so no refs */
  loom_listener_t *listener; /* a listener handle */
  loom_handler_fn handler;
  void *arg;
  size_t max;          /* 0: no limit */
  size_t output_limit; /* 0: the stream default */
  loom_sem_t slots;    /* with max: free connection slots */
  size_t active;
  uint64_t grace_ms;
  int closing;
  int start_rc;         /* the acceptor's start: 0 or its error */
  loom_event_t started; /* set once the acceptor has started */
  int orphan;           /* closed from a handler: the acceptor frees
                           the server when it ends */
  loom_task_t *acceptor;
};

typedef struct {
  loom_server_t *srv;
  loom_stream_t *s; /* the connection's handle */
} conn_t;

static loom_server_t *sget(loom_server_t *h) {
  return loom__handle_get(NULL, h, LOOM__H_SERVER);
}

static void server_free(loom_server_t *srv) { loom__obj_free(&srv->obj); }

static int run_handler(void *p) {
  conn_t *c = p; /* freed at the end: loom_server_close looks at it */
  loom_server_t *srv = c->srv;
  /* Hold the struct: the handler may close (and so free) the stream. */
  loom_stream_t *s = loom__stream_get(c->s);
  loom__obj_ref(&s->obj);
  int rc = srv->handler(c->s, srv->arg);
  /* The handler owns s and normally closes it; if it did not (it failed, or
   * was cancelled), close it here. */
  loom__stream_close(s);
  loom__obj_unref(&s->obj);
  srv->active--;
  if (srv->max) loom_sem_release(&srv->slots);
  free(c);
  /* One connection's failure is not the server's: log it (as asyncio logs
   * an exception in a client_connected_cb) and keep the group healthy. */
  if (rc < 0 && rc != UV_ECANCELED)
    fprintf(stderr, "loom: connection handler failed: %s (%s)\n", loom_err_name(rc),
            loom_strerror(rc));
  return 0;
}

/* Waits before accepting again after an error that an immediate retry
 * would repeat (no memory). */
static int pause_after(uint64_t *backoff) {
  *backoff = *backoff ? *backoff * 2 : 10;
  if (*backoff > 1000) *backoff = 1000;
  int src = loom_sleep(*backoff);
  /* A sleep that cannot arm its timer still gives the loop a turn. */
  if (src && src != UV_ECANCELED && src != UV_ETIMEDOUT) src = loom_yield();
  return src;
}

static int acceptor(void *p) {
  loom_server_t *srv = p;
  loom_group_t *g;
  int rc = loom_group_open(&g);
  srv->start_rc = rc;
  loom_event_set(&srv->started);
  if (rc) return 0; /* loom_serve reports it */
  uint64_t backoff = 0;
  for (;;) {
    if (srv->max && (rc = loom_sem_acquire(&srv->slots)) != 0) break;
    if (srv->closing) break;
    loom_stream_t *s;
    rc = loom_accept(srv->listener, &s);
    if (rc == 0) {
      if (srv->output_limit) loom_stream_set_output_limit(s, srv->output_limit);
      conn_t *c = malloc(sizeof(*c));
      if (c) {
        c->srv = srv;
        c->s = s;
        rc = loom_group_spawn(g, NULL, run_handler, c);
      }
      if (!c || rc) {
        free(c);
        loom_abort(s);
        if (srv->max) loom_sem_release(&srv->slots);
        if (pause_after(&backoff)) break;
        continue;
      }
      backoff = 0;
      srv->active++;
      continue;
    }
    if (srv->max) loom_sem_release(&srv->slots);
    if (rc == UV_ECANCELED || rc == UV_ETIMEDOUT || rc == UV_EBADF) break;
    if (pause_after(&backoff)) break;
  }
  /* Accepting is over for good (closed, or cancelled at shutdown): stop
   * listening now, so that a handler that never ends cannot keep the loop
   * alive through an idle listener (loom_run then reports the deadlock). */
  loom_listener_close(srv->listener); /* UV_EBADF if closed already */
  /* Closing: handlers get the grace period, then are cancelled. */
  loom_scope_t grace;
  int shielded = loom_shield_enter_timeout(&grace, srv->grace_ms) == 0;
  loom_group_wait(g);
  if (shielded) loom_scope_exit(&grace);
  if (srv->orphan) server_free(srv);
  return 0;
}

/* Shutdown found the server left open: its acceptor has ended already (every
 * task has); its listener is closed as an object of its own. */
static int io_close(loom__io_t *o, int force) {
  loom_server_t *srv = loom__obj_of(o);
  (void)force;
  loom_task_t *t = loom__task_of(srv->obj.rt, srv->acceptor);
  if (t && !t->consumed && t->state == LOOM__DONE) {
    t->consumed = t->detached = 1;
    loom__release(srv->obj.rt, t);
  }
  server_free(srv);
  return 1;
}

int loom_serve(loom_server_t **out, const char *host, int port, loom_handler_fn handler,
               void *arg, const loom_server_opts_t *opts) {
  if (!out || !handler) return UV_EINVAL;
  *out = NULL;
  if (opts && opts->max_connections > UINT_MAX) return UV_EINVAL;
  loom_task_t *self = loom__self();
  if (!self) return LOOM_ENOTASK;
  loom_server_t *srv = calloc(1, sizeof(*srv));
  if (!srv) return UV_ENOMEM;
  /* Without a libuv handle this cannot fail. */
  (void)loom__obj_setup(&srv->obj, srv, self->rt, "server", io_close, NULL,
                        UV_UNKNOWN_HANDLE, -1);
  srv->handler = handler;
  srv->arg = arg;
  srv->max = opts ? opts->max_connections : 0;
  srv->output_limit = opts ? opts->output_limit : 0;
  if (srv->max) loom_sem_init(&srv->slots, (unsigned)srv->max);
  loom_event_init(&srv->started);
  unsigned flags = opts && opts->reuseport ? LOOM_LISTEN_REUSEPORT : 0;
  int rc = loom_tcp_listen_ex(&srv->listener, host, port, opts ? opts->backlog : 0,
                              flags);
  if (rc == 0) rc = loom__obj_publish(&srv->obj, LOOM__H_SERVER);
  if (rc == 0) {
    loom_task_opts_t o = {.name = "loom-server"};
    rc = loom_spawn_ex(&srv->acceptor, acceptor, srv, &o);
    if (rc == 0) {
      /* Wait until the acceptor has started, so that a server that cannot
       * run says so here. Interrupted: stop it again. */
      rc = loom_event_wait(&srv->started);
      if (rc) loom_cancel(srv->acceptor);
      if (rc || srv->start_rc) {
        loom_join(srv->acceptor, NULL);
        if (!rc) rc = srv->start_rc;
      }
    }
  }
  if (rc) {
    if (srv->listener) loom_listener_close(srv->listener);
    server_free(srv);
    return rc;
  }
  *out = srv->obj.token;
  return 0;
}

int loom_server_port(loom_server_t *h) {
  if (!h) return UV_EINVAL;
  loom_server_t *srv = sget(h);
  return srv ? loom_listener_port(srv->listener) : UV_EBADF;
}

size_t loom_server_connections(loom_server_t *h) {
  loom_server_t *srv = sget(h);
  return srv ? srv->active : 0;
}

/* Whether the running task is one of srv's connection handlers. */
static int is_own_handler(loom_server_t *srv, loom_task_t *self) {
  return self->fn == run_handler && ((conn_t *)self->arg)->srv == srv;
}

int loom_server_close(loom_server_t *h, uint64_t grace_ms) {
  if (!h) return UV_EINVAL;
  loom_server_t *srv = sget(h);
  if (!srv) return UV_EBADF;
  /* Closing waits for the acceptor, which only a task can do. */
  loom_task_t *self = loom__self();
  if (!self) return LOOM_ENOTASK;
  loom__obj_unpublish(&srv->obj);
  srv->grace_ms = grace_ms;
  srv->closing = 1;
  /* Wake the acceptor without cancelling it (a cancelled opener would
   * cancel the handlers at once, with no grace): closing the listener ends
   * its accept, a spare permit ends its wait for a slot. */
  loom_listener_close(srv->listener);
  if (srv->max) loom_sem_release(&srv->slots);
  if (is_own_handler(srv, self)) {
    /* The acceptor waits for this very task: it cannot be waited for
     * here. It frees the server when it ends. */
    srv->orphan = 1;
    loom_detach(srv->acceptor);
    return 0;
  }
  /* Wait for the acceptor without consuming or cancelling it: if a handler
   * of srv awaits this task (a sub-task of the handler), a join would wait
   * for itself. After the grace period and a second for cancelled handlers
   * to end, or if the caller is interrupted, leave the server to its
   * acceptor as above (the handlers have been cancelled by then). */
  loom_task_t *acc = srv->acceptor;
  size_t ndone = 0;
  int64_t limit = grace_ms > (uint64_t)INT64_MAX - 1000 ? LOOM_WAIT_FOREVER
                                                        : (int64_t)grace_ms + 1000;
  int rc = loom_wait(&acc, 1, limit, LOOM_ALL_COMPLETED, &ndone);
  if (ndone == 1) {
    loom_join(srv->acceptor, NULL);
    server_free(srv);
    return rc == UV_ECANCELED || rc == UV_ETIMEDOUT ? rc : 0;
  }
  if (rc) loom_cancel(srv->acceptor); /* the caller was interrupted */
  srv->orphan = 1;
  loom_detach(srv->acceptor);
  return rc ? rc : UV_ETIMEDOUT;
}

int loom_server_serve_forever(loom_server_t *h) {
  if (!h) return UV_EINVAL;
  if (!sget(h)) return UV_EBADF;
  int rc = loom_sleep(UINT64_MAX);
  loom_server_close(h, 0);
  return rc;
}
