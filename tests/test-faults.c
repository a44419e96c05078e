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
#include <limits.h>
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
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"
#include "on-valgrind.h"
#include "remove-tree.h"
#ifdef LOOM_TEST_CURL
#include "loom/http.h"
#endif
#ifdef LOOM_WITH_TLS
#include "tls-keys.h"
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
/* The server's side of every echo scenario (TCP, loom_serve, TLS): reads a
 * line and writes it back. */
static int echo_line(loom_stream_t *s) {
  char buf[64];
  ssize_t n = loom_read_line(s, buf, sizeof(buf));
  int rc = line_rc(n);
  if (!rc) rc = loom_write(s, buf, (size_t)n);
  return rc;
}
/* The client's side: writes LINE and checks the echo. */
static int send_line(loom_stream_t *s) {
  char buf[64];
  int rc = loom_write(s, LINE, sizeof(LINE) - 1);
  if (!rc) {
    ssize_t n = loom_read_line(s, buf, sizeof(buf));
    rc = line_rc(n);
    if (!rc && ((size_t)n != sizeof(LINE) - 1 || memcmp(buf, LINE, (size_t)n)))
      rc = WRONG;
  }
  return rc;
}
static int echo_server(void *arg) {
  loom_listener_t *l = arg;
  loom_stream_t *s = NULL;
  int rc = loom_accept(l, &s);
  int cr = loom_listener_close(l);
  if (rc) return rc;
  rc = echo_line(s);
  return first_err(first_err(rc, loom_close(s)), cr);
}
static int client_exchange(int port) {
  loom_stream_t *s;
  int rc = loom_tcp_connect(&s, "127.0.0.1", port);
  if (rc) return rc;
  rc = send_line(s);
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
  int rc = echo_line(s);
  /* The server logs a handler's failure; WRONG is not an error code. */
  if (rc == WRONG) {
    fprintf(stderr, "faults: WRONG: the handler's read_line gave UV_ENOBUFS\n");
    wrong_in_handler = 1;
  }
  return first_err(rc, loom_close(s));
}
static uint64_t exchange_timeout_ms(void) { return RUNNING_ON_VALGRIND ? 3000 : 300; }
/* exchange(port) under a timeout of ms: its error, or the scope's. */
static int exchange_within(uint64_t ms, int (*exchange)(int port), int port) {
  loom_scope_t sc;
  int rc = loom_timeout_enter(&sc, ms);
  if (rc) return rc;
  rc = exchange(port);
  int xr = loom_scope_exit(&sc);
  return rc ? rc : xr;
}
static int sc_server(void *arg) {
  (void)arg;
  arm();
  loom_server_t *srv;
  int rc = loom_serve(&srv, "127.0.0.1", 0, line_handler, NULL, NULL);
  if (rc) return rc;
  rc = exchange_within(exchange_timeout_ms(), client_exchange, loom_server_port(srv));
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

/* ---- stream scenarios: gathering, queueing, read buffers ---------------------------- */

/* Records as the cancellation sweep's (test-io-sweep): "#iiii:lllllllll:"
 * (id, payload length), then the payload, letters ending in '\n'. The
 * reader checks each one whole, and the records it got against those
 * whose write returned 0: a write that failed must have written nothing
 * (a retry must not duplicate it), one that succeeded must arrive, unless
 * a sticky error (loom_flush, loom_drain or loom_close) said the stream
 * broke: then the records after the break may be missing, the first of
 * them cut short. */
#define RHDR 16
static char srec_byte(int id, size_t j, size_t len) {
  return j + 1 == len ? '\n' : (char)('a' + ((size_t)id * 31 + j * 7 + j / 253) % 26);
}
static size_t make_srec(char *buf, int id, size_t len) {
  char h[RHDR + 1];
  snprintf(h, sizeof(h), "#%04d:%09zu:", id, len);
  memcpy(buf, h, RHDR);
  for (size_t j = 0; j < len; j++) buf[RHDR + j] = srec_byte(id, j, len);
  return RHDR + len;
}

/* The records of the stream scenario, by index: 300 small ones of varied
 * sizes (the gather buffer grows from 512 bytes through every size to
 * 16 KiB, and is flushed when full; loom_flush after every 150), three
 * large ones (queued with libuv, behind which small ones wait at the
 * high-water mark) and a long line (the reader's buffer grows for it). */
enum { SRN = 304, SR_LINE = 303 };
static size_t srec_len(int i) {
  if (i == SR_LINE) return 40 * 1024;
  if (i == 100 || i == 200 || i == 300) return 32 * 1024;
  return 20 + (size_t)(i * 37) % 200;
}

static struct {
  loom_stream_t *w, *r;
  int wlog[SRN], nw; /* written (the call returned 0), in order */
  int rlog[SRN], nr; /* read whole, in order */
  int broken;        /* the writer saw a sticky error */
  int werr, rerr;    /* each side's first error */
  int torn;          /* the reader met EOF inside a record */
  int bad;           /* wrong bytes, a record twice or never written */
  char *wbuf, *rbuf; /* RHDR + 40 KiB + 1 */
} st;

/* A failure that leaves the stream as it was (nothing of the call was
 * written, nothing lost) is retried this many times. */
enum { RETRIES = 2 };

static int st_writer(void *arg) {
  (void)arg;
  loom_stream_t *s = st.w;
  int rc = 0;
  for (int i = 0; i < SRN && !st.broken; i++) {
    size_t n = make_srec(st.wbuf, i, srec_len(i));
    for (int t = 0; t <= RETRIES; t++) {
      rc = loom_write(s, st.wbuf, n);
      if (rc != UV_ENOMEM) break;
      /* Nothing of it was written, unless the stream broke (part of a
       * large write on the wire): loom_flush reports that. */
      if (loom_flush(s) != 0) {
        st.broken = 1;
        break;
      }
    }
    if (rc == 0) st.wlog[st.nw++] = i;
    if (rc && !st.werr) st.werr = rc;
    if (rc && rc != UV_ENOMEM) st.broken = 1; /* EPIPE &c: the reader left */
    if (i % 150 == 149 && loom_flush(s) != 0) st.broken = 1;
  }
  int dr = loom_drain(s);
  int cr = loom_close(s);
  if (dr || cr) st.broken = 1;
  if (!st.werr) st.werr = dr ? dr : cr;
  return 0;
}

/* Reads n bytes into buf (the line: with loom_read_line), retrying what
 * UV_ENOMEM interrupted. 0, UV_EOF (cut short), or the error. */
static int st_read(loom_stream_t *s, char *buf, size_t n, int line) {
  size_t have = 0;
  int rc = 0;
  for (int t = 0; t <= RETRIES && have < n; t++) {
    if (line) {
      ssize_t k = loom_read_line(s, buf, n + 1);
      rc = k > 0 ? 0 : k == 0 ? UV_EOF : (int)k;
      if (k > 0) {
        /* At EOF read_line returns the rest without its '\n': cut short. */
        if ((size_t)k < n && buf[k - 1] != '\n') return UV_EOF;
        if ((size_t)k != n) return WRONG;
        have = n;
      }
    } else {
      size_t k = 0;
      rc = loom_read_exactly(s, buf + have, n - have, &k);
      if (k) t = -1; /* progress: retries start again */
      have += k;
    }
    if (rc != UV_ENOMEM) break;
  }
  return have == n ? 0 : rc;
}

static int st_reader(void *arg) {
  (void)arg;
  loom_stream_t *s = st.r;
  int rc = loom_stream_set_limit(s, 256 * 1024);
  while (rc == 0) {
    char h[RHDR + 1];
    size_t got = 0;
    rc = loom_read_exactly(s, h, RHDR, &got);
    if (rc == UV_ENOMEM && got < RHDR) rc = st_read(s, h + got, RHDR - got, 0);
    if (rc == UV_EOF && got == 0) {
      rc = 0; /* the end, between records */
      break;
    }
    if (rc == UV_EOF) st.torn = 1;
    if (rc) break;
    h[RHDR] = 0;
    int id = atoi(h + 1);
    size_t len = strtoul(h + 6, NULL, 10);
    if (h[0] != '#' || h[5] != ':' || h[15] != ':' || id < 0 || id >= SRN ||
        len != srec_len(id) || st.nr >= SRN) {
      st.bad = 1;
      break;
    }
    rc = st_read(s, st.rbuf, len, id == SR_LINE);
    if (rc == WRONG) st.bad = 1;
    if (rc == UV_EOF) st.torn = 1;
    if (rc) break;
    for (size_t j = 0; j < len && !st.bad; j++)
      if (st.rbuf[j] != srec_byte(id, j, len)) st.bad = 1;
    if (st.bad) break;
    st.rlog[st.nr++] = id;
  }
  if (rc && rc != WRONG) st.rerr = rc;
  loom_close(s); /* a reader that gives up: the writer hears it */
  return 0;
}

/* Whether what the reader got is what the writer's calls said. */
static int st_consistent(void) {
  if (st.bad || st.nr > st.nw) return 0;
  for (int i = 0; i < st.nr; i++)
    if (st.rlog[i] != st.wlog[i]) return 0;
  if (st.broken || st.rerr) return 1; /* a prefix is all that is owed */
  return st.nr == st.nw && !st.torn;
}

/* A socketpair with small buffers (large writes are queued, the reader
 * gets a few KiB per read), a writer task and a reader task. */
static int sc_stream(void *arg) {
  (void)arg;
  arm();
  memset(&st, 0, sizeof(st));
  static char wb[RHDR + 40 * 1024 + 1], rb[RHDR + 40 * 1024 + 1];
  st.wbuf = wb;
  st.rbuf = rb;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return UV_EMFILE;
  int small = 4096;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  int rc = loom_stream_open_fd(&st.w, sv[0]);
  if (rc) {
    close(sv[0]);
    close(sv[1]);
    return rc;
  }
  rc = loom_stream_open_fd(&st.r, sv[1]);
  if (rc) {
    close(sv[1]);
    loom_close(st.w);
    return rc;
  }
  loom_task_t *wt = NULL, *rt = NULL;
  rc = loom_spawn(&rt, st_reader, NULL);
  if (rc) {
    loom_close(st.r);
    loom_close(st.w);
    return rc;
  }
  rc = loom_spawn(&wt, st_writer, NULL);
  if (rc) loom_close(st.w); /* the reader meets EOF */
  if (wt) loom_join(wt, NULL);
  loom_join(rt, NULL);
  if (!st_consistent()) {
    fprintf(stderr,
            "faults: stream: wrote %d, read %d, broken %d, torn %d, bad %d, "
            "writer %s, reader %s\n",
            st.nw, st.nr, st.broken, st.torn, st.bad, loom_err_name(st.werr),
            loom_err_name(st.rerr));
    return WRONG;
  }
  return first_err(rc, first_err(st.werr, st.rerr));
}

/* The output limit: a client sends 200 KiB of pipelined requests and
 * reads nothing until it has sent them all; loom_serve's handler answers
 * each with a 4 KiB reply (gathered), and must neither wait at the
 * high-water mark (it would stop reading: both sides blocked for good)
 * nor queue without bound: past the server's output_limit the connection
 * is aborted and the handler's write returns UV_ENOBUFS. On any other
 * failure the handler aborts the connection too. The client checks the
 * replies it got (whole, in order, each answered by the handler), under a
 * timeout: a server that cannot allocate retries its accept, and a
 * client whose connection is never accepted waits for its requests to be
 * read. A handler still running a second after its client left (the
 * server's grace period cancels it) hung: that is a failure. */
enum { OL_REQS = 200, OL_REQ = 1024, OL_REPLY = 4096 };
static struct {
  int started;    /* the handler ran */
  int handler_rc; /* the error that ended it (0: EOF) */
  int handled;    /* replies it wrote (the call returned 0) */
  int replies;    /* replies the client read, checked */
  int bad;
} ol;

static int ol_handler(loom_stream_t *s, void *arg) {
  (void)arg;
  ol.started = 1;
  int small = 4096; /* or the kernel's buffers absorb every reply */
  uv_send_buffer_size((uv_handle_t *)loom_stream_handle(s), &small);
  static char line[OL_REQ + 1], reply[OL_REPLY];
  int rc = 0, tries = 0;
  for (;;) {
    ssize_t n = loom_read_line(s, line, sizeof(line));
    if (n == UV_ENOMEM && ++tries <= RETRIES) continue;
    tries = 0;
    if (n <= 0) {
      rc = (int)n;
      break;
    }
    if (n != OL_REQ || line[0] != '#' || atoi(line + 1) != ol.handled) {
      ol.bad = 1;
      break;
    }
    make_srec(reply, ol.handled, OL_REPLY - RHDR);
    while ((rc = loom_write(s, reply, OL_REPLY)) == UV_ENOMEM && ++tries <= RETRIES) {}
    tries = 0;
    if (rc) break;
    ol.handled++;
  }
  ol.handler_rc = rc;
  if (rc)
    loom_abort(s);
  else
    loom_close(s);
  return 0;
}

static int ol_client(int port) {
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", port, &a);
  loom_stream_t *c;
  int rc = loom_tcp_connect_addr(&c, (struct sockaddr *)&a);
  if (rc) return rc;
  int small = 4096; /* replies pile up in the server's queue */
  uv_recv_buffer_size((uv_handle_t *)loom_stream_handle(c), &small);
  static char reqs[OL_REQS * OL_REQ], reply[OL_REPLY];
  for (int i = 0; i < OL_REQS; i++) {
    char *q = reqs + (size_t)i * OL_REQ;
    memset(q, 'x', OL_REQ - 1);
    q[0] = '#';
    for (int d = 5, v = i; d >= 1; d--, v /= 10) q[d] = (char)('0' + v % 10);
    q[OL_REQ - 1] = '\n';
  }
  rc = loom_write(c, reqs, sizeof(reqs));
  if (rc == 0) rc = loom_drain(c);
  /* The replies that came, whole and in order, until the end. */
  while (rc == 0 || rc == UV_ECONNRESET || rc == UV_EPIPE) {
    size_t got = 0;
    int r = loom_read_exactly(c, reply, OL_REPLY, &got);
    if (r) {
      if (r == UV_EOF && got == 0) r = 0;
      rc = first_err(rc, r);
      break;
    }
    size_t len = OL_REPLY - RHDR;
    char h[RHDR + 1];
    snprintf(h, sizeof(h), "#%04d:%09zu:", ol.replies, len);
    if (memcmp(reply, h, RHDR) != 0) ol.bad = 1;
    for (size_t j = 0; j < len && !ol.bad; j++)
      if (reply[RHDR + j] != srec_byte(ol.replies, j, len)) ol.bad = 1;
    if (ol.bad) break;
    ol.replies++;
  }
  loom_abort(c);
  return rc;
}

static int sc_output_limit(void *arg) {
  (void)arg;
  arm();
  memset(&ol, 0, sizeof(ol));
  loom_server_opts_t o = {.output_limit = 96 * 1024};
  loom_server_t *srv;
  int rc = loom_serve(&srv, "127.0.0.1", 0, ol_handler, NULL, &o);
  if (rc) return rc;
  loom_scope_t sc;
  int cr = loom_timeout_enter(&sc, exchange_timeout_ms());
  if (!cr) {
    cr = ol_client(loom_server_port(srv));
    int xr = loom_scope_exit(&sc);
    if (!cr) cr = xr;
  }
  rc = loom_server_close(srv, 1000);
  int client_ok = cr == 0 || cr == UV_ECONNRESET || cr == UV_EPIPE;
  if (ol.bad || ol.replies > ol.handled || ol.handler_rc == UV_ECANCELED ||
      (ol.handler_rc == 0 && ol.started && client_ok)) {
    /* wrong bytes, a reply never written, a handler that hung, or one
     * that answered everything: the limit never applied */
    fprintf(
        stderr, "faults: output_limit: bad %d, replies %d of %d, handler %s, client %s\n",
        ol.bad, ol.replies, ol.handled, loom_err_name(ol.handler_rc), loom_err_name(cr));
    return WRONG;
  }
  if (!ol.started) return first_err(cr, rc); /* the connection was never handled */
  if (ol.handler_rc != UV_ENOBUFS) return first_err(ol.handler_rc, first_err(cr, rc));
  /* The limit ended it: the client saw the reset, or the end. */
  return client_ok ? rc : cr;
}

/* ---- the other capabilities ------------------------------------------------------------
 * One scenario each for files, child processes, signal watchers, fd waits,
 * thread offload and futures, channels, and HTTP when libcurl is built in
 * (moved here from their own test programs, so that this sweep lists every
 * capability). A new capability adds its scenario here and a line to
 * `scenarios` below. */

/* Files: open, write, whole-file read and atomic write, scandir, a
 * directory walk, realpath, a file stream's read_line, sendfile to a
 * socket. In fdir, made by main(). */
static char fdir[64];
static const char *fpath(const char *name) {
  static char paths[4][128];
  static int next;
  char *p = paths[next++ % 4];
  snprintf(p, 128, "%s/%s", fdir, name);
  return p;
}
static int files_work(void) {
  loom_file_t *f;
  int rc = loom_file_open(&f, fpath("a"), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (rc) return rc;
  ssize_t n = loom_file_write(f, "line\n", 5);
  loom_file_close(f);
  if (n < 0) return (int)n;
  if (n != 5) return WRONG;
  char *data;
  size_t len;
  if ((rc = loom_fs_read_file(fpath("a"), &data, &len, 100)) != 0) return rc;
  int same = len == 5 && memcmp(data, "line\n", 5) == 0;
  free(data);
  if (!same) return WRONG;
  if ((rc = loom_fs_write_file(fpath("b"), "x", 1, 0644)) != 0) return rc;
  loom_dirent_t *e;
  if ((rc = loom_fs_scandir(fdir, &e, &len)) != 0) return rc;
  loom_fs_dirents_free(e, len);
  if (len < 2) return WRONG;
  loom_dir_t *d;
  if ((rc = loom_fs_opendir(&d, fdir)) != 0) return rc;
  loom_dirent_t ents[4];
  while ((rc = loom_fs_readdir(d, ents, 4)) > 0) {}
  loom_fs_closedir(d);
  if (rc) return rc;
  char real[PATH_MAX];
  if ((rc = loom_fs_realpath(fpath("a"), real, sizeof(real))) < 0) return rc;
  loom_stream_t *s;
  if ((rc = loom_file_stream_open(&s, fpath("a"))) != 0) return rc;
  char line[16];
  n = loom_read_line(s, line, sizeof(line));
  loom_close(s);
  return line_rc(n) ? line_rc(n) : n == 5 ? 0 : WRONG;
}
static int files_sendfile(void) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) return UV_EMFILE;
  loom_stream_t *a, *b;
  int rc = loom_stream_open_fd(&a, sv[0]);
  if (rc) {
    close(sv[0]);
    close(sv[1]);
    return rc;
  }
  if ((rc = loom_stream_open_fd(&b, sv[1])) != 0) {
    close(sv[1]);
    loom_close(a);
    return rc;
  }
  loom_file_t *f;
  rc = loom_file_open(&f, fpath("a"), O_RDONLY, 0);
  if (!rc) {
    ssize_t n = loom_file_sendfile(a, f, 0, 5);
    loom_file_close(f);
    char buf[8];
    rc = n < 0 ? (int)n : n != 5 ? WRONG : loom_read_exactly(b, buf, 5, NULL);
    if (!rc && memcmp(buf, "line\n", 5)) rc = WRONG;
  }
  loom_close(a);
  loom_close(b);
  return rc;
}
static int sc_files(void *arg) {
  (void)arg;
  arm();
  int rc = files_work();
  return rc ? rc : files_sendfile();
}

