/* bench-files: reading files through loom against plain blocking reads.
 *
 *   bench-files prepare DIR [BIG_MIB]   make DIR/small/0..999 (4 KiB each)
 *                                       and, if BIG_MIB > 0, DIR/big
 *   bench-files run DIR                 measure; DIR/big only if present
 *
 * Figures (median of LOOM_BENCH_REPS runs, default 5; each run after one
 * that warms the page cache):
 *   files-small loom-read_file   1,000 files read concurrently, one task
 *                                each, with loom_fs_read_file (one trip
 *                                to libuv's pool per file)
 *   files-small loom-open-read   the same with loom_file_open,
 *                                loom_file_read to the end, loom_file_close
 *                                (a trip per call, as aiofiles makes)
 *   files-small blocking-c       open/read/close, one file after another
 *   files-big   loom-read        DIR/big read sequentially by one task,
 *                                loom_file_read of 1 MiB at a time
 *                                (LOOM_BENCH_CHUNK_KIB to change)
 *   files-big   loom-read-ahead  the same chunks in the same order, with
 *                                the next one always being read while the
 *                                task waits for the current one (two
 *                                loom_file_preads in flight, each in a
 *                                task of its own): the pool trip of one
 *                                read overlaps the copy of the other
 *   files-big   blocking-c       read(2) of the same size in a loop
 *   files-hop   loom-pread-1B    what a pool trip costs: one 1-byte
 *                                loom_file_pread, in microseconds
 *   files-hop   blocking-1B      pread(2) of 1 byte, the same way
 *   files-hop   loom-pread-chunk loom_file_pread of one chunk
 *   files-hop   blocking-chunk   pread(2) of one chunk: the copy itself
 *                                (the four alternate in every round)
 * bench/peers/files.py is the uvloop peer (asyncio.to_thread), and
 * bench/files.sh runs the whole comparison on a temporary directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <loom.h>

#include "bench.h"

#define NSMALL 1000
#define SMALL_SIZE 4096

static const char *dir;
static size_t chunk = 1u << 20;
static int reps = BENCH_REPS;

static void small_path(char *out, size_t cap, int i) {
  snprintf(out, cap, "%s/small/%d", dir, i);
}

static int prepare(long big_mib) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/small", dir);
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) return perror(dir), 1;
  if (mkdir(path, 0755) != 0 && errno != EEXIST) return perror(path), 1;
  char data[SMALL_SIZE];
  for (int i = 0; i < NSMALL; i++) {
    memset(data, 'a' + i % 26, sizeof(data));
    small_path(path, sizeof(path), i);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, data, sizeof(data)) != (ssize_t)sizeof(data))
      return perror(path), 1;
    close(fd);
  }
  if (big_mib <= 0) return 0;
  snprintf(path, sizeof(path), "%s/big", dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return perror(path), 1;
  char *buf = malloc(1u << 20);
  for (size_t k = 0; k < (1u << 20); k++) buf[k] = (char)(k * 7);
  for (long m = 0; m < big_mib; m++)
    if (write(fd, buf, 1u << 20) != (1 << 20)) return perror(path), 1;
  free(buf);
  close(fd);
  return 0;
}

/* ---- small files ---------------------------------------------------------------- */

typedef struct {
  int i;
  int aiofiles_style;
  size_t got;
  int rc;
} small_t;

static int read_small(void *p) {
  small_t *s = p;
  char path[4096];
  small_path(path, sizeof(path), s->i);
  if (!s->aiofiles_style) {
    char *data;
    s->rc = loom_fs_read_file(path, &data, &s->got, SIZE_MAX);
    if (s->rc == 0) free(data);
    return s->rc;
  }
  loom_file_t *f;
  s->rc = loom_file_open(&f, path, O_RDONLY, 0);
  if (s->rc) return s->rc;
  char buf[SMALL_SIZE + 1];
  ssize_t n;
  while ((n = loom_file_read(f, buf, sizeof(buf))) > 0) s->got += (size_t)n;
  if (n < 0) s->rc = (int)n;
  loom_file_close(f);
  return s->rc;
}

typedef struct {
  int aiofiles_style;
  double ns[101];
} small_run_t;

