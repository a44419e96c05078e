/* Streams: buffered reading and queued writing over a uv_stream_t.
 *
 * Reading. loom keeps its own buffer (rbuf). libuv reads into its free tail
 * while reading is on; reading is switched on only while a task wants data
 * and the buffer is below its limit, so a slow reader stops the socket being
 * read (backpressure: the kernel's window fills and the peer slows down).
 *
 *   rbuf: [ consumed | buffered data | free space ]
 *         0        rstart          rend          rcap
 *
 * Writing. A small write (up to GATHER_SMALL bytes) goes to the kernel at
 * once (uv_try_write, no copy; what it does not take is queued as a large
 * write's rest is) when nothing written before it is still gathered or
 * queued, the program has read everything buffered (it is not answering
 * pipelined requests), and it is the first small write since the task last
 * waited for input on the stream (wrote_now): the one answer to a request
 * that came alone, which asyncio too writes at once when its buffer is
 * empty. Such a write reports its own error. Any other small write is
 * copied into the stream's gather buffer, and the stream goes on the
 * runtime's flush list; the gathered bytes are handed to libuv together
 * when tasks stop running, before the loop polls again (loom__io_flush,
 * called by the scheduler), or at once when the next small write does not
 * fit (GATHER_CAP), or before a large write, a drain, loom_flush or a
 * close. So a handler that answers each pipelined request with its own
 * write makes one write system call per batch, not one per reply, and one
 * that answers a lone request with several writes makes two (the first at
 * once, the rest gathered). A large write, or a flush, first tries
 * uv_try_write; what the kernel does not take at once is queued with
 * uv_write: a large write's rest is copied into one heap request (so the
 * caller may reuse its buffer), a flush's rest stays in the gather buffer,
 * which becomes the request (a flush never allocates, so it cannot fail
 * for want of memory). An error that happens after loom_write returned is
 * sticky (werr): the next write, drain, flush or close reports it.
 *
 *   gather: [ uv_write_t | s | len | cap | data: len bytes gathered | free ]
 *
 * While more than the high-water mark is queued, a writer waits *before*
 * writing until the queue falls to the low-water mark, and writers wait
 * their turn in FIFO order: a slow reader on the other side cannot make the
 * queue grow without bound however many tasks write, and an error from
 * loom_write always means that nothing of that call was written. Except
 * while the peer has sent bytes that the program has not read: a writer
 * that waited then would stop its task reading, and a peer that reads its
 * replies only once it has sent all its requests would never read again
 * (both sides blocked in a write, for good). So then the writer does not
 * wait, and the queue grows up to the output limit; past it, the stream is
 * aborted and the write returns UV_ENOBUFS, as redis closes a client past
 * its output buffer limit.
 *
 * Layers. A stream may have a layer between it and its handle (io.h's
 * loom__rsource_t): a file's reads on the thread pool, or TLS (src/tls),
 * which reads the socket itself and stands in for uv_try_write/uv_write.
 * Everything above (buffers, readers, gathering, marks, limits, close)
 * is the same for every stream; a plain stream's write path is compiled
 * without the layer's tests (writev_via).
 *
 * Life. The public loom_stream_t * is a handle token (core/handle.h): a call
 * on a closed stream returns UV_EBADF. The struct is heap memory freed only
 * once the handle's close callback has run (libuv runs it after every
 * pending request's callback) and no call on the stream is still in
 * progress: each public call holds a reference, so a task blocked in a read
 * when another task closes the stream wakes with UV_EBADF and returns
 * without touching freed memory. close waits (without the caller) for the
 * queue to drain, then closes; abort closes at once. A stream left open, or
 * still flushing, when the runtime shuts down is closed (or aborted after
 * the grace period) by the runtime.
 */
#include <stdlib.h>
#include <string.h>

#include "io.h"

#define RBUF_MIN 4096
/* loom_read_exactly reads straight into its caller's buffer when at least
 * this much is still wanted and nothing is buffered. */
#define DIRECT_MIN RBUF_MIN
#define HIGH_WATER (64u * 1024u)
/* Writes up to GATHER_SMALL bytes are gathered; the gather buffer starts
 * at GATHER_MIN bytes (with its header, a malloc size glibc serves from
 * its per-thread cache) and doubles up to GATHER_CAP. */
#define GATHER_SMALL 4096u
#define GATHER_MIN 512u
#define GATHER_CAP (16u * 1024u)

/* A write request queued with libuv, or the gather buffer (which becomes
 * one when it is flushed). */
typedef struct loom__wreq_s {
  uv_write_t req;
  loom_stream_t *s;
  size_t len; /* bytes in data: queued, or gathered */
  size_t cap; /* the gather buffer's room */
  char data[];
} wreq_t;

static int io_close(loom__io_t *o, int force);

/* ---- spare buffers ------------------------------------------------------------------ */

/* A connection that answers one request per round trip takes a read buffer
 * when its request arrives and gives it back when it waits for the next
 * (wait_data), and takes a gather buffer for its answer and gives it back
 * when the answer is flushed: without spares that is a malloc and a free of
 * each per request (a 4 KiB block is past glibc's per-thread cache: ~380
 * instructions a request, a fifth of loom's share of it). A few buffers of
 * the two usual sizes are kept for the runtime instead. A buffer is given
 * back and taken again within one callback (the reader runs from on_read,
 * the flush follows it), so a handful serve any number of connections, and
 * idle connections still hold no buffer: the spares are the only memory
 * kept, at most SPARES_MAX of each size.
 *
 * They live in thread-local storage, for the first runtime on the thread
 * that gives one back (loom_run's, usually the only one);
 * loom__io_spares_free gives them back when that runtime ends. The streams
 * of a second runtime embedded on the same thread simply do without. */