/* A child process: cat, its three streams piped, fed and read by
 * communicate. */
static int sc_process(void *arg) {
  (void)arg;
  arm();
  loom_process_opts_t o = {0};
  for (int i = 0; i < 3; i++) o.stdio[i].kind = LOOM_STDIO_PIPE;
  loom_process_t *p;
  int rc = loom_process_spawn(&p, (char *const[]){"/bin/cat", NULL}, &o);
  if (rc) return rc;
  loom_communicate_t c = {.input = "hello", .input_len = 5};
  rc = loom_process_communicate(p, &c);
  if (rc == 0 &&
      (c.out_len != 5 || memcmp(c.out, "hello", 5) || c.err_len != 0 || c.status != 0))
    rc = WRONG;
  free(c.out);
  free(c.err);
  if (rc) { /* a child that communicate could not finish with */
    loom_process_kill(p);
    loom_process_wait(p, NULL);
  }
  loom_process_close(p);
  return rc;
}

/* A signal watcher of two signals and a handler task for it. */
static int got_signal(int signum, void *arg) {
  *(int *)arg = signum;
  return 1; /* one is enough: the handler ends */
}
static int sc_signal(void *arg) {
  (void)arg;
  arm();
  loom_signal_t *s;
  int rc = loom_signal_open(&s, SIGUSR1);
  if (rc) return rc;
  loom_task_t *h = NULL;
  int got = 0;
  if ((rc = loom_signal_add(s, SIGUSR2)) == 0 &&
      (rc = loom_signal_handle(s, &h, got_signal, &got)) == 0) {
    raise(SIGUSR2); /* caught: the watcher is open and has it */
    int hst = 0;
    rc = loom_join(h, &hst);
    /* It ends with what got_signal returned, or its error. */
    if (!rc) rc = hst == 1 ? 0 : hst < 0 ? hst : WRONG;
    if (!rc && got != SIGUSR2) rc = WRONG;
  }
  loom_signal_close(s);
  return rc;
}

