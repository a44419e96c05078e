/* Files (loom/fs.h): every operation and its errors, whole-file helpers,
 * files as streams, sendfile, bad arguments, use after close, cancellation
 * and timeouts before and while libuv's threads do the work, and no
 * descriptor leaked. (Allocation failures, and every call cancelled right
 * after it suspended or timed out by a 1 ms scope, are in the shared
 * sweeps, tests/test-faults.c and tests/test-io-sweep.c.)
 *
 * Errors are provoked with what every machine has: a missing path
 * (ENOENT), a directory (EISDIR), /dev/full (ENOSPC), RLIMIT_FSIZE (EFBIG,
 * with SIGXFSZ ignored), a file without execute permission checked with
 * access(X_OK) (EACCES, which root gets too), and a file of mode 000
 * opened for reading (EACCES; skipped, with a message, as root).
 *
 * Work that has started in a libuv thread is held there with FIFOs: a
 * read of an empty FIFO blocks until the test writes to it, and an open of
 * a FIFO for reading blocks until a writer opens it, which the test sees
 * (its own non-blocking open for writing fails with ENXIO until then).
 *
 * Tasks record what they see in `r`; the asserts run on the main stack
 * after loom_run has returned. Each test works in its own mkdtemp
 * directory, removed at the end. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"

typedef struct {
  long rc[64];
  char buf[4][256];
} rec_t;
static rec_t r;
static char dir[256];

static void rec_reset(void) { memset(&r, 0, sizeof(r)); }

static const char *P(const char *name) {
  static char paths[8][512];
  static int next;
  char *p = paths[next++ % 8];
  snprintf(p, 512, "%s/%s", dir, name);
  return p;
}

static void rm_rf(const char *path) {
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", path, path);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", path);
}

static int fds_before;

static int noop_main(void *arg) {
  (void)arg;
  return 0;
}

static int setup(void **state) {
  (void)state;
  /* libuv opens a pipe for signals once per process, with the first loop:
   * before the count. */
  assert_loom_ok(loom_run(noop_main, NULL));
  rec_reset();
  snprintf(dir, sizeof(dir), "/tmp/loom-test-fs-XXXXXX");
  assert_non_null(mkdtemp(dir));
  fds_before = open_fd_count();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  /* Every test: nothing it opened is left open. */
  int after = open_fd_count();
  rm_rf(dir);
  assert_int_equal(after, fds_before);
  return 0;
}

/* ---- open, read, write, and the calls on an open file ---------------------------- */

static int ops_main(void *arg) {
  (void)arg;
  loom_file_t *f;
  r.rc[0] = loom_file_open(&f, P("a.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  r.rc[1] = loom_file_write(f, "hello ", 6);
  r.rc[2] = loom_file_write(f, "world\n", 6);
  r.rc[3] = loom_file_pwrite(f, "W", 1, 6); /* "hello World\n" */
  uv_buf_t v[2] = {uv_buf_init("ab", 2), uv_buf_init("cd\n", 3)};
  r.rc[4] = loom_file_writev(f, v, 2, -1);
  r.rc[5] = loom_file_sync(f);
  r.rc[6] = loom_file_datasync(f);
  uv_stat_t st;
  r.rc[7] = loom_file_stat(f, &st);
  r.rc[8] = (long)st.st_size;
  r.rc[9] = loom_file_fileno(f) >= 0;
  r.rc[10] = loom_file_close(f);
  /* Reading back. */
  r.rc[11] = loom_file_open(&f, P("a.txt"), O_RDONLY, 0);
  r.rc[12] = loom_file_read(f, r.buf[0], 5);
  r.rc[13] = loom_file_pread(f, r.buf[1], 5, 6); /* the position stays */
  r.rc[14] = loom_file_read(f, r.buf[2], 100);   /* from 5 on */
  r.rc[15] = loom_file_read(f, r.buf[3], 100);   /* the end */
  char x[3], y[4];
  uv_buf_t rv[2] = {uv_buf_init(x, 3), uv_buf_init(y, 4)};
  r.rc[16] = loom_file_readv(f, rv, 2, 0);
  r.rc[17] = memcmp(x, "hel", 3) == 0 && memcmp(y, "lo W", 4) == 0;
  r.rc[18] = loom_file_write(f, "x", 1); /* read-only */
  r.rc[19] = loom_file_close(f);
  /* truncate, chmod */
  r.rc[20] = loom_file_open(&f, P("a.txt"), O_RDWR, 0);
  r.rc[21] = loom_file_truncate(f, 5);
  r.rc[22] = loom_file_chmod(f, 0600);
  r.rc[23] = loom_file_stat(f, &st);
  r.rc[24] = (long)st.st_size;
  r.rc[25] = (long)(st.st_mode & 0777);
  r.rc[26] = loom_file_close(f);
  /* O_APPEND and O_EXCL */
  r.rc[27] = loom_file_open(&f, P("a.txt"), O_WRONLY | O_APPEND, 0);
  r.rc[28] = loom_file_write(f, "!", 1);
  r.rc[29] = loom_file_close(f);
  r.rc[30] = loom_file_open(&f, P("a.txt"), O_WRONLY | O_CREAT | O_EXCL, 0644);
  /* A large write and read, past one write(2)'s worth of a pipe. */
  size_t big = 3u << 20;
  char *data = malloc(big), *back = malloc(big);
  for (size_t i = 0; i < big; i++) data[i] = (char)(i * 7);
  r.rc[31] = loom_file_open(&f, P("big"), O_RDWR | O_CREAT, 0644);
  r.rc[32] = loom_file_write(f, data, big) == (ssize_t)big;
  size_t got = 0;
  ssize_t n;
  while ((n = loom_file_pread(f, back + got, big - got, (int64_t)got)) > 0)
    got += (size_t)n;
  r.rc[33] = got == big && memcmp(data, back, big) == 0;
  r.rc[34] = loom_file_close(f);
  free(data);
  free(back);
  return 0;
}

static void test_fs_file_ops(void **state) {
  (void)state;
  assert_loom_ok(loom_run(ops_main, NULL));
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_EQ(6), RC_EQ(6), RC_EQ(1)},        /* 0 */
      {RC_EQ(5), RC_OK, RC_OK, RC_OK},              /* 4 */
      {RC_EQ(17), RC_TRUE, RC_OK, RC_OK},           /* 8 */
      {RC_EQ(5), RC_EQ(5), RC_EQ(12), RC_EQ(0)},    /* 12 */
      {RC_EQ(7), RC_TRUE, RC_ERR(UV_EBADF), RC_OK}, /* 16 */
      {RC_OK, RC_OK, RC_OK, RC_OK},                 /* 20 */
      {RC_EQ(5), RC_EQ(0600), RC_OK, RC_OK},        /* 24 */
      {RC_EQ(1), RC_OK, RC_ERR(UV_EEXIST), RC_OK},  /* 28 */
      {RC_TRUE, RC_TRUE, RC_OK},                    /* 32 */
  };
  assert_rcs(r.rc, 0, want);
  assert_string_equal(r.buf[0], "hello");
  assert_string_equal(r.buf[1], "World");
  assert_string_equal(r.buf[2], " World\nabcd\n");
}

