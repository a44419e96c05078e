/* Internal declarations shared by the io layer: the one-shot request a
 * task waits for (req.c), the stream object (stream.c) and what tcp.c and
 * server.c need of it, and the address helpers (dns.c). The life every io
 * object shares is in obj.h. */
#ifndef LOOM_IO_IO_H
#define LOOM_IO_IO_H

#include "core/internal.h"
#include "loom/net.h"
#include "obj.h"

/* A one-shot libuv request a task waits for (req.c), in one of two modes:
 *  - abandon (the default): the request is heap memory owned by libuv
 *    until its callback has run, and the waiter is in the waiting task's
 *    frame. If the task is interrupted, it returns at once and the request
 *    is abandoned, never freed early: its callback frees it.
 *  - wait out (LOOM__REQ_WAIT_OUT): for requests that point into the
 *    caller's memory (a read's buffer), which must not be written once the
 *    call has returned. If the task is interrupted, the request is
 *    cancelled (uv_cancel: thread-pool work that has not started is
 *    dropped) and the task waits, shielded, for the callback before it
 *    returns the interruption. The request may then live in the caller's
 *    frame: the seam never frees it. */
enum {
  LOOM__REQ_WAIT_OUT = 1, /* interrupted: uv_cancel, then wait for the callback */
  LOOM__REQ_WAKE_NOW = 2  /* the callback runs the task at once (loom__wake_now) */
};
typedef struct loom__req_s {
  union {
    uv_req_t req;
    uv_getaddrinfo_t gai;
    uv_getnameinfo_t gni; /* the largest: uv_fs_t adds nothing to the size */
    uv_connect_t connect;
    uv_shutdown_t shutdown;
    uv_fs_t fs;
    uv_work_t work;
  } u;
  loom__waiter_t *w;                         /* the waiting task's; NULL when nobody
                                                waits: when the callback runs, that
                                                means abandoned */
  int status;                                /* the callback's status */
  unsigned flags;                            /* LOOM__REQ_* */
  int done;                                  /* the callback has run */
  void (*on_abandon)(struct loom__req_s *r); /* e.g. close a handle;
                                                NULL: uv_cancel */
  void *data;
} loom__req_t;

loom__req_t *loom__req_new(void);
/* The first half of a call that waits for a request: the running task
 * (*self), checked for cancellation and timeouts, and a new request
 * (*out), in the abandon mode. */
int loom__req_begin(loom_task_t **self, loom__req_t **out);
/* The same for a request the caller provides (its frame, for the wait-out
 * mode): the running task (*self), checked, and r cleared, with flags. */
int loom__req_init(loom__req_t *r, unsigned flags, loom_task_t **self);
/* The second half: start_rc is what starting the libuv request on r
 * returned. If it failed, start_rc is returned (r freed in the abandon
 * mode); else waits as loom__req_wait does. */
int loom__req_finish(loom__req_t *r, int start_rc);
/* Waits for the request. Returns 0 when it completed (its status is in
 * r->status; the caller frees a heap request), or the interruption
 * (UV_ECANCELED, UV_ETIMEDOUT). Interrupted in the abandon mode, r is
 * abandoned: it must not be touched again, and its callback frees it. In
 * the wait-out mode the callback has run when this returns, whatever
 * happened (r->done). */
int loom__req_wait(loom__req_t *r);
/* Called from libuv callbacks: records status and wakes the task, or frees
 * an abandoned request. Returns 1 if the request was abandoned (freed). A
 * request in the caller's frame may be gone once this returns. */
int loom__req_done(loom__req_t *r, int status);
/* In a callback, before loom__req_done: whether the task stopped waiting.
 * (The callback cannot run before the wait starts: both happen on the
 * loop's thread, with no suspension between starting and waiting.) */
static inline int loom__req_abandoned(const loom__req_t *r) { return r->w == NULL; }