/* A foreign descriptor's watch: writable at once, readable once written. */
static int sc_fd(void *arg) {
  (void)arg;
  arm();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) return UV_EMFILE;
  loom_fd_t *w;
  int rc = loom_fd_open(&w, sv[0]);
  if (!rc) {
    rc = loom_fd_wait(w, LOOM_FD_WRITABLE);
    if (rc == LOOM_FD_WRITABLE) {
      rc = write(sv[1], "x", 1) == 1 ? loom_fd_wait(w, LOOM_FD_READABLE) : UV_EIO;
      rc = rc == LOOM_FD_READABLE ? 0 : rc < 0 ? rc : WRONG;
    } else if (rc >= 0) {
      rc = WRONG;
    }
    loom_fd_close(w);
  }
  close(sv[0]);
  close(sv[1]);
  return rc;
}

/* Futures, offload and thread-safe entry: a future resolved by another
 * thread, a loom_to_thread, a submitted job awaited through its future, a
 * remote call and a remote spawn made from another thread. Only this
 * (the runtime's) thread's allocations fail: the other threads are always
 * answered. */
static int sq(void *p) {
  int *x = p;
  return *x * *x;
}
static void resolver(void *p) {
  loom_future_set(p, (void *)(uintptr_t)7);
  loom_future_release(p);
}
typedef struct {
  loom_remote_t *r;
  int called;                   /* the runtime's thread */
  _Atomic int spawn_status, rc; /* the other thread's */
} remote_arg_t;
static void remote_call_fn(loom_t *rt, void *p) {
  remote_arg_t *a = p;
  if (rt) a->called++;
}
static void remote_thread(void *p) {
  remote_arg_t *a = p;
  a->rc = loom_remote_call(a->r, remote_call_fn, a);
  if (a->rc) return;
  int x = 6;
  loom_future_t *f;
  a->rc = loom_remote_spawn(a->r, sq, &x, &f);
  if (a->rc) return;
  a->spawn_status = loom_future_wait(f, -1, NULL);
  loom_future_release(f);
}
static int sc_thread(void *arg) {
  (void)arg;
  arm();
  int rc;
  loom_future_t *f;
  if ((rc = loom_future_new(&f))) return rc;
  uv_thread_t th;
  loom_future_retain(f);
  if ((rc = uv_thread_create(&th, resolver, f))) {
    loom_future_release(f);
    loom_future_release(f);
    return rc;
  }
  void *v = NULL;
  rc = loom_future_await(f, &v);
  uv_thread_join(&th);
  loom_future_release(f);
  if (rc) return rc;
  if ((uintptr_t)v != 7) return WRONG;
  int x = 5, xst = 0;
  if ((rc = loom_to_thread(sq, &x, &xst))) return rc;
  if (xst != 25) return WRONG;
  int y = 4;
  if ((rc = loom_executor_submit(NULL, sq, &y, &f))) return rc;
  rc = loom_future_await(f, NULL);
  loom_future_release(f);
  if (rc != 16) return rc < 0 ? rc : WRONG;
  remote_arg_t ra = {.r = NULL};
  if ((rc = loom_remote_open(NULL, &ra.r))) return rc;
  if ((rc = uv_thread_create(&th, remote_thread, &ra))) {
    loom_remote_close(ra.r);
    return rc;
  }
  /* Waits for the thread's work without blocking the loop it needs. */
  while (!ra.rc && !(ra.called && ra.spawn_status))
    if ((rc = loom_sleep(1))) break;
  uv_thread_join(&th);
  loom_remote_close(ra.r);
  if (rc) return rc;
  if (ra.rc) return ra.rc;
  if (ra.called != 1) return WRONG;
  /* The spawned task's status, or a failure to spawn it (the runtime's
   * allocation for the task may be the one that failed). */
  if (ra.spawn_status == 36) return 0;
  return ra.spawn_status < 0 ? ra.spawn_status : WRONG;
}

