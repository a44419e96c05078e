/* Whole files: read one into memory, write one atomically.
 *
 * Each helper is one job on libuv's thread pool (uv_queue_work) that makes
 * all its system calls in a row, rather than one uv_fs_* trip per call:
 * reading a small file is open, fstat, read, read (the end), close, and
 * five trips through the pool would cost more than the calls themselves.
 * The job works on memory in the waiting task's frame and on buffers it
 * allocates itself; the task waits for it as for any file operation
 * (loom__fsop_wait), so an interrupted job that had started finishes
 * before the call returns, and what it made is then freed or removed.
 */
#define _GNU_SOURCE /* mkostemp */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"

static int sys_err(void) { return uv_translate_sys_error(errno); }

/* ---- reading -------------------------------------------------------------------- */

typedef struct {
  loom__fsop_t op;
  const char *path;
  size_t max;
  char *data; /* the job's, until the task takes it */
  size_t len;
  int err;
} readjob_t;

/* Reads all of fd into j->data; j->err on failure. */
static void read_all_fd(readjob_t *j, int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    j->err = sys_err();
    return;
  }
  if (S_ISDIR(st.st_mode)) {
    j->err = UV_EISDIR;
    return;
  }
  /* The size is a hint: the file may change while it is read, and files
   * in /proc say 0. Room for it, its NUL, and one byte more to see the end
   * in the same read. */
  size_t hint = st.st_size > 0 ? (size_t)st.st_size : 0;
  if (hint > j->max) {
    j->err = UV_EFBIG;
    return;
  }
  size_t cap = hint < 4096 ? 4096 : hint + 2, len = 0;
  if (hint >= SIZE_MAX - 2) cap = SIZE_MAX;
  char *buf = malloc(cap);
  if (!buf) {
    j->err = UV_ENOMEM;
    return;
  }
  for (;;) {
    if (cap - len < 2) {
      size_t ncap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
      char *b = ncap > cap ? realloc(buf, ncap) : NULL;
      if (!b) {
        free(buf);
        j->err = UV_ENOMEM;
        return;
      }
      buf = b;
      cap = ncap;
    }
    ssize_t n = read(fd, buf + len, cap - len - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      j->err = sys_err();
      free(buf);
      return;
    }
    if (n == 0) break;
    len += (size_t)n;
    if (len > j->max) {
      free(buf);
      j->err = UV_EFBIG;
      return;
    }
  }
  buf[len] = '\0';
  j->data = buf;
  j->len = len;
}

static void read_work(uv_work_t *w) {
  readjob_t *j = loom__container_of(w, readjob_t, op.u.work);
  int fd = open(j->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    j->err = sys_err();
    return;
  }
  read_all_fd(j, fd);
  close(fd);
}

int loom_fs_read_file(const char *path, char **data, size_t *len, size_t max) {
  if (!data || !len) return UV_EINVAL;
  *data = NULL;
  *len = 0;
  if (!path) return UV_EINVAL;
  readjob_t j = {.path = path, .max = max};
  int rc = loom__fsop_begin(&j.op);
  if (rc) return rc;
  rc = loom__fsop_wait(&j.op, uv_queue_work(loom__fsop_loop(), &j.op.u.work, read_work,
                                            loom__fsop_work_cb));
  if (rc == 0) rc = j.op.status ? j.op.status : j.err;
  if (rc) {
    free(j.data); /* read, but the caller was interrupted */
    return rc;
  }
  *data = j.data;
  *len = j.len;
  return 0;
}

/* ---- writing atomically ---------------------------------------------------------- */

typedef struct {
  loom__fsop_t op;
  const char *path;
  const char *data;
  size_t len;
  int mode;
  int err;
} writejob_t;

static int write_fully(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return sys_err();
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/* Syncs the directory holding path, so that the rename itself survives a
 * crash. A file system that cannot sync a directory is not an error. */
static void sync_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char dir[PATH_MAX];
  if (!slash) {
    dir[0] = '.', dir[1] = '\0';
  } else {
    size_t n = (size_t)(slash - path);
    if (n == 0) n = 1; /* "/name" */
    if (n >= sizeof(dir)) return;
    memcpy(dir, path, n);
    dir[n] = '\0';
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)fsync(fd);
  close(fd);
}

static void write_work(uv_work_t *w) {
  writejob_t *j = loom__container_of(w, writejob_t, op.u.work);
  /* The new contents go to a file beside path (same directory, so the
   * same file system: rename(2) replaces path in one step). */
  size_t plen = strlen(j->path);
  char *tmp = malloc(plen + sizeof(".XXXXXX"));
  if (!tmp) {
    j->err = UV_ENOMEM;
    return;
  }
  memcpy(tmp, j->path, plen);
  memcpy(tmp + plen, ".XXXXXX", sizeof(".XXXXXX"));
  int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) {
    j->err = sys_err();
    free(tmp);
    return;
  }
  int err = fchmod(fd, (mode_t)j->mode) != 0 ? sys_err() : 0;
  if (!err) err = write_fully(fd, j->data, j->len);
  if (!err && fsync(fd) != 0) err = sys_err();
  if (close(fd) != 0 && !err) err = sys_err();
  if (!err && rename(tmp, j->path) != 0) err = sys_err();
  if (err)
    unlink(tmp);
  else
    sync_dir(j->path);
  free(tmp);
  j->err = err;
}

int loom_fs_write_file(const char *path, const void *data, size_t len, int mode) {
  if (!path || (!data && len) || mode < 0 || mode > 07777) return UV_EINVAL;
  writejob_t j = {.path = path, .data = data, .len = len, .mode = mode};
  int rc = loom__fsop_begin(&j.op);
  if (rc) return rc;
  rc = loom__fsop_wait(&j.op, uv_queue_work(loom__fsop_loop(), &j.op.u.work, write_work,
                                            loom__fsop_work_cb));
  if (rc == 0) rc = j.op.status ? j.op.status : j.err;
  return rc;
}
