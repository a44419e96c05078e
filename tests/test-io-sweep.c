/* The cancellation sweeps: every suspension point loom has, interrupted in
 * turn. In the first, a client and a server exchange data over TCP
 * (resolve, connect, accept, write under backpressure, drain, read,
 * shutdown, read to EOF, close) and a UDP datagram; in the second (the
 * stream sweep, below), a writer sends records through gathered, queued
 * and waiting writes and a reader takes them with large reads; the third
 * (the capability sweep, at the end) is a table with one entry per
 * suspension point of the other capabilities: files, child processes,
 * thread offload and futures, channels, signal and fd waits, HTTP and
 * TLS (in builds with them); a fourth, in TLS builds, cancels each side
 * of a handshake at every one of its parks through a byte-by-byte proxy
 * (the TLS handshake sweep, last). The
 * side interrupted is interrupted at each of its suspension points in
 * turn:
 *   - cancelled by a task that runs as soon as the call has suspended
 *     (so libuv holds the request or the wait is armed), and
 *   - timed out by a 1 ms timeout scope around the call (the peer waits
 *     3 ms before each of its steps, so the call is still waiting).
 * Each run must end (bounded), the interrupted call must return
 * UV_ECANCELED / UV_ETIMEDOUT at that very point, the other side must end
 * too, and nothing may leak (ASan and Valgrind runs in CI). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
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
#include "tls-byte-exchange.h"
#include "tls-keys.h"
#endif

enum { CLIENT, SERVER };
enum { CANCEL, TIMEOUT };
enum {
  /* client */
  C_RESOLVE,
  C_CONNECT,
  C_WRITE,
  C_DRAIN,
  C_READ,
  C_SHUTDOWN,
  C_READ_EOF,
  C_UDP_RECV,
  C_N,
  /* server */
  S_ACCEPT = 0,
  S_READ,
  S_WRITE,
  S_DRAIN,
  S_READ_EOF,
  S_SHUTDOWN,
  S_N
};
static const char *const cnames[] = {"resolve", "connect",  "write",    "drain",
                                     "read",    "shutdown", "read-eof", "udp-recv"};
static const char *const snames[] = {"accept", "read",     "write",
                                     "drain",  "read-eof", "shutdown"};

#define BIG (512 * 1024)
#define PEER_PAUSE 3 /* ms before each step of the side not interrupted */

/* The stream sweep's records (below). */
#define NREC 66
#define HDR 16

typedef struct {
  int side, point, mode;    /* what to interrupt, where, how */
  int err_phase[2], err[2]; /* each side's first failing step */
  int nerr[2];              /* failing steps, each side */
  int done[2];
  loom_scope_t scope;
  loom_listener_t *l;
  int port, udp_port;
  /* the stream sweep */
  int setup;              /* connect / accept / listen failed */
  int wlog[NREC], nw;     /* records written (the call returned 0), in order */
  int rlog[NREC + 1], nr; /* records read whole, in order */
  int bad;                /* a record read with wrong bytes, or cut short */
  int flush_rc, close_rc; /* the writer's loom_flush and loom_close */
  int cleanup_flush_rc;   /* its loom_flush after it was cancelled */
  int queued_at_close;    /* bytes it had gathered or queued at close */
} sweep_t;
static sweep_t X;
static char *bigbuf;

static int cancel_it(void *task) {
  loom_cancel(task);
  return 0;
}

/* Before step `phase` of `side`: arms the interruption if it is the one. */
static void arm(int side, int phase) {
  if (side != X.side || phase != X.point) {
    if (side != X.side) loom_sleep(PEER_PAUSE);
    return;
  }
  if (X.mode == CANCEL)
    loom_spawn(NULL, cancel_it, loom_current());
  else
    loom_timeout_enter(&X.scope, 1);
}

/* After it: records the first failure. Returns nonzero to stop. */
static int after(int side, int phase, long rc) {
  if (side == X.side && phase == X.point && X.mode == TIMEOUT) loom_scope_exit(&X.scope);
  if (rc < 0) X.nerr[side]++;
  if (rc < 0 && X.err[side] == 0) {
    X.err[side] = (int)rc;
    X.err_phase[side] = phase;
  }
  return rc < 0;
}

#define STEP(side, phase, expr) (arm(side, phase), after(side, phase, (long)(expr)))

static void small_buffers(loom_stream_t *s) {
  int small = 65536;
  uv_send_buffer_size((uv_handle_t *)loom_stream_handle(s), &small);
  uv_recv_buffer_size((uv_handle_t *)loom_stream_handle(s), &small);
}

/* Reads until the peer's EOF: 0, or the error. */
static long read_to_eof(loom_stream_t *s) {
  static char buf[65536];
  ssize_t n;
  while ((n = loom_read(s, buf, sizeof(buf))) > 0) {}
  return n;
}

static int client(void *arg) {
  (void)arg;
  loom_stream_t *s = NULL;
  loom_udp_t *u = NULL;
  struct addrinfo *res = NULL;
  char line[64];
  static char in[BIG];
  if (STEP(CLIENT, C_RESOLVE, loom_getaddrinfo("localhost", NULL, NULL, &res))) goto out;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", X.port, &a);
  if (STEP(CLIENT, C_CONNECT, loom_tcp_connect_addr(&s, (struct sockaddr *)&a))) goto out;
  small_buffers(s);
  /* The first half is queued at once; the second waits for room (the
   * kernel buffers are kept small, so it does). */
  if (loom_write(s, bigbuf, BIG / 2)) goto out;
  if (STEP(CLIENT, C_WRITE, loom_write(s, bigbuf + BIG / 2, BIG / 2))) goto out;
  if (STEP(CLIENT, C_DRAIN, loom_drain(s))) goto out;
  if (STEP(CLIENT, C_READ, loom_read_exactly(s, in, BIG, NULL))) goto out;
  /* Queued data keeps the shutdown waiting until the peer reads it. */
  if (loom_write(s, bigbuf, BIG)) goto out;
  if (STEP(CLIENT, C_SHUTDOWN, loom_shutdown_write(s))) goto out;
  if (STEP(CLIENT, C_READ_EOF, read_to_eof(s))) goto out;
  if (loom_udp_bind(&u, "127.0.0.1", 0)) goto out;
  X.udp_port = loom_udp_port(u);
  if (STEP(CLIENT, C_UDP_RECV, loom_udp_recv(u, line, sizeof(line), NULL))) goto out;
  X.done[CLIENT] = 1;
out:
  if (res) uv_freeaddrinfo(res);
  if (s) loom_abort(s); /* an interrupted side leaves at once */
  if (u) loom_udp_close(u);
  return 0;
}

static int server(void *arg) {
  (void)arg;
  loom_stream_t *s = NULL;
  static char in[BIG];
  if (STEP(SERVER, S_ACCEPT, loom_accept(X.l, &s))) goto out;
  small_buffers(s);
  if (STEP(SERVER, S_READ, loom_read_exactly(s, in, BIG, NULL))) goto out;
  if (loom_write(s, bigbuf, BIG / 2)) goto out;
  if (STEP(SERVER, S_WRITE, loom_write(s, bigbuf + BIG / 2, BIG / 2))) goto out;
  if (STEP(SERVER, S_DRAIN, loom_drain(s))) goto out;
  if (STEP(SERVER, S_READ_EOF, read_to_eof(s))) goto out;
  if (loom_write(s, bigbuf, BIG)) goto out;
  if (STEP(SERVER, S_SHUTDOWN, loom_shutdown_write(s))) goto out;
  X.done[SERVER] = 1;
out:
  if (s) loom_close(s);
  return 0;
}

/* Sends datagrams to the client's UDP socket until it has one. */
static int udp_peer(void *arg) {
  (void)arg;
  loom_udp_t *u;
  if (loom_udp_bind(&u, "127.0.0.1", 0)) return 0;
  while (!X.done[CLIENT] && X.err[CLIENT] == 0) {
    if (loom_sleep(PEER_PAUSE)) break;
    if (X.udp_port) {
      struct sockaddr_in a;
      uv_ip4_addr("127.0.0.1", X.udp_port, &a);
      loom_udp_send(u, "ping", 4, (struct sockaddr *)&a);
    }
  }
  loom_udp_close(u);
  return 0;
}

/* The bound within which the interrupted side must end: generous under
 * Valgrind, where a busy machine once made a plain run take over 5 s. */
static uint64_t bound_ms(void) { return RUNNING_ON_VALGRIND ? 20000 : 5000; }

/* A run of the first two sweeps: a listener (X.l, on X.port), the server
 * and client tasks and, when set, a third, spawned in that order. The
 * interrupted side (the client in a run not interrupted) must end by
 * itself within `bound` ms; its peer and the third then get peer_bound ms
 * each, after which join cancels them. The interrupted side's join result,
 * and in *peer_rc (when set) its peer's. */