/* A channel: a producer task puts CHN items through a channel of 2, a
 * consumer takes them in order until it is closed. */
enum { CHN = 20 };
static int ch_consumer(void *arg) {
  loom_channel_t *ch = arg;
  intptr_t want = 1;
  for (;;) {
    void *v;
    int rc = loom_channel_get(ch, &v);
    if (rc == LOOM_ESHUTDOWN) return want == CHN + 1 ? 0 : WRONG;
    if (rc) return rc;
    if ((intptr_t)v != want++) return WRONG;
  }
}
static int sc_channel(void *arg) {
  (void)arg;
  arm();
  loom_channel_t *ch;
  int rc = loom_channel_new(&ch, 2);
  if (rc) return rc;
  loom_task_t *c;
  if ((rc = loom_spawn(&c, ch_consumer, ch)) == 0) {
    for (intptr_t i = 1; i <= CHN && !rc; i++) rc = loom_channel_put(ch, (void *)i);
    loom_channel_close(ch, rc != 0);
    int hst = 0;
    int jr = loom_join(c, &hst);
    rc = first_err(rc, first_err(jr, rc ? 0 : hst));
  }
  loom_channel_release(ch);
  return rc;
}

#ifdef LOOM_TEST_CURL
/* HTTP: a fetch into memory and a streamed response, from loom's own
 * server. The server retries an accept it could not allocate for, so the
 * transfers run under a timeout (CURLOPT_TIMEOUT_MS). */