/* A stream's bytes from something other than libuv reading its handle: a
 * file read on the thread pool (fs-stream.c), or a TLS layer decrypting
 * what it reads from the stream's socket itself (src/tls). The source
 * stands in for uv_read_start/uv_read_stop, and calls alloc and read as
 * libuv would: from a libuv callback, never from inside start. A file
 * stream's handle is a uv_idle_t that is only closed; a TLS stream's is
 * the socket the layer reads and writes.
 *
 * The write side (NULL for a source that cannot be written: UV_ENOTSUP)
 * stands in for uv_try_write and uv_write on the handle, with their
 * contracts: try_write takes what it can at once (all or nothing is fine)
 * or returns UV_EAGAIN; write queues bufs (it may copy them or not: the
 * stream keeps them alive until cb) and calls cb(req, status) from a later
 * callback. A layer that writes bytes of its own (a handshake, alerts)
 * adds them to s->queued before writing them and calls
 * loom__stream_wrote(s, n, status) when they are written, so that drain,
 * close and the high-water mark count them. */
typedef struct loom__rsource_s {
  int (*start)(loom_stream_t *s, uv_alloc_cb alloc, uv_read_cb read);
  void (*stop)(loom_stream_t *s);
  /* The stream closes (reset: loom_abort, or a forced close): the source
   * lets go of it (and may outlive it until a read in flight ends). */
  void (*close)(loom_stream_t *s);
  int (*try_write)(loom_stream_t *s, const uv_buf_t *bufs, unsigned nbufs);
  int (*write)(uv_write_t *req, loom_stream_t *s, const uv_buf_t *bufs, unsigned nbufs,
               uv_write_cb cb);
  /* loom_shutdown_write, after the gathered bytes went: whatever must
   * precede the handle's shutdown (TLS: close_notify). NULL: UV_ENOTSUP. */
  int (*shutdown)(loom_stream_t *s);
  /* loom_close, after the gathered bytes went and before the stream waits
   * for its queue to empty: a last message (TLS: close_notify). NULL:
   * nothing. */
  void (*closing)(loom_stream_t *s);
} loom__rsource_t;

/* A layer's own bytes (see loom__rsource_t) were written, or failed. */
LOOM__MODULE_API void loom__stream_wrote(loom_stream_t *s, size_t n, int status);
/* Puts a layer on an open libuv stream (TLS): stops reading, and hands
 * what was buffered but not read to take(arg, bytes, n) (it belongs to the
 * layer: the peer's first handshake bytes), then drops it. UV_EBUSY if the
 * stream has a source already, a reader, a writer waiting, or anything
 * gathered or queued that could not be flushed; UV_EBADF if closing. */
LOOM__MODULE_API int loom__stream_set_layer(
    loom_stream_t *s, const loom__rsource_t *src, void *data,
    void (*take_bytes)(void *arg, const char *bytes, size_t n), void *arg);

/* Stream kinds and creation (stream.c). The public loom_stream_t * is a
 * handle token (core/handle.h); this struct is the object behind it. */
struct loom_stream_s {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_tty_t tty;
    uv_idle_t idle; /* a file stream's (src): close and wake-ups only */
  } u;
  loom__obj_t obj; /* list, handle, refs (obj.h) */
  /* Not a libuv stream: where the bytes come from (a file), or NULL */
  const struct loom__rsource_s *src;
  void *src_data;
  /* read side: buffered bytes are rbuf[rstart, rend) */
  char *rbuf;
  size_t rcap, rstart, rend;
  size_t limit;           /* read_until/read_line limit */
  loom__waiter_t *reader; /* the task waiting for data */
  int reading;            /* uv_read_start active */
  int eof;                /* peer sent EOF */
  int rerr;               /* sticky read error */
  int nomem;              /* on_alloc had no buffer to give; with no reader
                           * to tell, reading stopped and the peer's bytes
                           * wait in the kernel until the next wait (writers
                           * do not wait for room meanwhile) */
  int rnomem;             /* the next wait reports UV_ENOMEM, once */
  /* write side */
  size_t queued; /* bytes in libuv write requests */
  size_t high_water, low_water;
  loom__wq_t writers;          /* writers waiting for room, FIFO */
  loom__wq_t drainers;         /* tasks waiting for an empty queue */
  int turn;                    /* a writer was given its turn and has
                          not written yet: others queue */
  int werr;                    /* sticky write error */
  struct loom__wreq_s *gather; /* small writes not yet handed to libuv
                                  (stream.c); non-NULL: on rt->flush */
  loom__link_t flush_link;     /* on the runtime's flush list */
  size_t out_limit;            /* queued bytes allowed while the peer
                                  sends without reading */
  int wrote_now;               /* a small write went to the kernel at once since the
                    last wait for input: later ones are gathered */
  /* life */
  int closing; /* close requested: flush, then uv_close */
  int is_tcp;  /* u.tcp: peer names, NODELAY, reset */
  /* direct reads: loom_read's buffer, while its caller waits */
  char *direct;
  size_t direct_len, direct_got;
  int direct_active; /* libuv is reading into direct */
  int direct_full;   /* a direct read filled it: skip libuv's next read */
  int skipped;       /* on_alloc skipped one: on_read ignores it */
};

