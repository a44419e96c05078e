/* Files: open files as checked handles, and the file system calls
 * (uv_fs_*) as suspending calls.
 *
 * Waiting. A file operation is a uv_fs_t that a libuv thread works on. The
 * request lives in the waiting task's frame (loom__fsop_t), and the task
 * does not return before libuv's callback has run:
 *
 *   waiting --callback--> done: returns libuv's result
 *      |
 *   interrupted (cancelled, timed out): uv_cancel
 *      |-- not started: libuv drops the work; the callback comes at the
 *      |   loop's next turn with UV_ECANCELED and nothing happened
 *      '-- running: the system call ends on its own
 *   then waits, deaf to interruptions, for the callback; returns the
 *   interruption.
 *
 * This differs from the request seam (req.c), where an interrupted task
 * returns at once and abandons its request to the callback: a read's
 * request points into the caller's buffer, which the caller may free or
 * reuse once the call has returned, so the call must not return while a
 * thread may still write into it. Waiting also means no allocation per
 * operation.
 *
 * Open files. A loom_file_t is an object on the runtime's list with a
 * handle; each call holds a reference for its duration, so a close while
 * another task is in a read defers the close(2) to the end of that read
 * (the descriptor number is not reused while a thread still reads from it).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

/* ---- waiting ------------------------------------------------------------------- */

int loom__fsop_begin(loom__fsop_t *op) {
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  memset(op, 0, sizeof(*op));
  op->w.task = self;
  return 0;
}

static void fsop_done(loom__fsop_t *op) {
  op->done = 1;
  /* The task runs now, from the callback, rather than at the next
   * scheduler pass: a loop of reads starts its next one a turn of the loop
   * sooner, which is what a sequential read is made of. Does nothing when
   * the task was interrupted and has not run since. Last: op is in the
   * task's frame, gone once it has run. */
  loom__wake_now(&op->w, 0);
}

void loom__fsop_cb(uv_fs_t *req) {
  fsop_done(loom__container_of(req, loom__fsop_t, u.fs));
}

void loom__fsop_work_cb(uv_work_t *req, int status) {
  loom__fsop_t *op = loom__container_of(req, loom__fsop_t, u.work);
  /* status is UV_ECANCELED when uv_cancel took the work back. */
  op->status = status;
  fsop_done(op);
}

int loom__fsop_wait(loom__fsop_t *op, int start_rc) {
  if (start_rc) return start_rc; /* libuv never calls back then */
  int rc = 0;
  loom__wait_on(&op->w, LOOM__W_FILE, &op->u);
  while (!op->done && rc == 0) rc = loom__park(&op->w);
  if (!op->done) {
    uv_cancel(&op->u.req); /* UV_EBUSY once a thread has it: it ends anyway */
    op->w.shielded = 1;
    while (!op->done) loom__park(&op->w);
    op->w.shielded = 0;
  }
  return rc;
}

/* Runs the uv_fs_* call that `start` made on op, and returns the
 * interruption or libuv's result, with the request cleaned up. */
static ssize_t fs_end(loom__fsop_t *op, int start_rc) {
  int rc = loom__fsop_wait(op, start_rc);
  ssize_t res = rc ? rc : op->u.fs.result;
  if (!start_rc) uv_fs_req_cleanup(&op->u.fs);
  return res;
}

static uv_loop_t *loop_of(const loom__fsop_t *op) { return op->w.task->rt->loop; }

/* ---- open files ---------------------------------------------------------------- */

static void close_fd(uv_loop_t *loop, uv_file fd) {
  /* Synchronous (no callback): close(2) of a file returns at once in
   * practice, and closing must work where waiting cannot (clean-up in a
   * cancelled task, shutdown). */
  uv_fs_t req;
  uv_fs_close(loop, &req, fd, NULL);
  uv_fs_req_cleanup(&req);
}