/* ---- paths ------------------------------------------------------------------------- */

static int paths_main(void *arg) {
  (void)arg;
  uv_stat_t st;
  r.rc[0] = loom_fs_mkdir(P("d"), 0755);
  r.rc[1] = loom_fs_mkdir(P("d"), 0755);
  r.rc[2] = loom_fs_stat(P("d"), &st);
  r.rc[3] = (st.st_mode & S_IFMT) == S_IFDIR;
  r.rc[4] = loom_fs_write_file(P("d/f1"), "one", 3, 0644);
  r.rc[5] = loom_fs_copyfile(P("d/f1"), P("d/f2"), 0);
  r.rc[6] = loom_fs_copyfile(P("d/f1"), P("d/f2"), UV_FS_COPYFILE_EXCL);
  r.rc[7] = loom_fs_rename(P("d/f2"), P("d/f3"));
  r.rc[8] = loom_fs_stat(P("d/f2"), &st);
  r.rc[9] = symlink("f1", P("d/link")) == 0 ? 0 : -errno;
  r.rc[10] = loom_fs_lstat(P("d/link"), &st);
  r.rc[11] = (st.st_mode & S_IFMT) == S_IFLNK;
  loom_dirent_t *e;
  size_t n;
  r.rc[12] = loom_fs_scandir(P("d"), &e, &n);
  r.rc[13] = (long)n;
  if (r.rc[12] == 0 && n == 3) {
    snprintf(r.buf[0], sizeof(r.buf[0]), "%s:%d %s:%d %s:%d", e[0].name, e[0].type,
             e[1].name, e[1].type, e[2].name, e[2].type);
  }
  loom_fs_dirents_free(e, n);
  r.rc[14] = loom_fs_realpath(P("d/link"), r.buf[1], sizeof(r.buf[1]));
  r.rc[15] = loom_fs_realpath(P("d/link"), r.buf[2], 4);
  r.rc[16] = loom_fs_access(P("d/f1"), R_OK | W_OK);
  r.rc[17] = loom_fs_access(P("d/nope"), F_OK);
  r.rc[18] = loom_fs_chmod(P("d/f1"), 0640);
  r.rc[19] = loom_fs_stat(P("d/f1"), &st);
  r.rc[20] = (long)(st.st_mode & 0777);
  r.rc[21] = loom_fs_rmdir(P("d"));
  r.rc[22] = loom_fs_unlink(P("d/f1"));
  r.rc[23] = loom_fs_unlink(P("d/f3"));
  r.rc[24] = loom_fs_unlink(P("d/link"));
  r.rc[25] = loom_fs_rmdir(P("d"));
  r.rc[26] = loom_fs_unlink(P("d"));
  char tmp[256];
  r.rc[27] = loom_fs_mkdtemp(P("t-XXXXXX"), tmp, sizeof(tmp));
  r.rc[28] = loom_fs_stat(tmp, &st);
  r.rc[29] = loom_fs_rmdir(tmp);
  char small[8];
  r.rc[30] = loom_fs_mkdtemp(P("s-XXXXXX"), small, sizeof(small));
  r.rc[31] = loom_fs_scandir(dir, &e, &n); /* the too-long one is gone */
  r.rc[32] = (long)n;
  loom_fs_dirents_free(e, n);
  r.rc[33] = loom_fs_scandir(P("missing"), &e, &n);
  r.rc[34] = loom_fs_mkdtemp(P("missing/x-XXXXXX"), tmp, sizeof(tmp));
  r.rc[35] = loom_fs_mkdtemp(P("no-template"), tmp, sizeof(tmp));
  return 0;
}

static void test_fs_paths(void **state) {
  (void)state;
  assert_loom_ok(loom_run(paths_main, NULL));
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_ERR(UV_EEXIST), RC_OK, RC_TRUE},        /* 0 */
      {RC_OK, RC_OK, RC_ERR(UV_EEXIST), RC_OK},          /* 4 */
      {RC_ERR(UV_ENOENT), RC_OK, RC_OK, RC_TRUE},        /* 8 */
      {RC_OK, RC_EQ(3), RC_SKIP, RC_ERR(UV_ENOBUFS)},    /* 12: 14 below */
      {RC_OK, RC_ERR(UV_ENOENT), RC_OK, RC_OK},          /* 16 */
      {RC_EQ(0640), RC_ERR(UV_ENOTEMPTY), RC_OK, RC_OK}, /* 20 */
      {RC_OK, RC_OK, RC_ERR(UV_ENOENT), RC_SKIP},        /* 24: 27 below */
      {RC_OK, RC_OK, RC_ERR(UV_ENOBUFS), RC_OK},         /* 28 */
      {RC_EQ(0), RC_ERR(UV_ENOENT), RC_ERR(UV_ENOENT), RC_ERR(UV_EINVAL)}, /* 32 */
  };
  assert_rcs(r.rc, 0, want);
  char want_ents[64];
  snprintf(want_ents, sizeof(want_ents), "f1:%d f3:%d link:%d", UV_DIRENT_FILE,
           UV_DIRENT_FILE, UV_DIRENT_LINK);
  assert_string_equal(r.buf[0], want_ents);
  char real[PATH_MAX + 8], rdir[PATH_MAX];
  assert_non_null(realpath(dir, rdir));
  snprintf(real, sizeof(real), "%s/d/f1", rdir);
  assert_int_equal(r.rc[14], (long)strlen(real));
  assert_string_equal(r.buf[1], real);
  assert_true(r.rc[27] > 0);
}

/* A directory read a few entries at a time. */
static int dir_main(void *arg) {
  (void)arg;
  for (int i = 0; i < 50; i++) {
    char name[16];
    snprintf(name, sizeof(name), "e%02d", i);
    loom_fs_write_file(P(name), "", 0, 0644);
  }
  loom_fs_mkdir(P("sub"), 0755);
  loom_dir_t *d;
  r.rc[0] = loom_fs_opendir(&d, dir);
  char seen[64] = {0};
  int total = 0, bad = 0, calls = 0, dirs = 0;
  loom_dirent_t ents[7];
  int n;
  while ((n = loom_fs_readdir(d, ents, 7)) > 0) {
    calls++;
    for (int k = 0; k < n; k++) {
      total++;
      int idx;
      if (strcmp(ents[k].name, "sub") == 0)
        dirs += ents[k].type == UV_DIRENT_DIR;
      else if (sscanf(ents[k].name, "e%d", &idx) == 1 && idx >= 0 && idx < 50 &&
               !seen[idx] && ents[k].type == UV_DIRENT_FILE)
        seen[idx] = 1;
      else
        bad++;
    }
  }
  r.rc[1] = n; /* 0: the end */
  r.rc[2] = total;
  r.rc[3] = bad;
  r.rc[4] = calls >= 8; /* 51 entries, 7 at a time */
  r.rc[5] = dirs;
  r.rc[6] = loom_fs_readdir(d, NULL, 1);
  r.rc[7] = loom_fs_closedir(d);
  r.rc[8] = loom_fs_readdir(d, ents, 7);
  r.rc[9] = loom_fs_closedir(d);
  r.rc[10] = loom_fs_opendir(&d, P("missing"));
  r.rc[11] = loom_fs_opendir(&d, P("e00"));
  r.rc[12] = loom_fs_opendir(NULL, dir);
  r.rc[13] = loom_fs_closedir(NULL);
  return 0;
}

