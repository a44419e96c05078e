/* Task dumps (loom_dump, loom_dump_task), cancelling by id, names of
 * objects (loom_debug_name) and the dump signal (loom_dump_signal).
 *
 * A dump reads the runtime's tasks where they are: the unfinished ones on
 * rt->alive, and the finished ones still to be joined in the handle table.
 * It never suspends and never allocates per task but one array (the tree is
 * built over it); it runs from a task, from host code on the runtime's
 * thread, or from the loop (the dump signal's callback), and in each case
 * no task of the runtime is running but, at most, the caller.
 *
 * The tree: a task belongs under the opener of its group if it is in one,
 * else under the task that spawned it, if that one is still in the dump;
 * else at the top. So children of a gather or of a server's accept loop sit
 * under the task that spawned them, and a group's children under its opener,
 * as `asyncio pstree` prints them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "loom/debug.h"
#include "sync/internal.h" /* a lock's holder */

#define NAME_MAX_BYTES 32
#define MAX_FRAMES 48

typedef struct {
  const void *obj;
  char name[NAME_MAX_BYTES];
} named_t;

struct loom__debug_s {
  named_t *names; /* open addressing by obj, NULL obj = empty */
  size_t cap, n;  /* cap: a power of two or 0 */
  uv_signal_t sig;
  int signum;   /* the dump signal, 0: none */
  int sig_open; /* sig is initialised and not closed */
};

static struct loom__debug_s *debug_of(loom_t *rt) {
  if (!rt->debug) rt->debug = calloc(1, sizeof(*rt->debug));
  return rt->debug;
}

/* ---- names ---------------------------------------------------------------- */

static size_t hash_ptr(const void *p) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return (size_t)x;
}

static named_t *name_slot(struct loom__debug_s *d, const void *obj) {
  if (!d || !d->cap) return NULL;
  for (size_t i = hash_ptr(obj) & (d->cap - 1);; i = (i + 1) & (d->cap - 1))
    if (d->names[i].obj == obj || !d->names[i].obj) return &d->names[i];
}

const char *loom__debug_name_of(loom_t *rt, const void *obj) {
  named_t *s = name_slot(rt->debug, obj);
  return s && s->obj ? s->name : NULL;
}

static int names_grow(struct loom__debug_s *d) {
  size_t cap = d->cap ? d->cap * 2 : 16;
  named_t *old = d->names, *nw = calloc(cap, sizeof(*nw));
  if (!nw) return UV_ENOMEM;
  size_t oldcap = d->cap;
  d->names = nw;
  d->cap = cap;
  for (size_t i = 0; i < oldcap; i++)
    if (old[i].obj) *name_slot(d, old[i].obj) = old[i];
  free(old);
  return 0;
}

/* Removes the entry at s, re-placing the entries after it in its run. */
static void name_remove(struct loom__debug_s *d, named_t *s) {
  size_t i = (size_t)(s - d->names);
  d->names[i].obj = NULL;
  d->n--;
  for (size_t j = (i + 1) & (d->cap - 1); d->names[j].obj; j = (j + 1) & (d->cap - 1)) {
    named_t e = d->names[j];
    d->names[j].obj = NULL;
    *name_slot(d, e.obj) = e;
  }
}

int loom_debug_name(const void *obj, const char *name) {
  if (!obj) return UV_EINVAL;
  loom_t *rt = loom__handle_rt();
  if (!rt) return LOOM_ENOTASK;
  struct loom__debug_s *d = name ? debug_of(rt) : rt->debug;
  if (!d) return name ? UV_ENOMEM : 0;
  named_t *s = name_slot(d, obj);
  if (!name) {
    if (s && s->obj) name_remove(d, s);
    return 0;
  }
  if (!s || !s->obj) {
    if ((d->n + 1) * 2 > d->cap) {
      if (names_grow(d)) return UV_ENOMEM;
    }
    s = name_slot(d, obj);
    s->obj = obj;
    d->n++;
  }
  snprintf(s->name, sizeof(s->name), "%s", name);
  return 0;
}

void loom__debug_free(loom_t *rt) {
  if (!rt->debug) return;
  free(rt->debug->names);
  free(rt->debug);
  rt->debug = NULL;
}

/* ---- output ------------------------------------------------------------------ */

typedef struct {
  int fd;
  int err;
  void (*put)(void *ctx, const char *p, size_t n); /* instead of fd */
  void *put_ctx;
  void *caller;    /* the return address of the dump call: the running
                   task's backtrace starts there */
  loom_task_t **v; /* a whole dump's tasks, sorted by id (collect), or NULL */
  size_t nv;
  size_t len;
  char buf[8192];
} out_t;

static void out_flush(out_t *o) {
  size_t off = 0;
  if (o->put) {
    if (o->len) o->put(o->put_ctx, o->buf, o->len);
    o->len = 0;
    return;
  }
  while (off < o->len && !o->err) {
    ssize_t n = write(o->fd, o->buf + off, o->len - off);
    if (n >= 0) {
      off += (size_t)n;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      /* A non-blocking descriptor (a pipe libuv shares): wait a little for
       * room, rather than lose the dump. */
      struct pollfd p = {.fd = o->fd, .events = POLLOUT};
      if (poll(&p, 1, 1000) <= 0) o->err = UV_EAGAIN;
    } else if (errno != EINTR) {
      o->err = -errno;
    }
  }
  o->len = 0;
}

