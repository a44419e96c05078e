/* The HTTP client: libcurl's multi interface driven by the runtime's loop.
 *
 * Each runtime has one multi handle (created at the first transfer, so a
 * program that never uses HTTP pays nothing), which shares one connection
 * cache among all its tasks. libcurl tells us what to watch through two
 * callbacks, and we tell it what happened through curl_multi_socket_action:
 *
 *   CURLMOPT_SOCKETFUNCTION  -> a uv_poll_t per socket (sock_t), started
 *                               for what libcurl asks (IN, OUT, both),
 *                               closed on CURL_POLL_REMOVE
 *   CURLMOPT_TIMERFUNCTION   -> one uv_timer_t per runtime
 *   poll / timer fires       -> curl_multi_socket_action, then the finished
 *                               transfers (curl_multi_info_read) wake their
 *                               tasks
 *
 * Why not loom_fd_wait (io/fdwait.c): a watch is waited on by a task, and
 * libcurl's multi is callback-driven: it changes what it wants on a socket
 * from inside socket_action, for sockets no task knows about (a connection
 * in the cache, the resolver's socketpair). Driving it with fd waits would
 * take a task per socket, each parked in a loop that only forwards events;
 * a uv_poll_t per socket is that loop's work without the tasks. loom still
 * never polls a descriptor itself: libuv does.
 *
 * A task waiting for a transfer is parked on the transfer's waiter (xfer_t,
 * in the task's frame for a perform, in the response for a stream). It is
 * woken by the completion message, or for a stream by the write callback
 * when body bytes arrive. libcurl's callbacks run inside socket_action, on
 * the loop, or inside a libcurl call a task makes (adding or removing a
 * handle calls the socket and timer callbacks; unpausing hands the kept
 * body piece to the write callback at once): none of them suspends, and a
 * wake-up from them only ever readies a parked task, never the caller.
 * Removing a handle (curl_multi_remove_handle is not allowed inside
 * libcurl's callbacks) is done by the task once it runs again, whether the
 * transfer finished, was cancelled or timed out.
 *
 * The multi handle is an I/O object of the runtime (loom__io_add): once
 * every task has ended, shutdown cleans it up and closes its libuv handles;
 * it leaves the runtime's list when the last close callback has run.
 */
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "loom/http.h"
#include "util/container.h"
#include "util/list.h"

typedef struct multi_s multi_t;

struct multi_s {
  loom__io_t io;       /* on the runtime's I/O list until freed */
  loom_t *rt;          /* the runtime it serves */
  CURLM *m;            /* libcurl's multi handle; NULL once cleaned up */
  uv_timer_t timer;    /* CURLMOPT_TIMERFUNCTION's timer */
  loom__list_t socks;  /* sock_t: sockets libcurl has us watch */
  int handles;         /* libuv handles not yet closed (timer, polls) */
  int closing;         /* shutdown has begun to close it */
  loom__link_t link;   /* on `multis` until closing */
  loom__list_t xfers;  /* xfer_t: the transfers in the multi handle */
  CURLcode abort_code; /* why a callback of ours failed libcurl (below) */
};

/* One socket libcurl has us watch. */
typedef struct {
  uv_poll_t poll;    /* started for `events` */
  multi_t *mu;       /* its multi */
  curl_socket_t fd;  /* the socket */
  int events;        /* UV_READABLE | UV_WRITABLE libcurl wants */
  int closing;       /* uv_close called */
  loom__link_t link; /* on mu->socks until closing */
} sock_t;

/* A transfer loom drives: the easy handle's CURLOPT_PRIVATE points here. */
typedef struct {
  loom__waiter_t w; /* the waiting task's, while `parked` */
  multi_t *mu;
  CURL *easy;
  void *user_private; /* the handle's CURLOPT_PRIVATE before */
  CURLcode code;      /* libcurl's result once done */
  int parked;         /* a task waits on w */
  int done;           /* the completion message came */
  int added;          /* in the multi handle */
  loom__link_t link;  /* on mu->xfers while added */
} xfer_t;

/* The thread's multi handles, one per runtime that has used HTTP. One
 * runtime per thread is the rule, so this list has one entry. */
static LOOM__TLS loom__list_t multis;

/* ---- CURLcode to loom codes ---------------------------------------------- */