static void test_fs_dir_iter(void **state) {
  (void)state;
  assert_loom_ok(loom_run(dir_main, NULL));
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_EQ(0), RC_EQ(51), RC_EQ(0)},                                      /* 0 */
      {RC_TRUE, RC_EQ(1), RC_ERR(UV_EINVAL), RC_OK},                               /* 4 */
      {RC_ERR(UV_EBADF), RC_ERR(UV_EBADF), RC_ERR(UV_ENOENT), RC_ERR(UV_ENOTDIR)}, /* 8 */
      {RC_ERR(UV_EINVAL), RC_ERR(UV_EINVAL)}, /* 12 */
  };
  assert_rcs(r.rc, 0, want);
}

/* ---- errors ------------------------------------------------------------------------ */

static int errors_main(void *arg) {
  (void)arg;
  loom_file_t *f = NULL;
  char buf[16];
  r.rc[0] = loom_file_open(&f, P("missing"), O_RDONLY, 0);
  r.rc[1] = f == NULL;
  r.rc[2] = loom_file_open(&f, dir, O_WRONLY, 0); /* EISDIR */
  r.rc[3] = loom_file_open(&f, dir, O_RDONLY, 0); /* a directory opens... */
  r.rc[4] = loom_file_read(f, buf, sizeof(buf));  /* ...but is not read */
  r.rc[5] = loom_file_close(f);
  r.rc[6] = loom_file_open(&f, P("missing/x"), O_WRONLY | O_CREAT, 0644);
  /* EACCES that root gets too: no execute bit at all. */
  r.rc[7] = loom_fs_write_file(P("noexec"), "x", 1, 0644);
  r.rc[8] = loom_fs_access(P("noexec"), X_OK);
  /* ENOSPC: /dev/full. */
  r.rc[9] = loom_file_open(&f, "/dev/full", O_WRONLY, 0);
  if (r.rc[9] == 0) {
    r.rc[10] = loom_file_write(f, "data", 4);
    r.rc[11] = loom_file_close(f);
  }
  /* ENOTDIR */
  uv_stat_t st;
  r.rc[12] = loom_fs_stat(P("noexec/x"), &st);
  r.rc[13] = loom_fs_rmdir(P("noexec"));
  r.rc[14] = loom_fs_rename(P("missing"), P("other"));
  r.rc[15] = loom_fs_chmod(P("missing"), 0644);
  r.rc[16] = loom_fs_copyfile(P("missing"), P("other"), 0);
  r.rc[17] = loom_fs_realpath(P("missing"), buf, sizeof(buf));
  r.rc[18] = loom_fs_lstat(P("missing"), &st);
  /* EACCES on a mode-000 file: only for a user the mode applies to. */
  r.rc[19] = loom_fs_write_file(P("secret"), "x", 1, 0);
  r.rc[20] = loom_file_open(&f, P("secret"), O_RDONLY, 0);
  if (r.rc[20] == 0) loom_file_close(f);
  return 0;
}

static void test_fs_errors(void **state) {
  (void)state;
  assert_loom_ok(loom_run(errors_main, NULL));
  static const rc_want_t want[][RC_ROW] = {
      {RC_ERR(UV_ENOENT), RC_TRUE, RC_ERR(UV_EISDIR), RC_OK}, /* 0 */
      {RC_ERR(UV_EISDIR), RC_OK, RC_ERR(UV_ENOENT), RC_OK},   /* 4 */
      {RC_ERR(UV_EACCES), RC_OK, RC_ERR(UV_ENOSPC), RC_OK},   /* 8 */
      {RC_ERR(UV_ENOTDIR), RC_ERR(UV_ENOTDIR), RC_ERR(UV_ENOENT),
       RC_ERR(UV_ENOENT)},                                              /* 12 */
      {RC_ERR(UV_ENOENT), RC_ERR(UV_ENOENT), RC_ERR(UV_ENOENT), RC_OK}, /* 16 */
  };
  assert_rcs(r.rc, 0, want);
  if (geteuid() == 0)
    print_message("[ SKIP     ] EACCES on a mode-000 file: running as root\n");
  else
    assert_loom_err(r.rc[20], UV_EACCES);
}

/* EFBIG: writes past RLIMIT_FSIZE, with SIGXFSZ ignored so that write(2)
 * fails instead of the signal killing the process. */
static int efbig_main(void *arg) {
  (void)arg;
  loom_file_t *f;
  r.rc[0] = loom_file_open(&f, P("limited"), O_WRONLY | O_CREAT, 0644);
  char block[8192];
  memset(block, 'x', sizeof(block));
  r.rc[1] = loom_file_write(f, block, sizeof(block)); /* crosses 4096 */
  r.rc[2] = loom_file_pwrite(f, "y", 1, 5000);
  r.rc[3] = loom_file_close(f);
  r.rc[4] = loom_fs_write_file(P("whole"), block, sizeof(block), 0644);
  uv_stat_t st;
  r.rc[5] = loom_fs_stat(P("whole"), &st);
  loom_dirent_t *e;
  size_t n;
  r.rc[6] = loom_fs_scandir(dir, &e, &n); /* no temporary file left */
  r.rc[7] = (long)n;
  loom_fs_dirents_free(e, n);
  return 0;
}

static void test_fs_efbig(void **state) {
  (void)state;
  struct rlimit old, lim;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  lim = old;
  lim.rlim_cur = 4096;
  void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
  int rc = loom_run(efbig_main, NULL);
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, was);
  assert_loom_ok(rc);
  assert_loom_ok(r.rc[0]);
  /* The first write(2) takes 4096 bytes, the next fails. */
  assert_loom_err(r.rc[1], UV_EFBIG);
  assert_loom_err(r.rc[2], UV_EFBIG);
  assert_loom_ok(r.rc[3]);
  assert_loom_err(r.rc[4], UV_EFBIG);
  assert_loom_err(r.rc[5], UV_ENOENT);
  assert_loom_ok(r.rc[6]);
  assert_int_equal(r.rc[7], 1); /* "limited" alone */
}

/* ---- bad arguments, use after close, outside a task ------------------------------ */

