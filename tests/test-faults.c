/* Allocation-failure sweep: every scenario below is a loom_run(main) whose
 * main does a small but complete piece of work and checks its own result.
 * For each scenario the sweep first counts the N allocations of a clean
 * run, then for every k in 1..N runs it failing only the k-th allocation
 * ("one"), and again failing every allocation from the k-th on ("from").
 * Every run must end with loom_run returning success or an error code:
 * no crash, no sanitizer or memcheck report, no hang, no leak, and never a
 * "success" with a wrong result.
 *
 * How allocations are failed. Every test program links the counting
 * allocator of the test harness (harness-alloc.c): malloc, calloc, realloc
 * and free of loom's static library and of this file are wrapped with
 * --wrap, and libuv's allocations reach the same count through
 * uv_replace_allocator, installed by the harness before any libuv call.
 * __real_malloc is the C library's malloc, which ASan and Valgrind replace
 * as usual, so both still see every block. The sweep fails allocations
 * through the allocator's fail hook. Blocks are counted live (atomically:
 * libuv's thread pool may free on another thread), so a leak shows as a
 * live count after loom_run that differs from the one before.
 *
 * What is counted and failed. Only allocations made on the thread running
 * the scenario, and only while the sweep is armed: each scenario arms it as
 * the first thing its main task does and it is disarmed when loom_run has
 * returned, so loom's shutdown runs under failing allocations too. Two
 * allocations libuv cannot survive are never failed, by design:
 *  - libuv's uv_loop_init aborts the process when it cannot allocate (it is
 *    the one documented exception of the issue); arming from inside the
 *    main task, once the loop exists, keeps it out of the sweep;
 *  - libuv grows its array of fd watchers in uv__io_start with realloc and
 *    aborts if that fails; libuv's realloc calls are therefore counted as
 *    live blocks but never failed. (loom's own realloc calls are failed.)
 *
 * Isolation. Each run is a fork()ed child with its own watchdog (a timer
 * that ends it as a hang after HANG_MS, 10x under Valgrind) and its stderr
 * captured, shown only when the run fails. The parent decides from the
 * child's exit status and a small shared result block.
 *
 * Under Valgrind the sweep samples k with a stride (every k when N <= 40,
 * else about 40 values of k per mode, always including k = 1 and k = N) to
 * stay within CI's budget; natively every k runs.
 *
 * Running one scenario/k alone, for debugging:
 *   LOOM_FAULT_SCENARIO=server LOOM_FAULT_MODE=from LOOM_FAULT_K=7 \
 *     build/tests/test-faults
 * runs just that combination (LOOM_FAULT_MODE: one or from; without
 * LOOM_FAULT_K the scenario's whole sweep runs). LOOM_FAULT_NO_FORK=1 runs
 * it in this process, for gdb or valgrind --vgdb; LOOM_FAULT_VERBOSE=1
 * prints every run's outcome and captured stderr (otherwise only that of
 * unexpected failures is shown); LOOM_FAULT_STRIDE=n forces a stride.
 *
 * KNOWN_FAILURES (below) lists scenario/mode/k combinations that fail
 * because of library bugs already reported; they run (unless marked skip,
 * for hangs) and their failure is tolerated and printed. Every other
 * failure fails the test. The list is meant to be emptied as the bugs are
 * fixed: a listed combination that passes is reported as such. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"

#ifdef LOOM_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

/* ---- allocation hook ------------------------------------------------------------ */

enum { MODE_CLEAN = 0, MODE_ONE = 1, MODE_FROM = 2 };
static const char *const mode_names[] = {"clean", "one", "from"};

static struct {
  atomic_int armed;   /* counting and failing */
  atomic_long calls;  /* allocations counted since armed */
  atomic_long failed; /* allocations failed since armed */
  long k;             /* the allocation to fail (1-based) */
  int mode;
  pthread_t thread; /* the thread whose allocations are counted */
} hook;