int loom_http_err(CURLcode c) {
  switch (c) {
  case CURLE_OK: return 0;
  case CURLE_UNSUPPORTED_PROTOCOL:
  case CURLE_URL_MALFORMAT:
  case CURLE_BAD_FUNCTION_ARGUMENT: return UV_EINVAL;
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_RESOLVE_HOST: return UV_EAI_NONAME;
  case CURLE_COULDNT_CONNECT: return UV_ECONNREFUSED;
  case CURLE_OPERATION_TIMEDOUT: return UV_ETIMEDOUT;
  case CURLE_OUT_OF_MEMORY: return UV_ENOMEM;
  case CURLE_SEND_ERROR: return UV_EPIPE;
  case CURLE_RECV_ERROR: return UV_ECONNRESET;
  case CURLE_PARTIAL_FILE:
  case CURLE_GOT_NOTHING: return UV_EOF;
  case CURLE_FILESIZE_EXCEEDED: return UV_ENOBUFS;
  case CURLE_ABORTED_BY_CALLBACK: return UV_ECANCELED;
  case CURLE_TOO_MANY_REDIRECTS: return UV_ELOOP;
  default: return LOOM_EHTTP;
  }
}

/* ---- the multi handle and its callbacks ---------------------------------- */

static void multi_freed(multi_t *mu) {
  loom_t *rt = mu->rt;
  loom__io_remove(rt, &mu->io);
  free(mu);
}

static void on_handle_closed(uv_handle_t *h) {
  multi_t *mu;
  if (h->type == UV_POLL) {
    sock_t *k = h->data;
    mu = k->mu;
    free(k);
  } else {
    mu = h->data;
  }
  if (--mu->handles == 0 && mu->closing) multi_freed(mu);
}

static void sock_close(sock_t *k) {
  if (k->closing) return;
  k->closing = 1;
  loom__list_remove(&k->mu->socks, &k->link);
  uv_close((uv_handle_t *)&k->poll, on_handle_closed);
}

/* Ends transfer x with `code`, waking its task. */
static void xfer_finish(xfer_t *x, CURLcode code) {
  x->done = 1;
  x->code = code;
  if (x->parked) {
    x->parked = 0;
    loom__wake(&x->w, 0);
  }
}