static int http_handler(loom_stream_t *s, void *arg) {
  (void)arg;
  char req[2048];
  ssize_t n = loom_read_until(s, "\r\n\r\n", 4, req, sizeof(req));
  int rc = n < 0 ? (int)n : 0;
  if (!rc) {
    static const char A[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    rc = loom_write(s, A, sizeof(A) - 1);
  }
  return first_err(rc, loom_close(s));
}
static int sc_http(void *arg) {
  (void)arg;
  arm();
  loom_server_t *srv;
  int rc = loom_serve(&srv, "127.0.0.1", 0, http_handler, NULL, NULL);
  if (rc) return rc;
  CURL *e = curl_easy_init();
  if (!e) rc = UV_ENOMEM;
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/", loom_server_port(srv));
  if (!rc) {
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)exchange_timeout_ms());
    loom_http_body_t b;
    rc = loom_http_fetch(e, 1024, &b);
    if (!rc && (b.len != 5 || memcmp(b.data, "hello", 5))) rc = WRONG;
    free(b.data);
  }
  if (!rc) {
    loom_http_resp_t *resp;
    rc = loom_http_open(&resp, e, NULL);
    if (!rc) {
      char buf[16];
      size_t got = 0;
      ssize_t n;
      while ((n = loom_http_read(resp, buf + got, sizeof(buf) - got)) > 0)
        got += (size_t)n;
      loom_http_close(resp);
      rc = n < 0 ? (int)n : got == 5 && memcmp(buf, "hello", 5) == 0 ? 0 : WRONG;
    }
  }
  if (e) curl_easy_cleanup(e);
  rc = first_err(rc, loom_server_close(srv, 1000));
  return rc;
}
#endif