/* The allocator's fail hook: 1 if this allocation is to fail. Allocations
 * of other threads (libuv's thread pool) are never counted nor failed:
 * their order is not deterministic, and the sweep must be. libuv's reallocs
 * never come here (harness.h). */
static int hook_fail(int kind, int from_uv) {
  (void)kind;
  (void)from_uv;
  if (!atomic_load(&hook.armed)) return 0;
  if (!pthread_equal(pthread_self(), hook.thread)) return 0;
  long c = atomic_fetch_add(&hook.calls, 1) + 1;
  int fail = hook.mode == MODE_ONE    ? c == hook.k
             : hook.mode == MODE_FROM ? c >= hook.k
                                      : 0;
  if (fail) atomic_fetch_add(&hook.failed, 1);
  return fail;
}

/* Called first thing by each scenario's main task. */
static void arm(void) {
  atomic_store(&hook.calls, 0);
  atomic_store(&hook.failed, 0);
  hook.thread = pthread_self();
  atomic_store(&hook.armed, 1);
}
static void disarm(void) { atomic_store(&hook.armed, 0); }

/* ---- scenarios -------------------------------------------------------------------- */

/* A scenario's main returns 0 when its work was done and checked, a
 * negative error code when a loom call failed, or WRONG when every call
 * succeeded but the result is not what it must be (always a failure). */
#define WRONG 1000

static int first_err(int a, int b) { return a ? a : b; }

/* spawn / join: three children compute, main joins each. */
static int square(void *arg) {
  int *x = arg;
  int rc = loom_yield();
  if (rc) return rc;
  *x = *x * *x;
  return 0;
}
/* Enough tasks to outgrow what a runtime starts with (the task table, a
 * slab of stacks), so that spawning has to allocate. */
enum { SJN = 300 };
static int sc_spawn_join(void *arg) {
  (void)arg;
  arm();
  static int v[SJN];
  static loom_task_t *t[SJN];
  int rc = 0;
  for (int i = 0; i < SJN; i++) {
    v[i] = i;
    t[i] = NULL;
  }
  for (int i = 0; i < SJN && !rc; i++) rc = loom_spawn(&t[i], square, &v[i]);
  for (int i = 0; i < SJN; i++) {
    if (!t[i]) continue;
    int st = 0;
    int jr = loom_join(t[i], &st);
    if (jr) st = 0;
    rc = first_err(rc, first_err(jr, st));
  }
  if (rc) return rc;
  for (int i = 0; i < SJN; i++)
    if (v[i] != i * i) return WRONG;
  return 0;
}

/* gather (n > 8, so it allocates) of 12 tasks, as_completed over 12 more
 * under a timeout, and gather_map over 100 arguments (enough to outgrow
 * the runtime's first slab of stacks). */
enum { GN = 12, GMN = 100 };
static int sc_gather(void *arg) {
  (void)arg;
  arm();
  int v[GN];
  loom_task_t *t[GN];
  size_t n = 0;
  int rc = 0;
  for (int i = 0; i < GN; i++) v[i] = i;
  for (; n < GN; n++)
    if ((rc = loom_spawn(&t[n], square, &v[n])) != 0) break;
  int st[GN];
  int gr = loom_gather(t, n, st, 0);
  if (gr == UV_ENOMEM || gr == UV_EINVAL) {
    /* Nothing consumed: join them one by one. */
    for (size_t i = 0; i < n; i++) loom_join(t[i], NULL);
  }
  rc = first_err(rc, gr);
  if (rc) return rc;
  for (int i = 0; i < GN; i++)
    if (v[i] != i * i) return WRONG;
  /* as_completed over fresh tasks, under an overall timeout (a timer). */
  for (n = 0; n < GN; n++) {
    v[n] = (int)n;
    if ((rc = loom_spawn(&t[n], square, &v[n])) != 0) break;
  }
  loom_as_completed_t it;
  int ar = rc ? rc : loom_as_completed_init(&it, t, n, 10000);
  size_t joined = 0;
  if (!ar) {
    loom_task_t *d;
    while ((ar = loom_as_completed_next(&it, &d)) == 0) {
      int st1 = 0;
      int jr = loom_join(d, &st1);
      ar = first_err(jr, st1);
      if (ar) break;
      joined++;
    }
    if (ar == UV_EOF) ar = 0;
    loom_as_completed_close(&it);
  }
  if (joined < n) /* init or next failed: join what is left */
    for (size_t i = 0; i < n; i++) loom_join(t[i], NULL); /* joined ones: EBADTASK */
  rc = first_err(rc, ar);
  if (rc) return rc;
  if (joined != GN) return WRONG;
  for (int i = 0; i < GN; i++)
    if (v[i] != i * i) return WRONG;

  static int w[GMN];
  for (int i = 0; i < GMN; i++) w[i] = i + 1;
  int wst[GMN];
  rc = loom_gather_map(square, w, sizeof(w[0]), GMN, wst, LOOM_FAIL_FAST);
  if (rc) return rc;
  for (int i = 0; i < GMN; i++)
    if (w[i] != (i + 1) * (i + 1) || wst[i] != 0) return WRONG;
  return 0;
}