/* Wakes the tasks of the transfers libcurl has finished. */
static void check_done(multi_t *mu) {
  CURLMsg *msg;
  int left;
  while (mu->m && (msg = curl_multi_info_read(mu->m, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    xfer_t *x = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    if (!x) continue;
    xfer_finish(x, msg->data.result);
  }
}

/* After a libcurl call that may have run our callbacks. When one of them
 * failed (no memory for a socket's watcher), libcurl aborts every transfer
 * of the multi handle and marks it dead, but reports none of them done and
 * sets no timer: their tasks would wait for good. They are ended here with
 * the reason; each task then removes its handle, and once none is left
 * libcurl takes new transfers again. */
static void multi_checked(multi_t *mu, CURLMcode mc) {
  if (mc != CURLM_ABORTED_BY_CALLBACK) return;
  loom__link_t *l;
  loom__list_foreach(l, &mu->xfers) {
    xfer_t *x = loom__list_entry(l, xfer_t, link);
    if (!x->done) xfer_finish(x, mu->abort_code ? mu->abort_code : CURLE_OUT_OF_MEMORY);
  }
  mu->abort_code = CURLE_OK;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  sock_t *k = h->data;
  multi_t *mu = k->mu;
  int flags = 0, running;
  /* libuv reports an error condition (POLLERR) as UV_EBADF and stops the
   * poll: libcurl hears of it and fails the connection on its next call. */
  if (status < 0) {
    flags = CURL_CSELECT_ERR;
    events = k->events;
  }
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  multi_checked(mu, curl_multi_socket_action(mu->m, k->fd, flags, &running));
  /* Still wanted (libcurl did not remove it) after libuv stopped it. */
  if (status < 0 && !k->closing && k->events) uv_poll_start(&k->poll, k->events, on_poll);
  check_done(mu);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  multi_t *mu = userp;
  sock_t *k = socketp;
  (void)easy;
  if (what == CURL_POLL_REMOVE) {
    if (k) {
      sock_close(k);
      /* Not from inside curl_multi_cleanup, whose socket hash is going. */
      if (!mu->closing) curl_multi_assign(mu->m, fd, NULL);
    }
    return 0;
  }
  if (mu->closing) return 0;
  if (!k) {
    k = calloc(1, sizeof(*k));
    if (!k) {
      mu->abort_code = CURLE_OUT_OF_MEMORY;
      return -1; /* libcurl aborts the transfers: multi_checked */
    }
    if (uv_poll_init_socket(mu->rt->loop, &k->poll, fd)) {
      free(k);
      mu->abort_code = CURLE_COULDNT_CONNECT; /* a socket libuv cannot watch */
      return -1;
    }
    k->poll.data = k;
    k->mu = mu;
    k->fd = fd;
    mu->handles++;
    loom__list_push_back(&mu->socks, &k->link);
    curl_multi_assign(mu->m, fd, k);
  }
  k->events = (what & CURL_POLL_IN ? UV_READABLE : 0) |
              (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
  if (uv_poll_start(&k->poll, k->events, on_poll)) {
    mu->abort_code = CURLE_COULDNT_CONNECT;
    return -1;
  }
  return 0;
}

static void on_timer(uv_timer_t *h) {
  multi_t *mu = h->data;
  int running;
  multi_checked(mu, curl_multi_socket_action(mu->m, CURL_SOCKET_TIMEOUT, 0, &running));
  check_done(mu);
}

static int on_timer_set(CURLM *m, long ms, void *userp) {
  multi_t *mu = userp;
  (void)m;
  if (mu->closing) return 0;
  if (ms < 0) return uv_timer_stop(&mu->timer) ? -1 : 0;
  return uv_timer_start(&mu->timer, on_timer, (uint64_t)ms, 0) ? -1 : 0;
}

/* Shutdown, once every task has ended: no transfer is left in the multi
 * handle (each task removed its own; responses left open were closed just
 * before, being newer on the runtime's list). Not the program's object, so
 * never reported as left open. */
static int multi_io_close(loom__io_t *o, int force) {
  multi_t *mu = loom__container_of(o, multi_t, io);
  (void)force;
  if (mu->closing) return 0;
  mu->closing = 1;
  loom__list_remove(&multis, &mu->link);
  /* Closing the cached connections calls on_socket with REMOVE. */
  curl_multi_cleanup(mu->m);
  mu->m = NULL;
  while (!loom__list_empty(&mu->socks))
    sock_close(loom__list_entry(mu->socks.head, sock_t, link));
  uv_close((uv_handle_t *)&mu->timer, on_handle_closed);
  return 0;
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;
static char *describe(const void *xfer, char *buf, size_t n);
static void global_init(void) {
  global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  loom__set_http_describe(describe);
}

/* The runtime's multi handle, created at the first use. */
static int multi_get(loom_t *rt, multi_t **out) {
  loom__link_t *l;
  loom__list_foreach(l, &multis) {
    multi_t *mu = loom__list_entry(l, multi_t, link);
    if (mu->rt == rt) {
      *out = mu;
      return 0;
    }
  }
  pthread_once(&global_once, global_init);
  if (global_rc != CURLE_OK) return loom_http_err(global_rc);
  multi_t *mu = calloc(1, sizeof(*mu));
  if (!mu) return UV_ENOMEM;
  mu->m = curl_multi_init();
  if (!mu->m) {
    free(mu);
    return UV_ENOMEM;
  }
  int rc = uv_timer_init(rt->loop, &mu->timer);
  if (rc) {
    curl_multi_cleanup(mu->m);
    free(mu);
    return rc;
  }
  mu->timer.data = mu;
  mu->handles = 1;
  mu->rt = rt;
  curl_multi_setopt(mu->m, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(mu->m, CURLMOPT_SOCKETDATA, mu);
  curl_multi_setopt(mu->m, CURLMOPT_TIMERFUNCTION, on_timer_set);
  curl_multi_setopt(mu->m, CURLMOPT_TIMERDATA, mu);
  loom__list_push_back(&multis, &mu->link);
  loom__io_add(rt, &mu->io, "HTTP multi handle", multi_io_close);
  *out = mu;
  return 0;
}

CURLM *loom_http_multi(void) {
  loom_task_t *self = loom__self();
  multi_t *mu;
  if (!self || multi_get(self->rt, &mu)) return NULL;
  return mu->m;
}

/* ---- transfers ------------------------------------------------------------ */

static void xfer_unhook(loom__waiter_t *w) {
  xfer_t *x = loom__container_of(w, xfer_t, w);
  x->parked = 0;
}

/* Adds x->easy to the multi handle; libcurl starts it from the timer. */
static int xfer_start(xfer_t *x, multi_t *mu, CURL *easy) {
  x->mu = mu;
  x->easy = easy;
  x->w.cancel = xfer_unhook;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x->user_private);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
  CURLMcode mc = curl_multi_add_handle(mu->m, easy);
  if (mc == CURLM_ABORTED_BY_CALLBACK) mc = CURLM_OUT_OF_MEMORY; /* dead: above */
  if (mc != CURLM_OK) {
    curl_easy_setopt(easy, CURLOPT_PRIVATE, x->user_private);
    return mc == CURLM_ADDED_ALREADY   ? UV_EBUSY
           : mc == CURLM_OUT_OF_MEMORY ? UV_ENOMEM
                                       : UV_EINVAL;
  }
  x->added = 1;
  loom__list_push_back(&mu->xfers, &x->link);
  return 0;
}

/* Takes the handle out of the multi handle (aborting the transfer if it
 * runs) and gives the handle its CURLOPT_PRIVATE back. */
static void xfer_end(xfer_t *x) {
  if (!x->added) return;
  x->added = 0;
  loom__list_remove(&x->mu->xfers, &x->link);
  curl_multi_remove_handle(x->mu->m, x->easy);
  curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x->user_private);
}

/* What a dump says an HTTP wait is for: the method and the URL of the
 * transfer. x lives in the parked task's frame for as long as the dump can
 * see the wait, and libcurl answers these from the handle without I/O. */
static char *describe(const void *xfer, char *buf, size_t n) {
  const xfer_t *x = xfer;
  char *url = NULL, *method = NULL;
  if (!n) return buf;
  buf[0] = 0;
  if (!x || !x->easy) return buf;
  curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url);
#if LIBCURL_VERSION_NUM >= 0x074800 /* 7.72: the method is known */
  curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_METHOD, &method);
#endif
  if (method)
    snprintf(buf, n, "%s %s", method, url ? url : "?");
  else /* libcurl before 7.72 cannot say */
    snprintf(buf, n, "%s", url ? url : "?");
  return buf;
}

/* Parks the task until x is woken (done, or body bytes for a stream). */
static int xfer_wait(xfer_t *x, loom_task_t *self) {
  x->w.task = self;
  x->w.result = 0;
  loom__wait_on(&x->w, LOOM__W_HTTP, x);
  x->parked = 1;
  return loom__park(&x->w);
}

/* The start of every call: the running task, allowed to suspend, and its
 * runtime's multi handle. */
static int begin(loom_task_t **self, multi_t **mu) {
  *self = loom__self();
  int rc = loom__check(*self);
  if (rc) return rc;
  return multi_get((*self)->rt, mu);
}

int loom_http_perform(CURL *easy, CURLcode *code) {
  if (code) *code = CURLE_ABORTED_BY_CALLBACK;
  if (!easy) return UV_EINVAL;
  loom_task_t *self;
  multi_t *mu;
  int rc = begin(&self, &mu);
  if (rc) return rc;
  xfer_t x = {0};
  rc = xfer_start(&x, mu, easy);
  if (rc) return rc;
  rc = xfer_wait(&x, self);
  xfer_end(&x);
  if (rc) return rc;
  if (code) *code = x.code;
  return loom_http_err(x.code);
}

/* libcurl's own write callback and data again (fwrite to stdout), for a
 * handle loom pointed at a sink or a response that is about to go: a
 * later perform of the handle without a callback of the caller's must not
 * write through them. */
static void write_defaults(CURL *easy) {
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, (curl_write_callback)NULL);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, (void *)stdout);
}