static int misuse_main(void *arg) {
  (void)arg;
  loom_file_t *f;
  char buf[4];
  uv_stat_t st;
  int i = 0;
  r.rc[i++] = loom_file_open(NULL, "x", O_RDONLY, 0);
  r.rc[i++] = loom_file_open(&f, NULL, O_RDONLY, 0);
  r.rc[i++] = loom_file_read(NULL, buf, 1);
  r.rc[i++] = loom_file_close(NULL);
  r.rc[i++] = loom_file_fileno(NULL);
  r.rc[i++] = loom_fs_stat(NULL, &st);
  r.rc[i++] = loom_fs_stat("x", NULL);
  r.rc[i++] = loom_fs_rename("x", NULL);
  r.rc[i++] = loom_fs_mkdtemp(NULL, buf, 4);
  r.rc[i++] = loom_fs_mkdtemp("x", NULL, 4);
  r.rc[i++] = loom_fs_realpath("/", buf, 0);
  r.rc[i++] = loom_fs_scandir("/", NULL, NULL);
  r.rc[i++] = loom_fs_read_file("x", NULL, NULL, 10);
  r.rc[i++] = loom_fs_write_file(NULL, "x", 1, 0644);
  r.rc[i++] = loom_fs_write_file("x", NULL, 1, 0644);
  r.rc[i++] = loom_fs_write_file("x", "x", 1, -1);
  r.rc[i++] = loom_file_stream_open(NULL, "x");
  r.rc[i++] = loom_file_sendfile(NULL, NULL, 0, 1);
  int first_open = i;
  r.rc[i++] = loom_file_open(&f, P("m"), O_RDWR | O_CREAT, 0644);
  /* huge sizes */
  r.rc[i++] = loom_file_read(f, buf, (size_t)SSIZE_MAX + 1);
  r.rc[i++] = loom_file_read(f, NULL, 1);
  r.rc[i++] = loom_file_write(f, buf, SIZE_MAX);
  uv_buf_t many[1025];
  for (int k = 0; k < 1025; k++) many[k] = uv_buf_init(buf, 1);
  r.rc[i++] = loom_file_writev(f, many, 1025, -1);
  r.rc[i++] = loom_file_readv(f, NULL, 1, -1);
  r.rc[i++] = loom_file_truncate(f, -1);
  r.rc[i++] = loom_file_stat(f, NULL);
  r.rc[i++] = loom_file_read(f, buf, 0); /* nothing asked: 0 */
  r.rc[i++] = loom_file_close(f);
  /* use after close */
  r.rc[i++] = loom_file_read(f, buf, 1);
  r.rc[i++] = loom_file_write(f, buf, 1);
  r.rc[i++] = loom_file_stat(f, &st);
  r.rc[i++] = loom_file_sync(f);
  r.rc[i++] = loom_file_fileno(f);
  r.rc[i++] = loom_file_close(f);
  r.rc[60] = first_open;
  r.rc[61] = i;
  return 0;
}

static void test_fs_misuse(void **state) {
  (void)state;
  assert_loom_ok(loom_run(misuse_main, NULL));
  int first_open = (int)r.rc[60], end = (int)r.rc[61];
  for (int i = 0; i < first_open; i++) assert_loom_err(r.rc[i], UV_EINVAL);
  int i = first_open;
  assert_loom_ok(r.rc[i++]);
  for (int k = 0; k < 7; k++) assert_loom_err(r.rc[i++], UV_EINVAL);
  assert_int_equal(r.rc[i++], 0);
  assert_loom_ok(r.rc[i++]);
  while (i < end) assert_loom_err(r.rc[i++], UV_EBADF);
  /* Outside a task: an error, no crash. */
  loom_file_t *f;
  uv_stat_t st;
  char *data;
  size_t len;
  assert_loom_err(loom_file_open(&f, "/", O_RDONLY, 0), LOOM_ENOTASK);
  assert_loom_err(loom_fs_stat("/", &st), LOOM_ENOTASK);
  assert_loom_err(loom_fs_read_file("/etc/hostname", &data, &len, 100), LOOM_ENOTASK);
}

/* ---- whole files ----------------------------------------------------------------- */

static int whole_main(void *arg) {
  (void)arg;
  char *data;
  size_t len;
  r.rc[0] = loom_fs_write_file(P("w"), "first\n", 6, 0640);
  r.rc[1] = loom_fs_read_file(P("w"), &data, &len, 100);
  r.rc[2] = (long)len;
  if (data) snprintf(r.buf[0], sizeof(r.buf[0]), "%s", data);
  free(data);
  r.rc[3] = loom_fs_write_file(P("w"), "second, longer\n", 15, 0600);
  r.rc[4] = loom_fs_read_file(P("w"), &data, &len, 100);
  if (data) snprintf(r.buf[1], sizeof(r.buf[1]), "%s", data);
  free(data);
  uv_stat_t st;
  loom_fs_stat(P("w"), &st);
  r.rc[5] = (long)(st.st_mode & 0777);
  /* The cap: exactly at it, and one byte over. */
  r.rc[6] = loom_fs_read_file(P("w"), &data, &len, 15);
  free(data);
  r.rc[7] = loom_fs_read_file(P("w"), &data, &len, 14);
  r.rc[8] = data == NULL && len == 0;
  r.rc[9] = loom_fs_read_file(P("missing"), &data, &len, 100);
  r.rc[10] = loom_fs_read_file(dir, &data, &len, 100);
  /* A file that says size 0 but has bytes (/proc), and an empty one. */
  r.rc[11] = loom_fs_read_file("/proc/self/status", &data, &len, SIZE_MAX);
  r.rc[12] = data && strncmp(data, "Name:", 5) == 0;
  free(data);
  r.rc[13] = loom_fs_write_file(P("empty"), "", 0, 0644);
  r.rc[14] = loom_fs_read_file(P("empty"), &data, &len, 0);
  r.rc[15] = data && len == 0 && data[0] == '\0';
  free(data);
  /* Into a missing directory: nothing made. */
  r.rc[16] = loom_fs_write_file(P("missing/w"), "x", 1, 0644);
  /* A large one. */
  size_t big = (1u << 20) + 3;
  char *b = malloc(big);
  for (size_t i = 0; i < big; i++) b[i] = (char)(i % 251);
  r.rc[17] = loom_fs_write_file(P("big"), b, big, 0644);
  r.rc[18] = loom_fs_read_file(P("big"), &data, &len, SIZE_MAX);
  r.rc[19] = len == big && data && memcmp(b, data, big) == 0;
  free(data);
  free(b);
  loom_dirent_t *e;
  size_t n;
  loom_fs_scandir(dir, &e, &n);
  r.rc[20] = (long)n; /* big, empty, w: no temporary file left */
  loom_fs_dirents_free(e, n);
  return 0;
}

