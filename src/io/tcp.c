/* TCP and Unix-socket clients, listeners and accept.
 *
 * Connecting: resolve, then try each address in turn. A connect in flight
 * holds a uv_connect_t inside libuv; if the task is interrupted, the socket
 * is closed, which makes libuv complete the connect with UV_ECANCELED, and
 * the stream is freed from its close callback: nothing libuv points to is
 * freed early.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fs.h"

/* libuv copies a pipe name into sun_path and silently cuts what does not
 * fit: a long path would connect to (or bind) another socket. */
static int check_path(const char *path) {
  struct sockaddr_un sun;
  return strlen(path) < sizeof(sun.sun_path) ? 0 : UV_ENAMETOOLONG;
}

static void on_connect(uv_connect_t *req, int status) {
  loom__req_done(req->data, status);
}

/* An interrupted connect: close the socket (the request then completes
 * with UV_ECANCELED and frees itself), and the stream with it. */
static void abandon_connect(loom__req_t *r) { loom__stream_close_now(r->data); }

/* Connects a new stream to a TCP address (addr) or a Unix socket (path). */
static int connect_stream(loom_stream_t **out, loom_task_t *self,
                          const struct sockaddr *addr, const char *path) {
  loom_stream_t *s;
  int rc = loom__stream_new(&s, self->rt, addr ? UV_TCP : UV_NAMED_PIPE, -1);
  if (rc) return rc;
  loom__req_t *r = loom__req_new();
  if (!r) {
    loom__stream_close_now(s);
    return UV_ENOMEM;
  }
  r->data = s;
  r->on_abandon = abandon_connect;
  if (addr)
    rc = uv_tcp_connect(&r->u.connect, &s->u.tcp, addr, on_connect);
  else
    uv_pipe_connect(&r->u.connect, &s->u.pipe, path, on_connect); /* void */
  if (rc) {
    free(r);
    loom__stream_close_now(s);
    return rc;
  }
  rc = loom__req_wait(r);
  if (rc) return rc; /* abandoned: the socket is closing */
  rc = r->status;
  free(r);
  if (rc) {
    loom__stream_close_now(s);
    return rc;
  }
  if (addr) uv_tcp_nodelay(&s->u.tcp, 1); /* as asyncio does */
  rc = loom__stream_publish(s, out);
  if (rc) loom__stream_close_now(s);
  return rc;
}

int loom_tcp_connect_addr(loom_stream_t **out, const struct sockaddr *addr) {
  if (!out || !addr) return UV_EINVAL;
  *out = NULL;
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  return connect_stream(out, self, addr, NULL);
}

int loom_tcp_connect(loom_stream_t **out, const char *host, int port) {
  if (!out) return UV_EINVAL;
  *out = NULL;
  loom_task_t *self = loom__self();
  struct sockaddr_storage ss;
  if (host && loom__numeric_addr(host, port, &ss) == 0) {
    int rc = loom__check(self);
    return rc ? rc : connect_stream(out, self, (struct sockaddr *)&ss, NULL);
  }
  struct addrinfo *res;
  int rc = loom__resolve(host, port, SOCK_STREAM, &res);
  if (rc) return rc;
  rc = UV_EAI_NODATA;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    rc = connect_stream(out, self, ai->ai_addr, NULL);
    if (rc == 0 || rc == UV_ECANCELED || rc == UV_ETIMEDOUT) break;
  }
  uv_freeaddrinfo(res);
  return rc;
}

int loom_unix_connect(loom_stream_t **out, const char *path) {
  if (!out || !path) return UV_EINVAL;
  *out = NULL;
  if (check_path(path)) return UV_ENAMETOOLONG;
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  return connect_stream(out, self, NULL, path);
}