/* task group: 100 children sleeping (timers), one of which spawns a
 * sibling. */
enum { GRN = 100 };
static struct {
  loom_group_t *g;
  int v[GRN + 1];
} grp;
static int grp_child(void *arg) {
  int *x = arg;
  int rc = loom_sleep(1);
  if (rc) return rc;
  *x += 1;
  if (x == &grp.v[0]) return loom_group_spawn(grp.g, NULL, grp_child, &grp.v[GRN]);
  return 0;
}
static int sc_group(void *arg) {
  (void)arg;
  arm();
  memset(&grp, 0, sizeof(grp));
  int rc = loom_group_open(&grp.g);
  if (rc) return rc;
  for (int i = 0; i < GRN && !rc; i++)
    rc = loom_group_spawn(grp.g, NULL, grp_child, &grp.v[i]);
  if (rc) loom_group_cancel(grp.g);
  int wr = loom_group_wait(grp.g);
  rc = first_err(rc, wr);
  if (rc) return rc;
  for (int i = 0; i <= GRN; i++)
    if (grp.v[i] != 1) return WRONG;
  return 0;
}

/* queue: a producer and a consumer through a bounded queue, then an
 * unbounded one that has to grow. */
enum { QN = 40 };
static struct {
  loom_queue_t q;
  long sum;
  int got;
} qs;
static int producer(void *arg) {
  (void)arg;
  for (intptr_t i = 1; i <= QN; i++) {
    int rc = loom_queue_put(&qs.q, (void *)i);
    if (rc) {
      loom_queue_shutdown(&qs.q, 0);
      return rc;
    }
  }
  return loom_queue_shutdown(&qs.q, 0);
}
static int consumer(void *arg) {
  (void)arg;
  for (;;) {
    void *item;
    int rc = loom_queue_get(&qs.q, &item);
    if (rc == LOOM_ESHUTDOWN) return 0;
    if (rc) return rc;
    qs.sum += (intptr_t)item;
    qs.got++;
    loom_queue_task_done(&qs.q);
  }
}
static int run_queue(size_t maxsize) {
  memset(&qs, 0, sizeof(qs));
  int rc = loom_queue_init(&qs.q, maxsize, LOOM_QUEUE_FIFO, NULL);
  if (rc) return rc;
  loom_task_t *p = NULL, *c = NULL;
  rc = loom_spawn(&c, consumer, NULL);
  if (!rc) rc = loom_spawn(&p, producer, NULL);
  if (rc && c) loom_queue_shutdown(&qs.q, 1);
  int sp = 0, sc = 0;
  /* (join first, then read the status: argument order is unspecified) */
  int jp = p ? loom_join(p, &sp) : 0;
  int jc = c ? loom_join(c, &sc) : 0;
  rc = first_err(rc, first_err(first_err(jp, sp), first_err(jc, sc)));
  int dr = loom_queue_destroy(&qs.q);
  if (!rc && (qs.got != QN || qs.sum != (long)QN * (QN + 1) / 2)) return WRONG;
  return first_err(rc, dr);
}
static int sc_queue(void *arg) {
  (void)arg;
  arm();
  int rc = run_queue(4);
  return rc ? rc : run_queue(0);
}

