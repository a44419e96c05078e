/* bench-read-size: how loom sizes its reads (reads per request, throughput,
 * idle memory). Not run by bench/run.sh; docs/benchmarks.md gives the
 * commands and figures.
 *   bench-read-size reads      read(2) calls (alloc callbacks) per 1 MiB read_exactly
 *   bench-read-size wall MIB   ms to read MIB MiB through read_exactly(1 MiB) over a
 *                          socketpair fed by a thread doing blocking write(2)s
 *   bench-read-size idle N     RSS (KiB) of N socketpair connections, each handled by a
 *                          task that read one line and waits in read_line again
 *   bench-read-size pingpong N N round trips of a line between two tasks over a socketpair,
 *                          both reading with read_line (run it under callgrind)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <loom.h>

#define MIB (1024u * 1024u)

static uv_alloc_cb orig_alloc;
static size_t nallocs;
static void counting_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  nallocs++;
  orig_alloc(h, hint, buf);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
  if (f) fclose(f);
  return kb;
}

typedef struct {
  int fd;
  size_t total;
} writer_t;
static void *writer(void *arg) {
  writer_t *w = arg;
  char *b = malloc(MIB);
  memset(b, 'z', MIB);
  size_t left = w->total;
  while (left) {
    size_t n = left < MIB ? left : MIB;
    ssize_t k = write(w->fd, b, n);
    if (k <= 0) break;
    left -= (size_t)k;
  }
  free(b);
  close(w->fd);
  return NULL;
}

static const char *mode;
static size_t arg_n;

static int reads_main(void *arg) {
  (void)arg;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds)) return -1;
  loom_stream_t *r;
  loom_stream_open_fd(&r, fds[0]);
  writer_t w = {.fd = fds[1], .total = 1 + 8 * MIB};
  pthread_t th;
  pthread_create(&th, NULL, writer, &w);
  char *buf = malloc(MIB);
  loom_read_exactly(r, buf, 1, NULL);
  uv_stream_t *u = loom_stream_handle(r);
  orig_alloc = u->alloc_cb;
  u->alloc_cb = counting_alloc;
  for (int i = 0; i < 8; i++) {
    nallocs = 0;
    size_t got;
    int rc = loom_read_exactly(r, buf, MIB, &got);
    printf("read_exactly(1 MiB) #%d: rc %d, %zu reads%s\n", i, rc, nallocs,
           u->alloc_cb == counting_alloc ? "" : " (count lost)");
  }
  pthread_join(th, NULL);
  free(buf);
  loom_close(r);
  return 0;
}

static int wall_main(void *arg) {
  (void)arg;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds)) return -1;
  loom_stream_t *r;
  loom_stream_open_fd(&r, fds[0]);
  writer_t w = {.fd = fds[1], .total = arg_n * MIB};
  char *buf = malloc(MIB);
  double t0 = now_ms();
  pthread_t th;
  pthread_create(&th, NULL, writer, &w);
  size_t total = 0;
  for (;;) {
    size_t got = 0;
    int rc = loom_read_exactly(r, buf, MIB, &got);
    total += got;
    if (rc) break;
  }
  double t1 = now_ms();
  pthread_join(th, NULL);
  printf("read %zu MiB through read_exactly(1 MiB): %.1f ms (%.0f MiB/s)\n", total / MIB,
         t1 - t0, (double)total / MIB / ((t1 - t0) / 1e3));
  free(buf);
  loom_close(r);
  return 0;
}

static int handler(void *arg) {
  loom_stream_t *s = arg;
  char line[1024];
  while (loom_read_line(s, line, sizeof line) > 0) {}
  loom_close(s);
  return 0;
}

static int idle_main(void *arg) {
  (void)arg;
  size_t n = arg_n;
  int *peers = calloc(n, sizeof(int));
  long before = rss_kib();
  for (size_t i = 0; i < n; i++) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds)) return -1;
    loom_stream_t *s;
    loom_stream_open_fd(&s, fds[0]);
    peers[i] = fds[1];
    loom_spawn(NULL, handler, s);
  }
  for (int i = 0; i < 10; i++) loom_sleep(0);
  for (size_t i = 0; i < n; i++)
    if (write(peers[i], "GET / HTTP/1.1\r\n", 16) != 16) return -1;
  for (int i = 0; i < 20; i++) loom_sleep(1);
  long after = rss_kib();
  printf("%zu idle connections: RSS %ld KiB (%ld KiB before them, %.2f KiB each)\n", n,
         after, before, (double)(after - before) / (double)n);
  for (size_t i = 0; i < n; i++) close(peers[i]);
  free(peers);
  return 0;
}

static loom_stream_t *pp[2];
static int pong(void *arg) {
  (void)arg;
  char line[64];
  while (loom_read_line(pp[1], line, sizeof line) > 0)
    if (loom_write(pp[1], "pong\n", 5)) break;
  return 0;
}
static int pingpong_main(void *arg) {
  (void)arg;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds)) return -1;
  loom_stream_open_fd(&pp[0], fds[0]);
  loom_stream_open_fd(&pp[1], fds[1]);
  loom_task_t *t;
  loom_spawn(&t, pong, NULL);
  char line[64];
  double t0 = now_ms();
  for (size_t i = 0; i < arg_n; i++) {
    if (loom_write(pp[0], "ping\n", 5)) break;
    if (loom_read_line(pp[0], line, sizeof line) != 5) break;
  }
  double t1 = now_ms();
  printf("%zu line round trips: %.1f ms\n", arg_n, t1 - t0);
  loom_close(pp[0]);
  loom_join(t, NULL);
  loom_close(pp[1]);
  return 0;
}

int main(int argc, char **argv) {
  mode = argc > 1 ? argv[1] : "reads";
  arg_n = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
  if (!strcmp(mode, "reads")) return loom_run(reads_main, NULL) ? 1 : 0;
  if (!strcmp(mode, "wall")) {
    if (!arg_n) arg_n = 256;
    return loom_run(wall_main, NULL) ? 1 : 0;
  }
  if (!strcmp(mode, "pingpong")) {
    if (!arg_n) arg_n = 100000;
    return loom_run(pingpong_main, NULL) ? 1 : 0;
  }
  if (!arg_n) arg_n = 1000;
  return loom_run(idle_main, NULL) ? 1 : 0;
}