static void file_free(loom_file_t *f) {
  close_fd(f->obj.rt->loop, f->fd);
  loom__obj_free(&f->obj);
}

/* Shutdown: the program left the file open. */
static int io_close(loom__io_t *io, int force) {
  (void)force;
  loom_file_t *f = loom__obj_of(io);
  if (f->closing) return 0; /* closes when its last call ends */
  file_free(f);
  return 1;
}

loom_file_t *loom__file_ref(loom_file_t *h) {
  loom_file_t *f = loom__handle_get(NULL, h, LOOM__H_FILE);
  if (f) loom__obj_ref(&f->obj);
  return f;
}

void loom__file_unref(loom_file_t *f) {
  if (--f->obj.refs == 0 && f->closing) file_free(f);
}

int loom_file_open(loom_file_t **out, const char *path, int flags, int mode) {
  if (!out) return UV_EINVAL;
  *out = NULL;
  if (!path) return UV_EINVAL;
  loom__fsop_t op;
  int rc = loom__fsop_begin(&op);
  if (rc) return rc;
  loom_t *rt = op.w.task->rt;
  /* The object first: once the file is open, nothing may fail but the
   * close of it. */
  loom_file_t *f = calloc(1, sizeof(*f));
  if (!f) return UV_ENOMEM;
  ssize_t fd = fs_end(
      &op, uv_fs_open(rt->loop, &op.u.fs, path, flags | O_CLOEXEC, mode, loom__fsop_cb));
  if (fd < 0) {
    /* Interrupted after the open succeeded: the caller will never see the
     * descriptor, so it must not stay open. */
    if (op.done && op.u.fs.result >= 0) close_fd(rt->loop, (uv_file)op.u.fs.result);
    free(f);
    return (int)fd;
  }
  f->fd = (uv_file)fd;
  rc = loom__obj_setup(&f->obj, f, rt, "file", io_close, NULL, UV_UNKNOWN_HANDLE, -1);
  if (rc == 0) rc = loom__obj_publish(&f->obj, LOOM__H_FILE);
  if (rc) {
    file_free(f);
    return rc;
  }
  *out = f->obj.token;
  return 0;
}

int loom_file_close(loom_file_t *h) {
  if (!h) return UV_EINVAL;
  loom_file_t *f = loom__handle_get(NULL, h, LOOM__H_FILE);
  if (!f) return UV_EBADF;
  loom__obj_unpublish(&f->obj);
  if (f->obj.refs > 0) {
    f->closing = 1;
    return 0;
  }
  uv_fs_t req;
  int rc = uv_fs_close(f->obj.rt->loop, &req, f->fd, NULL);
  uv_fs_req_cleanup(&req);
  loom__obj_free(&f->obj);
  return rc;
}

int loom_file_fileno(loom_file_t *h) {
  if (!h) return UV_EINVAL;
  loom_file_t *f = loom__handle_get(NULL, h, LOOM__H_FILE);
  return f ? f->fd : UV_EBADF;
}

/* Up to this many buffers per readv/writev (IOV_MAX on Linux). */
#define MAX_BUFS 1024u

static int check_bufs(const uv_buf_t *bufs, unsigned nbufs, size_t *total) {
  if ((!bufs && nbufs) || nbufs > MAX_BUFS) return UV_EINVAL;
  size_t t = 0;
  for (unsigned i = 0; i < nbufs; i++) {
    if (!bufs[i].base && bufs[i].len) return UV_EINVAL;
    if (bufs[i].len > (size_t)SSIZE_MAX - t) return UV_EINVAL;
    t += bufs[i].len;
  }
  *total = t;
  return 0;
}

