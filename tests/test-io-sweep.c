/* The I/O cancellation sweep: a client and a server exchange data over
 * TCP (resolve, connect, accept, write under backpressure, drain, read,
 * shutdown, read to EOF, close) and a UDP datagram, and one side is
 * interrupted at each of its suspension points in turn:
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

typedef struct {
  int side, point, mode;    /* what to interrupt, where, how */
  int err_phase[2], err[2]; /* each side's first failing step */
  int done[2];
  loom_scope_t scope;
  loom_listener_t *l;
  int port, udp_port;
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

int main(void) {
  bigbuf = calloc(1, BIG);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_baseline),
      cmocka_unit_test(test_client_sweep),
      cmocka_unit_test(test_server_sweep),
  };
  int rc = HARNESS_RUN(tests);
  free(bigbuf);
  return rc;
}
