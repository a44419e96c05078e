/* Servers: a listener, an acceptor task, and a task per connection.
 *
 * The acceptor task owns a task group holding the connection handlers, so
 * no handler outlives the server. With max_connections, the acceptor takes
 * a permit from a semaphore before each accept: at the limit it simply stops
 * accepting, and new connections wait in the kernel's backlog. Closing stops
 * accepting (the listener is closed, which wakes the acceptor), then the
 * acceptor waits for its handlers inside a shield whose timeout is the grace
 * period: when it expires the group cancels the handlers and awaits them.
 */
#include <stdio.h>
#include <stdlib.h>

#include "io.h"

struct loom_server_s {
  loom_listener_t *listener;
  loom_handler_fn handler;
  void *arg;
  size_t max;                 /* 0: no limit */
  loom_sem_t slots;           /* with max: free connection slots */
  size_t active;
  uint64_t grace_ms;
  int closing;
  loom_task_t *acceptor;
};

typedef struct {
  loom_server_t *srv;
  loom_stream_t *s;
} conn_t;

static int run_handler(void *p) {
  conn_t c = *(conn_t *)p;
  free(p);
  /* Hold the struct: the handler may close (and so free) the stream. */
  loom__stream_ref(c.s);
  int rc = c.srv->handler(c.s, c.srv->arg);
  /* The handler owns s and normally closes it; if it did not (it failed, or
   * was cancelled), close it here. */
  if (!c.s->closing) loom_close(c.s);
  loom__stream_unref(c.s);
  c.srv->active--;
  if (c.srv->max) loom_sem_release(&c.srv->slots);
  /* One connection's failure is not the server's: log it (as asyncio logs
   * an exception in a client_connected_cb) and keep the group healthy. */
  if (rc < 0 && rc != UV_ECANCELED)
    fprintf(stderr, "loom: connection handler failed: %s (%s)\n",
            loom_err_name(rc), loom_strerror(rc));
  return 0;
}

static int acceptor(void *p) {
  loom_server_t *srv = p;
  loom_group_t *g;
  int rc = loom_group_open(&g);
  if (rc) return rc;
  for (;;) {
    if (srv->max && (rc = loom_sem_acquire(&srv->slots)) != 0) break;
    if (srv->closing) break;
    loom_stream_t *s;
    rc = loom_accept(srv->listener, &s);
    if (rc == 0) {
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
        continue;
      }
      srv->active++;
      continue;
    }
    if (srv->max) loom_sem_release(&srv->slots);
    if (rc == UV_ECANCELED || rc == UV_ETIMEDOUT || rc == UV_EBADF) break;
  }
  /* Closing: handlers get the grace period, then are cancelled. */
  loom_scope_t grace;
  loom_shield_enter_timeout(&grace, srv->grace_ms);
  loom_group_wait(g);
  loom_scope_exit(&grace);
  return 0;
}

int loom_serve(loom_server_t **out, const char *host, int port,
               loom_handler_fn handler, void *arg,
               const loom_server_opts_t *opts) {
  if (!out || !handler) return UV_EINVAL;
  *out = NULL;
  loom_server_t *srv = calloc(1, sizeof(*srv));
  if (!srv) return UV_ENOMEM;
  srv->handler = handler;
  srv->arg = arg;
  srv->max = opts ? opts->max_connections : 0;
  if (srv->max) loom_sem_init(&srv->slots, (unsigned)srv->max);
  int rc = loom_tcp_listen(&srv->listener, host, port, opts ? opts->backlog : 0);
  if (rc == 0) {
    loom_task_opts_t o = {"loom-server", 0};
    rc = loom_spawn_ex(&srv->acceptor, acceptor, srv, &o);
    if (rc) loom_listener_close(srv->listener);
  }
  if (rc) {
    free(srv);
    return rc;
  }
  *out = srv;
  return 0;
}

int loom_server_port(loom_server_t *srv) {
  return srv ? loom_listener_port(srv->listener) : UV_EINVAL;
}

size_t loom_server_connections(loom_server_t *srv) { return srv ? srv->active : 0; }

int loom_server_close(loom_server_t *srv, uint64_t grace_ms) {
  if (!srv) return UV_EINVAL;
  srv->grace_ms = grace_ms;
  srv->closing = 1;
  /* Wake the acceptor without cancelling it (a cancelled opener would
   * cancel the handlers at once, with no grace): closing the listener ends
   * its accept, a spare permit ends its wait for a slot. */
  loom_listener_close(srv->listener);
  if (srv->max) loom_sem_release(&srv->slots);
  int rc = loom_join(srv->acceptor, NULL);
  free(srv);
  return rc == UV_ECANCELED || rc == UV_ETIMEDOUT ? rc : 0;
}

int loom_server_serve_forever(loom_server_t *srv) {
  if (!srv) return UV_EINVAL;
  int rc = loom_sleep(UINT64_MAX);
  loom_server_close(srv, 0);
  return rc;
}