/* One read(v)/write(v) system call on f. */
static ssize_t rw_once(loom_file_t *f, const uv_buf_t *bufs, unsigned nbufs,
                       int64_t offset, int write) {
  loom__fsop_t op;
  int rc = loom__fsop_begin(&op);
  if (rc) return rc;
  if (offset < 0) offset = -1;
  uv_loop_t *loop = loop_of(&op);
  /* libuv copies bufs into the request (or points at them: they outlive
   * the wait either way). */
  return fs_end(
      &op, write ? uv_fs_write(loop, &op.u.fs, f->fd, bufs, nbufs, offset, loom__fsop_cb)
                 : uv_fs_read(loop, &op.u.fs, f->fd, bufs, nbufs, offset, loom__fsop_cb));
}

ssize_t loom_file_readv(loom_file_t *h, const uv_buf_t *bufs, unsigned nbufs,
                        int64_t offset) {
  size_t total;
  if (!h) return UV_EINVAL;
  int rc = check_bufs(bufs, nbufs, &total);
  if (rc) return rc;
  loom_file_t *f = loom__file_ref(h);
  if (!f) return UV_EBADF;
  ssize_t n = rw_once(f, bufs, nbufs, offset, 0);
  loom__file_unref(f);
  return n;
}

ssize_t loom_file_pread(loom_file_t *h, void *buf, size_t n, int64_t offset) {
  uv_buf_t b;
  b.base = buf;
  b.len = n; /* not uv_buf_init: its length is an unsigned int */
  return loom_file_readv(h, &b, 1, offset);
}

ssize_t loom_file_read(loom_file_t *h, void *buf, size_t n) {
  return loom_file_pread(h, buf, n, -1);
}

ssize_t loom_file_writev(loom_file_t *h, const uv_buf_t *bufs, unsigned nbufs,
                         int64_t offset) {
  size_t total;
  if (!h) return UV_EINVAL;
  int rc = check_bufs(bufs, nbufs, &total);
  if (rc) return rc;
  loom_file_t *f = loom__file_ref(h);
  if (!f) return UV_EBADF;
  /* write(2) may take less than asked (a full disk, a signal, a pipe):
   * go on from where it stopped, on a copy of the buffer list. */
  uv_buf_t local[8], *v = nbufs <= 8 ? local : malloc(nbufs * sizeof(*v));
  if (!v) {
    loom__file_unref(f);
    return UV_ENOMEM;
  }
  if (nbufs) memcpy(v, bufs, nbufs * sizeof(*v));
  size_t done = 0;
  unsigned first = 0;
  ssize_t res = 0;
  while (first < nbufs) {
    if (v[first].len == 0) {
      first++;
      continue;
    }
    ssize_t n = rw_once(f, v + first, nbufs - first, offset, 1);
    if (n < 0) {
      res = n;
      break;
    }
    if (n == 0) { /* cannot happen for a non-empty write; never spin */
      res = UV_EIO;
      break;
    }
    done += (size_t)n;
    if (offset >= 0) offset += n;
    size_t k = (size_t)n;
    while (k > 0 && first < nbufs) {
      size_t take = k < v[first].len ? k : v[first].len;
      v[first].base += take;
      v[first].len -= take;
      k -= take;
      if (v[first].len == 0) first++;
    }
  }
  if (v != local) free(v);
  loom__file_unref(f);
  return res < 0 ? res : (ssize_t)done;
}

ssize_t loom_file_pwrite(loom_file_t *h, const void *buf, size_t n, int64_t offset) {
  uv_buf_t b;
  b.base = (char *)buf;
  b.len = n;
  return loom_file_writev(h, &b, 1, offset);
}

ssize_t loom_file_write(loom_file_t *h, const void *buf, size_t n) {
  return loom_file_pwrite(h, buf, n, -1);
}

enum { OP_SYNC, OP_DATASYNC, OP_TRUNCATE, OP_FSTAT, OP_FCHMOD };

