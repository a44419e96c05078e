/* Files as loom streams (loom_read_line over a file), and sending a file
 * to a stream.
 *
 * A file cannot be polled, so a file stream is a loom stream whose bytes
 * come from a read source (io.h) instead of uv_read_start: the stream's
 * buffering, its readers and its limit are the ones every stream has. The
 * source reads ahead in chunks of CHUNK bytes on libuv's thread pool, into
 * a bounce buffer of its own, and hands each chunk to the stream's alloc
 * and read callbacks as libuv would hand a socket's bytes. The bounce
 * buffer is what makes it safe: a read in flight writes only into memory
 * the source owns, never into the stream's buffer (which it frees and
 * regrows) nor into a reader's buffer (loom_read reads straight into it),
 * so a reader that is cancelled or a stream that is closed while a thread
 * reads leaves libuv pointing at nothing that goes away.
 *
 *   fsrc_t: req (uv_fs_t, in flight while busy), buf[CHUNK]
 *           buf[off, off + len): read, not yet handed to the stream
 *
 * The source outlives its stream while a read is in flight: the stream's
 * close lets go of it (s = NULL), and the read's callback frees it and
 * closes the file. Handing bytes over happens only from libuv callbacks
 * (the read's, or the stream's idle handle started for it), never from
 * start: a reader that starts reading must be waiting before its data
 * arrives.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs.h"

#define CHUNK (64u * 1024u)

typedef struct {
  uv_fs_t req;
  loom_stream_t *s; /* NULL once the stream has closed */
  uv_loop_t *loop;
  uv_file fd;
  int busy;       /* req is in flight */
  int active;     /* the stream wants bytes (reading is on) */
  int delivering; /* inside pump */
  int eof;        /* the last read returned 0 */
  int err;        /* the last read failed */
  uv_alloc_cb alloc;
  uv_read_cb read;
  size_t off, len; /* bytes of buf not yet handed over */
  char buf[CHUNK];
} fsrc_t;

static void src_free(fsrc_t *r) {
  uv_fs_t req;
  uv_fs_close(r->loop, &req, r->fd, NULL);
  uv_fs_req_cleanup(&req);
  free(r);
}

static void on_fs(uv_fs_t *req);

static void read_more(fsrc_t *r) {
  uv_buf_t b;
  b.base = r->buf;
  b.len = CHUNK;
  /* At the file position (-1): a descriptor handed to loom_stream_open_fd
   * is read from wherever it stands. */
  int rc = uv_fs_read(r->loop, &r->req, r->fd, &b, 1, -1, on_fs);
  if (rc)
    r->err = rc;
  else
    r->busy = 1;
}

/* Hands what the source has to the stream while it wants it: bytes, then
 * the end or an error. Called from libuv callbacks only. */
static void pump(fsrc_t *r) {
  if (r->delivering) return;
  r->delivering = 1;
  while (r->s && r->active && !r->busy) {
    loom_stream_t *s = r->s;
    uv_handle_t *h = &s->u.handle;
    uv_buf_t b = {.base = NULL, .len = 0};
    if (r->len > 0) {
      r->alloc(h, r->len, &b);
      if (!b.base || b.len == 0) { /* the stream has no memory: it stops */
        r->read((uv_stream_t *)h, UV_ENOBUFS, &b);
        continue;
      }
      size_t k = b.len < r->len ? b.len : r->len;
      memcpy(b.base, r->buf + r->off, k);
      r->off += k;
      r->len -= k;
      /* May run the reader, which may stop reading or close the stream:
       * the loop's test looks again. */
      r->read((uv_stream_t *)h, (ssize_t)k, &b);
    } else if (r->eof || r->err) {
      r->read((uv_stream_t *)h, r->eof ? UV_EOF : r->err, &b);
      r->active = 0; /* the stream stops on either */
    } else {
      read_more(r);
    }
  }
  r->delivering = 0;
  if (!r->s && !r->busy) src_free(r);
}

static void on_fs(uv_fs_t *req) {
  fsrc_t *r = loom__container_of(req, fsrc_t, req);
  r->busy = 0;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  if (n > 0) {
    r->off = 0;
    r->len = (size_t)n;
  } else if (n == 0) {
    r->eof = 1;
  } else {
    r->err = (int)n;
  }
  if (!r->s) {
    src_free(r);
    return;
  }
  pump(r);
}