static int run_sides(loom_fn srv, loom_fn cli, loom_fn third, uint64_t bound,
                     uint64_t peer_bound, int *peer_rc) {
  if (loom_tcp_listen(&X.l, "127.0.0.1", 0, 0)) return 1;
  X.port = loom_listener_port(X.l);
  loom_task_t *t[3];
  loom_spawn(&t[SERVER], srv, NULL);
  loom_spawn(&t[CLIENT], cli, NULL);
  if (third) loom_spawn(&t[2], third, NULL);
  int side = X.side < 0 ? CLIENT : X.side;
  loom_scope_t sc;
  loom_timeout_enter(&sc, bound);
  int rc = loom_join(t[side], NULL);
  loom_scope_exit(&sc);
  loom_timeout_enter(&sc, peer_bound);
  int prc = loom_join(t[!side], NULL);
  loom_scope_exit(&sc);
  if (third) {
    loom_timeout_enter(&sc, peer_bound);
    loom_join(t[2], NULL);
    loom_scope_exit(&sc);
  }
  loom_listener_close(X.l);
  if (peer_rc) *peer_rc = prc;
  return rc;
}

/* The interrupted side's peer may be left waiting for what will never come
 * (a connection, a datagram): it gets a moment, then join cancels it. */
static int sweep_main(void *arg) {
  (void)arg;
  return run_sides(server, client, udp_peer, bound_ms(), 50, NULL);
}

static int exact;

/* A fresh run: which side to interrupt (-1: none), at which point, how. */
static void sweep_reset(int side, int point, int mode) {
  memset(&X, 0, sizeof(X));
  X.side = side;
  X.point = point;
  X.mode = mode;
}

/* Counts a run whose interruption landed at its point (`missed` false);
 * otherwise says where the side failed instead (a call may end first). */
static void note_landing(int missed, const char *who, int side, int mode,
                         const char *name) {
  if (missed)
    fprintf(stderr, "note: %s %s at %s: the call ended first; %s at step %d\n", who,
            mode == CANCEL ? "cancelled" : "timed out", name, loom_err_name(X.err[side]),
            X.err_phase[side]);
  else
    exact++;
}

/* What the interrupted side of either sweep must have seen. */
static void assert_interrupted(int side, int point, int mode) {
  int want = mode == CANCEL ? UV_ECANCELED : UV_ETIMEDOUT;
  if (mode == CANCEL) {
    /* The interruption lands at the point, or, if that call had already
     * completed when it came, at a later suspension: never lost. */
    assert_int_equal(X.err[side], want);
    assert_true(X.err_phase[side] >= point);
  } else {
    /* A timeout lands at the point, or the call beat it and the scope
     * ended without firing. */
    assert_true(X.err_phase[side] != point || X.err[side] == want);
    assert_true(X.err_phase[side] == point || X.err[side] == 0);
  }
}

/* With LOOM_SWEEP_TIMES set, how long the run took. */
static void note_time(const char *who, int point, int mode, uint64_t t0) {
  if (getenv("LOOM_SWEEP_TIMES"))
    fprintf(stderr, "%s %d %d: %d ms\n", who, point, mode, (int)(wall_ms() - t0));
}

static void run_one(int side, int point, int mode) {
  sweep_reset(side, point, mode);
  uint64_t t0 = wall_ms();
  int rc = loom_run(sweep_main, NULL);
  const char *who = side == CLIENT ? "client" : "server";
  note_landing(X.err_phase[side] != point, who, side, mode,
               side == CLIENT ? cnames[point] : snames[point]);
  assert_loom_ok(rc);
  assert_interrupted(side, point, mode);
  note_time(who, point, mode, t0);
  assert_true(wall_ms() - t0 < bound_ms());
}

/* A run not interrupted, of either sweep: both sides get to their end. */
static void run_baseline(loom_fn main) {
  sweep_reset(-1, 0, CANCEL);
  assert_loom_ok(loom_run(main, NULL));
  assert_int_equal(X.done[CLIENT], 1);
  assert_int_equal(X.done[SERVER], 1);
}

static void test_baseline(void **state) {
  (void)state;
  run_baseline(sweep_main);
}

static void test_client_sweep(void **state) {
  (void)state;
  for (int mode = CANCEL; mode <= TIMEOUT; mode++)
    for (int p = 0; p < C_N; p++) {
      /* A lookup of localhost may end within the 1 ms timeout. */
      if (mode == TIMEOUT && p == C_RESOLVE) continue;
      run_one(CLIENT, p, mode);
    }
}

static void test_server_sweep(void **state) {
  (void)state;
  for (int mode = CANCEL; mode <= TIMEOUT; mode++)
    for (int p = 0; p < S_N; p++) run_one(SERVER, p, mode);
}

/* ---- the stream sweep ------------------------------------------------------------ */

/* A writer (the client side) sends records, each one line:
 *   "#iiii:lllllllll:" (HDR bytes: id, payload length), then the payload,
 *   lowercase letters ending in '\n'.
 * A reader (the server side) checks every record whole and in order,
 * against what the writer's calls said was written: after any
 * interruption the reader must get exactly the records whose write
 * returned 0, in the order the calls returned (a write that failed wrote
 * nothing), then EOF. The writer's suspension points:
 *   - a large write waiting at the high-water mark behind a large queued
 *     write (W_BIG),
 *   - a small write waiting its turn behind another task's write, which
 *     itself waits at the high-water mark (W_TURN; W_YIELD1 lets the
 *     other task start),
 *   - loom_drain after loom_flush handed 40 gathered records to libuv
 *     behind a large queued write (W_DRAIN),
 *   - a yield with records gathered: cancelled, the writer closes with
 *     them still gathered (W_YIELD),
 *   - loom_shutdown_write with records gathered behind a large queued
 *     write (W_SHUTDOWN).
 * The reader's: the header and the body of a 400 KB line read with
 * loom_read_line (the read buffer grows from 4 KiB), the header and body
 * of a 512 KiB loom_read_exactly (read straight into the caller's buffer,
 * arriving in pieces), a small record's header (the writer's own small
 * write, which comes after a pause), the read that meets EOF.
 * A timed-out side goes on (a timed-out read is resumed with what it had
 * not got), so the whole exchange is checked after a timeout too; a
 * cancelled writer closes, which must still deliver what it had written
 * and gathered, after checking that loom_flush works for a cancelled
 * task. Only a cancelled reader leaves the writer with nobody to read,
 * and nothing is checked but the end and the leaks. The side not
 * interrupted paces itself: the reader waits PEER_PAUSE before its
 * numbered steps and before large bodies, the writer before its steps,
 * and writes large records in pieces with pauses between them. */
enum {
  /* writer */
  W_BIG,
  W_YIELD1,
  W_TURN,
  W_DRAIN,
  W_YIELD,
  W_SHUTDOWN,
  W_N,
  /* reader */
  R_LINE_HDR = 0,
  R_LINE,
  R_EXACT_HDR,
  R_EXACT,
  R_SMALL,
  R_EOF,
  R_N
};
static const char *const wnames[] = {"big-write", "yield-helper",   "turn",
                                     "drain",     "yield-gathered", "shutdown"};
static const char *const rnames[] = {"line-hdr", "read-line", "exact-hdr",
                                     "exact",    "small-hdr", "eof"};

/* The records, by id: their payload lengths. */
enum {
  ID_LINE = 1, /* the long line */
  ID_BIG,      /* the large exact read */
  ID_HELPER,   /* the other task's small write */
  ID_TURN,     /* the small write behind it */
  ID_F,        /* large, before the gathered G */
  ID_G = 10,   /* 40 gathered, flushed, drained */
  ID_H = 50,   /* 10 gathered before the yield */
  ID_J = 60,   /* large, before the gathered I */
  ID_I = 61,   /* 10 gathered before the shutdown */
  ID_END = 71
};
#define LINE_LEN (400 * 1024)
#define BIG_LEN (512 * 1024)
#define MID_LEN (256 * 1024)
#define SMALL_LEN 100
#define PIECE (32 * 1024)
#define RLIMIT (512 * 1024)

static size_t rec_len(int id) {
  switch (id) {
  case ID_LINE: return LINE_LEN;
  case ID_BIG:
  case ID_J: return BIG_LEN; /* more than the kernel's buffers take */
  case ID_F: return MID_LEN;
  default: return id > 0 && id < ID_END ? SMALL_LEN : 0;
  }
}
static char rec_byte(int id, size_t j, size_t len) {
  return j + 1 == len ? '\n' : (char)('a' + ((size_t)id * 31 + j * 7 + j / 253) % 26);
}
/* Header and payload of record id into buf (HDR + rec_len(id) bytes). */
static size_t make_rec(char *buf, int id) {
  size_t len = rec_len(id);
  char h[HDR + 1];
  snprintf(h, sizeof(h), "#%04d:%09zu:", id, len);
  memcpy(buf, h, HDR);
  for (size_t j = 0; j < len; j++) buf[HDR + j] = rec_byte(id, j, len);
  return HDR + len;
}

/* An error of a step that is not a numbered point, counted for `phase`:
 * the next point's in the order of the exchange (a cancellation whose
 * call had completed lands at a later suspension, never an earlier one). */
static void note_err(int side, int phase, long rc) {
  if (rc >= 0) return;
  X.nerr[side]++;
  if (X.err[side] == 0) {
    X.err[side] = (int)rc;
    X.err_phase[side] = phase;
  }
}

static char *wbuf; /* HDR + BIG_LEN: the writer's record */
static int wnext;  /* the writer's next numbered point */