/* ---- streaming responses --------------------------------------------------- */

struct loom_http_resp_s {
  xfer_t x;      /* the transfer; its waiter is the reader's */
  loom__io_t io; /* on the runtime's list: closed at shutdown if left */
  loom_t *rt;
  void *token; /* its handle (LOOM__H_HTTP): stale once freed */
  char *buf;   /* body bytes not read yet: buf[head, head + len) */
  size_t cap;  /* buf's size */
  size_t head, len;
  int begun;   /* the body began (or the transfer ended) */
  int paused;  /* the write callback paused the transfer */
  int reading; /* a task is in loom_http_read */
};

static size_t resp_write(char *data, size_t size, size_t nmemb, void *userdata) {
  loom_http_resp_t *r = userdata;
  size_t n = size * nmemb;
  r->begun = 1;
  if (n > r->cap - r->head - r->len) {
    if (r->len) memmove(r->buf, r->buf + r->head, r->len);
    r->head = 0;
    if (n > r->cap - r->len) {
      if (r->len) {
        /* No room: libcurl keeps this piece and hands it over again once
         * unpaused, and the socket is not read meanwhile. */
        r->paused = 1;
        n = CURL_WRITEFUNC_PAUSE;
        goto wake;
      }
      /* A piece bigger than the buffer (libcurl's pieces are up to
       * CURL_MAX_WRITE_SIZE, more after decompression): make room. */
      char *nb = realloc(r->buf, n);
      if (!nb) return 0; /* CURLE_WRITE_ERROR */
      r->buf = nb;
      r->cap = n;
    }
  }
  memcpy(r->buf + r->head + r->len, data, n);
  r->len += n;
wake:
  if (r->x.parked) {
    r->x.parked = 0;
    loom__wake(&r->x.w, 0);
  }
  return n;
}