/* The calls on an open file that take no buffer. */
static int file_op(loom_file_t *h, int kind, int64_t arg, uv_stat_t *st) {
  if (!h) return UV_EINVAL;
  loom_file_t *f = loom__file_ref(h);
  if (!f) return UV_EBADF;
  loom__fsop_t op;
  int rc = loom__fsop_begin(&op);
  if (rc == 0) {
    uv_loop_t *loop = loop_of(&op);
    uv_fs_t *r = &op.u.fs;
    switch (kind) {
    case OP_SYNC: rc = uv_fs_fsync(loop, r, f->fd, loom__fsop_cb); break;
    case OP_DATASYNC: rc = uv_fs_fdatasync(loop, r, f->fd, loom__fsop_cb); break;
    case OP_TRUNCATE: rc = uv_fs_ftruncate(loop, r, f->fd, arg, loom__fsop_cb); break;
    case OP_FSTAT: rc = uv_fs_fstat(loop, r, f->fd, loom__fsop_cb); break;
    default: rc = uv_fs_fchmod(loop, r, f->fd, (int)arg, loom__fsop_cb); break;
    }
    rc = loom__fsop_wait(&op, rc);
    if (rc == 0) {
      rc = (int)r->result;
      if (rc == 0 && st) *st = r->statbuf;
    }
    if (op.done) uv_fs_req_cleanup(r);
  }
  loom__file_unref(f);
  return rc;
}

int loom_file_sync(loom_file_t *f) { return file_op(f, OP_SYNC, 0, NULL); }
int loom_file_datasync(loom_file_t *f) { return file_op(f, OP_DATASYNC, 0, NULL); }
int loom_file_truncate(loom_file_t *f, int64_t length) {
  if (length < 0) return UV_EINVAL;
  return file_op(f, OP_TRUNCATE, length, NULL);
}
int loom_file_stat(loom_file_t *f, uv_stat_t *st) {
  if (!st) return UV_EINVAL;
  return file_op(f, OP_FSTAT, 0, st);
}
int loom_file_chmod(loom_file_t *f, int mode) {
  return file_op(f, OP_FCHMOD, mode, NULL);
}

/* ---- paths --------------------------------------------------------------------- */

enum {
  P_STAT,
  P_LSTAT,
  P_RENAME,
  P_UNLINK,
  P_MKDIR,
  P_RMDIR,
  P_CHMOD,
  P_ACCESS,
  P_COPYFILE,
  P_MKDTEMP
};

/* Starts the path call `kind` on op. */
static int path_start(loom__fsop_t *op, int kind, const char *a, const char *b, int arg) {
  uv_loop_t *loop = loop_of(op);
  uv_fs_t *r = &op->u.fs;
  uv_fs_cb cb = loom__fsop_cb;
  switch (kind) {
  case P_STAT: return uv_fs_stat(loop, r, a, cb);
  case P_LSTAT: return uv_fs_lstat(loop, r, a, cb);
  case P_RENAME: return uv_fs_rename(loop, r, a, b, cb);
  case P_UNLINK: return uv_fs_unlink(loop, r, a, cb);
  case P_MKDIR: return uv_fs_mkdir(loop, r, a, arg, cb);
  case P_RMDIR: return uv_fs_rmdir(loop, r, a, cb);
  case P_CHMOD: return uv_fs_chmod(loop, r, a, arg, cb);
  case P_ACCESS: return uv_fs_access(loop, r, a, arg, cb);
  case P_COPYFILE: return uv_fs_copyfile(loop, r, a, b, arg, cb);
  default: return uv_fs_mkdtemp(loop, r, a, cb);
  }
}

/* Runs a path call to its end. 0: op.u.fs holds the result (the caller
 * cleans it up); else the error, nothing to clean up. */
static int path_call(loom__fsop_t *op, int kind, const char *a, const char *b, int arg) {
  int rc = loom__fsop_begin(op);
  if (rc) return rc;
  int start = path_start(op, kind, a, b, arg);
  rc = loom__fsop_wait(op, start);
  if (start) return rc;
  if (rc == 0) rc = (int)(op->u.fs.result < 0 ? op->u.fs.result : 0);
  if (rc && kind == P_MKDTEMP && op->done && op->u.fs.result == 0) {
    /* Interrupted after the directory was made: nobody will know its
     * name, so it goes. */
    uv_fs_t rm;
    uv_fs_rmdir(NULL, &rm, op->u.fs.path, NULL);
    uv_fs_req_cleanup(&rm);
  }
  if (rc) uv_fs_req_cleanup(&op->u.fs);
  return rc;
}