static void out_mem(out_t *o, const char *s, size_t n) {
  while (n) {
    if (o->len == sizeof(o->buf)) out_flush(o);
    if (o->err) return;
    size_t k = sizeof(o->buf) - o->len;
    if (k > n) k = n;
    memcpy(o->buf + o->len, s, k);
    o->len += k;
    s += k;
    n -= k;
  }
}

static void out_str(out_t *o, const char *s) { out_mem(o, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void out_fmt(out_t *o, const char *fmt,
                                                          ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (n < 0) return;
  out_mem(o, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* s as a JSON string, quotes included. */
static void out_json_str(out_t *o, const char *s) {
  out_str(o, "\"");
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      out_fmt(o, "\\%c", *p);
    else if (*p < 0x20 || *p == 0x7f)
      out_fmt(o, "\\u%04x", *p);
    else
      out_mem(o, (const char *)p, 1);
  }
  out_str(o, "\"");
}

/* ---- wait reasons in words ------------------------------------------------ */

const char *loom__wait_kind_name(unsigned kind) {
  static const char *const names[LOOM__W_KINDS] = {
      [LOOM__W_UNKNOWN] = "unknown",
      [LOOM__W_SLEEP] = "sleep",
      [LOOM__W_LOCK] = "lock",
      [LOOM__W_SEM] = "semaphore",
      [LOOM__W_QUEUE_GET] = "queue get",
      [LOOM__W_QUEUE_PUT] = "queue put",
      [LOOM__W_QUEUE_JOIN] = "queue join",
      [LOOM__W_EVENT] = "event",
      [LOOM__W_COND] = "condition",
      [LOOM__W_BARRIER] = "barrier",
      [LOOM__W_CHANNEL_SEND] = "channel send",
      [LOOM__W_CHANNEL_RECV] = "channel receive",
      [LOOM__W_FUTURE] = "future",
      [LOOM__W_READ] = "read",
      [LOOM__W_WRITE] = "write",
      [LOOM__W_DRAIN] = "drain",
      [LOOM__W_ACCEPT] = "accept",
      [LOOM__W_JOIN] = "join",
      [LOOM__W_GATHER] = "gather",
      [LOOM__W_WAIT] = "wait",
      [LOOM__W_AS_COMPLETED] = "as_completed",
      [LOOM__W_GROUP] = "group wait",
      [LOOM__W_THREAD] = "thread job",
      [LOOM__W_PROCESS] = "child process",
      [LOOM__W_FILE] = "file",
      [LOOM__W_SIGNAL] = "signal",
      [LOOM__W_FD] = "fd",
      [LOOM__W_HTTP] = "HTTP request",
      [LOOM__W_REQ] = "request",
  };
  return kind < LOOM__W_KINDS ? names[kind] : "unknown";
}

/* The peer (or, failing that, the local) address of a stream's libuv
 * handle, into buf; "" if it has none. local: the local address only (a
 * connecting socket has no peer yet). */
static void peer_of(const uv_handle_t *h, char *buf, size_t n, int local) {
  buf[0] = 0;
  if (h->type == UV_TCP) {
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    int rc = local
                 ? UV_ENOTCONN
                 : uv_tcp_getpeername((const uv_tcp_t *)h, (struct sockaddr *)&ss, &len);
    if (rc) {
      len = sizeof(ss);
      rc = uv_tcp_getsockname((const uv_tcp_t *)h, (struct sockaddr *)&ss, &len);
    }
    if (rc) return;
    char ip[64] = "";
    int port = 0;
    if (ss.ss_family == AF_INET) {
      const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
      uv_ip4_name(a, ip, sizeof(ip));
      port = ntohs(a->sin_port);
      snprintf(buf, n, "%s:%d", ip, port);
    } else if (ss.ss_family == AF_INET6) {
      const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
      uv_ip6_name(a, ip, sizeof(ip));
      port = ntohs(a->sin6_port);
      snprintf(buf, n, "[%s]:%d", ip, port);
    }
  } else if (h->type == UV_NAMED_PIPE) {
    size_t len = n;
    if (uv_pipe_getpeername((const uv_pipe_t *)h, buf, &len) || !len) {
      len = n;
      if (uv_pipe_getsockname((const uv_pipe_t *)h, buf, &len)) buf[0] = 0;
    }
    if (len < n) buf[len] = 0;
    buf[n - 1] = 0;
  } else if (h->type == UV_UDP) {
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[64] = "";
    if (uv_udp_getsockname((const uv_udp_t *)h, (struct sockaddr *)&ss, &len)) return;
    if (ss.ss_family == AF_INET) {
      uv_ip4_name((const struct sockaddr_in *)&ss, ip, sizeof(ip));
      snprintf(buf, n, "%s:%d", ip, ntohs(((const struct sockaddr_in *)&ss)->sin_port));
    } else if (ss.ss_family == AF_INET6) {
      uv_ip6_name((const struct sockaddr_in6 *)&ss, ip, sizeof(ip));
      snprintf(buf, n, "[%s]:%d", ip,
               ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port));
    }
  } else if (h->type == UV_TTY) {
    snprintf(buf, n, "tty");
  }
}

static const char *fs_name(uv_fs_type t) {
  switch (t) {
  case UV_FS_OPEN: return "open";
  case UV_FS_CLOSE: return "close";
  case UV_FS_READ: return "read";
  case UV_FS_WRITE: return "write";
  case UV_FS_STAT: return "stat";
  case UV_FS_LSTAT: return "lstat";
  case UV_FS_FSTAT: return "fstat";
  case UV_FS_UNLINK: return "unlink";
  case UV_FS_RENAME: return "rename";
  case UV_FS_MKDIR: return "mkdir";
  case UV_FS_RMDIR: return "rmdir";
  case UV_FS_FSYNC: return "fsync";
  case UV_FS_SCANDIR: return "scandir";
  case UV_FS_OPENDIR: return "opendir";
  case UV_FS_READDIR: return "readdir";
  case UV_FS_SENDFILE: return "sendfile";
  default: return "call";
  }
}

/* A libuv request in words: its kind, and what it is about. */
static void req_describe(unsigned kind, const void *obj, char *buf, size_t n) {
  const uv_req_t *r = obj;
  if (!r) {
    snprintf(buf, n, "%s", kind == LOOM__W_FILE ? "file call" : "request");
    return;
  }
  char where[128] = "";
  switch (r->type) {
  case UV_FS: {
    const uv_fs_t *f = obj;
    if (f->path)
      snprintf(where, sizeof(where), " '%s'", f->path);
    else if (f->fs_type == UV_FS_READ || f->fs_type == UV_FS_WRITE ||
             f->fs_type == UV_FS_FSYNC || f->fs_type == UV_FS_FSTAT ||
             f->fs_type == UV_FS_CLOSE)
      snprintf(where, sizeof(where), " on fd %d", (int)f->file);
    snprintf(buf, n, "file %s%s (%p)", fs_name(f->fs_type), where, obj);
    break;
  }
  case UV_WORK: snprintf(buf, n, "file call on a thread (%p)", obj); break;
  case UV_GETADDRINFO: {
    const uv_getaddrinfo_t *g = obj;
    if (g->hostname) snprintf(where, sizeof(where), " of '%s'", g->hostname);
    snprintf(buf, n, "DNS lookup%s (%p)", where, obj);
    break;
  }
  case UV_GETNAMEINFO: snprintf(buf, n, "DNS reverse lookup (%p)", obj); break;
  case UV_CONNECT: {
    /* The target is nowhere to read (a connecting socket has no peer):
     * the local end says which socket it is. */
    const uv_connect_t *c = obj;
    if (c->handle) peer_of((const uv_handle_t *)c->handle, where, sizeof(where), 1);
    snprintf(buf, n, "connect%s%s (%p)", where[0] ? " from " : "", where, obj);
    break;
  }
  case UV_SHUTDOWN: snprintf(buf, n, "shutdown (%p)", obj); break;
  default: snprintf(buf, n, "%s request (%p)", uv_req_type_name(r->type), obj); break;
  }
}

/* Whether obj, which a wait of this kind names, is a live object of the
 * runtime's handle table, for the kinds whose words the dump reads from
 * the object (1 for the others). A park site that forgot loom__wait_on
 * leaves garbage in kind and obj: a dump must not follow it. *handle gets
 * the object's public handle (what the program holds, and names), or 0. */
static int obj_alive(loom_t *rt, unsigned kind, const void *obj, uint64_t *handle) {
  *handle = 0;
  uint32_t want = 0, also = 0;
  switch (kind) {
  case LOOM__W_READ: want = LOOM__H_STREAM, also = LOOM__H_UDP; break;
  case LOOM__W_WRITE:
  case LOOM__W_DRAIN: want = LOOM__H_STREAM; break;
  case LOOM__W_ACCEPT: want = LOOM__H_LISTENER; break;
  case LOOM__W_FD: want = LOOM__H_FD; break;
  case LOOM__W_SIGNAL: want = LOOM__H_SIGNAL; break;
  case LOOM__W_PROCESS: want = LOOM__H_PROCESS; break;
  case LOOM__W_JOIN: want = LOOM__H_TASK; break;
  default: return 1;
  }
  for (uint32_t i = 0; i < rt->nhandles; i++) {
    const loom__hslot_t *h = &rt->handles[i];
    if (h->obj == obj && (h->kind == want || (also && h->kind == also))) {
      *handle = (uint64_t)h->gen << 32 | (i + 1);
      return 1;
    }
  }
  return 0;
}

/* The debug name of what a wait names: the object's, or that of the
 * public handle the program holds for it (a stream, a UDP socket...). */
static const char *wait_obj_name(loom_t *rt, const void *obj, uint64_t handle) {
  const char *name = obj ? loom__debug_name_of(rt, obj) : NULL;
  if (!name && handle) name = loom__debug_name_of(rt, (const void *)(uintptr_t)handle);
  return name;
}

static const char *task_wait_obj_name(loom_task_t *t) {
  loom__waiter_t *w = t->wait;
  if (!w || !w->obj) return NULL;
  uint64_t handle;
  unsigned kind = w->kind < LOOM__W_KINDS ? w->kind : LOOM__W_UNKNOWN;
  if (!obj_alive(t->rt, kind, w->obj, &handle)) return NULL;
  return wait_obj_name(t->rt, w->obj, handle);
}

static loom_task_t *task_by_id(loom_t *rt, uint64_t id);
static loom_task_t *find_id(loom_task_t **v, size_t n, uint64_t id);

/* Who holds the lock a task waits for, after its description in buf. The
 * holder is looked up in v (sorted by id) when a whole dump has it: with
 * 10k tasks waiting for one lock, a walk of every task per waiter would
 * make the dump quadratic. */
static void lock_holder(loom_t *rt, loom_task_t **v, size_t nv, const loom__lock_t *l,
                        char *buf, size_t n) {
  size_t len = strlen(buf);
  if (!l->locked || len >= n) return;
  loom_task_t *h = !l->holder ? NULL
                   : v        ? find_id(v, nv, l->holder)
                              : task_by_id(rt, l->holder);
  if (!l->holder)
    snprintf(buf + len, n - len, " held by host code");
  else if (h && h->state != LOOM__DONE)
    snprintf(buf + len, n - len, " held by task %" PRIu64 " '%s'", l->holder,
             loom__task_name(h));
  else /* any task may release it: one that ended holding it never will.
          (Ids are per runtime and a lock is one runtime's, docs/sync.md:
          a holder from another runtime, which is misuse, cannot be told
          from one of ours.) */
    snprintf(buf + len, n - len, " held by a finished task %" PRIu64, l->holder);
}

/* Set once per process by the HTTP client; read by dumps on any thread
 * (the monitor's, a signal's), hence atomic. */
static _Atomic(loom__http_describe_fn *) http_describe;

void loom__set_http_describe(loom__http_describe_fn *fn) {
  atomic_store_explicit(&http_describe, fn, memory_order_release);
}

static char *describe_wait(loom_task_t *t, loom_task_t **v, size_t nv, char *buf,
                           size_t n) {
  buf[0] = 0;
  loom__waiter_t *w = t->wait;
  if (t->state != LOOM__PARKED || !w) return buf;
  loom_t *rt = t->rt;
  unsigned kind = w->kind < LOOM__W_KINDS ? w->kind : LOOM__W_UNKNOWN;
  const char *what = loom__wait_kind_name(kind);
  const void *obj = w->obj;
  char peer[128];
  uint64_t handle = 0;
  if (obj && !obj_alive(rt, kind, obj, &handle)) {
    snprintf(buf, n, "%s %p", what, obj);
    return buf;
  }
  const char *name = wait_obj_name(rt, obj, handle);
  switch (kind) {
  case LOOM__W_SLEEP: {
    uint64_t deadline = (uint64_t)(uintptr_t)obj;
    int64_t left = (int64_t)(deadline - uv_now(rt->loop));
    /* loom_sleep(UINT64_MAX) and the like: the deadline saturated. */
    if (deadline >= UINTPTR_MAX - (uintptr_t)UINT32_MAX)
      snprintf(buf, n, "sleep (no deadline)");
    else
      snprintf(buf, n, "sleep until %+" PRId64 " ms", left);
    break;
  }
  case LOOM__W_READ:
  case LOOM__W_WRITE:
  case LOOM__W_DRAIN:
  case LOOM__W_ACCEPT: {
    const uv_handle_t *h = obj;
    int udp = h && h->type == UV_UDP;
    if (h)
      peer_of(h, peer, sizeof(peer), 0);
    else
      peer[0] = 0;
    /* A UDP socket's wait is a receive (udp.c parks as a read). */
    snprintf(buf, n, "%s on %s%s%s%s%s%s (%p)", udp ? "receive" : what,
             kind == LOOM__W_ACCEPT ? "listener"
             : udp                  ? "UDP socket"
                                    : "stream",
             peer[0] ? " " : "", peer, name ? " '" : "", name ? name : "",
             name ? "'" : "", obj);
    break;
  }
  case LOOM__W_JOIN: {
    const loom_task_t *j = obj;
    if (j)
      snprintf(buf, n, "join of task %" PRIu64 " '%s'", j->fiber.id,
               loom__task_name((loom_task_t *)j));
    else
      snprintf(buf, n, "join");
    break;
  }
  case LOOM__W_GATHER:
  case LOOM__W_WAIT:
    snprintf(buf, n, "%s of %zu task(s)", what, (size_t)(uintptr_t)obj);
    break;
  case LOOM__W_FILE:
  case LOOM__W_REQ: req_describe(kind, obj, buf, n); break;
  case LOOM__W_SIGNAL:
    peer[0] = 0;
    if (obj) loom__signal_describe(obj, peer, sizeof(peer));
    snprintf(buf, n, "signal %s%s(%p)", peer, peer[0] ? " " : "", obj);
    break;
  case LOOM__W_PROCESS:
    /* The process object starts with its uv_process_t; a waiter's child
     * has not been reaped yet, so libuv's pid is still set. */
    snprintf(buf, n, "child process pid %d (%p)",
             obj ? ((const uv_process_t *)obj)->pid : 0, obj);
    break;
  case LOOM__W_HTTP:
    peer[0] = 0;
    if (obj) {
      loom__http_describe_fn *fn = atomic_load_explicit(&http_describe,
                                                        memory_order_acquire);
      if (fn) fn(obj, peer, sizeof(peer));
    }
    snprintf(buf, n, "%s%s%s (%p)", what, peer[0] ? " " : "", peer, obj);
    break;
  case LOOM__W_FD: {
    uv_os_fd_t fd = -1;
    if (obj) uv_fileno((const uv_handle_t *)obj, &fd);
    snprintf(buf, n, "fd %d", (int)fd);
    break;
  }
  default:
    if (name)
      snprintf(buf, n, "%s '%s' (%p)", what, name, obj);
    else if (obj)
      snprintf(buf, n, "%s %p", what, obj);
    else
      snprintf(buf, n, "%s", what);
    if (kind == LOOM__W_LOCK && obj) lock_holder(rt, v, nv, obj, buf, n);
    break;
  }
  return buf;
}

char *loom__wait_describe(loom_task_t *t, char *buf, size_t n) {
  return describe_wait(t, NULL, 0, buf, n);
}

char *loom__wait_describe_in(loom_task_t *t, loom_task_t **v, size_t nv, char *buf,
                             size_t n) {
  return describe_wait(t, v, nv, buf, n);
}

/* ---- collecting the tasks ---------------------------------------------------- */

static const char *state_name(const loom_task_t *t) {
  switch (t->state) {
  case LOOM__RUNNING: return "running";
  case LOOM__READY: return "ready";
  case LOOM__PARKED: return "parked";
  case LOOM__DONE: return "finished";
  default: return "?";
  }
}

static int by_id(const void *a, const void *b) {
  uint64_t x = (*(loom_task_t *const *)a)->fiber.id,
           y = (*(loom_task_t *const *)b)->fiber.id;
  return x < y ? -1 : x > y;
}

/* Every task of rt a dump shows, sorted by id, into a malloc'd array. */
static loom_task_t **collect(loom_t *rt, size_t *count) {
  size_t n = rt->nalive;
  for (uint32_t i = 0; i < rt->nhandles; i++) {
    loom_task_t *t = loom__handle_at(rt, i, LOOM__H_TASK);
    if (t && t->state == LOOM__DONE && !t->consumed) n++;
  }
  loom_task_t **v = malloc((n ? n : 1) * sizeof(*v));
  if (!v) return NULL;
  size_t k = 0;
  loom__link_t *l;
  loom__list_foreach(l, &rt->alive) {
    if (k == n) break;
    v[k++] = loom__list_entry(l, loom_task_t, alive_link);
  }
  for (uint32_t i = 0; i < rt->nhandles && k < n; i++) {
    loom_task_t *t = loom__handle_at(rt, i, LOOM__H_TASK);
    if (t && t->state == LOOM__DONE && !t->consumed) v[k++] = t;
  }
  qsort(v, k, sizeof(*v), by_id);
  *count = k;
  return v;
}

/* The index of the first task of v (sorted by id) whose id is >= id. */
static size_t lower_bound(loom_task_t **v, size_t n, uint64_t id) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (v[mid]->fiber.id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static loom_task_t *find_id(loom_task_t **v, size_t n, uint64_t id) {
  size_t lo = lower_bound(v, n, id);
  return lo < n && v[lo]->fiber.id == id ? v[lo] : NULL;
}

/* The id of the task t sits under in the tree, 0 for the top. */
static uint64_t parent_of(loom_task_t **v, size_t n, const loom_task_t *t) {
  if (t->owner) {
    loom_task_t *o = loom__group_opener(t->owner);
    if (o && o != t && find_id(v, n, o->fiber.id) == o) return o->fiber.id;
  }
  if (t->parent_id && t->parent_id != t->fiber.id && find_id(v, n, t->parent_id))
    return t->parent_id;
  return 0;
}

/* The running task is the one dumping: its frames inside the dump are
 * left out, so its backtrace starts at the call of loom_dump. */
static int first_frame(const out_t *o, const loom_task_t *t, void **pcs, int nf) {
  if (t->state != LOOM__RUNNING || !o->caller) return 0;
  for (int i = 0; i < nf; i++)
    if (pcs[i] == o->caller) return i;
  return 0;
}

/* An entry point's name, without the "+0x0". */
static char *entry_name(loom__syms_t *sy, const loom_task_t *t, char *buf, size_t n) {
  loom__syms_name(sy, (void *)(uintptr_t)t->fn, 0, buf, n);
  char *z = strstr(buf, "+0x0 ");
  if (z) memmove(z, z + 4, strlen(z + 4) + 1);
  return buf;
}

/* ---- one task ---------------------------------------------------------------- */

static void task_text(out_t *o, loom__syms_t *sy, loom_task_t *t, int depth,
                      unsigned flags) {
  loom_t *rt = t->rt;
  char ind[80];
  int d = depth > 30 ? 30 : depth;
  memset(ind, ' ', (size_t)d * 2);
  ind[d * 2] = 0;
  char why[256], sym[256];
  out_fmt(o, "%stask %" PRIu64 " '%s'%s %s%s", ind, t->fiber.id, loom__task_name(t),
          t->system ? " [loom]" : "", state_name(t), t->cancelled ? " (cancelled)" : "");
  if (t->state == LOOM__PARKED && t->wait) {
    uint32_t waited = (uint32_t)uv_now(rt->loop) - t->wait->since;
    out_fmt(o, " for %" PRIu32 " ms: %s", waited,
            describe_wait(t, o->v, o->nv, why, sizeof(why)));
  } else if (t->state == LOOM__DONE) {
    out_fmt(o, ", status %d (%s), not joined", t->status, loom_err_name(t->status));
  }
  out_str(o, "\n");
  if (t->owner) out_fmt(o, "%s    in group %p\n", ind, t->owner);
  out_fmt(o, "%s    entry %s\n", ind, entry_name(sy, t, sym, sizeof(sym)));
  if (t->spawn_pc)
    out_fmt(o, "%s    spawned at %s\n", ind,
            loom__syms_name(sy, t->spawn_pc, 1, sym, sizeof(sym)));
  if (flags & LOOM_DUMP_NO_STACKS) return;
  void *pcs[MAX_FRAMES];
  int nf = loom__backtrace_task(t, pcs, MAX_FRAMES), i = first_frame(o, t, pcs, nf);
  for (int k = 0; i < nf; i++, k++)
    out_fmt(o, "%s    #%d %s\n", ind, k,
            loom__syms_name(sy, pcs[i], 1, sym, sizeof(sym)));
}

static void task_json(out_t *o, loom__syms_t *sy, loom_task_t **v, size_t n,
                      loom_task_t *t, unsigned flags) {
  loom_t *rt = t->rt;
  char why[256], sym[256];
  out_fmt(o, "{\"id\":%" PRIu64 ",\"name\":", t->fiber.id);
  out_json_str(o, loom__task_name(t));
  if (t->system) out_str(o, ",\"system\":true");
  out_fmt(o, ",\"state\":\"%s\",\"cancelled\":%s,\"parent\":%" PRIu64, state_name(t),
          t->cancelled ? "true" : "false", v ? parent_of(v, n, t) : t->parent_id);
  if (t->owner) out_fmt(o, ",\"group\":\"%p\"", t->owner);
  if (t->state == LOOM__DONE) out_fmt(o, ",\"status\":%d", t->status);
  if (t->state == LOOM__PARKED && t->wait) {
    loom__waiter_t *w = t->wait;
    unsigned kind = w->kind < LOOM__W_KINDS ? w->kind : 0;
    const char *name = task_wait_obj_name(t);
    out_str(o, ",\"wait\":{\"kind\":");
    out_json_str(o, loom__wait_kind_name(kind));
    out_fmt(o, ",\"object\":\"%p\"", w->obj);
    if (name) {
      out_str(o, ",\"object_name\":");
      out_json_str(o, name);
    }
    out_str(o, ",\"text\":");
    out_json_str(o, describe_wait(t, o->v, o->nv, why, sizeof(why)));
    out_fmt(o, ",\"waited_ms\":%" PRIu32 "}", (uint32_t)uv_now(rt->loop) - w->since);
  }
  out_str(o, ",\"entry\":");
  out_json_str(o, entry_name(sy, t, sym, sizeof(sym)));
  if (t->spawn_pc) {
    out_str(o, ",\"spawned_at\":");
    out_json_str(o, loom__syms_name(sy, t->spawn_pc, 1, sym, sizeof(sym)));
  }
  if (!(flags & LOOM_DUMP_NO_STACKS)) {
    void *pcs[MAX_FRAMES];
    int nf = loom__backtrace_task(t, pcs, MAX_FRAMES), first = first_frame(o, t, pcs, nf);
    out_str(o, ",\"stack\":[");
    for (int i = first; i < nf; i++) {
      if (i > first) out_str(o, ",");
      out_json_str(o, loom__syms_name(sy, pcs[i], 1, sym, sizeof(sym)));
    }
    out_str(o, "]");
  }
  out_str(o, "}");
}

/* ---- stats -------------------------------------------------------------------- */

static const char *const late_names[LOOM_STAT_LATE_BUCKETS] = {
    "<0.1ms", "<1ms", "<2ms", "<5ms", "<10ms", "<50ms", "<100ms", ">=100ms"};

static void stats_text(out_t *o, const loom_stats_t *s) {
  out_fmt(o,
          "stats: tasks live %" PRIu64 ", peak %" PRIu64 ", spawned %" PRIu64
          "; switches %" PRIu64 ", passes %" PRIu64 "\n",
          s->tasks_live, s->tasks_peak, s->tasks_spawned, s->switches, s->passes);
  out_fmt(o, "  timer lateness: worst %" PRIu64 " us;", s->timer_late_max_us);
  for (int i = 0; i < LOOM_STAT_LATE_BUCKETS; i++)
    out_fmt(o, " %s %" PRIu64, late_names[i], s->timer_late_hist[i]);
  out_fmt(o,
          "\n  stacks mapped %" PRIu64 ", cached %" PRIu64 "; bytes read %" PRIu64
          ", written %" PRIu64 "\n  open:",
          s->stacks_mapped, s->stacks_cached, s->bytes_read, s->bytes_written);
  int any = 0;
  for (int k = 0; k < LOOM_STAT_KINDS; k++) {
    if (!s->handles_by_kind[k]) continue;
    out_fmt(o, "%s %s %" PRIu32, any ? "," : "", loom_stat_kind_name(k),
            s->handles_by_kind[k]);
    any = 1;
  }
  out_str(o, any ? "\n" : " nothing\n");
}

static void stats_json(out_t *o, const loom_stats_t *s) {
  out_fmt(o,
          "{\"tasks_live\":%" PRIu64 ",\"tasks_peak\":%" PRIu64
          ",\"tasks_spawned\":%" PRIu64 ",\"switches\":%" PRIu64 ",\"passes\":%" PRIu64
          ",\"timer_late_max_us\":%" PRIu64 ",\"timer_late_hist\":{",
          s->tasks_live, s->tasks_peak, s->tasks_spawned, s->switches, s->passes,
          s->timer_late_max_us);
  for (int i = 0; i < LOOM_STAT_LATE_BUCKETS; i++)
    out_fmt(o, "%s\"%s\":%" PRIu64, i ? "," : "", late_names[i], s->timer_late_hist[i]);
  out_fmt(o,
          "},\"stacks_mapped\":%" PRIu64 ",\"stacks_cached\":%" PRIu64
          ",\"bytes_read\":%" PRIu64 ",\"bytes_written\":%" PRIu64 ",\"handles\":{",
          s->stacks_mapped, s->stacks_cached, s->bytes_read, s->bytes_written);
  for (int k = 0; k < LOOM_STAT_KINDS; k++)
    out_fmt(o, "%s\"%s\":%" PRIu32, k ? "," : "", loom_stat_kind_name(k),
            s->handles_by_kind[k]);
  out_str(o, "}}");
}

/* ---- the public calls ----------------------------------------------------------- */

static int check_args(loom_t **rt, int fd, unsigned flags) {
  if (fd < 0 || (flags & ~(LOOM_DUMP_JSON | LOOM_DUMP_NO_STACKS))) return UV_EINVAL;
  if (!*rt) *rt = loom__handle_rt();
  if (!*rt) return LOOM_ENOTASK;
  /* The dump reads the task lists unsynchronised and resumes parked tasks
   * to have them unwind their stacks: only on the runtime's own thread. */
  if (!loom__on_own_thread(*rt)) return UV_EINVAL;
  return 0;
}

static int dump_all(loom_t *rt, out_t *o, loom__syms_t *sy, unsigned flags) {
  size_t n = 0;
  loom_task_t **v = collect(rt, &n);
  if (!v) return UV_ENOMEM;
  o->v = v; /* for the lock holders' lookups */
  o->nv = n;
  loom_stats_t st;
  loom_stats_get(rt, &st);
  if (flags & LOOM_DUMP_JSON) {
    out_fmt(o, "{\"loop_time_ms\":%" PRIu64 ",\"tasks\":[", uv_now(rt->loop));
    for (size_t i = 0; i < n; i++) {
      if (i) out_str(o, ",");
      task_json(o, sy, v, n, v[i], flags);
    }
    out_str(o, "],\"stats\":");
    stats_json(o, &st);
    out_str(o, "}\n");
    o->v = NULL;
    free(v);
    return 0;
  }
  out_fmt(o, "loom: task dump, %zu task(s), loop time %" PRIu64 " ms\n", n,
          uv_now(rt->loop));
  /* The tree: children by parent, in id order, walked depth first without
   * recursion (a chain of spawns can be as deep as there are tasks). */
  size_t *first = malloc(3 * (n ? n : 1) * sizeof(size_t));
  if (!first) {
    o->v = NULL;
    free(v);
    return UV_ENOMEM;
  }
  size_t *next = first + n, *stack = first + 2 * n;
  const size_t none = (size_t)-1;
  size_t top_first = none, top_last = none;
  for (size_t i = 0; i < n; i++) first[i] = next[i] = none;
  /* Appending in id order: keep the last child of each in `stack`. */
  for (size_t i = 0; i < n; i++) stack[i] = none;
  for (size_t i = 0; i < n; i++) {
    uint64_t pid = parent_of(v, n, v[i]);
    loom_task_t *p = pid ? find_id(v, n, pid) : NULL;
    if (!p) {
      if (top_last == none)
        top_first = i;
      else
        next[top_last] = i;
      top_last = i;
      continue;
    }
    size_t pi = lower_bound(v, n, pid); /* p's index */
    if (stack[pi] == none)
      first[pi] = i;
    else
      next[stack[pi]] = i;
    stack[pi] = i;
  }
  /* Depth-first: `stack` now holds the path (indices), depth = its size. */
  size_t depth = 0;
  size_t cur = top_first;
  while (cur != none) {
    task_text(o, sy, v[cur], (int)depth, flags);
    if (first[cur] != none) {
      stack[depth++] = cur;
      cur = first[cur];
      continue;
    }
    while (cur != none && next[cur] == none) cur = depth ? stack[--depth] : none;
    if (cur != none) cur = next[cur];
  }
  free(first);
  stats_text(o, &st);
  o->v = NULL;
  free(v);
  return 0;
}

static loom_task_t *task_by_id(loom_t *rt, uint64_t id) {
  loom__link_t *l;
  loom__list_foreach(l, &rt->alive) {
    loom_task_t *t = loom__list_entry(l, loom_task_t, alive_link);
    if (t->fiber.id == id) return t;
  }
  for (uint32_t i = 0; i < rt->nhandles; i++) {
    loom_task_t *t = loom__handle_at(rt, i, LOOM__H_TASK);
    if (t && t->fiber.id == id && t->state == LOOM__DONE && !t->consumed) return t;
  }
  return NULL;
}

/* Every task (id 0) or one into o, which the caller has set up; frees o. */
static int dump_out(loom_t *rt, out_t *o, uint64_t id, unsigned flags) {
  int rc = 0;
  loom_task_t *t = id ? task_by_id(rt, id) : NULL;
  if (id && !t) {
    free(o);
    return UV_ENOENT;
  }
  o->err = 0;
  o->len = 0;
  loom__syms_t *sy = loom__syms_open();
  if (!t) {
    rc = dump_all(rt, o, sy, flags);
  } else if (flags & LOOM_DUMP_JSON) {
    task_json(o, sy, NULL, 0, t, flags);
    out_str(o, "\n");
  } else {
    task_text(o, sy, t, 0, flags);
  }
  loom__syms_close(sy);
  out_flush(o);
  if (!rc) rc = o->err;
  free(o);
  return rc;
}

static int dump_fd(loom_t *rt, int fd, uint64_t id, unsigned flags, void *caller) {
  int rc = check_args(&rt, fd, flags);
  if (rc) return rc;
  out_t *o = calloc(1, sizeof(*o));
  if (!o) return UV_ENOMEM;
  o->fd = fd;
  o->caller = caller;
  return dump_out(rt, o, id, flags);
}

int loom_dump(loom_t *rt, int fd, unsigned flags) {
  return dump_fd(rt, fd, 0, flags, __builtin_return_address(0));
}

int loom_dump_task(loom_t *rt, int fd, uint64_t id, unsigned flags) {
  if (!id) return UV_ENOENT;
  return dump_fd(rt, fd, id, flags, __builtin_return_address(0));
}

int loom__dump_to(loom_t *rt, void (*put)(void *ctx, const char *p, size_t n), void *ctx,
                  uint64_t id, unsigned flags) {
  if (!put) return UV_EINVAL;
  int rc = check_args(&rt, 0, flags);
  if (rc) return rc;
  out_t *o = calloc(1, sizeof(*o));
  if (!o) return UV_ENOMEM;
  o->put = put;
  o->put_ctx = ctx;
  o->caller = __builtin_return_address(0);
  return dump_out(rt, o, id, flags);
}

int loom_cancel_id(loom_t *rt, uint64_t id) {
  if (!rt) rt = loom__handle_rt();
  if (!rt) return LOOM_ENOTASK;
  loom_task_t *t = task_by_id(rt, id);
  if (!t) return UV_ENOENT;
  if (t->state != LOOM__DONE) loom__cancel(t);
  return 0;
}

/* ---- the dump signal ---------------------------------------------------------- */

static void on_dump_signal(uv_signal_t *h, int signum) {
  loom_t *rt = h->data;
  /* A watcher of the program's own has the signal: it is theirs. */
  if (loom__signal_watched(rt, signum)) return;
  loom_t *outer = loom__tls_rt;
  loom__tls_rt = rt;
  loom_dump(rt, STDERR_FILENO, 0);
  loom__tls_rt = outer;
}

int loom_dump_signal(loom_t *rt, int signum) {
  if (!rt) rt = loom__handle_rt();
  if (!rt) return LOOM_ENOTASK;
  if (signum < 0 || signum >= 65 || signum == SIGKILL || signum == SIGSTOP ||
      signum == SIGSEGV || signum == SIGBUS || signum == SIGILL || signum == SIGFPE)
    return UV_EINVAL;
  if (rt->io_closing) return LOOM_ECLOSED;
  struct loom__debug_s *d = signum ? debug_of(rt) : rt->debug;
  if (!d) return signum ? UV_ENOMEM : 0;
  if (d->signum == signum) return 0;
  if (d->signum) {
    loom__signal_give_back(&d->sig, d->signum, NULL);
    d->signum = 0;
  }
  if (!signum) return 0;
  /* Only initialised here: started and stopped through signal.c's
   * loom__signal_take / loom__signal_give_back, like every loom watcher,
   * so the disposition before it comes back when it stops, and a
   * loom_signal watcher of the same number composes with it (and has the
   * signal: on_dump_signal stays quiet). */
  if (!d->sig_open) {
    int rc = uv_signal_init(rt->loop, &d->sig);
    if (rc) return rc;
    d->sig.data = rt; /* runtime.c's close callback reads it too */
    d->sig_open = 1;
    uv_unref((uv_handle_t *)&d->sig); /* a dump signal keeps no loop alive */
  }
  int rc = loom__signal_take(&d->sig, on_dump_signal, signum);
  if (rc) return rc;
  d->signum = signum;
  return 0;
}

void loom__dump_signal_default(loom_t *rt) {
  int signum = SIGQUIT;
  const char *env = getenv("LOOM_DUMP_SIGNAL");
  if (env && *env) {
    char *end;
    long v = strtol(env, &end, 10);
    if (*end || v < 0 || v >= 65) {
      fprintf(stderr, "loom: LOOM_DUMP_SIGNAL=%s is not a signal number; using %d\n", env,
              signum);
    } else {
      signum = (int)v;
    }
  }
  if (signum && loom_dump_signal(rt, signum))
    fprintf(stderr, "loom: cannot dump on signal %d\n", signum);
}

int loom__dump_signal_close(loom_t *rt, uv_close_cb cb) {
  struct loom__debug_s *d = rt->debug;
  if (!d || !d->sig_open) return 0;
  d->sig_open = 0;
  if (d->signum)
    loom__signal_give_back(&d->sig, d->signum, cb);
  else
    uv_close((uv_handle_t *)&d->sig, cb);
  d->signum = 0;
  return 1;
}

void loom__task_mark_system(loom_task_t *t) { t->system = 1; }