#define SPARES_MAX LOOM__IO_SPARES_MAX
#define SPARE_READ LOOM__SPARE_READ
#define SPARE_GATHER LOOM__SPARE_GATHER
#define SPARE_KINDS LOOM__SPARE_KINDS
static const size_t spare_size[SPARE_KINDS] = {RBUF_MIN, sizeof(wreq_t) + GATHER_MIN};

typedef struct {
  loom_t *rt; /* whose they are; NULL: nobody's yet */
  unsigned n[SPARE_KINDS];
  void *buf[SPARE_KINDS][SPARES_MAX];
  char *bounce; /* a layer's raw reads (loom__io_bounce) */
} spares_t;
static LOOM__TLS spares_t spares;

/* A buffer of spare_size[kind] bytes, or NULL without memory. */
static void *spare_get(loom_t *rt, int kind) {
  if (spares.rt == rt && spares.n[kind] > 0) return spares.buf[kind][--spares.n[kind]];
  return malloc(spare_size[kind]);
}

/* Frees p, of spare_size[kind] bytes, or keeps it as a spare. */
static void spare_put(loom_t *rt, int kind, void *p) {
  if (!spares.rt) spares.rt = rt;
  if (spares.rt == rt && spares.n[kind] < SPARES_MAX)
    spares.buf[kind][spares.n[kind]++] = p;
  else
    free(p);
}

void loom__io_spares_free(loom_t *rt) {
  if (spares.rt != rt) return;
  for (int k = 0; k < SPARE_KINDS; k++)
    while (spares.n[k] > 0) free(spares.buf[k][--spares.n[k]]);
  free(spares.bounce);
  spares.bounce = NULL;
  spares.rt = NULL;
}

void *loom__io_bounce(loom_t *rt) {
  if (!spares.rt) spares.rt = rt;
  if (spares.rt != rt) return NULL;
  if (!spares.bounce) spares.bounce = malloc(LOOM__IO_BOUNCE);
  return spares.bounce;
}

size_t loom__io_spares_count(int kind) { return spares.n[kind]; }

/* The read buffer goes: kept as a spare if it has the usual size. */
static void rbuf_free(loom_stream_t *s) {
  if (s->rcap == RBUF_MIN)
    spare_put(s->obj.rt, SPARE_READ, s->rbuf);
  else
    free(s->rbuf);
  s->rbuf = NULL;
  s->rcap = s->rstart = s->rend = 0;
}

/* A write request or gather buffer goes: kept if it has the usual size. */
static void wreq_free(loom_stream_t *s, wreq_t *w) {
  if (w->cap == GATHER_MIN)
    spare_put(s->obj.rt, SPARE_GATHER, w);
  else
    free(w);
}

static void drop_gather(loom_stream_t *s);

static void release(void *p) {
  loom_stream_t *s = p;
  drop_gather(s); /* never holds any by now: close_now dropped it */
  if (s->rbuf) rbuf_free(s);
}

int loom__stream_new(loom_stream_t **out, loom_t *rt, uv_handle_type type, int fd) {
  /* A UDP socket (open_fd) has no room in the handle union. */
  if (type != UV_TCP && type != UV_NAMED_PIPE && type != UV_TTY && type != UV_IDLE)
    return UV_EINVAL;
  loom_stream_t *s = calloc(1, sizeof(*s));
  if (!s) return UV_ENOMEM;
  int rc = loom__obj_setup(&s->obj, s, rt, "stream", io_close, &s->u.handle, type, fd);
  if (rc) return rc;
  s->obj.release = release;
  s->is_tcp = type == UV_TCP;
  s->limit = LOOM_STREAM_LIMIT;
  s->high_water = HIGH_WATER;
  s->low_water = HIGH_WATER / 4;
  s->out_limit = LOOM_STREAM_OUTPUT_LIMIT;
  *out = s;
  return 0;
}

static void on_closed(uv_handle_t *h) {
  loom_stream_t *s = h->data;
  loom__obj_closed(&s->obj);
}

/* Every public call that may suspend holds a reference for its duration. */
static void ref(loom_stream_t *s) { loom__obj_ref(&s->obj); }
static int unref(loom_stream_t *s, int rc) {
  loom__obj_unref(&s->obj);
  return rc;
}

/* reset: a TCP stream ends with RST instead of FIN (loom_abort). */
static void close_now(loom_stream_t *s, int reset) {
  drop_gather(s); /* abort drops it, as what is queued */
  if (uv_is_closing(&s->u.handle)) return;
  s->closing = 1;
  /* Tasks still waiting on it (another task closed it) see an error. */
  if (s->reader) loom__wake(s->reader, UV_EBADF);
  loom__wq_wake_all(&s->writers, UV_EBADF);
  loom__wq_wake_all(&s->drainers, UV_EBADF);
  if (s->src) s->src->close(s);
  if (reset && s->is_tcp && uv_tcp_close_reset(&s->u.tcp, on_closed) == 0) return;
  uv_close(&s->u.handle, on_closed);
}

void loom__stream_close_now(loom_stream_t *s) { close_now(s, 0); }

static void read_stop(loom_stream_t *s);
static void flush_gather(loom_stream_t *s);

/* loom_close: flush what is queued, then close. */
void loom__stream_close(loom_stream_t *s) {
  loom__obj_unpublish(&s->obj);
  if (s->closing) return;
  s->closing = 1;
  read_stop(s);
  /* Nothing more is read, nothing more may be written: tasks waiting on
   * the stream (another task closed it) hear it now, not when the flush
   * ends (never, if the peer does not read). */
  if (s->reader) loom__wake(s->reader, UV_EBADF);
  loom__wq_wake_all(&s->writers, UV_EPIPE);
  flush_gather(s); /* gathered bytes go out before the close */
  if (s->src && s->src->closing) s->src->closing(s);
  if (s->queued == 0) close_now(s, 0);
  /* else on_write closes it once the queue is empty */
}

