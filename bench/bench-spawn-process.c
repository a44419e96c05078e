/* spawn-process: spawn + wait of /bin/true, one child at a time, and with
 * K children in flight.
 *
 * Inside loom_run, the main task starts /bin/true with every stream
 * inherited (loom_process_spawn), waits for its exit (loom_process_wait)
 * and closes it, n times; with `bench-spawn-process K`, K tasks do so at
 * once, each its share of n. The figure is the wall time per child, in
 * microseconds; spawns per second are 1e6 over it. `bench-spawn-process K
 * libuv` does the same with uv_spawn alone on a loop of its own (exit
 * callback, uv_close, next spawn): what loom's tasks add to it.
 * `bench-spawn-process 1 posix_spawn` uses no loop at all (see run_posix).
 * LOOM_SPROC_IDLE=N first starts N tasks that sleep through the
 * measurement, for loom and for the libuv mode (whose loop then runs
 * inside a loom task): a fork copies the page tables of every stack they
 * touched, a posix_spawn copies nothing.
 * Peers (bench/subprocess/run.sh): peers/subprocess.go (exec.Command,
 * GOMAXPROCS=1), peers/subprocess.py (asyncio.create_subprocess_exec on
 * uvloop). Target (docs/benchmarks.md): at least Go's rate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

#include "bench-run.h"
#include "bench.h"
#include "loom.h"

static char *const true_argv[] = {"/bin/true", NULL};

/* CPU time (user + system) of this process and of its reaped children,
 * summed over every run, calibration included, with the children run:
 * what a spawn costs in CPU, which a loaded machine does not inflate as
 * it does wall time. */
static struct {
  double us;
  uint64_t children;
} cpu;

static double cpu_us_now(void) {
  struct rusage self, kids;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &kids);
  double us = 0;
  const struct rusage *r[2] = {&self, &kids};
  for (int i = 0; i < 2; i++)
    us += (double)(r[i]->ru_utime.tv_sec + r[i]->ru_stime.tv_sec) * 1e6 +
          (double)(r[i]->ru_utime.tv_usec + r[i]->ru_stime.tv_usec);
  return us;
}

static int one(void) {
  loom_process_t *p;
  int st = -1;
  int rc = loom_process_spawn(&p, true_argv, NULL);
  if (rc) return rc;
  rc = loom_process_wait(p, &st);
  loom_process_close(p);
  return rc ? rc : st;
}

typedef struct {
  uint64_t n; /* children this task runs */
} share_t;

static int runner(void *arg) {
  share_t *s = arg;
  for (uint64_t i = 0; i < s->n; i++) {
    int rc = one();
    if (rc) return rc;
  }
  return 0;
}

typedef struct {
  uint64_t inflight;
  bench_result_t r;
  int failed;
  int raw;         /* 1: uv_spawn on a loop of its own */
  uint64_t idle;   /* tasks asleep meanwhile (LOOM_SPROC_IDLE) */
  void *raw_state; /* raw_t */
} args_t;

static uint64_t run_spawns(void *p, uint64_t n) {
  args_t *a = p;
  uint64_t k = a->inflight;
  share_t shares[64];
  loom_task_t *tasks[64];
  int st[64];
  double c0 = cpu_us_now();
  uint64_t t0 = bench_now_ns();
  for (uint64_t i = 0; i < k; i++) {
    shares[i].n = n / k;
    if (loom_spawn(&tasks[i], runner, &shares[i])) exit(1);
  }
  if (loom_gather(tasks, k, st, 0) != 0) {
    fprintf(stderr, "bench-spawn-process: a child failed\n");
    exit(1);
  }
  uint64_t ns = bench_now_ns() - t0;
  cpu.us += cpu_us_now() - c0;
  cpu.children += n / k * k;
  return ns;
}

/* ---- the same with libuv alone: what loom adds to uv_spawn ------------- */

typedef struct {
  uv_loop_t loop;
  uint64_t left, running, inflight;
} raw_t;

static void raw_start(raw_t *r);

static void raw_closed(uv_handle_t *h) {
  raw_t *r = h->loop->data;
  free(h);
  r->running--;
  raw_start(r);
}

static void raw_exit(uv_process_t *p, int64_t status, int sig) {
  if (status || sig) {
    fprintf(stderr, "bench-spawn-process: a child failed\n");
    exit(1);
  }
  uv_close((uv_handle_t *)p, raw_closed);
}

static void raw_start(raw_t *r) {
  static uv_stdio_container_t io[3] = {{.flags = UV_INHERIT_FD, .data.fd = 0},
                                       {.flags = UV_INHERIT_FD, .data.fd = 1},
                                       {.flags = UV_INHERIT_FD, .data.fd = 2}};
  uv_process_options_t o = {.exit_cb = raw_exit,
                            .file = true_argv[0],
                            .args = (char **)true_argv,
                            .stdio = io,
                            .stdio_count = 3};
  while (r->running < r->inflight && r->left) {
    uv_process_t *p = malloc(sizeof(*p));
    if (!p || uv_spawn(&r->loop, p, &o) != 0) exit(1);
    r->left--;
    r->running++;
  }
}

