/* The I/O cancellation sweeps. In the first, a client and a server
 * exchange data over TCP (resolve, connect, accept, write under
 * backpressure, drain, read, shutdown, read to EOF, close) and a UDP
 * datagram; in the second (the stream sweep, below), a writer sends
 * records through gathered, queued and waiting writes and a reader takes
 * them with large reads. One side is interrupted at each of its
 * suspension points in turn:
 *   - cancelled by a task that runs as soon as the call has suspended
 *     (so libuv holds the request or the wait is armed), and
 *   - timed out by a 1 ms timeout scope around the call (the peer waits
 *     3 ms before each of its steps, so the call is still waiting).
 * Each run must end (bounded), the interrupted call must return
 * UV_ECANCELED / UV_ETIMEDOUT at that very point, the other side must end
 * too, and nothing may leak (ASan and Valgrind runs in CI). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"

#ifdef LOOM_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
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

static int sweep_main(void *arg) {
  (void)arg;
  if (loom_tcp_listen(&X.l, "127.0.0.1", 0, 0)) return 1;
  X.port = loom_listener_port(X.l);
  loom_task_t *t[3];
  loom_spawn(&t[SERVER], server, NULL);
  loom_spawn(&t[CLIENT], client, NULL);
  loom_spawn(&t[2], udp_peer, NULL);
  /* The interrupted side must end by itself, within a bound. */
  int side = X.side < 0 ? CLIENT : X.side;
  loom_scope_t bound;
  loom_timeout_enter(&bound, 5000);
  int rc = loom_join(t[side], NULL);
  loom_scope_exit(&bound);
  /* Its peer may be left waiting for what will never come (a connection,
   * a datagram): it gets a moment, then join cancels it. */
  loom_timeout_enter(&bound, 50);
  loom_join(t[!side], NULL);
  loom_scope_exit(&bound);
  loom_timeout_enter(&bound, 50);
  loom_join(t[2], NULL);
  loom_scope_exit(&bound);
  loom_listener_close(X.l);
  return rc;
}

static int exact;

static void run_one(int side, int point, int mode) {
  memset(&X, 0, sizeof(X));
  X.side = side;
  X.point = point;
  X.mode = mode;
  uint64_t t0 = wall_ms();
  int rc = loom_run(sweep_main, NULL);
  const char *name = side == CLIENT ? cnames[point] : snames[point];
  int want = mode == CANCEL ? UV_ECANCELED : UV_ETIMEDOUT;
  if (X.err_phase[side] != point)
    fprintf(stderr, "note: %s %s at %s: the call ended first; %s at step %d\n",
            side == CLIENT ? "client" : "server",
            mode == CANCEL ? "cancelled" : "timed out", name, loom_err_name(X.err[side]),
            X.err_phase[side]);
  else
    exact++;
  assert_loom_ok(rc);
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
  if (getenv("LOOM_SWEEP_TIMES"))
    fprintf(stderr, "%s %d %d: %d ms\n", side == CLIENT ? "client" : "server", point,
            mode, (int)(wall_ms() - t0));
  assert_true(wall_ms() - t0 < 5000);
}

static void test_baseline(void **state) {
  (void)state;
  memset(&X, 0, sizeof(X));
  X.side = -1;
  assert_loom_ok(loom_run(sweep_main, NULL));
  assert_int_equal(X.done[CLIENT], 1);
  assert_int_equal(X.done[SERVER], 1);
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

static int stream_main(void *arg) {
  (void)arg;
  if (loom_tcp_listen(&X.l, "127.0.0.1", 0, 0)) return 1;
  X.port = loom_listener_port(X.l);
  loom_task_t *t[2];
  loom_spawn(&t[SERVER], reader, NULL);
  loom_spawn(&t[CLIENT], writer, NULL);
  /* The interrupted side must end by itself, within a bound; so must the
   * other (the reader reads to the writer's EOF; the writer of a reader
   * that left hears it), within one too. */
  int side = X.side < 0 ? CLIENT : X.side;
  loom_scope_t bound;
  loom_timeout_enter(&bound, stream_bound_ms());
  int rc = loom_join(t[side], NULL);
  loom_scope_exit(&bound);
  loom_timeout_enter(&bound, stream_bound_ms());
  int prc = loom_join(t[!side], NULL);
  loom_scope_exit(&bound);
  loom_listener_close(X.l);
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
  memset(&X, 0, sizeof(X));
  X.side = side;
  X.point = point;
  X.mode = mode;
  X.err_phase[CLIENT] = X.err_phase[SERVER] = -1; /* (point 0 is a step) */
  uint64_t t0 = wall_ms();
  int rc = loom_run(stream_main, NULL);
  const char *name = side == CLIENT ? wnames[point] : rnames[point];
  int want = mode == CANCEL ? UV_ECANCELED : UV_ETIMEDOUT;
  if (X.err_phase[side] != point || X.err[side] == 0)
    fprintf(stderr, "note: stream %s %s at %s: the call ended first; %s at step %d\n",
            side == CLIENT ? "writer" : "reader",
            mode == CANCEL ? "cancelled" : "timed out", name, loom_err_name(X.err[side]),
            X.err_phase[side]);
  else
    exact++;
  if (side == CLIENT && mode == CANCEL && point == W_YIELD && X.queued_at_close == 0)
    fprintf(stderr, "note: stream writer cancelled at %s: nothing gathered at close\n",
            name);
  assert_loom_ok(rc);
  assert_loom_ok(X.setup);
  if (mode == CANCEL) {
    assert_int_equal(X.err[side], want);
    assert_true(X.err_phase[side] >= point);
  } else {
    /* At the point or not at all, and nothing else failed: the side went
     * on with the stream as it was. */
    assert_true(X.err_phase[side] != point || X.err[side] == want);
    assert_true(X.err_phase[side] == point || X.err[side] == 0);
    assert_true(X.nerr[side] <= 1);
  }
  /* A cancelled reader leaves the writer with nobody to read: only its end
   * is checked. Otherwise the reader got exactly what the writer's calls
   * said they wrote, and the reader's peer never failed. */
  if (!(side == SERVER && mode == CANCEL)) {
    assert_int_equal(X.nerr[!side], 0);
    check_stream_data(side == SERVER);
  }
  if (getenv("LOOM_SWEEP_TIMES"))
    fprintf(stderr, "stream %s %d %d: %d ms\n", side == CLIENT ? "writer" : "reader",
            point, mode, (int)(wall_ms() - t0));
  assert_true(wall_ms() - t0 < stream_bound_ms() + 1000);
}

static void test_stream_baseline(void **state) {
  (void)state;
  memset(&X, 0, sizeof(X));
  X.side = -1;
  assert_loom_ok(loom_run(stream_main, NULL));
  assert_int_equal(X.done[CLIENT], 1);
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

int main(void) {
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
  };
  int rc = HARNESS_RUN(tests);
  free(rbuf);
  free(wbuf);
  free(bigbuf);
  return rc;
}