/* read_line's result as an error code: UV_EOF for 0 bytes. Its lines are
 * far below both cap and the stream's limit, so UV_ENOBUFS (documented as
 * "no delimiter within the limit, or the line does not fit") would be a
 * wrong answer, whatever failed underneath. */
static int line_rc(ssize_t n) {
  if (n == UV_ENOBUFS) return WRONG;
  return n > 0 ? 0 : n == 0 ? UV_EOF : (int)n;
}

/* TCP echo: a listener, a task that accepts and echoes one line, a client
 * that connects by name, writes, reads the echo and closes. The server task
 * owns the listener and closes it whatever happens, so a client whose
 * connection is never accepted is reset instead of waiting forever. */
static const char LINE[] = "hello, faults\n";
static int echo_server(void *arg) {
  loom_listener_t *l = arg;
  loom_stream_t *s = NULL;
  int rc = loom_accept(l, &s);
  int cr = loom_listener_close(l);
  if (rc) return rc;
  char buf[64];
  ssize_t n = loom_read_line(s, buf, sizeof(buf));
  rc = line_rc(n);
  if (!rc) rc = loom_write(s, buf, (size_t)n);
  return first_err(first_err(rc, loom_close(s)), cr);
}
static int client_exchange(int port) {
  loom_stream_t *s;
  int rc = loom_tcp_connect(&s, "127.0.0.1", port);
  if (rc) return rc;
  char buf[64];
  rc = loom_write(s, LINE, sizeof(LINE) - 1);
  if (!rc) {
    ssize_t n = loom_read_line(s, buf, sizeof(buf));
    rc = line_rc(n);
    if (!rc && ((size_t)n != sizeof(LINE) - 1 || memcmp(buf, LINE, (size_t)n)))
      rc = WRONG;
  }
  return first_err(rc, loom_close(s));
}
static int sc_tcp_echo(void *arg) {
  (void)arg;
  arm();
  loom_listener_t *l;
  int rc = loom_tcp_listen(&l, "127.0.0.1", 0, 8);
  if (rc) return rc;
  int port = loom_listener_port(l);
  loom_task_t *srv;
  rc = loom_spawn(&srv, echo_server, l);
  if (rc) {
    loom_listener_close(l);
    return rc;
  }
  rc = client_exchange(port);
  if (rc) loom_cancel(srv); /* it may still wait in accept */
  int st = 0;
  int jr = loom_join(srv, &st);
  /* After a client failure the server's status (cancelled, reset) is a
   * consequence; otherwise it must have succeeded too. */
  return first_err(rc, first_err(jr, rc ? 0 : st));
}

/* Server: loom_serve with a handler that echoes one line; a client
 * exchanges a line; the server is closed. A server that cannot allocate
 * keeps retrying its accept (with a backoff), so the client's exchange runs
 * under a timeout: with every allocation failing, UV_ETIMEDOUT is the
 * right answer. */
static int wrong_in_handler;
static int line_handler(loom_stream_t *s, void *arg) {
  (void)arg;
  char buf[64];
  ssize_t n = loom_read_line(s, buf, sizeof(buf));
  int rc = line_rc(n);
  if (!rc) rc = loom_write(s, buf, (size_t)n);
  /* The server logs a handler's failure; WRONG is not an error code. */
  if (rc == WRONG) {
    fprintf(stderr, "faults: WRONG: the handler's read_line gave UV_ENOBUFS\n");
    wrong_in_handler = 1;
  }
  return first_err(rc, loom_close(s));
}
static uint64_t exchange_timeout_ms(void) { return RUNNING_ON_VALGRIND ? 3000 : 300; }
static int sc_server(void *arg) {
  (void)arg;
  arm();
  loom_server_t *srv;
  int rc = loom_serve(&srv, "127.0.0.1", 0, line_handler, NULL, NULL);
  if (rc) return rc;
  loom_scope_t sc;
  int er = loom_timeout_enter(&sc, exchange_timeout_ms());
  if (!er) {
    rc = client_exchange(loom_server_port(srv));
    int xr = loom_scope_exit(&sc);
    if (!rc) rc = xr;
  } else {
    rc = er;
  }
  rc = first_err(rc, loom_server_close(srv, 1000));
  return wrong_in_handler ? WRONG : rc;
}