/* Shutdown closes what the program left open (runtime.c). */
static int io_close(loom__io_t *o, int force) {
  loom_stream_t *s = loom__obj_of(o);
  if (uv_is_closing(&s->u.handle)) return 0;
  int left_open = !s->closing, unsent = s->queued > 0 || s->gather;
  if (!force) {
    loom__stream_close(s);
    return left_open;
  }
  loom__obj_unpublish(&s->obj);
  close_now(s, 1);
  return unsent;
}

/* ---- reading ---------------------------------------------------------------------- */

static size_t buffered(const loom_stream_t *s) { return s->rend - s->rstart; }

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  loom_stream_t *s = h->data;
  /* A direct read just filled the reader's buffer: libuv would read again
   * at once, and when the peer sent just what was asked (a client waiting
   * for its answer, the common case) that read(2) finds nothing. No buffer
   * this once: libuv then leaves this round of reads, and the next poll
   * reports whatever more there is (reading stays on). */
  if (s->direct_full) {
    s->direct_full = 0;
    s->skipped = 1;
    buf->base = NULL;
    buf->len = 0;
    return;
  }
  /* A reader waits in loom_read with nothing buffered: read straight into
   * its buffer. */
  if (s->direct && s->rstart == s->rend) {
    s->direct_active = 1;
    buf->base = s->direct;
    buf->len = s->direct_len;
    return;
  }
  /* No buffer (the reader gave it back when it waited): a spare, of the
   * size every buffer starts at. */
  if (!s->rbuf) {
    s->rbuf = spare_get(s->obj.rt, SPARE_READ);
    s->rcap = s->rbuf ? RBUF_MIN : 0;
    s->rstart = s->rend = 0;
    buf->base = s->rbuf;
    buf->len = s->rcap;
    s->nomem = buf->len == 0; /* see the end of this function */
    return;
  }
  /* The reads since the last compaction filled the buffer to its end: more
   * arrives than it holds, so it grows (up to libuv's hint of what one read
   * may bring) and later reads take more at a time. It shrinks back when
   * the reader finds it empty (wait_data). */
  int filled = s->rcap > 0 && s->rend == s->rcap && s->rcap < hint;
  if (s->rstart > 0 && s->rstart == s->rend) s->rstart = s->rend = 0;
  if (s->rcap - s->rend < RBUF_MIN / 2 && s->rstart > 0) {
    memmove(s->rbuf, s->rbuf + s->rstart, buffered(s));
    s->rend -= s->rstart;
    s->rstart = 0;
  }
  if (s->rcap - s->rend < RBUF_MIN / 2 || filled) {
    /* Never more than the limit plus one read's worth, or what is buffered
     * plus one read's worth when the limit was lowered (set_limit, the end
     * of read_all) while reading was on: on_read then stops reading, but a
     * buffer without room would fail the read (UV_ENOBUFS, for good).
     * Saturating: the limit may be SIZE_MAX. */
    size_t base = s->limit > buffered(s) ? s->limit : buffered(s);
    size_t most = base > SIZE_MAX - RBUF_MIN ? SIZE_MAX : base + RBUF_MIN;
    size_t cap = !s->rcap ? RBUF_MIN : s->rcap > SIZE_MAX / 2 ? SIZE_MAX : s->rcap * 2;
    if (cap > most) cap = most;
    if (cap > s->rcap) {
      char *b = realloc(s->rbuf, cap);
      if (b) {
        s->rbuf = b;
        s->rcap = cap;
      }
    }
  }
  buf->base = s->rbuf ? s->rbuf + s->rend : NULL;
  buf->len = s->rcap - s->rend;
  /* No room and no memory for more: libuv will report UV_ENOBUFS without
   * reading anything. That is a passing shortage, not the stream's end. */
  s->nomem = buf->len == 0;
}

static void read_stop(loom_stream_t *s) {
  s->direct_full = 0;
  if (s->reading) {
    if (s->src)
      s->src->stop(s);
    else
      uv_read_stop(&s->u.stream);
    s->reading = 0;
  }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  loom_stream_t *s = st->data;
  (void)buf;
  if (s->skipped) { /* UV_ENOBUFS from on_alloc's skip: nothing read */
    s->skipped = 0;
    return;
  }
  if (s->direct_active) {
    s->direct_active = 0;
    if (nread > 0) {
      s->direct_full = (size_t)nread == s->direct_len;
      s->direct = NULL; /* more data goes to rbuf */
      s->direct_got = (size_t)nread;
      nread = 0; /* nothing to add to rbuf */
      goto wake;
    }
  }
  if (nread > 0) {
    s->rend += (size_t)nread;
    /* Backpressure: stop reading once the limit is buffered. */
    if (buffered(s) >= s->limit) read_stop(s);
    /* A writer waiting for room stops waiting (see writing). */
    if (!s->turn && loom__wq_wake_one(&s->writers, 0)) s->turn = 1;
  } else if (nread == UV_EOF) {
    s->eof = 1;
    read_stop(s);
  } else if (nread == UV_ENOBUFS && s->nomem) {
    /* Nothing was read: stop, tell a waiting reader UV_ENOMEM once, and
     * read again at the next wait. Neither sticky nor UV_ENOBUFS, which
     * means "line too long" to read_until / read_line callers. */
    s->rnomem = s->reader != NULL;
    read_stop(s);
    /* With no reader to tell, the peer's bytes stay unread in the kernel
     * until the next wait: nomem stays set until then, and writers do not
     * wait for room meanwhile, as if the bytes were buffered (a writer
     * waiting now would wait for good: see writing). */
    s->nomem = !s->rnomem;
    if (s->nomem && !s->turn && loom__wq_wake_one(&s->writers, 0)) s->turn = 1;
  } else if (nread < 0) {
    s->rerr = (int)nread;
    read_stop(s);
  } else {
    return; /* EAGAIN: nothing */
  }
wake:
  /* The reader runs now, while what was read is still in cache. Last:
   * it may have closed s by the time this returns. */
  if (s->reader) loom__wake_now(s->reader, 0);
}