static void test_fs_whole_files(void **state) {
  (void)state;
  assert_loom_ok(loom_run(whole_main, NULL));
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_OK, RC_EQ(6), RC_OK},                        /* 0 */
      {RC_OK, RC_EQ(0600), RC_OK, RC_ERR(UV_EFBIG)},          /* 4 */
      {RC_TRUE, RC_ERR(UV_ENOENT), RC_ERR(UV_EISDIR), RC_OK}, /* 8 */
      {RC_TRUE, RC_OK, RC_OK, RC_TRUE},                       /* 12 */
      {RC_ERR(UV_ENOENT), RC_OK, RC_OK, RC_TRUE},             /* 16 */
      {RC_EQ(3)},                                             /* 20 */
  };
  assert_rcs(r.rc, 0, want);
  assert_string_equal(r.buf[0], "first\n");
  assert_string_equal(r.buf[1], "second, longer\n");
}

/* ---- files as streams ---------------------------------------------------------------- */

static int stream_main(void *arg) {
  (void)arg;
  /* 20,000 numbered lines: many read-ahead chunks. */
  size_t cap = 20000 * 16, len = 0;
  char *text = malloc(cap);
  for (int i = 0; i < 20000; i++) len += (size_t)sprintf(text + len, "line %d\n", i);
  r.rc[0] = loom_fs_write_file(P("lines"), text, len, 0644);
  free(text);
  loom_stream_t *s;
  r.rc[1] = loom_file_stream_open(&s, P("lines"));
  char line[64];
  ssize_t n;
  long count = 0, bad = 0;
  while ((n = loom_read_line(s, line, sizeof(line))) > 0) {
    char want[32];
    int w = sprintf(want, "line %ld\n", count);
    if (n != w || strcmp(line, want) != 0) bad++;
    count++;
  }
  r.rc[2] = count;
  r.rc[3] = bad;
  r.rc[4] = n; /* 0: the end */
  r.rc[5] = loom_write(s, "x", 1);
  r.rc[6] = loom_shutdown_write(s);
  r.rc[7] = loom_stream_handle(s) == NULL;
  r.rc[8] = loom_close(s);
  /* read_until, read_exactly, read, read_all, and a last line without
   * its newline. */
  r.rc[9] = loom_fs_write_file(P("mixed"), "key: value\r\n\r\nBODY0123456789tail", 32,
                               0644);
  r.rc[10] = loom_file_stream_open(&s, P("mixed"));
  r.rc[11] = loom_read_until(s, "\r\n\r\n", 4, r.buf[0], sizeof(r.buf[0]));
  char body[10];
  r.rc[12] = loom_read_exactly(s, body, 4, NULL);
  r.rc[13] = memcmp(body, "BODY", 4) == 0;
  r.rc[14] = loom_read(s, body, 10);
  r.rc[15] = memcmp(body, "0123456789", 10) == 0;
  r.rc[16] = loom_read_line(s, r.buf[1], sizeof(r.buf[1]));
  r.rc[17] = loom_read_line(s, r.buf[2], sizeof(r.buf[2]));
  loom_close(s);
  char *all;
  size_t alen;
  r.rc[18] = loom_file_stream_open(&s, P("mixed"));
  r.rc[19] = loom_read_all(s, &all, &alen, 1000);
  r.rc[20] = (long)alen;
  free(all);
  loom_close(s);
  /* loom_stream_open_fd on a regular file: from where the descriptor
   * stands. */
  int fd = open(P("mixed"), O_RDONLY);
  lseek(fd, 14, SEEK_SET);
  r.rc[21] = loom_stream_open_fd(&s, fd);
  r.rc[22] = loom_read_line(s, r.buf[3], sizeof(r.buf[3]));
  /* Closes fd (once a read ahead in flight has ended: teardown's count
   * of descriptors checks it). */
  loom_close(s);
  /* Errors. */
  r.rc[24] = loom_file_stream_open(&s, P("missing"));
  r.rc[25] = loom_file_stream_open(&s, dir);
  return 0;
}

static void test_fs_stream(void **state) {
  (void)state;
  assert_loom_ok(loom_run(stream_main, NULL));
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_OK, RC_EQ(20000), RC_EQ(0)},                      /* 0 */
      {RC_EQ(0), RC_ERR(UV_ENOTSUP), RC_ERR(UV_ENOTSUP), RC_TRUE}, /* 4 */
      {RC_OK, RC_SKIP, RC_OK, RC_EQ(14)},                          /* 8 */
      {RC_OK, RC_TRUE, RC_EQ(10), RC_TRUE},                        /* 12 */
      {RC_EQ(4), RC_EQ(0), RC_OK, RC_OK},                          /* 16 */
      {RC_EQ(32), RC_OK, RC_EQ(18), RC_SKIP},                      /* 20 */
      {RC_ERR(UV_ENOENT), RC_ERR(UV_EISDIR)},                      /* 24 */
  };
  assert_rcs(r.rc, 0, want);
  assert_string_equal(r.buf[0], "key: value\r\n\r\n");
  assert_string_equal(r.buf[1], "tail");
  assert_string_equal(r.buf[3], "BODY0123456789tail");
}

/* A file stream closed, or its reader cancelled, while a read is in flight
 * on a libuv thread: the read ends on its own, into memory nobody frees
 * under it (the test would fail under ASan or Valgrind otherwise). */
static loom_stream_t *cs;

static int line_reader(void *arg) {
  (void)arg;
  char line[64];
  return (int)loom_read_line(cs, line, sizeof(line));
}

static int stream_cancel_main(void *arg) {
  (void)arg;
  r.rc[0] = loom_fs_write_file(P("l"), "a\nb\n", 4, 0644);
  for (int round = 0; round < 2; round++) {
    r.rc[1 + round] = loom_file_stream_open(&cs, P("l"));
    loom_task_t *t;
    loom_spawn(&t, line_reader, NULL);
    loom_yield(); /* the reader waits, a read is in flight */
    int st = 0;
    if (round == 0) { /* cancel the reader, then read on */
      loom_cancel(t);
      loom_join(t, &st);
      r.rc[4] = st;
      char line[8];
      r.rc[5] = loom_read_line(cs, line, sizeof(line));
      loom_close(cs);
    } else { /* close under the reader */
      loom_close(cs);
      loom_join(t, &st);
      r.rc[6] = st;
    }
  }
  /* A stream left open at shutdown, with a read in flight. */
  r.rc[7] = loom_file_stream_open(&cs, P("l"));
  char c;
  r.rc[8] = loom_read(cs, &c, 1);
  return 0;
}