/* Writes record id, at numbered point `phase` (or -1), and logs it when
 * the call returned 0. A writer that is not the interrupted side writes
 * large records in pieces with pauses between them, so that the reader's
 * large reads wait for them. */
static int write_rec(loom_stream_t *s, int id, int phase) {
  size_t n = make_rec(wbuf, id);
  int rc = 0;
  if (phase >= 0) arm(CLIENT, phase);
  if (X.side != CLIENT && n > PIECE) {
    for (size_t off = 0; off < n && rc == 0; off += PIECE) {
      if (off && (rc = loom_sleep(PEER_PAUSE)) != 0) break;
      rc = loom_write(s, wbuf + off, n - off < PIECE ? n - off : PIECE);
    }
  } else {
    rc = loom_write(s, wbuf, n);
  }
  if (phase >= 0)
    after(CLIENT, phase, rc);
  else
    note_err(CLIENT, wnext, rc);
  if (rc == 0) X.wlog[X.nw++] = id;
  return rc;
}

static int helper_writer(void *arg) {
  loom_stream_t *s = arg;
  char buf[HDR + SMALL_LEN];
  size_t n = make_rec(buf, ID_HELPER);
  int rc = loom_write(s, buf, n);
  if (rc == 0) X.wlog[X.nw++] = ID_HELPER;
  return rc;
}

/* After a failed step: a timed-out side goes on, a cancelled one stops. */
#define STOP(failed) ((failed) && X.mode == CANCEL)

static int writer(void *arg) {
  (void)arg;
  loom_stream_t *s = NULL;
  loom_task_t *helper = NULL;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", X.port, &a);
  int rc = loom_tcp_connect_addr(&s, (struct sockaddr *)&a);
  if (rc) {
    X.setup = rc;
    return 0;
  }
  small_buffers(s);
  wnext = W_BIG;
  /* The line goes first, most of it queued (the kernel's buffers are
   * small); the next large write waits at the high-water mark. A writer
   * not interrupted pauses first, so that the reader's first read waits. */
  if (X.side != CLIENT) note_err(CLIENT, wnext, loom_sleep(PEER_PAUSE));
  if ((rc = write_rec(s, ID_LINE, -1)) != 0) goto out;
  if (STOP(write_rec(s, ID_BIG, W_BIG))) goto out;
  /* The helper's small write waits at the high-water mark (the record
   * above is queued), and the writer's own waits its turn behind it. */
  if ((rc = loom_spawn(&helper, helper_writer, s)) != 0) {
    note_err(CLIENT, wnext, rc);
    goto out;
  }
  if (STOP(STEP(CLIENT, W_YIELD1, loom_yield()))) goto out;
  if (STOP(write_rec(s, ID_TURN, W_TURN))) goto out;
  wnext = W_DRAIN;
  rc = loom_join(helper, NULL); /* (it wrote before us: no wait) */
  helper = NULL;                /* consumed, whatever join returned */
  note_err(CLIENT, wnext, rc);
  if (STOP(rc)) goto out;
  /* Gathered behind a large queued write: loom_flush hands them to libuv
   * (queued in the gather buffer itself), drain waits for both. */
  loom_stream_set_high_water(s, 8u << 20);
  if (STOP(write_rec(s, ID_F, -1))) goto out;
  for (int i = 0; i < 40; i++)
    if (STOP(write_rec(s, ID_G + i, -1))) goto out;
  X.flush_rc = loom_flush(s);
  if (STOP(STEP(CLIENT, W_DRAIN, loom_drain(s)))) goto out;
  loom_stream_set_high_water(s, 64u * 1024u);
  /* Gathered, then a yield: a cancel lands before they are flushed. */
  wnext = W_YIELD;
  for (int i = 0; i < 10; i++)
    if (STOP(write_rec(s, ID_H + i, -1))) goto out;
  if (STOP(STEP(CLIENT, W_YIELD, loom_yield()))) goto out;
  /* Gathered behind a large queued write, then the EOF. */
  loom_stream_set_high_water(s, 8u << 20);
  wnext = W_SHUTDOWN;
  if (STOP(write_rec(s, ID_J, -1))) goto out;
  for (int i = 0; i < 10; i++)
    if (STOP(write_rec(s, ID_I + i, -1))) goto out;
  if (STOP(STEP(CLIENT, W_SHUTDOWN, loom_shutdown_write(s)))) goto out;
  X.done[CLIENT] = 1;
out:
  if (helper) loom_join(helper, NULL); /* cancelled with us, if we were */
  /* Non-suspending calls work for a cancelled task. After the gathered
   * yield, close with the records still gathered: close sends them. */
  if (X.mode == CANCEL && X.point != W_YIELD) X.cleanup_flush_rc = loom_flush(s);
  X.queued_at_close = (int)loom_stream_queued(s);
  X.close_rc = loom_close(s);
  return 0;
}

static char *rbuf; /* HDR + BIG_LEN + 1: the reader's record */

/* The reader's failures outside its numbered points: after the last of
 * them in the order of the exchange. */
static int rphase(int phase) { return phase >= 0 ? phase : R_EOF; }

/* loom_read_exactly at numbered point `phase` (or -1). A read timed out at
 * the point is resumed, outside the scope, for what it had not got: the
 * stream must hold the rest. Returns 0, UV_EOF (*got: what came), or the
 * error. */
static int read_exact(loom_stream_t *s, char *buf, size_t n, int phase, size_t *got) {
  size_t k = 0, more = 0;
  if (phase >= 0) arm(SERVER, phase);
  int rc = loom_read_exactly(s, buf, n, &k);
  if (phase >= 0)
    after(SERVER, phase, rc == UV_EOF ? 0 : rc);
  else
    note_err(SERVER, rphase(phase), rc == UV_EOF ? 0 : rc);
  if (rc == UV_ETIMEDOUT && X.mode == TIMEOUT && phase == X.point && k <= n) {
    rc = loom_read_exactly(s, buf + k, n - k, &more);
    k += more;
    note_err(SERVER, phase, rc == UV_EOF ? 0 : rc);
  }
  *got = k;
  return rc;
}

/* The long line's body, with loom_read_line: the bytes stay buffered when
 * it is interrupted, and a timed-out read is simply made again. */
static long read_body_line(loom_stream_t *s, size_t len, int phase) {
  if (phase >= 0) arm(SERVER, phase);
  ssize_t n = loom_read_line(s, rbuf, len + 1);
  if (phase >= 0)
    after(SERVER, phase, n);
  else
    note_err(SERVER, rphase(phase), n);
  if (n == UV_ETIMEDOUT && X.mode == TIMEOUT && phase == X.point) {
    n = loom_read_line(s, rbuf, len + 1);
    note_err(SERVER, phase, n);
  }
  return (long)n;
}

static int reader(void *arg) {
  (void)arg;
  loom_stream_t *s = NULL;
  int rc = loom_accept(X.l, &s);
  if (rc) {
    X.setup = rc;
    return 0;
  }
  small_buffers(s);
  loom_stream_set_limit(s, RLIMIT); /* the long line fits */
  for (int rec = 0;; rec++) {
    int hphase = rec == 0      ? R_LINE_HDR
                 : rec == 1    ? R_EXACT_HDR
                 : rec == 3    ? R_SMALL
                 : rec == NREC ? R_EOF
                               : -1;
    int bphase = rec == 0 ? R_LINE : rec == 1 ? R_EXACT : -1;
    char h[HDR + 1];
    size_t got;
    rc = read_exact(s, h, HDR, hphase, &got);
    if (rc == UV_EOF && got == 0) {
      X.done[SERVER] = 1; /* the end, between records */
      break;
    }
    if (rc == UV_EOF) X.bad = 1; /* a record cut short */
    if (rc) break;
    h[HDR] = 0;
    int id = atoi(h + 1);
    size_t len = strtoul(h + 6, NULL, 10);
    if (h[0] != '#' || h[5] != ':' || h[15] != ':' || len == 0 || len != rec_len(id) ||
        X.nr >= NREC) {
      X.bad = 1;
      break;
    }
    if (id == ID_LINE) {
      long n = read_body_line(s, len, bphase);
      if (n >= 0 && (size_t)n != len) X.bad = 1;
      if (n < 0 || X.bad) break;
    } else {
      /* Large bodies: a reader not interrupted lets the writer wait. */
      if (X.side != SERVER && bphase < 0 && len >= 64 * 1024) loom_sleep(PEER_PAUSE);
      rc = read_exact(s, rbuf, len, bphase, &got);
      if (rc == UV_EOF) X.bad = 1;
      if (rc) break;
    }
    for (size_t j = 0; j < len && !X.bad; j++)
      if (rbuf[j] != rec_byte(id, j, len)) X.bad = 1;
    if (X.bad) break;
    X.rlog[X.nr++] = id;
  }
  loom_close(s);
  return 0;
}

/* A run moves a few MB and checks every byte: a second or two under
 * Valgrind. */
static uint64_t stream_bound_ms(void) { return RUNNING_ON_VALGRIND ? 16000 : 4000; }

/* The side not interrupted must end by itself too, within the same bound
 * (the reader reads to the writer's EOF; the writer of a reader that left
 * hears it). */