/* DNS: resolve "localhost", and name 127.0.0.1 back. */
static int sc_dns(void *arg) {
  (void)arg;
  arm();
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  int rc = loom_getaddrinfo("localhost", "80", &hints, &res);
  if (rc) return rc;
  int ok = res && res->ai_family == AF_INET;
  uv_freeaddrinfo(res);
  if (!ok) return WRONG;
  struct sockaddr_in sin;
  uv_ip4_addr("127.0.0.1", 80, &sin);
  char host[256] = "", serv[64] = "";
  rc = loom_getnameinfo((const struct sockaddr *)&sin, 0, host, sizeof(host), serv,
                        sizeof(serv));
  if (rc) return rc;
  if (!host[0]) return WRONG;
  return 0;
}

/* Scopes: a timeout around a long sleep inside an outer one, many tasks
 * doing the same at once (their deadlines outgrow the timer heap the
 * runtime starts with), and wait_for both timing out and finishing in
 * time. */
static int sleeper(void *arg) {
  uint64_t ms = (uint64_t)(uintptr_t)arg;
  return loom_sleep(ms);
}
/* 0 when the sleep timed out in the inner scope only; the error when one
 * could not start (no memory for a timer); WRONG otherwise. */
static int nested_timeout(void *arg) {
  (void)arg;
  loom_scope_t outer, inner;
  int rc = loom_timeout_enter(&outer, 10000);
  if (rc) return rc;
  rc = loom_timeout_enter(&inner, 5);
  if (rc) {
    loom_scope_exit(&outer);
    return rc;
  }
  int sr = loom_sleep(10000);
  int ir = loom_scope_exit(&inner);
  int orc = loom_scope_exit(&outer);
  if (sr == 0) return WRONG;
  if (sr != UV_ETIMEDOUT) return sr;
  return ir == UV_ETIMEDOUT && orc == 0 ? 0 : WRONG;
}
enum { SCN = 100 };
static int sc_scopes(void *arg) {
  (void)arg;
  arm();
  int rc = nested_timeout(NULL);
  if (rc) return rc;
  static int args[SCN], sts[SCN];
  rc = loom_gather_map(nested_timeout, args, sizeof(args[0]), SCN, sts, 0);
  for (int i = 0; i < SCN && rc != UV_ENOMEM && rc != UV_EINVAL; i++)
    if (sts[i] == WRONG) return WRONG; /* a positive status is no failure to gather */
  if (rc) return rc;
  int st = 0;
  rc = loom_wait_for(5, sleeper, (void *)(uintptr_t)10000, &st);
  if (rc == 0) return WRONG;
  if (rc != UV_ETIMEDOUT) return rc;
  rc = loom_wait_for(10000, sleeper, (void *)(uintptr_t)1, &st);
  if (rc) return rc;
  return st;
}

typedef struct {
  const char *name;
  loom_fn main;
} scenario_t;

static const scenario_t scenarios[] = {
    {"spawn_join", sc_spawn_join},
    {"gather", sc_gather},
    {"group", sc_group},
    {"queue", sc_queue},
    {"tcp_echo", sc_tcp_echo},
    {"server", sc_server},
    {"dns", sc_dns},
    {"scopes", sc_scopes},
};

/* ---- known failures ------------------------------------------------------------------ */

/* Combinations that fail because of reported library bugs (see the top).
 * k_lo..k_hi inclusive; mode MODE_CLEAN matches both modes. A failure is
 * tolerated only if its description contains `symptom` (NULL: any), so a
 * known combination that starts failing differently still fails the test.
 * skip: not run at all (a hang costs the watchdog's whole period).
 * TO BE EMPTIED as the bugs are fixed. */