int loom_stream_open_fd(loom_stream_t **out, int fd) {
  if (!out || fd < 0) return UV_EINVAL;
  *out = NULL;
  loom_t *rt = loom_runtime();
  if (!rt) return LOOM_ENOTASK;
  uv_handle_type t = uv_guess_handle(fd);
  /* Regular files, directories and devices cannot be polled: libuv would
   * abort on the first read. A regular file (stdin redirected from one) is
   * read on the thread pool instead (fs-stream.c). */
  if (t == UV_FILE || t == UV_UNKNOWN_HANDLE) {
    struct stat st;
    if (fstat(fd, &st) != 0) return UV_EBADF;
    if (S_ISREG(st.st_mode)) return loom__file_stream_new(out, rt, fd);
    return UV_EINVAL;
  }
  loom_stream_t *s;
  int rc = loom__stream_new(&s, rt, t, fd); /* UV_EINVAL for UDP */
  if (rc) return rc;
  if (t == UV_TCP)
    rc = uv_tcp_open(&s->u.tcp, fd);
  else if (t != UV_TTY)
    rc = uv_pipe_open(&s->u.pipe, fd);
  if (rc == 0) rc = loom__stream_publish(s, out);
  if (rc) loom__stream_close_now(s); /* frees s from the close callback */
  return rc;
}

/* ---- listeners ------------------------------------------------------------------ */

struct loom_listener_s {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } u;
  loom__obj_t obj;          /* list, handle, refs (obj.h) */
  loom__waiter_t *acceptor; /* the task waiting in loom_accept */
  int pending;              /* connections waiting to be accepted */
  int is_tcp;
};

static loom_listener_t *lget(loom_listener_t *h) {
  return loom__handle_get(NULL, h, LOOM__H_LISTENER);
}

static void on_listener_closed(uv_handle_t *h) {
  loom_listener_t *l = h->data;
  loom__obj_closed(&l->obj);
}

static void on_connection(uv_stream_t *server, int status) {
  loom_listener_t *l = server->data;
  /* EMFILE and friends: libuv has already dropped the connection (its
   * spare-fd trick); the listener goes on, and the acceptor waits on for
   * the next connection. */
  if (status < 0) return;
  l->pending++;
  if (l->acceptor) loom__wake(l->acceptor, 0);
}

static int listen_on(loom_listener_t *l, int backlog) {
  int rc = uv_listen(&l->u.stream, backlog > 0 ? backlog : 511, on_connection);
  if (rc) {
    uv_close(&l->u.handle, on_listener_closed);
    return rc;
  }
  return 0;
}

/* Stops listening; a task waiting in accept wakes with UV_EBADF. */
void loom__listener_close(loom_listener_t *l) {
  loom__obj_unpublish(&l->obj);
  if (uv_is_closing(&l->u.handle)) return;
  if (l->acceptor) loom__wake(l->acceptor, UV_EBADF);
  uv_close(&l->u.handle, on_listener_closed);
}

static int listener_io_close(loom__io_t *o, int force) {
  loom_listener_t *l = loom__obj_of(o);
  (void)force;
  if (uv_is_closing(&l->u.handle)) return 0;
  loom__listener_close(l);
  return 1;
}

static int listener_new(loom_t *rt, int is_tcp, loom_listener_t **out) {
  loom_listener_t *l = calloc(1, sizeof(*l));
  if (!l) return UV_ENOMEM;
  int rc = loom__obj_setup(&l->obj, l, rt, "listener", listener_io_close, &l->u.handle,
                           is_tcp ? UV_TCP : UV_NAMED_PIPE, -1);
  if (rc) return rc;
  l->is_tcp = is_tcp;
  *out = l;
  return 0;
}

/* Listens on a listener whose bind returned bind_rc, or closes it. */
static int listener_finish(loom_listener_t *l, int bind_rc, int backlog,
                           loom_listener_t **out) {
  if (bind_rc) {
    uv_close(&l->u.handle, on_listener_closed);
    return bind_rc;
  }
  int rc = listen_on(l, backlog);
  if (rc) return rc;
  rc = loom__obj_publish(&l->obj, LOOM__H_LISTENER);
  if (rc == 0)
    *out = l->obj.token;
  else
    uv_close(&l->u.handle, on_listener_closed);
  return rc;
}

/* SO_REUSEPORT must be set before bind, and libuv (1.44) has no flag for
 * it: make the socket here, set it, and hand it to the handle, which binds
 * it as it would its own (uv_tcp_bind uses an open socket as it is). */
static int open_reuseport(uv_tcp_t *h, int family) {
#ifdef SO_REUSEPORT
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return uv_translate_sys_error(errno);
  int on = 1;
  int rc = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0)
    rc = uv_translate_sys_error(errno);
  if (rc == 0) rc = uv_tcp_open(h, fd);
  if (rc) close(fd);
  return rc;
#else
  (void)h;
  (void)family;
  return UV_ENOTSUP;
#endif
}