static int stream_main(void *arg) {
  (void)arg;
  int prc = 0;
  int rc = run_sides(reader, writer, NULL, stream_bound_ms(), stream_bound_ms(), &prc);
  return rc ? rc : prc;
}

/* What every stream run must satisfy; `all`: every record was written. */
static void check_stream_data(int all) {
  assert_loom_ok(X.setup);
  assert_int_equal(X.done[SERVER], 1);
  assert_int_equal(X.bad, 0);
  assert_int_equal(X.nr, X.nw);
  for (int i = 0; i < X.nw; i++) assert_int_equal(X.rlog[i], X.wlog[i]);
  if (all) assert_int_equal(X.nw, NREC);
  assert_loom_ok(X.flush_rc);
  assert_loom_ok(X.cleanup_flush_rc);
  assert_loom_ok(X.close_rc);
}

static void run_stream_one(int side, int point, int mode) {
  sweep_reset(side, point, mode);
  X.err_phase[CLIENT] = X.err_phase[SERVER] = -1; /* (point 0 is a step) */
  uint64_t t0 = wall_ms();
  int rc = loom_run(stream_main, NULL);
  const char *name = side == CLIENT ? wnames[point] : rnames[point];
  const char *who = side == CLIENT ? "stream writer" : "stream reader";
  note_landing(X.err_phase[side] != point || X.err[side] == 0, who, side, mode, name);
  if (side == CLIENT && mode == CANCEL && point == W_YIELD && X.queued_at_close == 0)
    fprintf(stderr, "note: stream writer cancelled at %s: nothing gathered at close\n",
            name);
  assert_loom_ok(rc);
  assert_loom_ok(X.setup);
  assert_interrupted(side, point, mode);
  /* A timed-out side failed at the point or not at all, and nothing else
   * failed: it went on with the stream as it was. */
  if (mode == TIMEOUT) assert_true(X.nerr[side] <= 1);
  /* A cancelled reader leaves the writer with nobody to read: only its end
   * is checked. Otherwise the reader got exactly what the writer's calls
   * said they wrote, and the reader's peer never failed. */
  if (!(side == SERVER && mode == CANCEL)) {
    assert_int_equal(X.nerr[!side], 0);
    check_stream_data(side == SERVER);
  }
  note_time(who, point, mode, t0);
  assert_true(wall_ms() - t0 < stream_bound_ms() + 1000);
}

static void test_stream_baseline(void **state) {
  (void)state;
  run_baseline(stream_main);
  assert_int_equal(X.nerr[CLIENT], 0);
  assert_int_equal(X.nerr[SERVER], 0);
  check_stream_data(1);
}

static void test_stream_writer_sweep(void **state) {
  (void)state;
  for (int mode = CANCEL; mode <= TIMEOUT; mode++)
    for (int p = 0; p < W_N; p++) {
      /* A yield never waits for a timer. */
      if (mode == TIMEOUT && (p == W_YIELD1 || p == W_YIELD)) continue;
      run_stream_one(CLIENT, p, mode);
    }
}

static void test_stream_reader_sweep(void **state) {
  (void)state;
  for (int mode = CANCEL; mode <= TIMEOUT; mode++)
    for (int p = 0; p < R_N; p++) run_stream_one(SERVER, p, mode);
}

/* ---- the capability sweep: one entry per suspension point ------------------------ */

/* Every other capability's suspension points, one table entry each: files,
 * child processes, thread offload and futures, channels, signal waits, fd
 * waits, and HTTP transfers when libcurl is built in. An entry opens what
 * its call needs (setup), makes the one suspending call, then checks what
 * it left and closes it (cleanup, shielded). Each entry runs three ways,
 * each in its own loom_run:
 *   - plain: the call must succeed (its peer answers after PEER_PAUSE ms,
 *     or a child after CHILD_PAUSE);
 *   - cancelled by a task that runs as soon as the call has suspended;
 *   - timed out by a 1 ms timeout scope around the call.
 * An interrupted call must return UV_ECANCELED / UV_ETIMEDOUT itself, the
 * run must end within a bound, and nothing may be left: no allocation (the
 * harness), no descriptor (/proc/self/fd is counted around every
 * interrupted run), no child (waitpid), no temporary file.
 *
 * Calls that never suspend but are checkpoints (loom_process_spawn) are
 * interrupted just before the call instead (CP_CHECKPOINT): a cancelled
 * task, an expired scope. File calls wait on libuv's thread pool, which
 * ends a small file operation well within 1 ms: in the timeout run of an
 * entry marked CP_POOL every pool thread is held by a blocking job until
 * the call has returned, so the call waits in libuv's queue when the
 * timeout fires (and uv_cancel takes it back). The cancelled run leaves
 * the pool free: the cancellation usually finds the work running, and the
 * call waits it out.
 *
 * To add a capability: write its setup / call / cleanup below and add a
 * line to `points` (TLS and other helpers add their block the same way). */

enum { PLAIN = 2 };       /* a run not interrupted (CANCEL, TIMEOUT above) */
#define CHILD_PAUSE "0.3" /* seconds a child waits before it answers */
#define CP_CHECKPOINT 1u  /* does not suspend: interrupted before the call */
#define CP_POOL 2u        /* works on libuv's thread pool (files) */

typedef struct {
  int mode;
  loom_task_t *helper; /* the peer: pauses, then does what the call waits for */
  loom_file_t *f;
  loom_stream_t *s, *peer;
  loom_listener_t *l;
  loom_process_t *p;
  loom_future_t *fut, *busy;
  loom_executor_t *ex;
  loom_channel_t *ch;
  loom_signal_t *sig;
  loom_fd_t *fdw;
  int sv[2];
  uv_thread_t th;
  int th_on, gate_open;
  uv_sem_t gate;
  uv_timer_t *timer;
  void *v;
  size_t n;
  int status;
  char *data;
  loom_dirent_t *ents;
  loom_communicate_t cm;
#ifdef LOOM_TEST_CURL
  CURL *easy;
  loom_server_t *srv;
#endif
  char buf[256];
} cx_t;

typedef struct {
  const char *name;
  unsigned flags;
  int (*setup)(cx_t *c);            /* 0, or the error that fails the run */
  long (*call)(cx_t *c);            /* the suspending call */
  int (*cleanup)(cx_t *c, long rc); /* 0 if what the call left is right */
} cpoint_t;

static cx_t C;
static struct {
  long rc;
  int setup_rc, cleanup_rc;
} CR;

/* ---- libuv's thread pool, held ---- */

#define NPOOL 64
static uv_work_t pool_w[NPOOL];
static uv_sem_t pool_sem;
static int pool_n, pool_left;

static int pool_size(void) {
  const char *s = getenv("UV_THREADPOOL_SIZE");
  int n = s ? atoi(s) : 4; /* libuv's default */
  return n < 1 ? 4 : n > NPOOL ? NPOOL : n;
}
static void pool_block(uv_work_t *w) {
  (void)w;
  uv_sem_wait(&pool_sem);
}
static void pool_after(uv_work_t *w, int status) {
  (void)w;
  (void)status;
  pool_left--;
}
/* Every pool thread takes a blocking job; work queued after them waits. */
static void pool_hold(void) {
  pool_n = pool_size();
  for (int i = 0; i < pool_n; i++)
    if (uv_queue_work(loom_loop(loom_runtime()), &pool_w[i], pool_block, pool_after) == 0)
      pool_left++;
}
static void pool_release(void) {
  for (int i = 0; i < pool_left; i++) uv_sem_post(&pool_sem);
  while (pool_left) loom_sleep(1); /* their callbacks ran */
  pool_n = 0;
}

/* ---- shared set-up pieces ---- */

static char cdir[64], cdata[128], cout[128], cout2[128];
static const char CDATA[] = "line one\nline two\n";

/* The peer: after PEER_PAUSE, fn(c) (unless cancelled first). */
static int (*peer_fn)(cx_t *c);
static int peer_task(void *arg) {
  if (loom_sleep(PEER_PAUSE) == 0) peer_fn(arg);
  return 0;
}
static int start_peer(cx_t *c, int (*fn)(cx_t *)) {
  peer_fn = fn;
  return loom_spawn(&c->helper, peer_task, c);
}
static void stop_peer(cx_t *c) {
  if (!c->helper) return;
  loom_cancel(c->helper);
  loom_join(c->helper, NULL);
  c->helper = NULL;
}

/* ---- files ---- */

static int file_setup_r(cx_t *c) { return loom_file_open(&c->f, cdata, O_RDONLY, 0); }
static int file_setup_w(cx_t *c) {
  return loom_file_open(&c->f, cout, O_WRONLY | O_CREAT | O_TRUNC, 0644);
}
static int file_close(cx_t *c, long rc) {
  (void)rc;
  return c->f ? loom_file_close(c->f) : 0;
}
/* Plain runs read or wrote everything. */
static int file_close_len(cx_t *c, long rc) {
  int bad = c->mode == PLAIN && rc != (long)strlen(CDATA);
  return file_close(c, rc) || bad;
}