static void test_fs_stream_cancel_close(void **state) {
  (void)state;
  harness_expect_leftovers();
  assert_loom_ok(loom_run(stream_cancel_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_loom_err(r.rc[4], UV_ECANCELED);
  assert_int_equal(r.rc[5], 2); /* nothing was lost: "a\n" */
  assert_loom_err(r.rc[6], UV_EBADF);
  assert_loom_ok(r.rc[7]);
  assert_int_equal(r.rc[8], 1);
}

/* ---- sendfile -------------------------------------------------------------------- */

static loom_listener_t *lst;

static int sf_client(void *arg) {
  (void)arg;
  loom_stream_t *s;
  int rc = loom_tcp_connect(&s, "127.0.0.1", loom_listener_port(lst));
  if (rc) return rc;
  char *data;
  size_t len;
  rc = loom_read_all(s, &data, &len, 1u << 24);
  r.rc[10] = (long)len;
  size_t bad = 0;
  for (size_t i = 0; i < len; i++)
    if (data[i] != (char)((i + 1000) % 253)) bad++;
  r.rc[11] = (long)bad;
  free(data);
  loom_close(s);
  return rc;
}

static int sendfile_main(void *arg) {
  (void)arg;
  size_t big = 700 * 1000;
  char *b = malloc(big);
  for (size_t i = 0; i < big; i++) b[i] = (char)(i % 253);
  r.rc[0] = loom_fs_write_file(P("payload"), b, big, 0644);
  free(b);
  r.rc[1] = loom_tcp_listen(&lst, "127.0.0.1", 0, 16);
  loom_task_t *t;
  loom_spawn(&t, sf_client, NULL);
  loom_stream_t *s;
  r.rc[2] = loom_accept(lst, &s);
  loom_file_t *f;
  r.rc[3] = loom_file_open(&f, P("payload"), O_RDONLY, 0);
  /* From offset 1000, up to the end (len past it: short). */
  r.rc[4] = loom_file_sendfile(s, f, 1000, SIZE_MAX);
  r.rc[5] = loom_file_sendfile(s, f, (int64_t)big, 10); /* at the end: 0 */
  r.rc[6] = loom_file_sendfile(s, f, 0, 0);
  loom_close(s);
  int st;
  loom_join(t, &st);
  r.rc[7] = st;
  loom_file_close(f);
  r.rc[8] = loom_file_sendfile(s, f, 0, 10); /* both closed */
  loom_listener_close(lst);
  return 0;
}

static void test_fs_sendfile(void **state) {
  (void)state;
  assert_loom_ok(loom_run(sendfile_main, NULL));
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_OK, RC_OK, RC_OK},                         /* 0 */
      {RC_EQ(699000), RC_EQ(0), RC_EQ(0), RC_OK},           /* 4 */
      {RC_ERR(UV_EBADF), RC_SKIP, RC_EQ(699000), RC_EQ(0)}, /* 8 */
  };
  assert_rcs(r.rc, 0, want);
}

/* ---- cancellation and timeouts ----------------------------------------------------- */

/* Already cancelled or timed out before the call: every suspending call
 * returns at once, and nothing happens. */
static int all_calls(long *out, loom_file_t *f) {
  char buf[4];
  uv_stat_t st;
  loom_dirent_t *e;
  size_t n;
  char *data;
  loom_file_t *g;
  loom_stream_t *s;
  uv_buf_t b = uv_buf_init(buf, 1);
  int i = 0;
  out[i++] = loom_file_open(&g, P("new"), O_WRONLY | O_CREAT, 0644);
  out[i++] = loom_file_read(f, buf, 1);
  out[i++] = loom_file_pread(f, buf, 1, 0);
  out[i++] = loom_file_write(f, "x", 1);
  out[i++] = loom_file_pwrite(f, "x", 1, 0);
  out[i++] = loom_file_readv(f, &b, 1, 0);
  out[i++] = loom_file_writev(f, &b, 1, 0);
  out[i++] = loom_file_sync(f);
  out[i++] = loom_file_datasync(f);
  out[i++] = loom_file_truncate(f, 0);
  out[i++] = loom_file_stat(f, &st);
  out[i++] = loom_file_chmod(f, 0600);
  out[i++] = loom_fs_stat(dir, &st);
  out[i++] = loom_fs_lstat(dir, &st);
  out[i++] = loom_fs_rename(P("f"), P("g"));
  out[i++] = loom_fs_unlink(P("f"));
  out[i++] = loom_fs_mkdir(P("nd"), 0755);
  out[i++] = loom_fs_rmdir(P("nd"));
  out[i++] = loom_fs_chmod(P("f"), 0600);
  out[i++] = loom_fs_access(P("f"), F_OK);
  out[i++] = loom_fs_copyfile(P("f"), P("c"), 0);
  out[i++] = loom_fs_mkdtemp(P("t-XXXXXX"), buf, sizeof(buf));
  out[i++] = loom_fs_realpath(dir, buf, sizeof(buf));
  out[i++] = loom_fs_scandir(dir, &e, &n);
  out[i++] = loom_fs_read_file(P("f"), &data, &n, 100);
  out[i++] = loom_fs_write_file(P("f"), "y", 1, 0644);
  out[i++] = loom_file_stream_open(&s, P("f"));
  out[i++] = loom_file_sendfile((loom_stream_t *)f, f, 0, 1);
  loom_dir_t *d;
  out[i++] = loom_fs_opendir(&d, dir);
  return i;
}

static loom_file_t *pre_f;

static int precancelled(void *arg) {
  long *out = arg;
  loom_cancel(loom_current());
  out[40] = all_calls(out, pre_f);
  return 0;
}

static int pretimeout(void *arg) {
  long *out = arg;
  loom_scope_t sc;
  loom_timeout_enter(&sc, 0);
  loom_yield(); /* the scope expires */
  out[40] = all_calls(out, pre_f);
  out[41] = loom_scope_exit(&sc);
  return 0;
}

static long pre_out[2][64];

static int pre_main(void *arg) {
  (void)arg;
  r.rc[0] = loom_fs_write_file(P("f"), "data", 4, 0644);
  r.rc[1] = loom_file_open(&pre_f, P("f"), O_RDWR, 0);
  loom_task_t *t;
  loom_spawn(&t, precancelled, pre_out[0]);
  r.rc[2] = loom_join(t, NULL);
  loom_spawn(&t, pretimeout, pre_out[1]);
  r.rc[3] = loom_join(t, NULL);
  uv_stat_t st;
  r.rc[4] = loom_file_stat(pre_f, &st);
  r.rc[5] = (long)st.st_size; /* untouched */
  r.rc[6] = (long)(st.st_mode & 0777);
  r.rc[7] = loom_fs_access(P("new"), F_OK);
  r.rc[8] = loom_fs_access(P("nd"), F_OK);
  loom_file_close(pre_f);
  return 0;
}