static int small_main(void *p) {
  small_run_t *run = p;
  static small_t s[NSMALL];
  for (int rep = -1; rep < reps; rep++) { /* rep -1 warms up */
    for (int i = 0; i < NSMALL; i++)
      s[i] = (small_t){.i = i, .aiofiles_style = run->aiofiles_style};
    uint64_t t0 = bench_now_ns();
    int rc = loom_gather_map(read_small, s, sizeof(s[0]), NSMALL, NULL, 0);
    uint64_t t1 = bench_now_ns();
    if (rc) return rc;
    for (int i = 0; i < NSMALL; i++)
      if (s[i].got != SMALL_SIZE) return UV_EIO;
    if (rep >= 0) run->ns[rep] = (double)(t1 - t0);
  }
  return 0;
}

static double blocking_small_once(void) {
  char path[4096], buf[SMALL_SIZE + 1];
  uint64_t t0 = bench_now_ns();
  for (int i = 0; i < NSMALL; i++) {
    small_path(path, sizeof(path), i);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n, got = 0;
    while ((n = read(fd, buf, sizeof(buf))) > 0) got += n;
    close(fd);
    if (got != SMALL_SIZE) exit(1);
  }
  return (double)(bench_now_ns() - t0);
}

/* ---- the big file --------------------------------------------------------------- */

/* One sequential read of DIR/big with loom_file_read: ns, or < 0. */
static double loom_big_once(const char *path, uint64_t size, char *buf) {
  loom_file_t *f;
  uint64_t t0 = bench_now_ns(), got = 0;
  if (loom_file_open(&f, path, O_RDONLY, 0)) return -1;
  ssize_t n;
  while ((n = loom_file_read(f, buf, chunk)) > 0) got += (uint64_t)n;
  loom_file_close(f);
  uint64_t t1 = bench_now_ns();
  return n < 0 || got != size ? -1 : (double)(t1 - t0);
}

/* Read-ahead: chunk k+1 is being read (by a task of its own, on a pool
 * thread) while the task waits for chunk k, so the pool's two thread
 * hand-offs per read overlap the other read's copy. The chunks still come
 * in order, into two buffers used in turn, as a consumer would want. */
typedef struct {
  loom_file_t *f;
  char *buf;
  size_t n;
  int64_t off;
} ahead_t;

static int ahead_read(void *p) {
  ahead_t *a = p;
  ssize_t n = loom_file_pread(a->f, a->buf, a->n, a->off);
  return n < 0 ? (int)n : n == (ssize_t)a->n ? 0 : UV_EIO; /* sizes are exact */
}

static double loom_ahead_once(const char *path, uint64_t size, char *bufs[2]) {
  loom_file_t *f;
  uint64_t t0 = bench_now_ns(), got = 0;
  if (loom_file_open(&f, path, O_RDONLY, 0)) return -1;
  ahead_t a[2];
  loom_task_t *t[2];
  uint64_t nchunks = (size + chunk - 1) / chunk;
  int rc = 0;
  for (uint64_t k = 0; k <= nchunks && rc == 0; k++) {
    if (k < nchunks) { /* start chunk k */
      a[k % 2] = (ahead_t){.f = f, .buf = bufs[k % 2], .off = (int64_t)(k * chunk)};
      a[k % 2].n = k + 1 < nchunks ? chunk : (size_t)(size - k * chunk);
      rc = loom_spawn(&t[k % 2], ahead_read, &a[k % 2]);
    }
    if (k > 0 && rc == 0) { /* then wait for chunk k-1 */
      int st;
      rc = loom_join(t[(k - 1) % 2], &st);
      if (rc == 0) rc = st;
      if (rc == 0) got += a[(k - 1) % 2].n;
    }
  }
  loom_file_close(f);
  uint64_t t1 = bench_now_ns();
  return rc || got != size ? -1 : (double)(t1 - t0);
}

static double blocking_big_once(const char *path, uint64_t size, char *buf) {
  uint64_t t0 = bench_now_ns(), got = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n;
  while ((n = read(fd, buf, chunk)) > 0) got += (uint64_t)n;
  close(fd);
  double ns = (double)(bench_now_ns() - t0);
  return got != size ? -1 : ns;
}

/* The three ways to read the big file, one after the other in each round
 * (in a rotating order), so that each round's ratios compare runs made
 * under the same load: on a shared machine the load changes by the
 * second. The blocking reads run in the task: nothing else runs. */
enum { BIG_LOOM, BIG_AHEAD, BIG_C, BIG_KINDS };

typedef struct {
  double ns[BIG_KINDS][101];
  uint64_t size;
} big_run_t;