static long call_open(cx_t *c) { return loom_file_open(&c->f, cdata, O_RDONLY, 0); }
/* An interrupted open closes what it opened: the fd count says so. */
static int open_cleanup(cx_t *c, long rc) {
  return (rc < 0 && c->f) || file_close(c, rc);
}
static long call_read(cx_t *c) { return loom_file_read(c->f, c->buf, sizeof(c->buf)); }
static long call_pread(cx_t *c) {
  return loom_file_pread(c->f, c->buf, sizeof(c->buf), 0);
}
static long call_write(cx_t *c) { return loom_file_write(c->f, CDATA, strlen(CDATA)); }
static long call_fsync(cx_t *c) { return loom_file_sync(c->f); }
static long call_stat(cx_t *c) {
  (void)c;
  uv_stat_t st;
  long rc = loom_fs_stat(cdata, &st);
  return rc ? rc : (long)st.st_size;
}
static int stat_cleanup(cx_t *c, long rc) {
  return c->mode == PLAIN && rc != (long)strlen(CDATA);
}
static long call_scandir(cx_t *c) { return loom_fs_scandir(cdir, &c->ents, &c->n); }
static int scandir_cleanup(cx_t *c, long rc) {
  if (rc == 0) loom_fs_dirents_free(c->ents, c->n);
  return c->mode == PLAIN && (rc != 0 || c->n < 1);
}
static long call_read_file(cx_t *c) {
  return loom_fs_read_file(cdata, &c->data, &c->n, 1024);
}
static int read_file_cleanup(cx_t *c, long rc) {
  int bad = c->mode == PLAIN && (rc != 0 || c->n != strlen(CDATA));
  if (rc == 0) free(c->data);
  return bad;
}
static long call_write_file(cx_t *c) {
  (void)c;
  return loom_fs_write_file(cout2, CDATA, strlen(CDATA), 0644);
}
/* Atomic: an interrupted write_file leaves no temporary file behind. */
static int write_file_cleanup(cx_t *c, long rc) {
  (void)c;
  (void)rc;
  DIR *d = opendir(cdir);
  if (!d) return 1;
  int bad = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.' && strcmp(e->d_name, "data") && strcmp(e->d_name, "out") &&
        strcmp(e->d_name, "out2"))
      bad = 1;
  closedir(d);
  return bad;
}
static int stream_setup(cx_t *c) { return loom_file_stream_open(&c->s, cdata); }
static long call_read_line(cx_t *c) {
  return loom_read_line(c->s, c->buf, sizeof(c->buf));
}
static int stream_cleanup(cx_t *c, long rc) {
  int bad = c->mode == PLAIN && rc != 9; /* "line one\n" */
  return loom_close(c->s) || bad;
}

static int accept_one(void *arg) {
  cx_t *c = arg;
  return loom_accept(c->l, &c->peer);
}
/* A connected pair (c->s the client, c->peer the server's end). */
static int tcp_pair(cx_t *c) {
  int rc = loom_tcp_listen(&c->l, "127.0.0.1", 0, 0);
  if (rc) return rc;
  loom_task_t *t;
  if ((rc = loom_spawn(&t, accept_one, c))) return rc;
  rc = loom_tcp_connect(&c->s, "127.0.0.1", loom_listener_port(c->l));
  if (rc) loom_cancel(t);
  int st = 0;
  loom_join(t, &st);
  return rc ? rc : st;
}
static void tcp_pair_close(cx_t *c) {
  if (c->s) loom_close(c->s);
  if (c->peer) loom_close(c->peer);
  if (c->l) loom_listener_close(c->l);
}
static int sendfile_setup(cx_t *c) {
  int rc = tcp_pair(c);
  return rc ? rc : file_setup_r(c);
}
static long call_sendfile(cx_t *c) {
  return loom_file_sendfile(c->s, c->f, 0, strlen(CDATA));
}
static int sendfile_cleanup(cx_t *c, long rc) {
  int bad = c->mode == PLAIN && rc != (long)strlen(CDATA);
  bad |= file_close(c, rc);
  tcp_pair_close(c);
  return bad;
}

/* ---- child processes ---- */

#define SH(script) ((char *const[]){"/bin/sh", "-c", script, NULL})

static loom_process_opts_t stdio_opts(int in, int out) {
  loom_process_opts_t o = {0};
  o.stdio[0].kind = in ? LOOM_STDIO_PIPE : LOOM_STDIO_DEVNULL;
  o.stdio[1].kind = out ? LOOM_STDIO_PIPE : LOOM_STDIO_DEVNULL;
  o.stdio[2].kind = LOOM_STDIO_DEVNULL;
  return o;
}

static long call_spawn(cx_t *c) {
  loom_process_opts_t o = stdio_opts(0, 0);
  return loom_process_spawn(&c->p, SH("exit 0"), &o);
}
static int no_children(void) {
  int st;
  return waitpid(-1, &st, WNOHANG) == -1 && errno == ECHILD;
}
/* Interrupted, the call leaves the child to the cancel policy (KILL: the
 * cancelled run finds it killed) or running (the timed-out run: it polls
 * as running). Either way it is reaped here. */
static int proc_cleanup(cx_t *c, long rc) {
  int bad = 0;
  if (c->mode == CANCEL && c->p && rc == UV_ECANCELED) {
    int st = 0;
    loom_process_wait(c->p, &st);
    bad |= st != -SIGKILL;
  }
  if (c->mode == TIMEOUT && c->p && rc == UV_ETIMEDOUT)
    bad |= loom_process_poll(c->p, NULL) != UV_EAGAIN;
  if (c->p) {
    loom_process_kill(c->p);
    loom_process_wait(c->p, NULL);
    loom_process_close(c->p);
  }
  return bad || !no_children();
}
static int spawn_cleanup(cx_t *c, long rc) {
  if (rc < 0 && no_children() == 0) return 1; /* started something */
  if (rc == 0) {
    int st = -1;
    loom_process_wait(c->p, &st);
    loom_process_close(c->p);
    c->p = NULL;
    return st != 0;
  }
  return 0;
}
static int wait_setup(cx_t *c) {
  loom_process_opts_t o = stdio_opts(0, 0);
  return loom_process_spawn(&c->p, SH("sleep " CHILD_PAUSE), &o);
}
static long call_wait(cx_t *c) {
  int st = -1;
  long rc = loom_process_wait(c->p, &st);
  return rc ? rc : st; /* 0: it exited with 0 */
}
static int comm_setup(cx_t *c) {
  loom_process_opts_t o = stdio_opts(1, 1);
  return loom_process_spawn(&c->p, SH("sleep " CHILD_PAUSE "; exec cat"), &o);
}
static long call_communicate(cx_t *c) {
  c->cm = (loom_communicate_t){.input = "x", .input_len = 1};
  long rc = loom_process_communicate(c->p, &c->cm);
  if (rc == 0 && (c->cm.out_len != 1 || c->cm.out[0] != 'x')) rc = 1000;
  free(c->cm.out);
  free(c->cm.err);
  return rc;
}
static int pread_setup(cx_t *c) {
  loom_process_opts_t o = stdio_opts(0, 1);
  return loom_process_spawn(&c->p, SH("sleep " CHILD_PAUSE "; echo hi"), &o);
}
static long call_pipe_read(cx_t *c) {
  return loom_read_line(loom_process_stream(c->p, 1), c->buf, sizeof(c->buf));
}
static int pwrite_setup(cx_t *c) {
  loom_process_opts_t o = stdio_opts(1, 0);
  return loom_process_spawn(&c->p, SH("sleep " CHILD_PAUSE "; exec cat >/dev/null"), &o);
}
/* More than the pipe and loom's high-water mark take: it waits for room. */
static long call_pipe_write(cx_t *c) {
  loom_stream_t *in = loom_process_stream(c->p, 0);
  long rc = 0;
  for (int i = 0; i < 8 && rc == 0; i++) rc = loom_write(in, bigbuf, BIG);
  if (rc == 0) rc = loom_drain(in);
  return rc;
}
static int pipe_read_cleanup(cx_t *c, long rc) {
  return (c->mode == PLAIN && rc != 3) | proc_cleanup(c, rc);
}

/* ---- thread offload and futures ---- */

#define SLOW_MS 20 /* what a timer takes to resolve */

/* What another thread resolves is held until the call has been interrupted
 * (the cleanup lets it go): it cannot end first however late the
 * interruption comes on a loaded machine, where a thread that only slept a
 * while did (the call then returned 0 under a 1 ms timeout). It is let
 * through at once when the run is not interrupted. */
static void gate_setup(cx_t *c) {
  uv_sem_init(&c->gate, 0);
  if (c->mode == PLAIN) {
    uv_sem_post(&c->gate);
    c->gate_open = 1;
  }
}