#ifdef LOOM_WITH_TLS
/* TLS: loom_tls_serve with a handler that echoes one line and then reads
 * to the client's EOF; a client that connects (its handshake, and the
 * server's), writes a line, reads the echo, shuts its side down
 * (close_notify) and closes. Both contexts are made in the run, so their
 * allocations are failed too (main makes the certificate files once).
 * OpenSSL's own allocations are not loom's and are not failed: ASan and
 * Valgrind watch them. A gathered write that fails for want of memory is
 * reported to the next write, flush, drain or close (loom_write's rule),
 * so a side that only reads next may wait for an answer that cannot come:
 * the exchange runs under a timeout, like the server scenario's. */
static tls_keys_t K;
static int tls_echo(loom_stream_t *s, void *arg) {
  (void)arg;
  int rc = echo_line(s);
  if (!rc) {
    char buf[64];
    ssize_t n = loom_read(s, buf, sizeof(buf));
    rc = n < 0 ? (int)n : n > 0 ? WRONG : 0;
  }
  if (rc == WRONG) {
    fprintf(stderr, "faults: WRONG: the TLS handler read a wrong line or no EOF\n");
    wrong_in_handler = 1;
  }
  return first_err(rc, loom_close(s));
}
static int tls_exchange(int port) {
  loom_stream_t *s;
  int rc = loom_tls_connect(&s, "127.0.0.1", port, K.client, "localhost");
  if (rc) return rc;
  rc = send_line(s);
  if (!rc) rc = loom_shutdown_write(s);
  return first_err(rc, loom_close(s));
}
static int sc_tls(void *arg) {
  (void)arg;
  arm();
  /* No session cache: the client context would keep the session past the
   * exchange; the context is freed below either way. */
  int rc = tls_keys_ctx(&K, SIZE_MAX);
  loom_server_t *srv = NULL;
  if (!rc) rc = loom_tls_serve(&srv, "127.0.0.1", 0, K.server, tls_echo, NULL, NULL);
  if (!rc)
    rc = exchange_within(3 * exchange_timeout_ms(), tls_exchange, loom_server_port(srv));
  if (srv) rc = first_err(rc, loom_server_close(srv, 1000));
  tls_keys_ctx_free(&K);
  return wrong_in_handler ? WRONG : rc;
}
#endif

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
    {"stream", sc_stream},
    {"output_limit", sc_output_limit},
    /* the other capabilities */
    {"files", sc_files},
    {"process", sc_process},
    {"signal", sc_signal},
    {"fd", sc_fd},
    {"thread", sc_thread},
    {"channel", sc_channel},