typedef struct {
  loom__waiter_t w;
  loom_stream_t *s;
} swait_t;

static void unhook_reader(loom__waiter_t *w) {
  loom__container_of(w, swait_t, w)->s->reader = NULL;
}

/* Waits until more data, EOF or an error arrives. */
static int wait_data(loom_stream_t *s) {
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  if (s->eof) return UV_EOF;
  if (s->rerr) return s->rerr;
  if (s->rnomem) {
    s->rnomem = 0;
    return UV_ENOMEM;
  }
  if (s->closing || uv_is_closing(&s->u.handle)) return UV_EBADF;
  if (s->reader) return UV_EBUSY; /* one reader at a time, as in asyncio */
  if (buffered(s) >= s->limit) return UV_ENOBUFS;
  if (buffered(s) == 0 && s->rbuf) {
    /* Nothing buffered and a reader about to wait: the connection may stay
     * idle for long, so it holds no buffer while it does (1,000 idle
     * connections hold none at all), and a buffer grown for one large
     * request does not outlive it. on_alloc takes a new one when data
     * arrives; libuv holds no pointer into this one between reads. */
    rbuf_free(s);
  }
  if (!s->reading) {
    s->nomem = 0;
    s->direct_full = 0;
    rc = s->src ? s->src->start(s, on_alloc, on_read)
                : uv_read_start(&s->u.stream, on_alloc, on_read);
    if (rc) return rc;
    s->reading = 1;
  }
  /* Reading stays on after this wait: stopping and restarting it would
   * cost epoll_ctl calls per read. The limit bounds what is buffered. */
  s->wrote_now = 0;
  swait_t wt = {.w = {.task = self, .cancel = unhook_reader}, .s = s};
  s->reader = &wt.w;
  rc = loom__park(&wt.w);
  s->reader = NULL;
  return rc;
}

static void take(loom_stream_t *s, void *buf, size_t n) {
  if (n == 0) return; /* rbuf may still be NULL: memcpy wants real pointers */
  memcpy(buf, s->rbuf + s->rstart, n);
  s->rstart += n;
}

/* With nothing buffered, waits while libuv reads straight into buf (n
 * bytes): no copy, and one read(2) takes as much as the kernel has, up to
 * n, where loom's own buffer would take a few KiB at a time. *got: what
 * arrived in buf; 0 with a 0 return when data arrived in loom's buffer
 * instead (it had some already when libuv read). */
static int wait_direct(loom_stream_t *s, void *buf, size_t n, size_t *got) {
  s->direct = buf;
  s->direct_len = n;
  s->direct_got = 0;
  int rc = 0;
  while (buffered(s) == 0 && s->direct_got == 0 && rc == 0) rc = wait_data(s);
  s->direct = NULL;
  *got = s->direct_got;
  s->direct_got = 0;
  return *got ? 0 : rc;
}

static ssize_t do_read(loom_stream_t *s, void *buf, size_t n) {
  if (n == 0) return 0;
  if (buffered(s) == 0 && !s->reader) {
    size_t got;
    int rc = wait_direct(s, buf, n, &got);
    if (got) return (ssize_t)got;
    if (rc == UV_EOF) return 0;
    if (rc) return rc;
  }
  while (buffered(s) == 0) {
    int rc = wait_data(s);
    if (rc == UV_EOF) return 0;
    if (rc) return rc;
  }
  size_t k = buffered(s) < n ? buffered(s) : n;
  take(s, buf, k);
  return (ssize_t)k;
}

ssize_t loom_read(loom_stream_t *h, void *buf, size_t n) {
  if (!h || (!buf && n)) return UV_EINVAL;
  loom_stream_t *s = loom__stream_get(h);
  if (!s) return UV_EBADF;
  ref(s);
  ssize_t rc = do_read(s, buf, n);
  unref(s, 0);
  return rc;
}

static int do_read_exactly(loom_stream_t *s, void *buf, size_t n, size_t *got) {
  size_t have = 0;
  int rc = 0;
  while (have < n) {
    if (buffered(s) == 0 && n - have >= DIRECT_MIN && !s->reader) {
      /* What is asked goes straight into the caller's buffer, in reads as
       * large as what is left (a 1 MiB read takes a few read(2) calls, not
       * one per RBUF_MIN). A short rest goes through loom's buffer instead,
       * which picks up what follows it (the next header) in the same
       * read(2). */
      size_t k;
      rc = wait_direct(s, (char *)buf + have, n - have, &k);
      have += k;
      if (rc) break;
      continue;
    }
    if (buffered(s) == 0 && (rc = wait_data(s)) != 0) break;
    size_t k = buffered(s) < n - have ? buffered(s) : n - have;
    take(s, (char *)buf + have, k);
    have += k;
  }
  if (got) *got = have;
  return have == n ? 0 : rc;
}

int loom_read_exactly(loom_stream_t *h, void *buf, size_t n, size_t *got) {
  if (got) *got = 0;
  if (!h || (!buf && n)) return UV_EINVAL;
  loom_stream_t *s = loom__stream_get(h);
  if (!s) return UV_EBADF;
  ref(s);
  return unref(s, do_read_exactly(s, buf, n, got));
}

static ssize_t find(const loom_stream_t *s, const char *d, size_t dlen, size_t from) {
  size_t len = buffered(s);
  if (len < dlen) return -1; /* also: rbuf may still be NULL */
  if (from > len - dlen) return -1;
  /* memchr for the delimiter's first byte: a request head ("...\r\n\r\n")
   * holds few of them, and memchr skips the rest many bytes at a time. */
  const char *p = s->rbuf + s->rstart, *q = p + from, *last = p + len - dlen;
  while ((q = memchr(q, d[0], (size_t)(last - q) + 1)) != NULL) {
    size_t k = 1; /* delimiters are short: no memcmp call */
    while (k < dlen && q[k] == d[k]) k++;
    if (k == dlen) return q - p;
    if (q++ == last) break;
  }
  return -1;
}