typedef struct {
  const char *scenario;
  int mode;
  long k_lo, k_hi;
  const char *symptom;
  int skip;
  const char *why;
} known_t;

static const known_t KNOWN_FAILURES[] = {
    {NULL, 0, 0, 0, NULL, 0, NULL},
};

static const known_t *known(const char *name, int mode, long k) {
  for (size_t i = 0; KNOWN_FAILURES[i].scenario; i++) {
    const known_t *e = &KNOWN_FAILURES[i];
    if (strcmp(e->scenario, name) == 0 && (e->mode == MODE_CLEAN || e->mode == mode) &&
        k >= e->k_lo && k <= e->k_hi)
      return e;
  }
  return NULL;
}
static int symptom_matches(const known_t *e, const char *what) {
  return !e->symptom || strstr(what, e->symptom) != NULL;
}

/* ---- running one combination ------------------------------------------------------------ */

/* What a child reports back through shared memory. */
typedef struct {
  int done;    /* loom_run returned */
  int status;  /* its result */
  long calls;  /* allocations counted */
  long failed; /* allocations failed */
  long leaked; /* live blocks after minus before */
} result_t;

enum { EXIT_OK = 0, EXIT_LEAK = 42, EXIT_WRONG = 43, EXIT_HANG = 44 };

static result_t *shared;               /* MAP_SHARED, survives the child */
static int errfd = -1;                 /* the child's stderr, for the report */
static struct sigaction saved_sig[32]; /* before cmocka installed its own */
static const int crash_sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS};
static const char *cur_name;
static int cur_mode;
static long cur_k;

static unsigned hang_ms(void) { return RUNNING_ON_VALGRIND ? 60000 : 6000; }

static void on_alarm(int sig) {
  (void)sig;
  char msg[200];
  int n = snprintf(msg, sizeof(msg),
                   "faults: HANG: scenario %s, mode %s, k %ld: no end within %u ms\n",
                   cur_name, mode_names[cur_mode], cur_k, hang_ms());
  if (n > 0) (void)!write(2, msg, (size_t)n);
  _exit(EXIT_HANG);
}

static void watchdog(unsigned ms) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it;
  memset(&it, 0, sizeof(it));
  it.it_value.tv_sec = ms / 1000;
  it.it_value.tv_usec = (ms % 1000) * 1000;
  setitimer(ITIMER_REAL, &it, NULL);
}

/* Runs the combination in this process; returns the exit code a child
 * would use. */
static int run_here(const scenario_t *sc, int mode, long k) {
  cur_name = sc->name;
  cur_mode = mode;
  cur_k = k;
  memset(shared, 0, sizeof(*shared));
  hook.mode = mode;
  hook.k = k;
  watchdog(hang_ms());
  long before = harness_alloc_live();
  int status = loom_run(sc->main, NULL);
  disarm();
  watchdog(0);
  shared->done = 1;
  shared->status = status;
  shared->calls = atomic_load(&hook.calls);
  shared->failed = atomic_load(&hook.failed);
  shared->leaked = harness_alloc_live() - before;
  if (shared->leaked) {
    fprintf(stderr, "faults: LEAK: scenario %s, mode %s, k %ld: %ld block(s)\n", sc->name,
            mode_names[mode], k, shared->leaked);
    return EXIT_LEAK;
  }
  if (status > 0 || (mode == MODE_CLEAN && status != 0)) {
    fprintf(stderr, "faults: WRONG: scenario %s, mode %s, k %ld: status %d (%s)\n",
            sc->name, mode_names[mode], k, status,
            status == WRONG ? "wrong result" : loom_err_name(status));
    return EXIT_WRONG;
  }
  return EXIT_OK;
}

static int verbose(void) { return getenv("LOOM_FAULT_VERBOSE") != NULL; }