static void resolve_later(void *p) {
  cx_t *c = p;
  uv_sem_wait(&c->gate);
  loom_future_set(c->fut, NULL);
  loom_future_release(c->fut);
}
static int thread_future_setup(cx_t *c) {
  gate_setup(c);
  int rc = loom_future_new(&c->fut);
  if (rc) return rc;
  loom_future_retain(c->fut);
  if ((rc = uv_thread_create(&c->th, resolve_later, c))) {
    loom_future_release(c->fut);
    return rc;
  }
  c->th_on = 1;
  return 0;
}
static long call_await(cx_t *c) { return loom_future_await(c->fut, NULL); }
static int future_cleanup(cx_t *c, long rc) {
  (void)rc;
  if (c->th_on) {
    if (!c->gate_open) uv_sem_post(&c->gate);
    uv_thread_join(&c->th); /* it only waits for the gate and resolves */
    uv_sem_destroy(&c->gate);
  }
  if (c->timer) {
    /* The timer may still be due: stopped, freed by its close callback. */
    uv_timer_stop(c->timer);
    uv_close((uv_handle_t *)c->timer, (uv_close_cb)free);
  }
  if (c->fut) loom_future_release(c->fut);
  return 0;
}
static void on_timer_set(uv_timer_t *h) { loom_future_set(h->data, NULL); }
static int timer_future_setup(cx_t *c) {
  int rc = loom_future_new(&c->fut);
  if (rc) return rc;
  if (!(c->timer = malloc(sizeof(*c->timer)))) return UV_ENOMEM;
  uv_timer_init(loom_loop(loom_runtime()), c->timer);
  c->timer->data = c->fut;
  return uv_timer_start(c->timer, on_timer_set, SLOW_MS, 0);
}
/* loom_to_thread's job, held as resolve_later is. Its gate is not in C: an
 * interrupted call may leave the job to finish after the run (or drop it
 * before it starts), so it waits on objects that outlive the run, for the
 * number of its run to be let through. */
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t held_cv = PTHREAD_COND_INITIALIZER;
static uintptr_t held_runs, held_let;
static void held_release(uintptr_t run) {
  pthread_mutex_lock(&held_mu);
  held_let = run;
  pthread_cond_broadcast(&held_cv);
  pthread_mutex_unlock(&held_mu);
}
static int held_job(void *p) {
  pthread_mutex_lock(&held_mu);
  while (held_let < (uintptr_t)p) pthread_cond_wait(&held_cv, &held_mu);
  pthread_mutex_unlock(&held_mu);
  return 5;
}
static int to_thread_setup(cx_t *c) {
  c->n = ++held_runs;
  if (c->mode == PLAIN) held_release(c->n);
  return 0;
}
static long call_to_thread(cx_t *c) {
  long rc = loom_to_thread(held_job, (void *)(uintptr_t)c->n, &c->status);
  return rc ? rc : c->status == 5 ? 0 : 1000;
}
static int to_thread_cleanup(cx_t *c, long rc) {
  (void)rc;
  held_release(c->n);
  return 0;
}
static int gated_job(void *p) {
  uv_sem_wait(&((cx_t *)p)->gate);
  return 0;
}
static int quick_job(void *p) {
  (void)p;
  return 3;
}
/* A 1-thread executor whose thread is held: the next job queues. */
static int queued_setup(cx_t *c) {
  uv_sem_init(&c->gate, 0);
  int rc = loom_executor_new(&c->ex, 1);
  if (rc) return rc;
  if ((rc = loom_executor_submit(c->ex, gated_job, c, &c->busy))) return rc;
  if (c->mode == PLAIN) { /* let both through */
    uv_sem_post(&c->gate);
    c->gate_open = 1;
  }
  return 0;
}
static long call_executor_run(cx_t *c) {
  long rc = loom_executor_run(c->ex, quick_job, NULL, &c->status);
  return rc ? rc : c->status == 3 ? 0 : 1000;
}
static int queued_cleanup(cx_t *c, long rc) {
  (void)rc;
  if (c->ex && !c->gate_open) uv_sem_post(&c->gate);
  if (c->busy) {
    loom_future_await(c->busy, NULL); /* (shielded) */
    loom_future_release(c->busy);
  }
  if (c->ex) loom_executor_free(c->ex);
  uv_sem_destroy(&c->gate); /* every post was consumed by its job */
  return 0;
}
/* A job on the default executor, held as resolve_later is. */
static int submit_setup(cx_t *c) {
  gate_setup(c);
  return loom_executor_submit(NULL, gated_job, c, &c->fut);
}
static int submit_cleanup(cx_t *c, long rc) {
  if (!c->gate_open) uv_sem_post(&c->gate);
  if (c->fut) loom_future_await(c->fut, NULL); /* (shielded) the job has ended */
  uv_sem_destroy(&c->gate);
  return future_cleanup(c, rc);
}
/* A task spawned through a remote reference to this runtime, held as
 * resolve_later is, until the cleanup resolves its gate (a future: the task
 * runs on the loop that is to interrupt the call). A task that only slept
 * a while would end after the interruption only if the loop ran that
 * first, which passes cut short on a loaded machine need not do. */
static int remote_held(void *gate) { return loom_future_await(gate, NULL); }
static int remote_setup(cx_t *c) {
  int rc = loom_future_new(&c->busy);
  if (rc) return rc;
  if (c->mode == PLAIN) {
    loom_future_set(c->busy, NULL);
    c->gate_open = 1;
  }
  loom_remote_t *r;
  if ((rc = loom_remote_open(NULL, &r))) return rc;
  rc = loom_remote_spawn(r, remote_held, c->busy, &c->fut);
  loom_remote_close(r);
  return rc;
}
/* The task is let through and has ended, with its gate's status (0), by
 * the time the run ends. */
static int remote_cleanup(cx_t *c, long rc) {
  int bad = 0;
  if (c->busy) {
    if (!c->gate_open) loom_future_set(c->busy, NULL);
    if (c->fut) bad = loom_future_await(c->fut, NULL) != 0; /* (shielded) */
    loom_future_release(c->busy);
  }
  return future_cleanup(c, rc) || bad;
}

/* ---- channels, signals, fd waits ---- */

static int peer_put(cx_t *c) { return loom_channel_put(c->ch, (void *)(uintptr_t)1); }
static int peer_get(cx_t *c) {
  void *v;
  return loom_channel_get(c->ch, &v);
}
static int get_setup(cx_t *c) {
  int rc = loom_channel_new(&c->ch, 1);
  return rc ? rc : start_peer(c, peer_put);
}
static long call_channel_get(cx_t *c) {
  long rc = loom_channel_get(c->ch, &c->v);
  return rc ? rc : (uintptr_t)c->v == 1 ? 0 : 1000;
}
static int put_setup(cx_t *c) {
  int rc = loom_channel_new(&c->ch, 1);
  if (!rc) rc = loom_channel_try_put(c->ch, (void *)(uintptr_t)2); /* full */
  return rc ? rc : start_peer(c, peer_get);
}
static long call_channel_put(cx_t *c) {
  return loom_channel_put(c->ch, (void *)(uintptr_t)3);
}
static int channel_cleanup(cx_t *c, long rc) {
  (void)rc;
  stop_peer(c);
  if (c->ch) loom_channel_release(c->ch);
  return 0;
}

static int peer_raise(cx_t *c) {
  (void)c;
  return raise(SIGUSR1);
}
static int signal_setup(cx_t *c) {
  int rc = loom_signal_open(&c->sig, SIGUSR1);
  return rc ? rc : start_peer(c, peer_raise);
}
static long call_signal_wait(cx_t *c) {
  long rc = loom_signal_wait(c->sig);
  return rc == SIGUSR1 ? 0 : rc < 0 ? rc : 1000;
}
/* The peer is stopped before the watcher closes: no SIGUSR1 after it. */
static int signal_cleanup(cx_t *c, long rc) {
  (void)rc;
  stop_peer(c);
  return c->sig ? loom_signal_close(c->sig) : 0;
}

static int peer_write(cx_t *c) { return (int)write(c->sv[1], "x", 1); }
static int fd_setup(cx_t *c) {
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->sv)) return UV_EMFILE;
  int rc = loom_fd_open(&c->fdw, c->sv[0]);
  return rc ? rc : start_peer(c, peer_write);
}
static long call_fd_wait(cx_t *c) {
  long rc = loom_fd_wait(c->fdw, LOOM_FD_READABLE);
  return rc == LOOM_FD_READABLE ? 0 : rc < 0 ? rc : 1000;
}
static int fd_cleanup(cx_t *c, long rc) {
  (void)rc;
  stop_peer(c);
  if (c->fdw) loom_fd_close(c->fdw);
  if (c->sv[0] > 0) close(c->sv[0]);
  if (c->sv[1] > 0) close(c->sv[1]);
  return 0;
}

/* ---- HTTP ---- */

#ifdef LOOM_TEST_CURL
/* loom's own server: answers after PEER_PAUSE. */
static int http_handler(loom_stream_t *s, void *arg) {
  (void)arg;
  char req[2048];
  ssize_t n = loom_read_until(s, "\r\n\r\n", 4, req, sizeof(req));
  if (n > 0 && loom_sleep(PEER_PAUSE) == 0) {
    static const char A[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\ndone\n";
    loom_write(s, A, sizeof(A) - 1);
  }
  loom_close(s);
  return 0;
}
static size_t http_count(char *d, size_t size, size_t n, void *ud) {
  (void)d;
  *(size_t *)ud += size * n;
  return size * n;
}
static int http_setup(cx_t *c) {
  int rc = loom_serve(&c->srv, "127.0.0.1", 0, http_handler, NULL, NULL);
  if (rc) return rc;
  if (!(c->easy = curl_easy_init())) return UV_ENOMEM;
  snprintf(c->buf, sizeof(c->buf), "http://127.0.0.1:%d/", loom_server_port(c->srv));
  curl_easy_setopt(c->easy, CURLOPT_URL, c->buf);
  curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, http_count);
  curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, &c->n);
  return 0;
}
static long call_http_perform(cx_t *c) {
  long rc = loom_http_perform(c->easy, NULL);
  return rc ? rc : c->n == 5 ? 0 : 1000;
}
static int http_cleanup(cx_t *c, long rc) {
  (void)rc;
  if (c->easy) curl_easy_cleanup(c->easy);
  return c->srv ? loom_server_close(c->srv, 0) : 0;
}
#endif