static ssize_t until(loom_stream_t *s, const char *delim, size_t dlen, char *buf,
                     size_t cap, int partial_at_eof) {
  if (!s || !delim || dlen == 0 || !buf || cap == 0) return UV_EINVAL;
  size_t scanned = 0;
  for (;;) {
    ssize_t at = find(s, delim, dlen, scanned);
    if (at >= 0) {
      size_t n = (size_t)at + dlen;
      if (n > s->limit || n + 1 > cap) return UV_ENOBUFS; /* left readable */
      take(s, buf, n);
      buf[n] = 0;
      return (ssize_t)n;
    }
    if (buffered(s) >= s->limit) return UV_ENOBUFS;
    scanned = buffered(s) >= dlen ? buffered(s) - dlen + 1 : 0;
    int rc = wait_data(s);
    if (rc == UV_EOF && partial_at_eof) {
      size_t n = buffered(s);
      if (n + 1 > cap) return UV_ENOBUFS;
      take(s, buf, n);
      buf[n] = 0;
      return (ssize_t)n;
    }
    if (rc) return rc;
  }
}

ssize_t loom_read_until(loom_stream_t *h, const void *delim, size_t dlen, char *buf,
                        size_t cap) {
  if (!h) return UV_EINVAL;
  loom_stream_t *s = loom__stream_get(h);
  if (!s) return UV_EBADF;
  ref(s);
  ssize_t rc = until(s, delim, dlen, buf, cap, 0);
  unref(s, 0);
  return rc;
}

ssize_t loom_read_line(loom_stream_t *h, char *buf, size_t cap) {
  if (!h) return UV_EINVAL;
  loom_stream_t *s = loom__stream_get(h);
  if (!s) return UV_EBADF;
  ref(s);
  ssize_t rc = until(s, "\n", 1, buf, cap, 1);
  unref(s, 0);
  return rc;
}

static int do_read_all(loom_stream_t *s, char **data, size_t *len, size_t max) {
  int rc;
  /* Let the buffer grow past max while reading to EOF: reading stops once
   * the limit is buffered, so a limit of max would stop it with exactly max
   * bytes buffered and the EOF behind them unread. */
  size_t saved = s->limit;
  if (max >= saved) s->limit = max == SIZE_MAX ? SIZE_MAX : max + 1;
  while ((rc = wait_data(s)) == 0) {
    if (buffered(s) > max) {
      rc = UV_ENOBUFS;
      break;
    }
  }
  s->limit = saved;
  if (rc != UV_EOF) return rc;
  size_t n = buffered(s);
  if (n > max) return UV_ENOBUFS;
  char *out = malloc(n + 1);
  if (!out) return UV_ENOMEM;
  take(s, out, n);
  out[n] = 0;
  *data = out;
  *len = n;
  return 0;
}

int loom_read_all(loom_stream_t *h, char **data, size_t *len, size_t max) {
  if (!h || !data || !len) return UV_EINVAL;
  *data = NULL;
  *len = 0;
  loom_stream_t *s = loom__stream_get(h);
  if (!s) return UV_EBADF;
  ref(s);
  return unref(s, do_read_all(s, data, len, max));
}

/* ---- writing ----------------------------------------------------------------------- */

/* n queued bytes were written (or failed with status). */
static void wrote(loom_stream_t *s, size_t n, int status) {
  s->queued -= n;
  if (status < 0 && !s->werr) s->werr = status;
  if (s->werr) {
    /* Gathered bytes can no longer follow: the error reports them. */
    drop_gather(s);
    loom__wq_wake_all(&s->writers, s->werr);
    loom__wq_wake_all(&s->drainers, s->werr);
  } else {
    /* Room again: the longest-waiting writer goes next. */
    if (s->queued <= s->low_water && !s->turn && loom__wq_wake_one(&s->writers, 0))
      s->turn = 1;
    if (s->queued == 0) loom__wq_wake_all(&s->drainers, 0);
  }
  if (s->closing && s->queued == 0) close_now(s, 0);
}

static void on_write(uv_write_t *req, int status) {
  wreq_t *w = loom__container_of(req, wreq_t, req);
  loom_stream_t *s = w->s;
  size_t n = w->len;
  wreq_free(s, w);
  wrote(s, n, status);
}

void loom__stream_wrote(loom_stream_t *s, size_t n, int status) { wrote(s, n, status); }

/* uv_try_write and uv_write, or the layer's (a TLS stream's), for the
 * flush and the queued rest of a write; loom_writev's own path is compiled
 * once per kind (writev_via). */
static int try_write(loom_stream_t *s, const uv_buf_t *bufs, unsigned nbufs) {
  if (s->src) return s->src->try_write(s, bufs, nbufs);
  return uv_try_write(&s->u.stream, bufs, nbufs);
}

static int start_write(uv_write_t *req, loom_stream_t *s, const uv_buf_t *bufs,
                       unsigned nbufs) {
  if (s->src) return s->src->write(req, s, bufs, nbufs, on_write);
  return uv_write(req, &s->u.stream, bufs, nbufs, on_write);
}

/* The stream breaks for good with rc: whoever waits to write or drain
 * hears it now, everyone else at their next call. */
static void write_failed(loom_stream_t *s, int rc) {
  if (!s->werr) s->werr = rc;
  loom__wq_wake_all(&s->writers, s->werr);
  loom__wq_wake_all(&s->drainers, s->werr);
  if (s->closing && s->queued == 0) close_now(s, 0);
}

/* Bytes written and not yet in the kernel: queued with libuv, or gathered.
 * The high-water mark and the output limit bound these. */
static size_t pending(const loom_stream_t *s) {
  return s->queued + (s->gather ? s->gather->len : 0);
}

static void drop_gather(loom_stream_t *s) {
  if (!s->gather) return;
  wreq_free(s, s->gather);
  s->gather = NULL;
  loom__list_remove(&s->obj.rt->flush, &s->flush_link);
}