static void show_stderr(void) {
  char buf[4096];
  off_t end = lseek(errfd, 0, SEEK_END);
  off_t from = end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0;
  ssize_t n = pread(errfd, buf, sizeof(buf) - 1, from);
  if (n <= 0) return;
  buf[n] = 0;
  fprintf(stderr, "---- its stderr%s ----\n%s---- end ----\n",
          from ? " (last 4 KiB)" : "", buf);
}

/* The scenarios join, wait for and close everything they start, so any
 * report of the runtime about what it found left over at shutdown (tasks
 * never joined, orphans, open handles or scopes, a deadlock) is a failure.
 * Only a server's log of a failed connection handler is expected. */
static int runtime_reported(char *what, size_t cap) {
  static char buf[1 << 16];
  ssize_t n = pread(errfd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return 0;
  buf[n] = 0;
  for (char *line = buf; line && *line;) {
    char *next = strchr(line, '\n');
    if (next) *next++ = 0;
    if (strncmp(line, "loom: ", 6) == 0 &&
        strncmp(line, "loom: connection handler failed", 31) != 0) {
      snprintf(what, cap, "runtime report: %.150s", line);
      return 1;
    }
    line = next;
  }
  return 0;
}

/* Runs one combination in a child (or here with LOOM_FAULT_NO_FORK) and
 * describes a failure in *what. Returns 0 if it passed. */
static int run_one(const scenario_t *sc, int mode, long k, char *what, size_t cap) {
  if (getenv("LOOM_FAULT_NO_FORK")) {
    int code = run_here(sc, mode, k);
    snprintf(what, cap, "exit %d", code);
    return code;
  }
  if (ftruncate(errfd, 0) != 0) return -1;
  lseek(errfd, 0, SEEK_SET);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(what, cap, "fork: %s", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    /* cmocka's handlers would longjmp back into its runner in the child. */
    for (size_t i = 0; i < sizeof(crash_sigs) / sizeof(crash_sigs[0]); i++)
      sigaction(crash_sigs[i], &saved_sig[crash_sigs[i]], NULL);
    dup2(errfd, 2);
    int code = run_here(sc, mode, k);
    fflush(NULL);
    _exit(code);
  }
  int ws = 0;
  while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
  int bad = 1;
  if (WIFSIGNALED(ws)) {
    snprintf(what, cap, "crash: signal %d (%s)", WTERMSIG(ws), strsignal(WTERMSIG(ws)));
  } else {
    int code = WEXITSTATUS(ws);
    bad = code != 0;
    if (code == EXIT_LEAK)
      snprintf(what, cap, "leak: %ld block(s), status %s", shared->leaked,
               loom_err_name(shared->status));
    else if (code == EXIT_WRONG)
      snprintf(what, cap, "wrong result: status %d", shared->status);
    else if (code == EXIT_HANG)
      snprintf(what, cap, "hang (watchdog)");
    else if (code)
      snprintf(what, cap, "exit %d (sanitizer or memcheck report?)", code);
    else
      snprintf(what, cap, "ok: %s", loom_err_name(shared->status));
  }
  if (!bad) bad = runtime_reported(what, cap);
  return bad;
}

/* ---- the sweep --------------------------------------------------------------------------- */

static long env_long(const char *name, long dflt) {
  const char *v = getenv(name);
  return v && *v ? strtol(v, NULL, 10) : dflt;
}

/* Sweeps one scenario; returns the number of unexpected failures. */
static int sweep(const scenario_t *sc) {
  const char *only = getenv("LOOM_FAULT_SCENARIO");
  if (only && strcmp(only, sc->name) != 0) return 0;
  char what[200];
  int unexpected = 0, tolerated = 0, fixed = 0;
  uint64_t t0 = wall_ms();

  /* Twice clean: the first run settles what the process keeps (the DNS
   * thread pool), the second counts N and must be leak-free. */
  run_one(sc, MODE_CLEAN, 0, what, sizeof(what));
  if (run_one(sc, MODE_CLEAN, 0, what, sizeof(what))) {
    show_stderr();
    fprintf(stderr, "faults: %s: the clean run fails: %s\n", sc->name, what);
    return 1;
  }
  long n = shared->calls;
  long stride = env_long("LOOM_FAULT_STRIDE", 0);
  if (stride <= 0) stride = RUNNING_ON_VALGRIND && n > 40 ? (n + 39) / 40 : 1;

  int modes[2] = {MODE_ONE, MODE_FROM};
  const char *only_mode = getenv("LOOM_FAULT_MODE");
  long only_k = env_long("LOOM_FAULT_K", 0);
  for (int mi = 0; mi < 2; mi++) {
    int mode = modes[mi];
    if (only_mode && strcmp(only_mode, mode_names[mode]) != 0) continue;
    for (long k = 1; k <= n; k++) {
      if (only_k ? k != only_k : (k != n && (k - 1) % stride != 0)) continue;
      const known_t *kn = known(sc->name, mode, k);
      if (kn && kn->skip) {
        tolerated++;
        continue;
      }
      int bad = run_one(sc, mode, k, what, sizeof(what));
      int expected = bad && kn && symptom_matches(kn, what);
      if (verbose() || (bad && !expected)) show_stderr();
      if (verbose())
        fprintf(stderr, "faults: %s %s k=%ld/%ld: %s\n", sc->name, mode_names[mode], k, n,
                what);
      if (expected) {
        tolerated++;
        fprintf(stderr, "faults: known failure: %s %s k=%ld: %s [%s]\n", sc->name,
                mode_names[mode], k, what, kn->why);
      } else if (bad) {
        unexpected++;
        fprintf(stderr, "faults: FAILURE: scenario %s, mode %s, k %ld of %ld: %s\n",
                sc->name, mode_names[mode], k, n, what);
      } else if (kn) {
        fixed++;
      }
    }
  }
  fprintf(stderr,
          "faults: %s: N=%ld allocations, stride %ld, %d unexpected failure(s), "
          "%d known, %d known now passing, %llu ms\n",
          sc->name, n, stride, unexpected, tolerated, fixed,
          (unsigned long long)(wall_ms() - t0));
  return unexpected;
}

static void test_sweep(void **state) {
  const scenario_t *sc = *state;
  assert_int_equal(sweep(sc), 0);
}

#define SWEEP_TEST(i, label) \
  cmocka_unit_test_prestate(test_sweep_##label, (void *)&scenarios[i])
static void test_sweep_spawn_join(void **s) { test_sweep(s); }
static void test_sweep_gather(void **s) { test_sweep(s); }
static void test_sweep_group(void **s) { test_sweep(s); }
static void test_sweep_queue(void **s) { test_sweep(s); }
static void test_sweep_tcp_echo(void **s) { test_sweep(s); }
static void test_sweep_server(void **s) { test_sweep(s); }
static void test_sweep_dns(void **s) { test_sweep(s); }
static void test_sweep_scopes(void **s) { test_sweep(s); }

int main(void) {
  harness_alloc_set_hooks(
      &(harness_alloc_hooks_t){.should_fail = hook_fail, .watch = NULL});
  for (size_t i = 0; i < sizeof(crash_sigs) / sizeof(crash_sigs[0]); i++)
    sigaction(crash_sigs[i], NULL, &saved_sig[crash_sigs[i]]);
  shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                -1, 0);
  if (shared == MAP_FAILED) return 1;
  FILE *tmp = tmpfile();
  if (!tmp) return 1;
  errfd = fileno(tmp);

  const struct CMUnitTest tests[] = {
      SWEEP_TEST(0, spawn_join), SWEEP_TEST(1, gather),   SWEEP_TEST(2, group),
      SWEEP_TEST(3, queue),      SWEEP_TEST(4, tcp_echo), SWEEP_TEST(5, server),
      SWEEP_TEST(6, dns),        SWEEP_TEST(7, scopes),
  };
  int rc = HARNESS_RUN(tests);
  fclose(tmp);
  munmap(shared, sizeof(*shared));
  return rc;
}