static void on_idle(uv_idle_t *h) {
  loom_stream_t *s = h->data;
  uv_idle_stop(h);
  pump(s->src_data);
}

static int src_start(loom_stream_t *s, uv_alloc_cb alloc, uv_read_cb read) {
  fsrc_t *r = s->src_data;
  r->alloc = alloc;
  r->read = read;
  r->active = 1;
  if (r->busy || r->delivering) return 0; /* pump goes on once it ends */
  if (r->len == 0 && !r->eof && !r->err) {
    read_more(r);
    if (r->busy) return 0;
  }
  /* Something to hand over already: at the loop's next turn, once the
   * reader waits for it. */
  return uv_idle_start(&s->u.idle, on_idle);
}

static void src_stop(loom_stream_t *s) {
  fsrc_t *r = s->src_data;
  r->active = 0;
  uv_idle_stop(&s->u.idle);
}

static void src_close(loom_stream_t *s) {
  fsrc_t *r = s->src_data;
  s->src_data = NULL;
  r->s = NULL;
  r->active = 0;
  if (!r->busy && !r->delivering) src_free(r);
}

static const loom__rsource_t file_source = {
    .start = src_start, .stop = src_stop, .close = src_close};

int loom__file_stream_new(loom_stream_t **out, loom_t *rt, uv_file fd) {
  fsrc_t *r = malloc(sizeof(*r));
  if (!r) return UV_ENOMEM;
  memset(r, 0, offsetof(fsrc_t, buf));
  r->loop = rt->loop;
  r->fd = fd;
  loom_stream_t *s;
  int rc = loom__stream_new(&s, rt, UV_IDLE, -1);
  if (rc) {
    free(r);
    return rc;
  }
  r->s = s;
  s->src = &file_source;
  s->src_data = r;
  rc = loom__stream_publish(s, out);
  if (rc) {
    /* The stream's close frees the source and would close fd, which
     * stays the caller's on failure. */
    r->fd = -1;
    loom__stream_close_now(s);
  }
  return rc;
}

int loom_file_stream_open(loom_stream_t **out, const char *path) {
  if (out) *out = NULL;
  loom__fsop_t op;
  int rc = loom__fsop_begin_path(out, path, &op);
  if (rc) return rc;
  loom_t *rt = loom__self()->rt;
  rc = loom__fsop_wait(&op,
                       uv_fs_open(rt->loop, &op.u.fs, path, O_RDONLY, 0, loom__fsop_cb));
  ssize_t fd = op.u.fs.result;
  if (op.done) uv_fs_req_cleanup(&op.u.fs);
  if (rc == 0 && fd < 0) rc = (int)fd;
  if (rc == 0) {
    /* A directory opens for reading; its first read would fail. Say so
     * now, as open() for writing would. */
    uv_fs_t st;
    if (uv_fs_fstat(rt->loop, &st, (uv_file)fd, NULL) == 0 && S_ISDIR(st.statbuf.st_mode))
      rc = UV_EISDIR;
    uv_fs_req_cleanup(&st);
    if (rc == 0) rc = loom__file_stream_new(out, rt, (uv_file)fd);
  }
  if (rc && op.done && fd >= 0) {
    uv_fs_t c;
    uv_fs_close(rt->loop, &c, (uv_file)fd, NULL);
    uv_fs_req_cleanup(&c);
  }
  return rc;
}

/* ---- sendfile ----------------------------------------------------------------- */

ssize_t loom_file_sendfile(loom_stream_t *out, loom_file_t *f, int64_t offset,
                           size_t len) {
  if (!out || !f) return UV_EINVAL;
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  if (len == 0) return 0;
  char *buf = malloc(CHUNK);
  if (!buf) return UV_ENOMEM;
  size_t sent = 0;
  ssize_t res = 0;
  while (sent < len) {
    size_t want = len - sent < CHUNK ? len - sent : CHUNK;
    ssize_t n = loom_file_pread(f, buf, want, offset < 0 ? -1 : offset + (int64_t)sent);
    if (n <= 0) {
      res = n; /* 0: the end of the file */
      break;
    }
    /* loom_write copies what the socket does not take at once: buf is
     * ours again when it returns. */
    rc = loom_write(out, buf, (size_t)n);
    if (rc) {
      res = rc;
      break;
    }
    sent += (size_t)n;
  }
  free(buf);
  if (res < 0) return res;
  return sent > (size_t)SSIZE_MAX ? SSIZE_MAX : (ssize_t)sent;
}