/* Hands the gathered bytes to libuv: what the kernel takes at once, and
 * the rest queued in the gather buffer itself, which becomes the write
 * request. Never allocates, never suspends. A failure is sticky (werr). */
static void flush_gather(loom_stream_t *s) {
  wreq_t *g = s->gather;
  if (!g) return;
  s->gather = NULL;
  loom__list_remove(&s->obj.rt->flush, &s->flush_link);
  size_t done = 0;
  int rc = 0;
  if (s->werr || uv_is_closing(&s->u.handle)) {
    wreq_free(s, g); /* the sticky error reports them */
    return;
  }
  /* A layer takes its writes whatever is queued (it encrypts them and
   * queues the records behind the others): no copy into a request. */
  if (s->queued == 0 || s->src) {
    rc = try_write(s, &(uv_buf_t){.base = g->data, .len = g->len}, 1);
    if (rc >= 0)
      done = (size_t)rc;
    else if (rc != UV_EAGAIN && rc != UV_ENOSYS) {
      wreq_free(s, g);
      write_failed(s, rc);
      return;
    }
  }
  if (done == g->len) {
    wreq_free(s, g);
    /* A writer may wait for room that these bytes took (a high-water
     * mark below GATHER_CAP): no on_write will come to wake it. */
    if (s->queued <= s->low_water && !s->turn && loom__wq_wake_one(&s->writers, 0))
      s->turn = 1;
    return;
  }
  g->s = s;
  g->len -= done;
  rc = start_write(&g->req, s, &(uv_buf_t){.base = g->data + done, .len = g->len}, 1);
  if (rc) {
    wreq_free(s, g);
    write_failed(s, rc);
    return;
  }
  s->queued += g->len;
}

void loom__io_flush(loom_t *rt) {
  loom__link_t *l;
  while ((l = rt->flush.head) != NULL)
    flush_gather(loom__list_entry(l, loom_stream_t, flush_link));
}

/* Copies a small write into the gather buffer, flushing first what is
 * gathered if it does not fit. UV_ENOMEM: nothing of it was taken. */
static int gather(loom_stream_t *s, const uv_buf_t *bufs, unsigned nbufs, size_t total) {
  wreq_t *g = s->gather;
  if (g && g->cap - g->len < total) {
    if (g->cap < GATHER_CAP) {
      size_t cap = g->cap;
      while (cap - g->len < total && cap < GATHER_CAP) cap *= 2;
      wreq_t *bigger = cap - g->len >= total ? realloc(g, sizeof(*g) + cap) : NULL;
      if (bigger) {
        bigger->cap = cap;
        s->gather = g = bigger;
      }
    }
    if (g->cap - g->len < total) {
      flush_gather(s);
      if (s->werr) return s->werr;
      g = NULL;
    }
  }
  if (!g) {
    size_t cap = GATHER_MIN;
    while (cap < total) cap *= 2;
    g = cap == GATHER_MIN ? spare_get(s->obj.rt, SPARE_GATHER) : malloc(sizeof(*g) + cap);
    if (!g) return UV_ENOMEM;
    g->len = 0;
    g->cap = cap;
    s->gather = g;
    loom__list_push_back(&s->obj.rt->flush, &s->flush_link);
  }
  for (unsigned i = 0; i < nbufs; i++) {
    if (bufs[i].len == 0) continue;
    memcpy(g->data + g->len, bufs[i].base, bufs[i].len);
    g->len += bufs[i].len;
  }
  return 0;
}

/* Waits for this writer's turn: behind every earlier writer, and until the
 * queue is at or below the low-water mark. Nothing is written yet, so an
 * interruption leaves the stream as it was. */
static int wait_turn(loom_stream_t *s, loom_task_t *self) {
  loom__wnode_t n;
  int rc = loom__wq_wait(&s->writers, &n, self, 0);
  if (rc == 0)
    s->turn = 0; /* ours: the next waits for the next wake-up */
  else if (s->turn == 0 && !loom__wq_empty(&s->writers) && !s->werr && !s->closing &&
           s->queued <= s->low_water && loom__wq_wake_one(&s->writers, 0))
    s->turn = 1; /* we were next and leave: pass room on */
  return rc;
}

/* Copies what the kernel did not take (bufs from byte `done` on) into one
 * request and queues it. */
static int queue_rest(loom_stream_t *s, const uv_buf_t *bufs, unsigned nbufs,
                      size_t total, size_t done) {
  size_t rest = total - done;
  if (rest > SIZE_MAX - sizeof(wreq_t)) return UV_ENOMEM;
  wreq_t *w = malloc(sizeof(*w) + rest);
  if (!w) return UV_ENOMEM;
  w->cap = rest; /* a spare if it has the gather buffer's size */
  size_t off = 0, skip = done;
  for (unsigned i = 0; i < nbufs; i++) {
    size_t l = bufs[i].len;
    if (skip >= l) {
      skip -= l;
      continue;
    }
    memcpy(w->data + off, bufs[i].base + skip, l - skip);
    off += l - skip;
    skip = 0;
  }
  w->s = s;
  w->len = rest;
  uv_buf_t b;
  b.base = w->data;
  b.len = rest; /* not uv_buf_init: its length is an unsigned int */
  int rc = start_write(&w->req, s, &b, 1);
  if (rc) {
    wreq_free(s, w);
    return rc;
  }
  s->queued += rest;
  return 0;
}

/* Writes what the kernel takes at once and queues the rest. src: the
 * stream's layer, or NULL; a constant in each of the two copies below, so
 * that a plain stream's writes do not test for a layer. */