static int simple(int kind, const char *a, const char *b, int arg) {
  if (!a || ((kind == P_RENAME || kind == P_COPYFILE) && !b)) return UV_EINVAL;
  loom__fsop_t op;
  int rc = path_call(&op, kind, a, b, arg);
  if (rc == 0) uv_fs_req_cleanup(&op.u.fs);
  return rc;
}

static int stat_path(int kind, const char *path, uv_stat_t *st) {
  if (!path || !st) return UV_EINVAL;
  loom__fsop_t op;
  int rc = path_call(&op, kind, path, NULL, 0);
  if (rc) return rc;
  *st = op.u.fs.statbuf;
  uv_fs_req_cleanup(&op.u.fs);
  return 0;
}

int loom_fs_stat(const char *path, uv_stat_t *st) { return stat_path(P_STAT, path, st); }
int loom_fs_lstat(const char *path, uv_stat_t *st) {
  return stat_path(P_LSTAT, path, st);
}
int loom_fs_rename(const char *from, const char *to) {
  return simple(P_RENAME, from, to, 0);
}
int loom_fs_unlink(const char *path) { return simple(P_UNLINK, path, NULL, 0); }
int loom_fs_mkdir(const char *path, int mode) {
  return simple(P_MKDIR, path, NULL, mode);
}
int loom_fs_rmdir(const char *path) { return simple(P_RMDIR, path, NULL, 0); }
int loom_fs_chmod(const char *path, int mode) {
  return simple(P_CHMOD, path, NULL, mode);
}
int loom_fs_access(const char *path, int mode) {
  return simple(P_ACCESS, path, NULL, mode);
}
int loom_fs_copyfile(const char *from, const char *to, int flags) {
  return simple(P_COPYFILE, from, to, flags);
}

/* Copies s into out (cap bytes): its length, or UV_ENOBUFS. */
static int copy_out(const char *s, char *out, size_t cap) {
  size_t n = strlen(s);
  if (n >= cap || n > INT_MAX) return UV_ENOBUFS;
  memcpy(out, s, n + 1);
  return (int)n;
}

int loom_fs_mkdtemp(const char *tmpl, char *out, size_t cap) {
  if (!tmpl || !out || cap == 0) return UV_EINVAL;
  out[0] = '\0';
  loom__fsop_t op;
  int rc = path_call(&op, P_MKDTEMP, tmpl, NULL, 0);
  if (rc) return rc;
  rc = copy_out(op.u.fs.path, out, cap);
  if (rc < 0) { /* the caller cannot name it: it goes */
    uv_fs_t rm;
    uv_fs_rmdir(NULL, &rm, op.u.fs.path, NULL);
    uv_fs_req_cleanup(&rm);
  }
  uv_fs_req_cleanup(&op.u.fs);
  return rc;
}

/* realpath is a job of its own rather than uv_fs_realpath, which frees
 * with libuv's allocator what realpath(3) allocated with the C library's. */
typedef struct {
  loom__fsop_t op;
  const char *path;
  int err;
  char out[PATH_MAX];
} realjob_t;

static void real_work(uv_work_t *w) {
  realjob_t *j = loom__container_of(w, realjob_t, op.u.work);
  if (!realpath(j->path, j->out)) j->err = uv_translate_sys_error(errno);
}