#ifdef LOOM_TEST_CURL
    {"http", sc_http},
#endif
#ifdef LOOM_WITH_TLS
    {"tls", sc_tls},
#endif
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

#define NSCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

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
static void test_sweep_stream(void **s) { test_sweep(s); }
static void test_sweep_output_limit(void **s) { test_sweep(s); }
static void test_sweep_files(void **s) { test_sweep(s); }
static void test_sweep_process(void **s) { test_sweep(s); }
static void test_sweep_signal(void **s) { test_sweep(s); }
static void test_sweep_fd(void **s) { test_sweep(s); }
static void test_sweep_thread(void **s) { test_sweep(s); }
static void test_sweep_channel(void **s) { test_sweep(s); }
#ifdef LOOM_TEST_CURL
static void test_sweep_http(void **s) { test_sweep(s); }
#endif
#ifdef LOOM_WITH_TLS
static void test_sweep_tls(void **s) { test_sweep(s); }
#endif

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
  snprintf(fdir, sizeof(fdir), "/tmp/loom-faults-XXXXXX");
  if (!mkdtemp(fdir)) return 1;
#ifdef LOOM_TEST_CURL
  curl_global_init(CURL_GLOBAL_DEFAULT);
#endif
#ifdef LOOM_WITH_TLS
  if (tls_keys_files(&K)) return 1;