static void resp_free(loom_http_resp_t *r) {
  xfer_end(&r->x);
  write_defaults(r->x.easy);
  loom__handle_drop(r->rt, r->token);
  loom__io_remove(r->rt, &r->io);
  free(r->buf);
  free(r);
}

/* Shutdown: a response the program left open. */
static int resp_io_close(loom__io_t *o, int force) {
  (void)force;
  resp_free(loom__container_of(o, loom_http_resp_t, io));
  return 1;
}

int loom_http_open(loom_http_resp_t **out, CURL *easy, CURLcode *code) {
  if (code) *code = CURLE_ABORTED_BY_CALLBACK;
  if (!out) return UV_EINVAL;
  *out = NULL;
  if (!easy) return UV_EINVAL;
  loom_task_t *self;
  multi_t *mu;
  int rc = begin(&self, &mu);
  if (rc) return rc;
  loom_http_resp_t *r = calloc(1, sizeof(*r));
  if (!r) return UV_ENOMEM;
  r->cap = LOOM_HTTP_BUFFER;
  r->buf = malloc(r->cap);
  if (!r->buf) {
    free(r);
    return UV_ENOMEM;
  }
  r->rt = self->rt;
  if (loom__handle_new(r->rt, LOOM__H_HTTP, r, &r->token)) {
    free(r->buf);
    free(r);
    return UV_ENOMEM;
  }
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, resp_write);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, r);
  rc = xfer_start(&r->x, mu, easy);
  if (rc) {
    write_defaults(easy);
    loom__handle_drop(r->rt, r->token);
    free(r->buf);
    free(r);
    return rc;
  }
  loom__io_add(r->rt, &r->io, "HTTP response", resp_io_close);
  while (!r->begun && !r->x.done && rc == 0) rc = xfer_wait(&r->x, self);
  /* A transfer that failed before any of the body fails the open; one
   * that failed after some of it hands that over first, then the error. */
  if (rc == 0 && r->x.done && !r->begun) {
    if (code) *code = r->x.code;
    rc = loom_http_err(r->x.code);
  }
  if (rc) {
    resp_free(r);
    return rc;
  }
  if (code) *code = CURLE_OK;
  *out = r->token;
  return 0;
}

/* The response behind handle h, or NULL: stale (closed), or not one. */
static loom_http_resp_t *rget(loom_http_resp_t *h) {
  return loom__handle_get(NULL, h, LOOM__H_HTTP);
}