/* The spare read and gather buffers kept for the runtime running on this
 * thread (stream.c): freed when runtime rt ends (runtime.c); how many of a
 * kind are kept now (tests). */
#define LOOM__IO_SPARES_MAX 8 /* kept of each kind */
enum { LOOM__SPARE_READ, LOOM__SPARE_GATHER, LOOM__SPARE_KINDS };
void loom__io_spares_free(loom_t *rt);
/* The runtime's bounce buffer of LOOM__IO_BOUNCE bytes, for a layer that
 * reads its socket raw and takes every byte out of the buffer within the
 * read callback (TLS); kept with the spares, freed with them. NULL for a
 * second runtime on the thread, or without memory. */
#define LOOM__IO_BOUNCE (64u * 1024u)
LOOM__MODULE_API void *loom__io_bounce(loom_t *rt);
size_t loom__io_spares_count(int kind);

/* A new stream whose libuv handle is initialised: type UV_TCP,
 * UV_NAMED_PIPE, UV_TTY on fd (fd is used for nothing else), or UV_IDLE
 * for a stream with a source (the caller sets src). On failure nothing is
 * left to free. */
int loom__stream_new(loom_stream_t **out, loom_t *rt, uv_handle_type type, int fd);
/* Gives the stream its public handle (*out). UV_ENOMEM: the caller
 * closes it. */
static inline int loom__stream_publish(loom_stream_t *s, loom_stream_t **out) {
  int rc = loom__obj_publish(&s->obj, LOOM__H_STREAM);
  if (rc == 0) *out = s->obj.token;
  return rc;
}
/* The stream behind handle h, or NULL (stale, closed, not a stream). */
static inline loom_stream_t *loom__stream_get(loom_stream_t *h) {
  return loom__handle_get(NULL, h, LOOM__H_STREAM);
}
/* Closes as loom_close does (flush, then close), by the object. */
void loom__stream_close(loom_stream_t *s);
/* Closes a stream whose handle was initialised (any state). */
LOOM__MODULE_API void loom__stream_close_now(loom_stream_t *s);
/* Closes a listener by object (shutdown, the handle's close). */
void loom__listener_close(loom_listener_t *l);

/* ---- addresses (dns.c) ---- */

/* getaddrinfo for host:port (host NULL: the passive address). */
int loom__resolve(const char *host, int port, int socktype, struct addrinfo **res);
/* A numeric address (or NULL: any IPv4 address) without a lookup, as
 * asyncio does; UV_EINVAL if host is a name. */
int loom__numeric_addr(const char *host, int port, struct sockaddr_storage *ss);
/* The port of an IPv4 or IPv6 address, in host order. */
LOOM__MODULE_API int loom__addr_port(const struct sockaddr *sa);

/* The local address a socket binds to (loom_tcp_listen, loom_udp_bind). */
typedef struct {
  struct sockaddr_storage ss; /* a numeric host's address */
  struct addrinfo *res;       /* a looked-up host's; NULL for a numeric one */
  const struct sockaddr *sa;  /* the address: &ss or res->ai_addr */
} loom__bind_addr_t;
/* What every bind does first: the runtime running on this thread (*rt;
 * LOOM_ENOTASK without one), and the address of host:port, numeric without
 * a lookup, else the first getaddrinfo result. On success the caller frees
 * it with loom__bind_addr_free once bound. */
int loom__bind_addr(loom_t **rt, loom__bind_addr_t *a, const char *host, int port,
                    int socktype);
static inline void loom__bind_addr_free(loom__bind_addr_t *a) { uv_freeaddrinfo(a->res); }

#endif