int loom_tcp_listen_ex(loom_listener_t **out, const char *host, int port, int backlog,
                       unsigned flags) {
  if (!out) return UV_EINVAL;
  *out = NULL;
  if (flags & ~(unsigned)LOOM_LISTEN_REUSEPORT) return UV_EINVAL;
  loom_t *rt;
  loom__bind_addr_t a;
  int rc = loom__bind_addr(&rt, &a, host, port, SOCK_STREAM);
  if (rc) return rc;
  loom_listener_t *l;
  rc = listener_new(rt, 1, &l);
  if (rc == 0) {
    int bind_rc = 0;
    if (flags & LOOM_LISTEN_REUSEPORT)
      bind_rc = open_reuseport(&l->u.tcp, a.sa->sa_family);
    if (bind_rc == 0) bind_rc = uv_tcp_bind(&l->u.tcp, a.sa, 0);
    rc = listener_finish(l, bind_rc, backlog, out);
  }
  loom__bind_addr_free(&a);
  return rc;
}

int loom_tcp_listen(loom_listener_t **out, const char *host, int port, int backlog) {
  return loom_tcp_listen_ex(out, host, port, backlog, 0);
}

int loom_unix_listen(loom_listener_t **out, const char *path, int backlog) {
  if (!out || !path) return UV_EINVAL;
  *out = NULL;
  if (check_path(path)) return UV_ENAMETOOLONG;
  loom_t *rt = loom_runtime();
  if (!rt) return LOOM_ENOTASK;
  loom_listener_t *l;
  int rc = listener_new(rt, 0, &l);
  if (rc) return rc;
  return listener_finish(l, uv_pipe_bind(&l->u.pipe, path), backlog, out);
}

int loom_listener_port(loom_listener_t *h) {
  if (!h) return UV_EINVAL;
  loom_listener_t *l = lget(h);
  if (!l) return UV_EBADF;
  if (!l->is_tcp) return UV_EINVAL;
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  int rc = uv_tcp_getsockname(&l->u.tcp, (struct sockaddr *)&ss, &len);
  return rc ? rc : loom__addr_port((struct sockaddr *)&ss);
}

typedef struct {
  loom__waiter_t w;
  loom_listener_t *l;
} lwait_t;

static void unhook_acceptor(loom__waiter_t *w) {
  loom__container_of(w, lwait_t, w)->l->acceptor = NULL;
}

/* Takes one pending connection into a new stream. */
static int take_connection(loom_listener_t *l, loom_stream_t **out) {
  loom_stream_t *s;
  int rc = loom__stream_new(&s, l->obj.rt, l->is_tcp ? UV_TCP : UV_NAMED_PIPE, -1);
  if (rc) return rc;
  l->pending--;
  rc = uv_accept(&l->u.stream, &s->u.stream);
  if (rc) {
    loom__stream_close_now(s);
    return rc;
  }
  if (s->is_tcp) uv_tcp_nodelay(&s->u.tcp, 1);
  rc = loom__stream_publish(s, out);
  if (rc) loom__stream_close_now(s);
  return rc;
}

int loom_accept(loom_listener_t *h, loom_stream_t **out) {
  if (!h || !out) return UV_EINVAL;
  *out = NULL;
  loom_listener_t *l = lget(h);
  if (!l) return UV_EBADF;
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  if (l->acceptor) return UV_EBUSY;
  loom__obj_ref(&l->obj);
  for (;;) {
    if (l->pending > 0) {
      rc = take_connection(l, out);
      /* A connection that failed to be accepted is skipped. */
      if (rc == 0 || rc == UV_ENOMEM) break;
      continue;
    }
    if (uv_is_closing(&l->u.handle)) {
      rc = UV_EBADF;
      break;
    }
    lwait_t wt = {.w = {.task = self, .cancel = unhook_acceptor}, .l = l};
    l->acceptor = &wt.w;
    loom__wait_on(&wt.w, LOOM__W_ACCEPT, l);
    rc = loom__park(&wt.w);
    l->acceptor = NULL;
    if (rc) break;
  }
  loom__obj_unref(&l->obj);
  return rc;
}

int loom_listener_close(loom_listener_t *h) {
  if (!h) return UV_EINVAL;
  loom_listener_t *l = lget(h);
  if (!l) return UV_EBADF;
  loom__listener_close(l);
  return 0;
}