static uint64_t run_raw(void *p, uint64_t n) {
  raw_t *r = p;
  double c0 = cpu_us_now();
  uint64_t t0 = bench_now_ns();
  r->left = n;
  raw_start(r);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  uint64_t ns = bench_now_ns() - t0;
  cpu.us += cpu_us_now() - c0;
  cpu.children += n;
  return ns;
}

/* ---- no loop at all: posix_spawn + waitpid, one child at a time -------- */

/* glibc's posix_spawn clones with CLONE_VM | CLONE_VFORK, as Go does, where
 * libuv 1.44 forks: the gap between the two is what copying the parent's
 * page tables costs. A reference, not a peer. */
static uint64_t run_posix(void *p, uint64_t n) {
  (void)p;
  double c0 = cpu_us_now();
  uint64_t t0 = bench_now_ns();
  for (uint64_t i = 0; i < n; i++) {
    pid_t pid;
    int st;
    if (posix_spawn(&pid, true_argv[0], NULL, NULL, true_argv, environ) != 0 ||
        waitpid(pid, &st, 0) != pid || st != 0)
      exit(1);
  }
  uint64_t ns = bench_now_ns() - t0;
  cpu.us += cpu_us_now() - c0;
  cpu.children += n;
  return ns;
}

static int sleeper(void *arg) {
  (void)arg;
  loom_sleep(UINT64_C(1) << 40); /* until cancelled */
  return 0;
}

static int bench_main(void *arg) {
  args_t *a = arg;
  loom_task_t **idle = a->idle ? calloc(a->idle, sizeof(*idle)) : NULL;
  for (uint64_t i = 0; i < a->idle; i++)
    if (!idle || loom_spawn(&idle[i], sleeper, NULL)) exit(1);
  loom_yield(); /* they start, and sleep */
  if (a->raw)
    a->r = bench_measure(run_raw, a->raw_state, a->inflight);
  else
    a->r = bench_measure(run_spawns, a, a->inflight);
  for (uint64_t i = 0; i < a->idle; i++) loom_cancel(idle[i]);
  int *st = a->idle ? calloc(a->idle, sizeof(*st)) : NULL;
  if (a->idle && (!st || loom_gather(idle, a->idle, st, 0) < 0)) exit(1);
  free(st);
  free(idle);
  return 0;
}

int main(int argc, char **argv) {
  args_t a = {.inflight = 1};
  int raw = 0;
  if (argc > 1) {
    long k = strtol(argv[1], NULL, 10);
    raw = argc == 3 && strcmp(argv[2], "libuv") == 0;
    if (argc == 3 && strcmp(argv[2], "posix_spawn") == 0) raw = 2;
    if ((argc > 2 && !raw) || k < 1 || k > 64 || (raw == 2 && k != 1)) {
      fprintf(stderr, "usage: bench-spawn-process [in-flight 1-64 [libuv]] | "
                      "1 posix_spawn\n");
      return 2;
    }
    a.inflight = (uint64_t)k;
  }
  const char *idle = getenv("LOOM_SPROC_IDLE");
  a.idle = idle ? strtoull(idle, NULL, 10) : 0;
  if (raw == 2) {
    a.r = bench_measure(run_posix, NULL, 1);
  } else if (raw) {
    raw_t r = {.inflight = a.inflight};
    uv_loop_init(&r.loop);
    r.loop.data = &r;
    if (a.idle) { /* with loom's tasks around it */
      a.raw = 1;
      a.raw_state = &r;
      if (loom_run(bench_main, &a)) return 1;
    } else {
      a.r = bench_measure(run_raw, &r, a.inflight);
    }
    uv_loop_close(&r.loop);
  } else {
    bench_run("bench-spawn-process", bench_main, &a);
  }
  /* bench_measure's figures are ns per child: shown in microseconds. */
  bench_result_t us = a.r;
  us.median /= 1000.0;
  us.min /= 1000.0;
  char impl[64];
  char with[32] = "";
  if (a.idle && raw != 2)
    snprintf(with, sizeof with, ",idle=%llu", (unsigned long long)a.idle);
  snprintf(impl, sizeof impl, "%s(k=%llu%s)",
           raw == 2 ? "posix_spawn"
           : raw    ? "libuv"
                    : "loom",
           (unsigned long long)a.inflight, with);
  bench_print("sproc", impl, &us, "us/child");
  printf("#      %s: %.0f spawns/s\n", impl, 1e6 / us.median);
  /* As a result line of its own: run.sh tables it apart. */
  printf("sproc-rusage %-15s %10.1f %-10s (parent and children, user + system, over %llu "
         "children)\n",
         impl, cpu.children ? cpu.us / (double)cpu.children : 0.0, "us/child",
         (unsigned long long)cpu.children);
  return 0;
}
