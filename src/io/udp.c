/* UDP sockets. A datagram is received only while a task waits for one
 * (receiving is switched on for the wait and off after it), straight into a
 * buffer of the socket's; sends are tried at once and otherwise copied and
 * queued, so the caller's buffer is free when send returns.
 *
 * As for streams, the public handle is a checked token, and the struct is
 * freed only when both the close callback has run and no call is in
 * progress (refs): a receiver woken by a close returns UV_EBADF without
 * touching freed memory. */
#include <stdlib.h>
#include <string.h>

#include "io.h"

#define DGRAM_MAX 65536

struct loom_udp_s {
  uv_udp_t h;
  loom__obj_t obj; /* list, handle, refs (obj.h) */
  loom__waiter_t *receiver;
  char *dst; /* where the receiver wants the datagram */
  size_t dst_len;
  ssize_t got; /* size received, or error */
  struct sockaddr_storage *from;
  char buf[DGRAM_MAX];
};

typedef struct {
  uv_udp_send_t req;
  char data[];
} sreq_t;

typedef struct {
  loom__waiter_t w;
  loom_udp_t *u;
} uwait_t;

static void on_closed(uv_handle_t *h) {
  loom_udp_t *u = h->data;
  loom__obj_closed(&u->obj);
}

static loom_udp_t *uget(loom_udp_t *h) { return loom__handle_get(NULL, h, LOOM__H_UDP); }

static void udp_close(loom_udp_t *u) {
  loom__obj_unpublish(&u->obj);
  if (uv_is_closing((uv_handle_t *)&u->h)) return;
  if (u->receiver) loom__wake(u->receiver, UV_EBADF);
  uv_close((uv_handle_t *)&u->h, on_closed);
}

static int io_close(loom__io_t *o, int force) {
  loom_udp_t *u = loom__obj_of(o);
  (void)force;
  if (uv_is_closing((uv_handle_t *)&u->h)) return 0;
  udp_close(u);
  return 1;
}

int loom_udp_bind(loom_udp_t **out, const char *host, int port) {
  if (!out) return UV_EINVAL;
  *out = NULL;
  loom_t *rt;
  loom__bind_addr_t a;
  int rc = loom__bind_addr(&rt, &a, host, port, SOCK_DGRAM);
  if (rc) return rc;
  loom_udp_t *u = calloc(1, sizeof(*u));
  rc = u ? loom__obj_setup(&u->obj, u, rt, "UDP socket", io_close, (uv_handle_t *)&u->h,
                           UV_UDP, -1)
         : UV_ENOMEM;
  if (rc == 0) {
    rc = uv_udp_bind(&u->h, a.sa, 0);
    if (rc == 0) rc = loom__obj_publish(&u->obj, LOOM__H_UDP);
    if (rc == 0)
      *out = u->obj.token;
    else
      uv_close((uv_handle_t *)&u->h, on_closed);
  }
  loom__bind_addr_free(&a);
  return rc;
}

int loom_udp_port(loom_udp_t *hd) {
  if (!hd) return UV_EINVAL;
  loom_udp_t *u = uget(hd);
  if (!u) return UV_EBADF;
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  int rc = uv_udp_getsockname(&u->h, (struct sockaddr *)&ss, &len);
  return rc ? rc : loom__addr_port((struct sockaddr *)&ss);
}
static void on_sent(uv_udp_send_t *req, int status) {
  (void)status; /* datagrams are best effort, as in asyncio's sendto */
  free(loom__container_of(req, sreq_t, req));
}

int loom_udp_send(loom_udp_t *hd, const void *buf, size_t n, const struct sockaddr *to) {
  if (!hd || (!buf && n) || !to) return UV_EINVAL;
  loom_udp_t *u = uget(hd);
  if (!u) return UV_EBADF;
  if (n > DGRAM_MAX) return UV_EMSGSIZE; /* no datagram is that large */
  uv_buf_t b;
  b.base = (char *)buf;
  b.len = n;
  u->obj.rt->stats.bytes_written += n; /* sent now, or queued below */
  int rc = uv_udp_try_send(&u->h, &b, 1, to);
  if (rc >= 0) return 0;
  u->obj.rt->stats.bytes_written -= n;
  if (rc != UV_EAGAIN) return rc;
  sreq_t *r = malloc(sizeof(*r) + n);
  if (!r) return UV_ENOMEM;
  memcpy(r->data, buf, n);
  b.base = r->data;
  rc = uv_udp_send(&r->req, &u->h, &b, 1, to, on_sent);
  if (rc)
    free(r);
  else
    u->obj.rt->stats.bytes_written += n;
  return rc;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  loom_udp_t *u = h->data;
  (void)hint;
  *buf = uv_buf_init(u->buf, sizeof(u->buf));
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                    const struct sockaddr *addr, unsigned flags) {
  loom_udp_t *u = h->data;
  (void)buf;
  (void)flags;
  if (nread == 0 && addr == NULL) return; /* nothing more to read */
  if (!u->receiver) return;
  if (nread > 0) u->obj.rt->stats.bytes_read += (uint64_t)nread;
  if (nread >= 0) {
    size_t k = (size_t)nread < u->dst_len ? (size_t)nread : u->dst_len;
    memcpy(u->dst, u->buf, k);
    if (u->from && addr)
      memcpy(u->from, addr,
             addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                         : sizeof(struct sockaddr_in));
    u->got = (ssize_t)k;
  } else {
    u->got = nread;
  }
  uv_udp_recv_stop(&u->h);
  loom__wake(u->receiver, 0);
}

static void unhook(loom__waiter_t *w) {
  loom_udp_t *u = loom__container_of(w, uwait_t, w)->u;
  uv_udp_recv_stop(&u->h);
  u->receiver = NULL;
}

ssize_t loom_udp_recv(loom_udp_t *hd, void *buf, size_t n,
                      struct sockaddr_storage *from) {
  if (!hd || (!buf && n)) return UV_EINVAL;
  loom_udp_t *u = uget(hd);
  if (!u) return UV_EBADF;
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  if (u->receiver) return UV_EBUSY;
  u->dst = buf;
  u->dst_len = n;
  u->from = from;
  rc = uv_udp_recv_start(&u->h, on_alloc, on_recv);
  if (rc) return rc;
  uwait_t wt = {.w = {.task = self, .cancel = unhook}, .u = u};
  u->receiver = &wt.w;
  loom__obj_ref(&u->obj); /* a close while we wait must not free u under us */
  loom__wait_on(&wt.w, LOOM__W_READ, u);
  rc = loom__park(&wt.w);
  u->receiver = NULL;
  ssize_t got = u->got;
  loom__obj_unref(&u->obj);
  return rc ? rc : got;
}

int loom_udp_close(loom_udp_t *hd) {
  if (!hd) return UV_EINVAL;
  loom_udp_t *u = uget(hd);
  if (!u) return UV_EBADF;
  udp_close(u);
  return 0;
}