ssize_t loom_http_read(loom_http_resp_t *h, void *buf, size_t n) {
  if (!h || (!buf && n)) return UV_EINVAL;
  loom_http_resp_t *r = rget(h);
  if (!r) return UV_EBADF;
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  if (r->reading) return UV_EBUSY;
  if (n == 0) return 0;
  while (r->len == 0) {
    if (r->x.done) return loom_http_err(r->x.code);
    r->reading = 1;
    rc = xfer_wait(&r->x, self);
    r->reading = 0;
    if (rc) return rc;
  }
  size_t k = n < r->len ? n : r->len;
  memcpy(buf, r->buf + r->head, k);
  r->head += k;
  r->len -= k;
  if (r->len == 0) r->head = 0;
  /* Unpause once a piece of libcurl's largest size fits: it hands the
   * piece it kept over at once, from inside curl_easy_pause. */
  if (r->paused && r->cap - r->len >= CURL_MAX_WRITE_SIZE) {
    r->paused = 0;
    /* Unpausing may ask for the socket again, through on_socket. */
    if (curl_easy_pause(r->x.easy, CURLPAUSE_CONT) == CURLE_ABORTED_BY_CALLBACK)
      multi_checked(r->x.mu, CURLM_ABORTED_BY_CALLBACK);
  }
  return (ssize_t)k;
}

CURLcode loom_http_result(loom_http_resp_t *h) {
  loom_http_resp_t *r = rget(h);
  if (!r) return CURLE_BAD_FUNCTION_ARGUMENT;
  return r->x.done ? r->x.code : CURLE_OK;
}

CURL *loom_http_easy(loom_http_resp_t *h) {
  loom_http_resp_t *r = rget(h);
  return r ? r->x.easy : NULL;
}

int loom_http_close(loom_http_resp_t *h) {
  if (!h) return UV_EINVAL;
  loom_http_resp_t *r = rget(h);
  if (!r) return UV_EBADF;
  if (r->reading) return UV_EBUSY; /* its frame still points at r */
  resp_free(r);
  return 0;
}

/* ---- a body into memory ------------------------------------------------------ */

typedef struct {
  loom_http_body_t *out;
  size_t cap; /* out->data's size */
  size_t max; /* the caller's limit */
  int over;   /* the body went past max */
} sink_t;

static size_t sink_write(char *data, size_t size, size_t nmemb, void *userdata) {
  sink_t *s = userdata;
  size_t n = size * nmemb;
  loom_http_body_t *o = s->out;
  if (n > s->max - o->len) {
    s->over = 1;
    return 0; /* CURLE_WRITE_ERROR */
  }
  if (o->len + n + 1 > s->cap) {
    size_t cap = s->cap ? s->cap : 4096;
    while (cap < o->len + n + 1) cap *= 2;
    char *d = realloc(o->data, cap);
    if (!d) return 0;
    o->data = d;
    s->cap = cap;
  }
  memcpy(o->data + o->len, data, n);
  o->len += n;
  o->data[o->len] = '\0';
  return n;
}

int loom_http_fetch(CURL *easy, size_t max, loom_http_body_t *out) {
  if (!out) return UV_EINVAL;
  memset(out, 0, sizeof(*out));
  out->code = CURLE_ABORTED_BY_CALLBACK;
  if (!easy) return UV_EINVAL;
  sink_t s = {.out = out, .max = max};
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, sink_write);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &s);
  int rc = loom_http_perform(easy, &out->code);
  write_defaults(easy); /* s goes with this frame */
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &out->status);
  if (s.over) rc = UV_ENOBUFS;
  if (rc == 0 && !out->data) {
    out->data = malloc(1); /* an empty body is still a string */
    if (!out->data)
      rc = UV_ENOMEM;
    else
      out->data[0] = '\0';
  }
  if (rc) {
    free(out->data);
    out->data = NULL;
    out->len = 0;
  }
  return rc;
}

int loom_http_get(const char *url, size_t max, loom_http_body_t *out) {
  if (!out) return UV_EINVAL;
  memset(out, 0, sizeof(*out));
  out->code = CURLE_ABORTED_BY_CALLBACK;
  if (!url) return UV_EINVAL;
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  pthread_once(&global_once, global_init);
  CURL *easy = curl_easy_init();
  if (!easy) return UV_ENOMEM;
  curl_easy_setopt(easy, CURLOPT_URL, url);
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, ""); /* what libcurl can decode */
  if (max < (size_t)INT64_MAX)
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
  rc = loom_http_fetch(easy, max, out);
  curl_easy_cleanup(easy);
  return rc;
}