static void test_fs_interrupted_before(void **state) {
  (void)state;
  memset(pre_out, 0, sizeof(pre_out));
  assert_loom_ok(loom_run(pre_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  for (int k = 0; k < 2; k++) {
    int n = (int)pre_out[k][40];
    assert_int_equal(n, 29);
    for (int i = 0; i < n; i++) {
      if (pre_out[k][i] != (k ? UV_ETIMEDOUT : UV_ECANCELED))
        print_message("call %d: %ld\n", i, pre_out[k][i]);
      assert_loom_err(pre_out[k][i], k ? UV_ETIMEDOUT : UV_ECANCELED);
    }
  }
  assert_loom_err(pre_out[1][41], UV_ETIMEDOUT);
  assert_loom_ok(r.rc[4]);
  assert_int_equal(r.rc[5], 4);
  assert_int_equal(r.rc[6], 0644);
  assert_loom_err(r.rc[7], UV_ENOENT);
  assert_loom_err(r.rc[8], UV_ENOENT);
}

/* FIFOs hold libuv's threads. */
#define NFIFO 16
static int pool_size(void) {
  const char *s = getenv("UV_THREADPOOL_SIZE");
  int n = s ? atoi(s) : 4;
  return n < 1 ? 4 : n > NFIFO ? NFIFO : n; /* libuv's default is 4 */
}

static void make_fifo(int i) {
  char name[32];
  snprintf(name, sizeof(name), "fifo%d", i);
  assert_int_equal(mkfifo(P(name), 0600), 0);
}

static const char *fifo(int i) {
  char name[32];
  snprintf(name, sizeof(name), "fifo%d", i);
  return P(name);
}

/* Waits until a thread is blocked opening fifo i for reading, and lets it
 * through: returns our write end (the reader then blocks in read(2) until
 * we write or close it). -1 if *done is set first: the reading task ended
 * without its work ever starting (a timeout took it back from libuv's
 * queue). */
static int fifo_writer(int i, const int *done) {
  for (;;) {
    int fd = open(fifo(i), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) return fd;
    if (errno != ENXIO || *done) return -1;
    loom_sleep(1); /* polls for the thread's open: a condition, not a guess */
  }
}

typedef struct {
  int i;
  char path[512]; /* its own copy: P()'s ring moves on while the read
                     waits for a thread that will open this name */
  char *data;
  size_t len;
  long rc;
  int done;
} blocker_t;

static int blocker(void *arg) {
  blocker_t *b = arg;
  snprintf(b->path, sizeof b->path, "%s", fifo(b->i));
  b->rc = loom_fs_read_file(b->path, &b->data, &b->len, 100);
  b->done = 1;
  return 0;
}

static int mkdir_task(void *arg) {
  long *out = arg;
  if (out[1]) {
    loom_scope_t sc;
    loom_timeout_enter(&sc, 20);
    out[0] = loom_fs_mkdir(P("queued"), 0755);
    loom_scope_exit(&sc);
  } else {
    out[0] = loom_fs_mkdir(P("queued"), 0755);
  }
  out[2] = 1;
  return 0;
}

/* Not started: with every libuv thread held, a mkdir waits in libuv's
 * queue; cancelled (or timed out), it returns without waiting for a thread,
 * and the directory is never made. */
static int queued_main(void *arg) {
  int timeout = arg != NULL;
  int n = pool_size();
  blocker_t b[NFIFO];
  loom_task_t *bt[NFIFO];
  int wfd[NFIFO];
  for (int i = 0; i < n; i++) {
    b[i] = (blocker_t){.i = i};
    loom_spawn(&bt[i], blocker, &b[i]);
  }
  for (int i = 0; i < n; i++) wfd[i] = fifo_writer(i, &b[i].done);
  /* Every thread is now in a read(2) that waits for us. */
  long out[3] = {0, timeout, 0};
  loom_task_t *t;
  loom_spawn(&t, mkdir_task, out);
  loom_yield();
  loom_yield(); /* it waits in libuv's queue */
  if (!timeout) loom_cancel(t);
  loom_join(t, NULL);
  r.rc[0] = out[0];
  int still = 0;
  for (int i = 0; i < n; i++) still += !b[i].done;
  r.rc[1] = still == n; /* returned while every thread was still held */
  /* Let the threads go: each reads "ok" and the end. */
  for (int i = 0; i < n; i++) {
    if (write(wfd[i], "ok", 2) != 2) r.rc[2] = -1;
    close(wfd[i]);
  }
  int good = 0;
  for (int i = 0; i < n; i++) {
    loom_join(bt[i], NULL);
    good += b[i].rc == 0 && b[i].len == 2 && memcmp(b[i].data, "ok", 2) == 0;
    free(b[i].data);
  }
  r.rc[3] = good == n;
  uv_stat_t st;
  r.rc[4] = loom_fs_stat(P("queued"), &st); /* never made */
  return 0;
}

static void test_fs_cancel_not_started(void **state) {
  (void)state;
  for (int i = 0; i < pool_size(); i++) make_fifo(i);
  for (int timeout = 0; timeout < 2; timeout++) {
    rec_reset();
    assert_loom_ok(loom_run(queued_main, timeout ? (void *)1 : NULL));
    assert_loom_err(r.rc[0], timeout ? UV_ETIMEDOUT : UV_ECANCELED);
    assert_true(r.rc[1]);
    assert_int_equal(r.rc[2], 0);
    assert_true(r.rc[3]);
    assert_loom_err(r.rc[4], UV_ENOENT);
  }
}

/* Started: a read_file whose thread is in read(2) on a FIFO. Cancelled,
 * the task waits for the read to end (the test sees it still waiting),
 * then returns UV_ECANCELED and frees what was read (the allocation count
 * would say otherwise). Then the same with loom_file_read into the
 * caller's buffer: it is filled before the call returns, never after. */
typedef struct {
  int timeout;
  long rc;
  int done;
  char buf[16];
  loom_file_t *f;
} started_t;

static int started_reader(void *arg) {
  started_t *s = arg;
  loom_scope_t sc;
  if (s->timeout) loom_timeout_enter(&sc, 10);
  if (s->f) {
    s->rc = loom_file_read(s->f, s->buf, 2);
  } else {
    char *data, path[512]; /* a copy: P()'s ring moves on meanwhile */
    size_t len;
    snprintf(path, sizeof path, "%s", fifo(0));
    s->rc = loom_fs_read_file(path, &data, &len, 100);
    if (s->rc == 0) free(data);
  }
  if (s->timeout) loom_scope_exit(&sc);
  s->done = 1;
  return 0;
}

static int started_main(void *arg) {
  started_t s = {.timeout = arg != NULL};
  loom_task_t *t;
  loom_spawn(&t, started_reader, &s);
  /* The thread has opened it: in read(2) now. Unless (timeout only, on a
   * slow machine) the timeout expired while the work was still queued:
   * then it never started, and the call returned at once. */
  int w = fifo_writer(0, &s.done);
  r.rc[8] = w < 0;
  if (!s.timeout) loom_cancel(t);
  /* Interrupted, and still waiting for the thread, for as long as that
   * takes (the timeout expires meanwhile). */
  loom_sleep(30);
  r.rc[0] = s.done;
  if (w >= 0) {
    r.rc[1] = write(w, "ok", 2);
    close(w);
  }
  loom_join(t, NULL);
  r.rc[2] = s.rc;
  /* Into the caller's buffer: a FIFO opened read-write never blocks at
   * open, and its read blocks until data comes. */
  started_t s2 = {.timeout = s.timeout};
  r.rc[3] = loom_file_open(&s2.f, fifo(0), O_RDWR, 0);
  int w2 = open(fifo(0), O_WRONLY | O_CLOEXEC);
  loom_spawn(&t, started_reader, &s2);
  loom_yield();
  loom_yield();
  if (!s2.timeout) loom_cancel(t);
  loom_sleep(30);
  r.rc[4] = s2.done;
  r.rc[5] = write(w2, "hi", 2);
  loom_join(t, NULL);
  r.rc[6] = s2.rc;
  /* Either the read had started, and the bytes were in the buffer before
   * the call returned, or it had not, and they are still in the FIFO. */
  char left[2] = {0, 0};
  ssize_t k = 0;
  if (memcmp(s2.buf, "hi", 2) != 0) k = loom_file_read(s2.f, left, 2);
  r.rc[7] = memcmp(s2.buf, "hi", 2) == 0 || (k == 2 && memcmp(left, "hi", 2) == 0);
  close(w2);
  loom_file_close(s2.f);
  return 0;
}

static void test_fs_cancel_started(void **state) {
  (void)state;
  make_fifo(0);
  for (int timeout = 0; timeout < 2; timeout++) {
    rec_reset();
    assert_loom_ok(loom_run(started_main, timeout ? (void *)1 : NULL));
    if (!timeout) assert_false(r.rc[8]); /* cancelled once it had started */
    if (!r.rc[8]) {
      assert_int_equal(r.rc[0], 0); /* waited for the thread */
      assert_int_equal(r.rc[1], 2);
    }
    assert_loom_err(r.rc[2], timeout ? UV_ETIMEDOUT : UV_ECANCELED);
    assert_loom_ok(r.rc[3]);
    assert_int_equal(r.rc[5], 2);
    assert_loom_err(r.rc[6], timeout ? UV_ETIMEDOUT : UV_ECANCELED);
    assert_true(r.rc[7]);
  }
}

/* An open interrupted after it succeeded closes what it opened: the fd
 * count of teardown checks it. */
static int done;

static int opener(void *arg) {
  long *out = arg;
  loom_file_t *f = NULL;
  out[0] = loom_file_open(&f, fifo(0), O_RDONLY, 0);
  out[1] = f == NULL;
  done = 1;
  return 0;
}

static int open_cancel_main(void *arg) {
  (void)arg;
  long out[2] = {0, 0};
  done = 0;
  loom_task_t *t;
  loom_spawn(&t, opener, out);
  int w = fifo_writer(0, &done); /* the open is in the thread, now succeeds */
  loom_cancel(t);
  loom_join(t, NULL);
  close(w);
  r.rc[0] = out[0];
  r.rc[1] = out[1];
  return 0;
}

static void test_fs_cancel_open(void **state) {
  (void)state;
  make_fifo(0);
  assert_loom_ok(loom_run(open_cancel_main, NULL));
  assert_loom_err(r.rc[0], UV_ECANCELED);
  assert_true(r.rc[1]);
}

/* A close while another task's read is in a thread: the descriptor is
 * closed when the read ends, the reader's next call gets UV_EBADF. */
typedef struct {
  loom_file_t *f;
  long rc[2];
  char buf[4];
} cr_t;

static int close_reader(void *arg) {
  cr_t *c = arg;
  c->rc[0] = loom_file_read(c->f, c->buf, 2);
  c->rc[1] = loom_file_read(c->f, c->buf, 2);
  return 0;
}

static int close_under_main(void *arg) {
  (void)arg;
  cr_t c = {0};
  r.rc[0] = loom_file_open(&c.f, fifo(0), O_RDWR, 0);
  int fd = loom_file_fileno(c.f);
  int w = open(fifo(0), O_WRONLY | O_CLOEXEC);
  loom_task_t *t;
  loom_spawn(&t, close_reader, &c);
  loom_yield();
  r.rc[1] = loom_file_close(c.f);
  r.rc[2] = fcntl(fd, F_GETFD) != -1; /* still open: the read holds it */
  r.rc[3] = write(w, "ab", 2);
  loom_join(t, NULL);
  r.rc[4] = c.rc[0];
  r.rc[5] = c.rc[1];
  r.rc[6] = loom_file_close(c.f);
  close(w);
  return 0;
}

static void test_fs_close_under_reader(void **state) {
  (void)state;
  make_fifo(0);
  assert_loom_ok(loom_run(close_under_main, NULL));
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_OK, RC_TRUE, RC_EQ(2)},              /* 0 */
      {RC_EQ(2), RC_ERR(UV_EBADF), RC_ERR(UV_EBADF)}, /* 4 */
  };
  assert_rcs(r.rc, 0, want);
}