static int big_main(void *p) {
  big_run_t *run = p;
  char path[4096];
  snprintf(path, sizeof(path), "%s/big", dir);
  char *bufs[2] = {malloc(chunk), malloc(chunk)};
  if (!bufs[0] || !bufs[1]) return UV_ENOMEM;
  int rc = 0;
  for (int rep = -1; rep < reps && rc == 0; rep++) { /* rep -1 warms up */
    for (int i = 0; i < BIG_KINDS && rc == 0; i++) {
      int kind = (rep + 1 + i) % BIG_KINDS;
      double ns = kind == BIG_LOOM    ? loom_big_once(path, run->size, bufs[0])
                  : kind == BIG_AHEAD ? loom_ahead_once(path, run->size, bufs)
                                      : blocking_big_once(path, run->size, bufs[0]);
      if (ns < 0) rc = UV_EIO;
      if (rep >= 0) run->ns[kind][rep] = ns;
    }
  }
  free(bufs[0]);
  free(bufs[1]);
  return rc;
}

static double blocking_pread_once(size_t n, int times) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/big", dir);
  char *buf = malloc(n);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  uint64_t t0 = bench_now_ns();
  for (int i = 0; i < times; i++)
    if (pread(fd, buf, n, (off_t)i * (off_t)(n > 4096 ? n : 4096)) != (ssize_t)n) exit(1);
  double ns = (double)(bench_now_ns() - t0) / times;
  close(fd);
  free(buf);
  return ns;
}

/* Where the time goes, each kind of read in turn in every round: a
 * 1-byte pread (a pool trip and nothing to copy) and a pread of one chunk
 * (64 chunks at spread offsets), through loom and blocking in the task. */
#define HOPS 2000
enum { HOP_LOOM_1B, HOP_C_1B, HOP_LOOM_CHUNK, HOP_C_CHUNK, HOP_KINDS };

typedef struct {
  double ns[HOP_KINDS][101];
  int chunks; /* per chunk run */
} hop_run_t;

static double loom_pread_once(loom_file_t *f, char *buf, size_t n, int times) {
  uint64_t t0 = bench_now_ns();
  for (int i = 0; i < times; i++)
    if (loom_file_pread(f, buf, n, (int64_t)i * (int64_t)(n > 4096 ? n : 4096)) !=
        (ssize_t)n)
      return -1;
  return (double)(bench_now_ns() - t0) / times;
}

static int hop_main(void *p) {
  hop_run_t *run = p;
  char path[4096];
  snprintf(path, sizeof(path), "%s/big", dir);
  char *buf = malloc(chunk);
  loom_file_t *f;
  int rc = buf ? loom_file_open(&f, path, O_RDONLY, 0) : UV_ENOMEM;
  if (rc) {
    free(buf);
    return rc;
  }
  for (int rep = -1; rep < reps && rc == 0; rep++) {
    for (int kind = 0; kind < HOP_KINDS; kind++) {
      double ns = kind == HOP_LOOM_1B      ? loom_pread_once(f, buf, 1, HOPS)
                  : kind == HOP_C_1B       ? blocking_pread_once(1, HOPS)
                  : kind == HOP_LOOM_CHUNK ? loom_pread_once(f, buf, chunk, run->chunks)
                                           : blocking_pread_once(chunk, run->chunks);
      if (ns < 0) rc = UV_EIO;
      if (rep >= 0) run->ns[kind][rep] = ns;
    }
  }
  loom_file_close(f);
  free(buf);
  return rc;
}

static double median(double *v, int n, double *min) {
  qsort(v, (size_t)n, sizeof(v[0]), bench_cmp_double);
  *min = v[0];
  return v[n / 2];
}