/* ---- TLS ---- */

#ifdef LOOM_WITH_TLS
/* A TLS stream's suspension points: each side's handshake (the client
 * waiting for the server's flight, the server for the client's hello),
 * and on an established session a read, a write waiting at the
 * high-water mark, a drain and a shutdown behind queued records (close
 * does not suspend: its bounded wait for close_notify is the stream's
 * own). Every later park of a handshake is reached by the byte-by-byte
 * sweep below the table. */
static tls_keys_t K;

static int peer_hs_server(cx_t *c) { return loom_tls_start(c->peer, K.server, 1, NULL); }
static int peer_hs_client(cx_t *c) {
  return loom_tls_start(c->s, K.client, 0, "localhost");
}
static int hs_client_setup(cx_t *c) {
  int rc = tcp_pair(c);
  return rc ? rc : start_peer(c, peer_hs_server);
}
static long call_hs_client(cx_t *c) {
  return loom_tls_start(c->s, K.client, 0, "localhost");
}
static int hs_server_setup(cx_t *c) {
  int rc = tcp_pair(c);
  return rc ? rc : start_peer(c, peer_hs_client);
}
static long call_hs_server(cx_t *c) { return loom_tls_start(c->peer, K.server, 1, NULL); }
static int tls_cleanup(cx_t *c, long rc) {
  (void)rc;
  stop_peer(c);
  tcp_pair_close(c);
  return 0;
}

static int hs_server_task(void *arg) {
  cx_t *c = arg;
  return loom_tls_start(c->peer, K.server, 1, NULL);
}
/* A TLS session: c->s the client, c->peer the server's end. */
static int tls_pair(cx_t *c) {
  int rc = tcp_pair(c);
  if (rc) return rc;
  small_buffers(c->s);
  small_buffers(c->peer);
  loom_task_t *t;
  if ((rc = loom_spawn(&t, hs_server_task, c))) return rc;
  rc = loom_tls_start(c->s, K.client, 0, "localhost");
  if (rc) loom_cancel(t);
  int st = 0;
  loom_join(t, &st);
  return rc ? rc : st;
}
static int peer_tls_write(cx_t *c) { return loom_write(c->peer, "tls\n", 4); }
static int peer_tls_read_all(cx_t *c) { return (int)read_to_eof(c->peer); }
static int tls_read_setup(cx_t *c) {
  int rc = tls_pair(c);
  return rc ? rc : start_peer(c, peer_tls_write);
}
static long call_tls_read(cx_t *c) {
  long n = loom_read(c->s, c->buf, sizeof(c->buf));
  return n < 0 ? n : n == 4 ? 0 : 1000;
}
/* Half of BIG queued (small socket buffers, a peer that reads only after
 * its pause): what comes next waits. */
static int tls_queued_setup(cx_t *c) {
  int rc = tls_pair(c);
  if (!rc) rc = loom_write(c->s, bigbuf, BIG / 2);
  return rc ? rc : start_peer(c, peer_tls_read_all);
}
static long call_tls_write(cx_t *c) { return loom_write(c->s, bigbuf, BIG / 2); }
static long call_tls_drain(cx_t *c) { return loom_drain(c->s); }
static long call_tls_shutdown(cx_t *c) { return loom_shutdown_write(c->s); }
#endif

static const cpoint_t points[] = {
    /* files */
    {"file-open", CP_POOL, NULL, call_open, open_cleanup},
    {"file-read", CP_POOL, file_setup_r, call_read, file_close_len},
    {"file-pread", CP_POOL, file_setup_r, call_pread, file_close_len},
    {"file-write", CP_POOL, file_setup_w, call_write, file_close_len},
    {"file-fsync", CP_POOL, file_setup_w, call_fsync, file_close},
    {"fs-stat", CP_POOL, NULL, call_stat, stat_cleanup},
    {"fs-scandir", CP_POOL, NULL, call_scandir, scandir_cleanup},
    {"fs-read-file", CP_POOL, NULL, call_read_file, read_file_cleanup},
    {"fs-write-file", CP_POOL, NULL, call_write_file, write_file_cleanup},
    {"file-stream-read-line", CP_POOL, stream_setup, call_read_line, stream_cleanup},
    {"file-sendfile", CP_POOL, sendfile_setup, call_sendfile, sendfile_cleanup},
    /* child processes */
    {"process-spawn", CP_CHECKPOINT, NULL, call_spawn, spawn_cleanup},
    {"process-wait", 0, wait_setup, call_wait, proc_cleanup},
    {"process-communicate", 0, comm_setup, call_communicate, proc_cleanup},
    {"process-pipe-read", 0, pread_setup, call_pipe_read, pipe_read_cleanup},
    {"process-pipe-write", 0, pwrite_setup, call_pipe_write, proc_cleanup},
    /* thread offload and futures */
    {"future-from-thread", 0, thread_future_setup, call_await, future_cleanup},
    {"future-from-timer", 0, timer_future_setup, call_await, future_cleanup},
    {"to-thread", 0, to_thread_setup, call_to_thread, to_thread_cleanup},
    {"executor-queued", 0, queued_setup, call_executor_run, queued_cleanup},
    {"executor-submit", 0, submit_setup, call_await, submit_cleanup},
    {"remote-spawn", 0, remote_setup, call_await, remote_cleanup},
    /* channels, signals, foreign descriptors */
    {"channel-get", 0, get_setup, call_channel_get, channel_cleanup},
    {"channel-put", 0, put_setup, call_channel_put, channel_cleanup},
    {"signal-wait", 0, signal_setup, call_signal_wait, signal_cleanup},
    {"fd-wait", 0, fd_setup, call_fd_wait, fd_cleanup},
#ifdef LOOM_TEST_CURL
    /* HTTP */
    {"http-perform", 0, http_setup, call_http_perform, http_cleanup},
#endif
#ifdef LOOM_WITH_TLS
    /* TLS */
    {"tls-handshake-client", 0, hs_client_setup, call_hs_client, tls_cleanup},
    {"tls-handshake-server", 0, hs_server_setup, call_hs_server, tls_cleanup},
    {"tls-read", 0, tls_read_setup, call_tls_read, tls_cleanup},
    {"tls-write", 0, tls_queued_setup, call_tls_write, tls_cleanup},
    {"tls-drain", 0, tls_queued_setup, call_tls_drain, tls_cleanup},
    {"tls-shutdown", 0, tls_queued_setup, call_tls_shutdown, tls_cleanup},
#endif
};
#define NPOINTS (sizeof(points) / sizeof(points[0]))

static int cpoint_main(void *arg) {
  const cpoint_t *pt = arg;
  int rc = pt->setup ? pt->setup(&C) : 0;
  loom_scope_t sc, sh;
  if (rc == 0) {
    int hold = C.mode == TIMEOUT && (pt->flags & CP_POOL);
    if (hold) pool_hold();
    if (pt->flags & CP_CHECKPOINT) {
      if (C.mode == CANCEL) loom_cancel(loom_current());
      if (C.mode == TIMEOUT) {
        loom_timeout_enter(&sc, 0);
        loom_yield(); /* the scope expires */
      }
    } else if (C.mode == CANCEL) {
      loom_spawn(NULL, cancel_it, loom_current());
    } else if (C.mode == TIMEOUT) {
      loom_timeout_enter(&sc, 1);
    }
    CR.rc = pt->call(&C);
    if (C.mode == TIMEOUT) loom_scope_exit(&sc);
    /* What was interrupted is checked and closed whatever happened. */
    loom_shield_enter(&sh);
    if (hold) pool_release();
  } else {
    CR.setup_rc = rc;
    loom_shield_enter(&sh);
  }
  CR.cleanup_rc = pt->cleanup ? pt->cleanup(&C, CR.rc) : 0;
  loom_scope_exit(&sh);
  return 0;
}

/* A run that takes longer has hung: generous, since the first run of a
 * process (libuv's pool and signal pipe) is slow under Valgrind on a busy
 * machine. */
static uint64_t cap_bound_ms(void) { return RUNNING_ON_VALGRIND ? 30000 : 10000; }