/* A file left open at shutdown is closed (and reported). */
static int left_open_main(void *arg) {
  (void)arg;
  loom_file_t *f;
  r.rc[0] = loom_file_open(&f, P("left"), O_WRONLY | O_CREAT, 0644);
  loom_dir_t *d;
  r.rc[1] = loom_fs_opendir(&d, dir);
  return 0;
}

static void test_fs_left_open(void **state) {
  (void)state;
  harness_expect_leftovers();
  assert_loom_ok(loom_run(left_open_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
}

/* Many files at once, as the benchmark reads them. */
typedef struct {
  int i;
  long rc;
} many_t;

static int many_reader(void *arg) {
  many_t *m = arg;
  char path[600], want[32]; /* P's buffers are shared: not across a wait */
  snprintf(path, sizeof(path), "%s/m%d", dir, m->i);
  snprintf(want, sizeof(want), "file %d", m->i);
  char *data;
  size_t len;
  m->rc = loom_fs_read_file(path, &data, &len, 100);
  if (m->rc == 0 && strcmp(data, want) != 0) m->rc = -1;
  free(data);
  return 0;
}

static int many_main(void *arg) {
  (void)arg;
  enum { N = 300 };
  static many_t m[N];
  loom_task_t *t[N];
  for (int i = 0; i < N; i++) {
    char name[32], text[32];
    snprintf(name, sizeof(name), "m%d", i);
    int len = snprintf(text, sizeof(text), "file %d", i);
    loom_fs_write_file(P(name), text, (size_t)len, 0644);
  }
  for (int i = 0; i < N; i++) {
    m[i] = (many_t){.i = i};
    loom_spawn(&t[i], many_reader, &m[i]);
  }
  r.rc[0] = loom_gather(t, N, NULL, 0);
  int good = 0;
  for (int i = 0; i < N; i++) good += m[i].rc == 0;
  r.rc[1] = good;
  return 0;
}

static void test_fs_many_concurrent(void **state) {
  (void)state;
  assert_loom_ok(loom_run(many_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_int_equal(r.rc[1], 300);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_fs_file_ops),
      T(test_fs_paths),
      T(test_fs_dir_iter),
      T(test_fs_errors),
      T(test_fs_efbig),
      T(test_fs_misuse),
      T(test_fs_whole_files),
      T(test_fs_stream),
      T(test_fs_stream_cancel_close),
      T(test_fs_sendfile),
      T(test_fs_interrupted_before),
      T(test_fs_cancel_not_started),
      T(test_fs_cancel_started),
      T(test_fs_cancel_open),
      T(test_fs_close_under_reader),
      T(test_fs_left_open),
      T(test_fs_many_concurrent),
  };
  return HARNESS_RUN(tests);
}