static inline __attribute__((always_inline)) int write_now_via(
    loom_stream_t *s, const uv_buf_t *bufs, unsigned nbufs, size_t total,
    const loom__rsource_t *src) {
  size_t done = 0;
  if (s->queued == 0 || src) {
    /* Fast path: the kernel usually takes it all, and nothing is copied.
     * uv_try_write takes at most INT_MAX bytes per call. A layer (TLS)
     * takes it all whatever is queued: see flush_gather. */
    int rc = src ? src->try_write(s, bufs, nbufs)
                 : uv_try_write(&s->u.stream, bufs, nbufs);
    if (rc >= 0)
      done = (size_t)rc;
    else if (rc != UV_EAGAIN && rc != UV_ENOSYS)
      return s->werr = rc;
  }
  if (done < total) {
    int rc = queue_rest(s, bufs, nbufs, total, done);
    if (rc == UV_ENOMEM && done == 0) return rc; /* nothing written */
    if (rc) return s->werr = rc; /* part is on the wire: the stream is broken */
  }
  return 0;
}

static int write_now_plain(loom_stream_t *s, const uv_buf_t *bufs, unsigned nbufs,
                           size_t total) {
  return write_now_via(s, bufs, nbufs, total, NULL);
}

static int write_now_layer(loom_stream_t *s, const uv_buf_t *bufs, unsigned nbufs,
                           size_t total) {
  return write_now_via(s, bufs, nbufs, total, s->src);
}

/* loom_writev after its arguments' checks; layered: the stream has a
 * layer (a constant in each of do_writev's two calls). */
static inline __attribute__((always_inline)) int writev_via(loom_stream_t *s,
                                                            const uv_buf_t *bufs,
                                                            unsigned nbufs, size_t total,
                                                            int layered) {
  int (*write_now)(loom_stream_t *, const uv_buf_t *, unsigned,
                   size_t) = layered ? write_now_layer : write_now_plain;
  if (s->werr) return s->werr;
  if (s->closing || uv_is_closing(&s->u.handle)) return UV_EPIPE;
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  if (total == 0) return 0;
  /* The lone answer to a request (see the top of the file), with nobody
   * waiting to write: nothing is pending, so no mark or limit applies,
   * and the path below would reach the same write_now after checking
   * them all. */
  int at_once = total <= GATHER_SMALL && !s->wrote_now && !s->gather && s->queued == 0 &&
                buffered(s) == 0;
  if (at_once && !s->turn && loom__wq_empty(&s->writers)) {
    s->wrote_now = 1;
    return write_now(s, bufs, nbufs, total);
  }
  /* Full, but the peer has sent what we have not read: no wait (it could
   * be for good, see the top of the file), up to the output limit. */
  int full = pending(s) > s->high_water && buffered(s) == 0 && !s->nomem;
  if (s->turn || !loom__wq_empty(&s->writers) || full) {
    rc = wait_turn(s, self);
    if (rc) return rc;
    if (s->werr)
      rc = s->werr;
    else if (s->closing || uv_is_closing(&s->u.handle))
      rc = UV_EPIPE;
  }
  size_t p = pending(s);
  if (rc == 0 && p > s->high_water && (p > s->out_limit || total > s->out_limit - p)) {
    /* Past the output limit (queued beyond the high-water mark only while
     * the peer sends without reading): the peer is not keeping up with
     * its own requests. Close it rather than hold its replies without
     * bound, or hang. */
    write_failed(s, UV_ENOBUFS);
    close_now(s, 1);
    rc = UV_ENOBUFS;
  }
  if (rc == 0) {
    if (total <= GATHER_SMALL && !s->gather && s->queued == 0 && buffered(s) == 0 &&
        !s->wrote_now) {
      s->wrote_now = 1;
      rc = write_now(s, bufs, nbufs, total);
    } else if (total <= GATHER_SMALL) {
      rc = gather(s, bufs, nbufs, total);
    } else {
      flush_gather(s); /* what was gathered goes first */
      rc = s->werr ? s->werr : write_now(s, bufs, nbufs, total);
    }
  }
  /* Room left: let the next waiting writer go now, whether this write
   * succeeded or not. */
  if (!loom__wq_empty(&s->writers) && pending(s) <= s->high_water && !s->turn &&
      loom__wq_wake_one(&s->writers, 0))
    s->turn = 1;
  return rc;
}

static int do_writev(loom_stream_t *s, const uv_buf_t *bufs, unsigned nbufs) {
  size_t total = 0;
  for (unsigned i = 0; i < nbufs; i++) {
    if (!bufs[i].base && bufs[i].len) return UV_EINVAL;
    if (bufs[i].len > SIZE_MAX - total) return UV_EINVAL;
    total += bufs[i].len;
  }
  if (!s->src) return writev_via(s, bufs, nbufs, total, 0);
  if (!s->src->write) return UV_ENOTSUP; /* a file read as a stream */
  return writev_via(s, bufs, nbufs, total, 1);
}

int loom_writev(loom_stream_t *h, const uv_buf_t *bufs, unsigned nbufs) {
  if (!h || (!bufs && nbufs)) return UV_EINVAL;
  loom_stream_t *s = loom__stream_get(h);
  if (!s) return UV_EBADF;
  ref(s);
  return unref(s, do_writev(s, bufs, nbufs));
}

int loom_write(loom_stream_t *h, const void *buf, size_t n) {
  uv_buf_t b;
  b.base = (char *)buf;
  b.len = n; /* not uv_buf_init: its length is an unsigned int */
  return loom_writev(h, &b, 1);
}

/* Waits until nothing is queued. */
static int do_drain(loom_stream_t *s) {
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc == 0) flush_gather(s);
  while (rc == 0 && s->queued > 0 && !s->werr) {
    loom__wnode_t n;
    rc = loom__wq_wait(&s->drainers, &n, self, 0);
  }
  return rc ? rc : s->werr;
}

int loom_drain(loom_stream_t *h) {
  if (!h) return UV_EINVAL;
  loom_stream_t *s = loom__stream_get(h);
  if (!s) return UV_EBADF;
  ref(s);
  return unref(s, do_drain(s));
}