/* Runs one entry one way; returns 0 if all is as it must be. */
static int run_cpoint(const cpoint_t *pt, int mode) {
  memset(&C, 0, sizeof(C));
  memset(&CR, 0, sizeof(CR));
  C.mode = mode;
  C.sv[0] = C.sv[1] = -1;
  int fds = open_fd_count();
  uint64_t t0 = wall_ms();
  int rc = loom_run(cpoint_main, (void *)pt);
  uint64_t ms = wall_ms() - t0;
  int want = mode == CANCEL ? UV_ECANCELED : mode == TIMEOUT ? UV_ETIMEDOUT : 0;
  int ok = rc == 0 && CR.setup_rc == 0 && CR.cleanup_rc == 0 &&
           (mode == PLAIN ? CR.rc == 0 || (CR.rc > 0 && CR.rc < 1000) : CR.rc == want) &&
           ms < cap_bound_ms() && (mode == PLAIN || open_fd_count() == fds);
  static const char *const mname[] = {"cancelled", "timed out", "plain"};
  if (!ok || getenv("LOOM_SWEEP_TIMES"))
    fprintf(stderr,
            "%s: %s %s: loom_run %s, setup %s, call %ld (%s), cleanup %s, fds %d -> %d, "
            "%d ms\n",
            ok ? "sweep" : "FAILED", pt->name, mname[mode], loom_err_name(rc),
            loom_err_name(CR.setup_rc), CR.rc, CR.rc < 0 ? loom_err_name((int)CR.rc) : "",
            CR.cleanup_rc ? "WRONG" : "ok", fds, open_fd_count(), (int)ms);
  return !ok;
}

static void test_capability_sweep(void **state) {
  (void)state;
  snprintf(cdir, sizeof(cdir), "/tmp/loom-sweep-XXXXXX");
  assert_non_null(mkdtemp(cdir));
  snprintf(cdata, sizeof(cdata), "%s/data", cdir);
  snprintf(cout, sizeof(cout), "%s/out", cdir);
  snprintf(cout2, sizeof(cout2), "%s/out2", cdir);
  FILE *fp = fopen(cdata, "w");
  assert_non_null(fp);
  fputs(CDATA, fp);
  fclose(fp);
  uv_sem_init(&pool_sem, 0);
#ifdef LOOM_WITH_TLS
  assert_int_equal(tls_keys_make(&K), 0);
#endif
  int bad = 0;
  /* Plain first: it also opens what libuv keeps for the process (the
   * signal pipe), before the descriptor counts. */
  for (size_t i = 0; i < NPOINTS; i++) bad += run_cpoint(&points[i], PLAIN);
  for (int mode = CANCEL; mode <= TIMEOUT; mode++)
    for (size_t i = 0; i < NPOINTS; i++) bad += run_cpoint(&points[i], mode);
  uv_sem_destroy(&pool_sem);
#ifdef LOOM_WITH_TLS
  tls_keys_free(&K);
#endif
  remove_tree(cdir);
  assert_int_equal(bad, 0);
}

/* ---- the TLS handshake sweep ---------------------------------------------------- */

#ifdef LOOM_WITH_TLS
/* A handshake parks once for each flight it waits for, and again for each
 * piece of one: a proxy between a client and a server (tls-byte-exchange.h)
 * forwards one byte per write (each drained: its own segment), so each
 * side sees its peer's flights a byte at a time and parks once per byte.
 * After `cancel_after` bytes towards the side swept, the proxy interrupts
 * that side's handshake: it cancels the task, or it brings the timeout
 * scope the handshake runs in (no deadline until then) to 1 ms from now
 * and forwards nothing more that way for PEER_PAUSE, so that the scope
 * fires while the handshake waits for the next byte. So the client is
 * interrupted at every park of its handshake, and the server at every park
 * of its own (the client's hello, then its Finished). Each run must end
 * with UV_ECANCELED / UV_ETIMEDOUT from the side swept (or 0: its
 * handshake had finished), the other side must end too, and nothing may
 * leak. */
typedef struct {
  tls_byte_exchange_t x; /* the exchange (x.arg and x.px.arg: this) */
  int mode;              /* CANCEL or TIMEOUT */
  loom_task_t *victim;   /* interrupted after cancel_after bytes to it */
  loom_scope_t *v_scope; /* its handshake's scope, while open */
  int victim_is_client;  /* which direction counts */
  size_t cancel_after;   /* SIZE_MAX: never */
} hs_run_t;

/* The proxy's on_byte: the interruption, after cancel_after bytes towards
 * the victim. */
static void interrupt_at(byte_proxy_t *bp, int towards_client, size_t n) {
  hs_run_t *r = bp->arg;
  if (r->victim && towards_client == r->victim_is_client && n == r->cancel_after) {
    if (r->mode == CANCEL) {
      loom_cancel(r->victim);
    } else if (r->v_scope) {
      loom_scope_reschedule(r->v_scope, 1);
      loom_sleep(PEER_PAUSE);
    }
  }
}

/* Each side's handshake, in a scope the proxy may bring forward; the task
 * that runs the victim's (the client's task, the server's handler) is the
 * victim, before any byte reaches it. */
static int timed_handshake(tls_byte_exchange_t *x, int is_client, loom_stream_t **s,
                           int port) {
  hs_run_t *r = x->arg;
  if (r->victim_is_client == is_client) r->victim = loom_current();
  loom_scope_t sc;
  loom_timeout_enter(&sc, LOOM_NO_DEADLINE);
  if (r->victim_is_client == is_client) r->v_scope = &sc;
  int rc = tls_byte_handshake(x, is_client, s, port);
  r->v_scope = NULL;
  int xr = loom_scope_exit(&sc);
  return rc ? rc : xr;
}

static int bytes_main(void *arg) {
  hs_run_t *r = arg;
  r->x = (tls_byte_exchange_t){
      .sctx = K.server, .cctx = K.client, .handshake = timed_handshake, .arg = r};
  r->x.px = (byte_proxy_t){.on_byte = interrupt_at, .arg = r};
  if (tls_byte_exchange(&r->x)) r->x.rc_client = -100;
  return 0;
}

static void test_tls_handshake_sweep(void **state) {
  (void)state;
  assert_int_equal(tls_keys_make(&K), 0);
  hs_run_t whole = {.cancel_after = SIZE_MAX, .victim_is_client = 1};
  assert_loom_ok(loom_run(bytes_main, &whole));
  assert_loom_ok(whole.x.rc_client);
  assert_int_equal(whole.x.rc_line, 5);
  assert_int_equal(whole.x.handled, 1);
  /* Every byte would take a minute (a byte-by-byte handshake per point): a
   * stride that still stops each flight many times over, at points that
   * fall differently within each record (61 under Valgrind).
   * LOOM_TLS_SWEEP_STRIDE=1: all. */
  const char *env = getenv("LOOM_TLS_SWEEP_STRIDE");
  size_t stride = env ? strtoul(env, NULL, 10) : RUNNING_ON_VALGRIND ? 61 : 13;
  if (stride == 0) stride = 1;
  int runs = 0, hit = 0;
  for (int mode = CANCEL; mode <= TIMEOUT; mode++)
    for (int side = 1; side >= 0; side--) {
      size_t total = side ? whole.x.px.to_client : whole.x.px.to_server;
      for (size_t n = 1; n <= total; n += stride) {
        hs_run_t r = {.cancel_after = n, .victim_is_client = side, .mode = mode};
        uint64_t t0 = wall_ms();
        assert_loom_ok(loom_run(bytes_main, &r));
        runs++;
        int want = mode == CANCEL ? UV_ECANCELED : UV_ETIMEDOUT;
        int got = side ? r.x.rc_client : r.x.rc_server;
        const char *who = side ? "client" : "server";
        if (got != want && got != 0)
          fail_msg("%s %s after %zu bytes: %s", who,
                   mode == CANCEL ? "cancelled" : "timed out", n, loom_strerror(got));
        hit += got == want;
        if (getenv("LOOM_SWEEP_TIMES"))
          fprintf(stderr, "tls handshake: %s %s after %zu bytes: %s, %d ms\n", who,
                  mode == CANCEL ? "cancelled" : "timed out", n, loom_err_name(got),
                  (int)(wall_ms() - t0));
        if (!side && got == want && r.x.rc_line > 0)
          fail_msg("server interrupted after %zu bytes, yet the line came back", n);
        assert_true(wall_ms() - t0 < bound_ms());
      }
    }
  print_message("%d handshakes interrupted, %d of them mid-handshake (%zu bytes to the "
                "client, %zu to the server)\n",
                runs, hit, whole.x.px.to_client, whole.x.px.to_server);
  tls_keys_free(&K);
}
#endif

int main(void) {
#ifdef LOOM_TEST_CURL
  curl_global_init(CURL_GLOBAL_DEFAULT);
#endif
  bigbuf = calloc(1, BIG);
  wbuf = malloc(HDR + BIG_LEN);
  rbuf = malloc(HDR + BIG_LEN + 1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_baseline),
      cmocka_unit_test(test_client_sweep),
      cmocka_unit_test(test_server_sweep),
      cmocka_unit_test(test_stream_baseline),
      cmocka_unit_test(test_stream_writer_sweep),
      cmocka_unit_test(test_stream_reader_sweep),
      cmocka_unit_test(test_capability_sweep),
#ifdef LOOM_WITH_TLS
      cmocka_unit_test(test_tls_handshake_sweep),
#endif
  };
  int rc = HARNESS_RUN(tests);
  free(rbuf);
  free(wbuf);
  free(bigbuf);
#ifdef LOOM_TEST_CURL
  curl_global_cleanup();
#endif
  return rc;
}