#endif

  const struct CMUnitTest tests[] = {
      SWEEP_TEST(0, spawn_join),
      SWEEP_TEST(1, gather),
      SWEEP_TEST(2, group),
      SWEEP_TEST(3, queue),
      SWEEP_TEST(4, tcp_echo),
      SWEEP_TEST(5, server),
      SWEEP_TEST(6, dns),
      SWEEP_TEST(7, scopes),
      SWEEP_TEST(8, stream),
      SWEEP_TEST(9, output_limit),
      SWEEP_TEST(10, files),
      SWEEP_TEST(11, process),
      SWEEP_TEST(12, signal),
      SWEEP_TEST(13, fd),
      SWEEP_TEST(14, thread),
      SWEEP_TEST(15, channel),
#ifdef LOOM_TEST_CURL
      SWEEP_TEST(16, http),
#endif
#ifdef LOOM_WITH_TLS
      SWEEP_TEST(NSCENARIOS - 1, tls),
#endif
  };
  int rc = HARNESS_RUN(tests);
#ifdef LOOM_TEST_CURL
  curl_global_cleanup();
#endif
#ifdef LOOM_WITH_TLS
  tls_keys_free(&K);
#endif
  remove_tree(fdir);
  fclose(tmp);
  munmap(shared, sizeof(*shared));
  return rc;
}