int loom_flush(loom_stream_t *h) {
  if (!h) return UV_EINVAL;
  loom_stream_t *s = loom__stream_get(h);
  if (!s) return UV_EBADF;
  flush_gather(s);
  return s->werr;
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  loom__req_done(req->data, status);
}

int loom_shutdown_write(loom_stream_t *h) {
  if (!h) return UV_EINVAL;
  loom_stream_t *s = loom__stream_get(h);
  if (!s) return UV_EBADF;
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  if (s->closing) return UV_EPIPE;
  if (s->src && !s->src->shutdown) return UV_ENOTSUP;
  /* Gathered bytes go before the EOF: libuv refuses every write once the
   * shutdown is asked, so flushed later they would be lost. */
  flush_gather(s);
  if (s->werr) return s->werr;
  if (s->src && (rc = s->src->shutdown(s)) != 0) return rc;
  loom__req_t *r = loom__req_new();
  if (!r) return UV_ENOMEM;
  rc = uv_shutdown(&r->u.shutdown, &s->u.stream, on_shutdown);
  if (rc) {
    free(r);
    return rc;
  }
  r->on_abandon = NULL; /* a shutdown request completes on its own */
  ref(s);
  rc = unref(s, loom__req_wait(r));
  if (rc) return rc;
  rc = r->status;
  free(r);
  return rc;
}

int loom_close(loom_stream_t *h) {
  if (!h) return UV_EINVAL;
  loom_stream_t *s = loom__stream_get(h);
  if (!s) return UV_EBADF;
  loom__stream_close(s); /* s lives on until its close callback */
  return s->werr;
}

int loom_abort(loom_stream_t *h) {
  if (!h) return UV_EINVAL;
  loom_stream_t *s = loom__stream_get(h);
  if (!s) return UV_EBADF;
  loom__obj_unpublish(&s->obj);
  close_now(s, 1); /* TCP: RST, so the peer knows the stream was aborted */
  return 0;
}

/* ---- details ---------------------------------------------------------------------- */

int loom_stream_set_limit(loom_stream_t *h, size_t limit) {
  loom_stream_t *s = h ? loom__stream_get(h) : NULL;
  if (!h || limit == 0) return UV_EINVAL;
  if (!s) return UV_EBADF;
  s->limit = limit;
  return 0;
}

int loom_stream_set_high_water(loom_stream_t *h, size_t bytes) {
  if (!h) return UV_EINVAL;
  loom_stream_t *s = loom__stream_get(h);
  if (!s) return UV_EBADF;
  s->high_water = bytes;
  s->low_water = bytes / 4;
  return 0;
}

int loom_stream_set_output_limit(loom_stream_t *h, size_t bytes) {
  if (!h) return UV_EINVAL;
  loom_stream_t *s = loom__stream_get(h);
  if (!s) return UV_EBADF;
  s->out_limit = bytes;
  return 0;
}

size_t loom_stream_queued(const loom_stream_t *h) {
  const loom_stream_t *s = loom__stream_get((loom_stream_t *)h);
  return s ? pending(s) : 0;
}
size_t loom_stream_buffered(const loom_stream_t *h) {
  const loom_stream_t *s = loom__stream_get((loom_stream_t *)h);
  return s ? buffered(s) : 0;
}
uv_stream_t *loom_stream_handle(loom_stream_t *h) {
  loom_stream_t *s = loom__stream_get(h);
  return s && !s->src ? &s->u.stream : NULL;
}

int loom_tcp_nodelay(loom_stream_t *h, int on) {
  loom_stream_t *s = h ? loom__stream_get(h) : NULL;
  if (h && !s) return UV_EBADF;
  if (!s || !s->is_tcp) return UV_EINVAL;
  return uv_tcp_nodelay(&s->u.tcp, on);
}

int loom_tcp_keepalive(loom_stream_t *h, int on, unsigned delay_s) {
  loom_stream_t *s = h ? loom__stream_get(h) : NULL;
  if (h && !s) return UV_EBADF;
  if (!s || !s->is_tcp) return UV_EINVAL;
  return uv_tcp_keepalive(&s->u.tcp, on, delay_s);
}

int loom_stream_peername(loom_stream_t *h, struct sockaddr_storage *addr) {
  loom_stream_t *s = h ? loom__stream_get(h) : NULL;
  if (h && !s) return UV_EBADF;
  if (!s || !addr || !s->is_tcp) return UV_EINVAL;
  int len = sizeof(*addr);
  return uv_tcp_getpeername(&s->u.tcp, (struct sockaddr *)addr, &len);
}

int loom_stream_sockname(loom_stream_t *h, struct sockaddr_storage *addr) {
  loom_stream_t *s = h ? loom__stream_get(h) : NULL;
  if (h && !s) return UV_EBADF;
  if (!s || !addr || !s->is_tcp) return UV_EINVAL;
  int len = sizeof(*addr);
  return uv_tcp_getsockname(&s->u.tcp, (struct sockaddr *)addr, &len);
}

/* ---- layers (TLS) ------------------------------------------------------------ */

int loom__stream_set_layer(loom_stream_t *s, const loom__rsource_t *src, void *data,
                           void (*take_bytes)(void *arg, const char *bytes, size_t n),
                           void *arg) {
  if (s->closing || uv_is_closing(&s->u.handle)) return UV_EBADF;
  if (s->src || s->reader || s->turn || !loom__wq_empty(&s->writers)) return UV_EBUSY;
  flush_gather(s);
  if (s->werr) return s->werr;
  if (s->queued > 0) return UV_EBUSY;
  read_stop(s);
  if (buffered(s) > 0) take_bytes(arg, s->rbuf + s->rstart, buffered(s));
  if (s->rbuf) rbuf_free(s);
  s->direct = NULL;
  s->direct_active = s->direct_full = s->skipped = 0;
  s->wrote_now = 0;
  s->src = src;
  s->src_data = data;
  return 0;
}