int loom_fs_realpath(const char *path, char *out, size_t cap) {
  if (!path || !out || cap == 0) return UV_EINVAL;
  out[0] = '\0';
  realjob_t *j = malloc(sizeof(*j)); /* PATH_MAX: not on a task's stack */
  if (!j) return UV_ENOMEM;
  j->path = path;
  j->err = 0;
  int rc = loom__fsop_begin(&j->op);
  if (rc == 0) {
    rc = loom__fsop_wait(&j->op, uv_queue_work(j->op.w.task->rt->loop, &j->op.u.work,
                                               real_work, loom__fsop_work_cb));
    if (rc == 0) rc = j->op.status ? j->op.status : j->err;
    if (rc == 0) rc = copy_out(j->out, out, cap);
  }
  free(j);
  return rc;
}

void loom_fs_dirents_free(loom_dirent_t *ents, size_t n) {
  if (!ents) return;
  for (size_t i = 0; i < n; i++) free(ents[i].name);
  free(ents);
}

/* scandir is one job on the thread pool (opendir, readdir to the end,
 * closedir, sort) rather than uv_fs_scandir: that one hands back entries
 * that scandir(3) allocated with the C library's malloc and frees them
 * with libuv's allocator, and it takes a trip per call either way. */
typedef struct {
  loom__fsop_t op;
  const char *path;
  loom_dirent_t *v;
  size_t n;
  int err;
} scanjob_t;

static int dirent_type(unsigned char t) {
  switch (t) {
  case DT_REG: return UV_DIRENT_FILE;
  case DT_DIR: return UV_DIRENT_DIR;
  case DT_LNK: return UV_DIRENT_LINK;
  case DT_FIFO: return UV_DIRENT_FIFO;
  case DT_SOCK: return UV_DIRENT_SOCKET;
  case DT_CHR: return UV_DIRENT_CHAR;
  case DT_BLK: return UV_DIRENT_BLOCK;
  default: return UV_DIRENT_UNKNOWN;
  }
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const loom_dirent_t *)a)->name, ((const loom_dirent_t *)b)->name);
}

static void scan_work(uv_work_t *w) {
  scanjob_t *j = loom__container_of(w, scanjob_t, op.u.work);
  DIR *d = opendir(j->path);
  if (!d) {
    j->err = uv_translate_sys_error(errno);
    return;
  }
  size_t cap = 0;
  struct dirent *e;
  errno = 0;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (j->n == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      loom_dirent_t *v = realloc(j->v, ncap * sizeof(*v));
      if (!v) break;
      j->v = v;
      cap = ncap;
    }
    size_t len = strlen(e->d_name);
    char *name = malloc(len + 1);
    if (!name) break;
    memcpy(name, e->d_name, len + 1);
    j->v[j->n].name = name;
    j->v[j->n].type = dirent_type(e->d_type);
    j->n++;
    errno = 0;
  }
  if (e) /* stopped for want of memory */
    j->err = UV_ENOMEM;
  else if (errno)
    j->err = uv_translate_sys_error(errno);
  closedir(d);
  if (j->err) {
    loom_fs_dirents_free(j->v, j->n);
    j->v = NULL;
    j->n = 0;
    return;
  }
  if (j->n > 1) qsort(j->v, j->n, sizeof(*j->v), by_name);
}

int loom_fs_scandir(const char *path, loom_dirent_t **ents, size_t *n) {
  if (!ents || !n) return UV_EINVAL;
  *ents = NULL;
  *n = 0;
  if (!path) return UV_EINVAL;
  scanjob_t j = {.path = path};
  int rc = loom__fsop_begin(&j.op);
  if (rc) return rc;
  rc = loom__fsop_wait(&j.op, uv_queue_work(j.op.w.task->rt->loop, &j.op.u.work,
                                            scan_work, loom__fsop_work_cb));
  if (rc == 0) rc = j.op.status ? j.op.status : j.err;
  if (rc) {
    loom_fs_dirents_free(j.v, j.n); /* made, but the caller was interrupted */
    return rc;
  }
  *ents = j.v;
  *n = j.n;
  return 0;
}
