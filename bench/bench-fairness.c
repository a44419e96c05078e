/* fairness: how late timers and I/O readiness are seen while CPU-bound
 * tasks that yield keep the scheduler busy.
 *
 * Inside loom_run, BURNERS tasks each spin for BURN_MS of CPU between
 * loom_yield()s, for the whole run. Meanwhile:
 *   - timer: the main task sleeps 10 ms, SAMPLES times, and records how much
 *     later than 10 ms it resumed;
 *   - read: a plain thread writes one byte into a socketpair 10 ms after
 *     the main task has parked in loom_read on the other end, SAMPLES
 *     times; the figure is the time from the write to loom_read returning.
 * A fair scheduler is late by about the running task's slice (BURN_MS)
 * plus a clock tick; before loom ended its passes at the first switch after
 * time had moved, both were late by a second or more.
 *
 * Lines printed: the median and the worst lateness of each, in µs:
 *   fairness loom <p50> us-late-timer  (...)
 *   fairness loom <max> us-worst-timer (...)
 *   fairness loom <p50> us-late-read   (...)
 *   fairness loom <max> us-worst-read  (...)
 * Peer (run by bench/run.sh): peers/fairness.go, GOMAXPROCS=1, goroutines
 * burning the same slices between runtime.Gosched() calls.
 * Environment: LOOM_BENCH_FAIR_TASKS (4), LOOM_BENCH_FAIR_BURN_MS (2),
 * LOOM_BENCH_FAIR_SAMPLES (50).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "loom.h"

#define MAX_SAMPLES 1000
#define MAX_TASKS 1000

static int burners = 4;
static int burn_ms = 2;
static int samples = 50;
static volatile int stop;

static int burner(void *arg) {
  (void)arg;
  while (!stop) {
    uint64_t end = bench_now_ns() + (uint64_t)burn_ms * 1000000u;
    while (bench_now_ns() < end) {}
    if (loom_yield() != 0) break;
  }
  return 0;
}

/* The writer thread: one byte, 10 ms after each "go" from the reader. */
typedef struct {
  int fd, go[2];
  uint64_t written_ns[MAX_SAMPLES];
} writer_t;

static void *writer(void *arg) {
  writer_t *w = arg;
  char c;
  for (int i = 0; i < samples; i++) {
    if (read(w->go[0], &c, 1) != 1) break;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
    w->written_ns[i] = bench_now_ns();
    if (write(w->fd, "x", 1) != 1) break;
  }
  return NULL;
}

typedef struct {
  double timer_us[MAX_SAMPLES], read_us[MAX_SAMPLES];
  int sock;
  writer_t *w;
  int rc;
} fair_t;

static int fair_main(void *arg) {
  fair_t *f = arg;
  loom_task_t *t[MAX_TASKS];
  stop = 0;
  for (int i = 0; i < burners; i++)
    if ((f->rc = loom_spawn(&t[i], burner, NULL)) != 0) return 0;
  loom_sleep(50); /* warm-up: the scheduler notices the long passes */
  for (int i = 0; i < samples; i++) {
    uint64_t t0 = bench_now_ns();
    if ((f->rc = loom_sleep(10)) != 0) break;
    f->timer_us[i] = (double)(bench_now_ns() - t0) / 1e3 - 10000.0;
  }
  loom_stream_t *s;
  if (f->rc == 0 && (f->rc = loom_stream_open_fd(&s, f->sock)) == 0) {
    for (int i = 0; i < samples; i++) {
      char c;
      if (write(f->w->go[1], "g", 1) != 1) {
        f->rc = -1;
        break;
      }
      ssize_t n = loom_read(s, &c, 1);
      uint64_t now = bench_now_ns();
      if (n != 1) {
        f->rc = n < 0 ? (int)n : -1;
        break;
      }
      f->read_us[i] = (double)(now - f->w->written_ns[i]) / 1e3;
    }
    loom_close(s);
  }
  stop = 1;
  for (int i = 0; i < burners; i++) loom_join(t[i], NULL);
  return 0;
}

static int env_int(const char *name, int def, int max) {
  const char *v = getenv(name);
  int n = v ? atoi(v) : 0;
  return n > 0 && n <= max ? n : def;
}

static void report(const char *what, double *v, int n) {
  qsort(v, (size_t)n, sizeof(v[0]), bench_cmp_double);
  char unit[32], worst[32];
  snprintf(unit, sizeof(unit), "us-late-%s", what);
  snprintf(worst, sizeof(worst), "us-worst-%s", what);
  printf("%-8s %-12s %10.0f %-15s (median of %d; %d tasks x %d ms CPU "
         "between yields)\n",
         "fairness", "loom", v[n / 2], unit, n, burners, burn_ms);
  printf("%-8s %-12s %10.0f %-15s (worst of %d)\n", "fairness", "loom", v[n - 1], worst,
         n);
  fflush(stdout);
}

int main(void) {
  burners = env_int("LOOM_BENCH_FAIR_TASKS", 4, MAX_TASKS);
  burn_ms = env_int("LOOM_BENCH_FAIR_BURN_MS", 2, 1000);
  samples = env_int("LOOM_BENCH_FAIR_SAMPLES", 50, MAX_SAMPLES);
  static fair_t f;
  static writer_t w;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || pipe(w.go) != 0) {
    perror("bench-fairness");
    return 1;
  }
  w.fd = sv[1];
  f.sock = sv[0];
  f.w = &w;
  pthread_t th;
  if (pthread_create(&th, NULL, writer, &w) != 0) {
    fprintf(stderr, "bench-fairness: no thread\n");
    return 1;
  }
  int rc = loom_run(fair_main, &f);
  close(w.go[1]);
  pthread_join(th, NULL);
  close(w.go[0]);
  close(sv[1]);
  if (rc || f.rc) {
    fprintf(stderr, "bench-fairness: %s\n", loom_strerror(rc ? rc : f.rc));
    return 1;
  }
  report("timer", f.timer_us, samples);
  report("read", f.read_us, samples);
  return 0;
}