static void line(const char *bench, const char *impl, double med, double min,
                 const char *unit, const char *notes) {
  printf("%-11s %-18s %10.2f %-10s (median of %d runs; min %.2f; %s)\n", bench, impl, med,
         unit, reps, min, notes);
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc < 3 || (strcmp(argv[1], "prepare") && strcmp(argv[1], "run"))) {
    fprintf(stderr, "usage: bench-files prepare DIR [BIG_MIB] | bench-files run DIR\n");
    return 2;
  }
  dir = argv[2];
  if (strcmp(argv[1], "prepare") == 0) return prepare(argc > 3 ? atol(argv[3]) : 0);
  const char *env = getenv("LOOM_BENCH_REPS");
  if (env && atoi(env) > 0 && atoi(env) <= 101) reps = atoi(env);
  env = getenv("LOOM_BENCH_CHUNK_KIB");
  if (env && atol(env) > 0) chunk = (size_t)atol(env) * 1024u;

  double v[101], med, min, loom_small, c_small;
  small_run_t sr = {.aiofiles_style = 0};
  int rc = loom_run(small_main, &sr);
  if (rc) return fprintf(stderr, "loom small: %s\n", loom_strerror(rc)), 1;
  loom_small = med = median(sr.ns, reps, &min);
  line("files-small", "loom-read_file", med / 1e6, min / 1e6, "ms/1000",
       "1,000 x 4 KiB files, one task each");
  sr.aiofiles_style = 1;
  rc = loom_run(small_main, &sr);
  if (rc) return fprintf(stderr, "loom small: %s\n", loom_strerror(rc)), 1;
  med = median(sr.ns, reps, &min);
  line("files-small", "loom-open-read", med / 1e6, min / 1e6, "ms/1000",
       "open, read to the end, close: a pool trip each");
  blocking_small_once();
  for (int i = 0; i < reps; i++) v[i] = blocking_small_once();
  c_small = med = median(v, reps, &min);
  line("files-small", "blocking-c", med / 1e6, min / 1e6, "ms/1000",
       "open/read/close in a loop, one thread");
  printf("ratio  files-small blocking-c/loom-read_file = %.2fx\n", c_small / loom_small);

  char path[4096];
  struct stat st;
  snprintf(path, sizeof(path), "%s/big", dir);
  if (stat(path, &st) != 0) return 0;
  big_run_t br = {.size = (uint64_t)st.st_size};
  rc = loom_run(big_main, &br);
  if (rc) return fprintf(stderr, "loom big: %s\n", loom_strerror(rc)), 1;
  double gib = (double)st.st_size / (1u << 30);
  char notes[128];
  snprintf(notes, sizeof(notes), "%.2f GiB, %zu KiB reads, page cache warm", gib,
           chunk / 1024);
  /* Per-round ratios (time of C / time of loom), before the medians sort
   * the rounds apart. */
  double r_loom[101], r_ahead[101], rmin;
  for (int i = 0; i < reps; i++) {
    r_loom[i] = br.ns[BIG_C][i] / br.ns[BIG_LOOM][i];
    r_ahead[i] = br.ns[BIG_C][i] / br.ns[BIG_AHEAD][i];
  }
  const char *names[BIG_KINDS] = {"loom-read", "loom-read-ahead", "blocking-c"};
  for (int k = 0; k < BIG_KINDS; k++) {
    med = median(br.ns[k], reps, &min);
    line("files-big", names[k], gib / (med / 1e9), gib / (min / 1e9), "GiB/s",
         k == BIG_AHEAD ? "two reads in flight" : notes);
  }
  double loom_ratio = median(r_loom, reps, &rmin);
  double ahead_ratio = median(r_ahead, reps, &rmin);
  printf(
      "ratio  files-big loom/blocking-c = %.2fx, median of the rounds' ratios (target >= "
      "0.8x): %s\n",
      loom_ratio, loom_ratio >= 0.8 ? "met" : "NOT MET");
  printf(
      "ratio  files-big loom-read-ahead/blocking-c = %.2fx, median of the rounds' ratios "
      "(target >= 0.8x): %s\n",
      ahead_ratio, ahead_ratio >= 0.8 ? "met" : "NOT MET");

  /* Where the gap comes from: a pool trip, and a chunk's copy. */
  hop_run_t hr = {.chunks = (int)(br.size / chunk < 64 ? br.size / chunk : 64)};
  rc = loom_run(hop_main, &hr);
  if (rc) return fprintf(stderr, "loom hop: %s\n", loom_strerror(rc)), 1;
  const char *hop_names[HOP_KINDS] = {"loom-pread-1B", "blocking-1B", "loom-pread-chunk",
                                      "blocking-chunk"};
  double hmed[HOP_KINDS];
  for (int k = 0; k < HOP_KINDS; k++) {
    hmed[k] = median(hr.ns[k], reps, &min);
    line("files-hop", hop_names[k], hmed[k] / 1e3, min / 1e3, "us/read",
         k < HOP_LOOM_CHUNK ? "1 byte" : notes);
  }
  printf("ratio  files-hop loom's extra time per read: %.1f us for 1 byte (a pool trip), "
         "%.1f us for a chunk (%.0f%% of the chunk's blocking read)\n",
         (hmed[HOP_LOOM_1B] - hmed[HOP_C_1B]) / 1e3,
         (hmed[HOP_LOOM_CHUNK] - hmed[HOP_C_CHUNK]) / 1e3,
         100 * (hmed[HOP_LOOM_CHUNK] - hmed[HOP_C_CHUNK]) / hmed[HOP_C_CHUNK]);
  return 0;
}
