/* Regressions for the I/O seam (issue: reliability): requests interrupted
 * while libuv holds them, UDP and streams closed under a waiting task, two
 * writers on one stream, handles used after close, bounded shutdown,
 * hostile sizes and paths, server close from the wrong place, and a
 * cancellation and timeout sweep over every suspension point of a client
 * and a server.
 *
 * Tasks record what they see in `r`; the asserts run on the main stack
 * after loom_run has returned (tests/helpers.h). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"
#include "on-valgrind.h"

typedef struct {
  long rc[32];
  int n;
} rec_t;
static rec_t r;

/* ---- 1. a request interrupted while libuv holds it ------------------------------- */

/* Four blocking jobs fill libuv's thread pool, so the lookup stays queued
 * until the timeout interrupts it; libuv then cancels it and runs its
 * callback before the task resumes. */
static void busy_work(uv_work_t *w) {
  (void)w;
  usleep(150 * 1000);
}
static void busy_done(uv_work_t *w, int status) {
  (void)status;
  free(w);
}
static void fill_pool(void) {
  for (int i = 0; i < 4; i++) {
    uv_work_t *w = malloc(sizeof(*w));
    uv_queue_work(loom_loop(loom_runtime()), w, busy_work, busy_done);
  }
}

static int gai_timeout_main(void *arg) {
  (void)arg;
  fill_pool();
  loom_scope_t s;
  struct addrinfo *res = (struct addrinfo *)1;
  loom_timeout_enter(&s, 10);
  r.rc[0] = loom_getaddrinfo("localhost", "80", NULL, &res);
  loom_scope_exit(&s);
  r.rc[1] = res == NULL;
  char host[64];
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 80, &a);
  loom_timeout_enter(&s, 10);
  r.rc[2] = loom_getnameinfo((struct sockaddr *)&a, 0, host, sizeof(host), NULL, 0);
  loom_scope_exit(&s);
  /* A later allocation must not be mistaken for the old request. */
  void *p = malloc(200);
  r.rc[3] = loom_getaddrinfo("localhost", "80", NULL, &res);
  r.rc[4] = res != NULL;
  if (res) uv_freeaddrinfo(res);
  free(p);
  return 0;
}

static void test_interrupted_request(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(gai_timeout_main, NULL));
  assert_loom_err(r.rc[0], UV_ETIMEDOUT);
  assert_int_equal(r.rc[1], 1);
  assert_loom_err(r.rc[2], UV_ETIMEDOUT);
  assert_loom_ok(r.rc[3]);
  assert_int_equal(r.rc[4], 1);
}

/* ---- helpers ---------------------------------------------------------------------- */

static loom_server_t *srv;
static int srv_port;

/* Connects to 127.0.0.1:port. */
static int connect_to(loom_stream_t **c, int port) {
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", port, &a);
  return loom_tcp_connect_addr(c, (struct sockaddr *)&a);
}

/* ---- 2. UDP closed while a task waits in recv --------------------------------------- */

static loom_udp_t *udp;
static void close_udp_from_loop(uv_timer_t *t) {
  r.rc[1] = loom_udp_close(udp); /* host code, outside the scheduler's pass */
  uv_close((uv_handle_t *)t, NULL);
}
static int udp_receiver(void *arg) {
  (void)arg;
  char buf[16];
  return (int)loom_udp_recv(udp, buf, sizeof(buf), NULL);
}
static int udp_close_main(void *arg) {
  (void)arg;
  r.rc[0] = loom_udp_bind(&udp, "127.0.0.1", 0);
  loom_task_t *t;
  loom_spawn(&t, udp_receiver, NULL);
  loom_yield();         /* the receiver parks */
  static uv_timer_t tm; /* outlives main's frame until closed */
  uv_timer_init(loom_loop(loom_runtime()), &tm);
  uv_timer_start(&tm, close_udp_from_loop, 5, 0);
  int st = 0;
  r.rc[2] = loom_join(t, &st);
  r.rc[3] = st;
  r.rc[4] = loom_udp_close(udp); /* closed already */
  char b[4];
  r.rc[5] = loom_udp_recv(udp, b, sizeof(b), NULL);
  return 0;
}
static void test_udp_close_under_receiver(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(udp_close_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_loom_ok(r.rc[2]);
  assert_loom_err(r.rc[3], UV_EBADF);
  assert_loom_err(r.rc[4], UV_EBADF);
  assert_loom_err(r.rc[5], UV_EBADF);
}

/* ---- 3. two writers on one stream ----------------------------------------------------- */

#define WRITES 1500
#define CHUNK 1024
static loom_stream_t *wside, *rside;
static size_t max_queued;
static int writer(void *arg) {
  char buf[CHUNK];
  memset(buf, (int)(intptr_t)arg, sizeof(buf));
  for (int i = 0; i < WRITES; i++) {
    int rc = loom_write(wside, buf, sizeof(buf));
    if (rc) return rc;
    size_t q = loom_stream_queued(wside);
    if (q > max_queued) max_queued = q;
  }
  return 0;
}
static int slow_reader(void *arg) {
  (void)arg;
  loom_sleep(30); /* let both writers block on backpressure first */
  char buf[65536];
  ssize_t n;
  long total = 0;
  while ((n = loom_read(rside, buf, sizeof(buf))) > 0) total += n;
  r.rc[3] = total;
  return n < 0 ? (int)n : 0;
}
static int accept_one(void *arg) {
  loom_listener_t *l = arg;
  return loom_accept(l, &rside);
}
static int two_writers_main(void *arg) {
  (void)arg;
  loom_listener_t *l;
  r.rc[0] = loom_tcp_listen(&l, "127.0.0.1", 0, 0);
  loom_task_t *acc;
  loom_spawn(&acc, accept_one, l);
  r.rc[1] = connect_to(&wside, loom_listener_port(l));
  loom_join(acc, NULL);
  loom_listener_close(l);
  /* Small kernel buffers, so the writers meet backpressure early. */
  int small = 16384;
  uv_send_buffer_size((uv_handle_t *)loom_stream_handle(wside), &small);
  uv_recv_buffer_size((uv_handle_t *)loom_stream_handle(rside), &small);
  loom_task_t *w[2], *rd;
  loom_spawn(&rd, slow_reader, NULL);
  loom_spawn(&w[0], writer, (void *)'a');
  loom_spawn(&w[1], writer, (void *)'b');
  int st[2];
  loom_join(w[0], &st[0]);
  loom_join(w[1], &st[1]);
  r.rc[4] = st[0];
  r.rc[5] = st[1];
  loom_close(wside);
  loom_join(rd, NULL);
  loom_close(rside);
  return 0;
}
static void test_two_writers(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  max_queued = 0;
  assert_loom_ok(loom_run(two_writers_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_loom_ok(r.rc[4]); /* no writer failed... */
  assert_loom_ok(r.rc[5]);
  assert_int_equal(r.rc[3], 2L * WRITES * CHUNK); /* ...and all arrived */
  /* Bounded by the high-water mark plus one write. */
  assert_true(max_queued <= 64 * 1024 + CHUNK);
}

/* ---- 5. shutdown is bounded ------------------------------------------------------------- */

static int quiet_handler(loom_stream_t *s, void *arg) {
  (void)arg;
  char b[16];
  return (int)loom_read(s, b, sizeof(b)); /* waits for ever */
}

/* Main returns with a server, a listener and a read-from stream open. */
static int left_open_main(void *arg) {
  (void)arg;
  loom_server_t *sv;
  if (loom_serve(&sv, "127.0.0.1", 0, quiet_handler, NULL, NULL)) return 1;
  loom_listener_t *l;
  if (loom_tcp_listen(&l, "127.0.0.1", 0, 0)) return 2;
  loom_stream_t *c;
  if (connect_to(&c, loom_server_port(sv))) return 3;
  loom_scope_t s;
  loom_timeout_enter(&s, 20);
  char b[4];
  loom_read(c, b, sizeof(b)); /* times out: reading stays on */
  loom_scope_exit(&s);
  return 7;
}

/* A second server on a busy port fails; main returns that error. */
static int busy_port_main(void *arg) {
  (void)arg;
  loom_server_t *a, *b;
  if (loom_serve(&a, "127.0.0.1", 0, quiet_handler, NULL, NULL)) return 1;
  return loom_serve(&b, "127.0.0.1", loom_server_port(a), quiet_handler, NULL, NULL);
}

/* A peer that never reads: the handler's close can never flush. */
static volatile int flooded;
static int flood_handler(loom_stream_t *s, void *arg) {
  (void)arg;
  static char big[256 * 1024];
  int rc;
  while ((rc = loom_write(s, big, sizeof(big))) == 0)
    if (loom_stream_queued(s) > 0) flooded = 1;
  loom_close(s);
  return rc;
}
static int never_reads_main(void *arg) {
  (void)arg;
  loom_server_t *sv;
  if (loom_serve(&sv, "127.0.0.1", 0, flood_handler, NULL, NULL)) return 1;
  /* The peer is a plain socket outside loom: it stays open, never reads. */
  if (plain_connect(loom_server_port(sv), 0) < 0) return 2;
  /* Until the handler has filled every buffer and has data queued. */
  for (int i = 0; i < 2000 && !flooded; i++) loom_sleep(5);
  loom_server_close(sv, 0); /* cancels the handler: its close cannot flush */
  return 0;                 /* fd stays open until the child exits */
}

/* A raw libuv handle left active. */
static void tick(uv_timer_t *t) { (void)t; }
static int raw_handle_main(void *arg) {
  (void)arg;
  static uv_timer_t t; /* the program's memory, left on the loop */
  uv_timer_init(loom_loop(loom_runtime()), &t);
  uv_timer_start(&t, tick, 1, 1);
  return 0;
}

static loom_fn shutdown_scenarios[] = {left_open_main, busy_port_main, never_reads_main,
                                       raw_handle_main};
static int shutdown_want[] = {7, UV_EADDRINUSE, 0, 0};

static void run_shutdown_scenario(void *arg) {
  int i = (int)(intptr_t)arg;
  alarm(RUNNING_ON_VALGRIND ? 60 : 10); /* a hang kills the child */
  int rc = loom_run(shutdown_scenarios[i], NULL);
  _exit(rc == shutdown_want[i] ? 0 : 1);
}

static void test_shutdown_is_bounded(void **state) {
  (void)state;
  static const char *says[] = {"closed, left open by the program, 1 server", NULL,
                               "aborted, with unsent data, 1 stream",
                               "libuv timer handle active"};
  for (int i = 0; i < 4; i++) {
    char out[4096];
    uint64_t t0 = wall_ms();
    int st = run_in_child(run_shutdown_scenario, (void *)(intptr_t)i, out, sizeof(out));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      fprintf(stderr, "scenario %d: %s\n", i, out);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    if (says[i] && !strstr(out, says[i]))
      fprintf(stderr, "scenario %d said: %s\n", i, out);
    if (says[i]) assert_non_null(strstr(out, says[i]));
    if (!RUNNING_ON_VALGRIND) assert_true(wall_ms() - t0 < 5000);
  }
}

/* ---- 6. a regular file is a read-only stream; directories, devices are not ------------------ */

static int open_fd_main(void *arg) {
  (void)arg;
  char path[] = "/tmp/loom-test-XXXXXX";
  int fd = mkstemp(path);
  if (write(fd, "hello\n", 6) != 6) return 1;
  lseek(fd, 0, SEEK_SET);
  unlink(path);
  loom_stream_t *s = NULL;
  r.rc[0] = loom_stream_open_fd(&s, fd); /* stdin redirected from a file */
  char line[16];
  r.rc[1] = loom_read_line(s, line, sizeof(line));
  r.rc[5] = strcmp(line, "hello\n") == 0;
  r.rc[6] = loom_write(s, "x", 1);
  loom_close(s); /* closes fd */
  int dfd = open("/tmp", O_RDONLY | O_DIRECTORY);
  r.rc[2] = loom_stream_open_fd(&s, dfd);
  close(dfd);
  int devnull = open("/dev/null", O_RDONLY);
  r.rc[3] = loom_stream_open_fd(&s, devnull);
  close(devnull);
  r.rc[4] = loom_stream_open_fd(&s, 12345); /* not open */
  return 0;
}
static void test_open_fd_files(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(open_fd_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_int_equal(r.rc[1], 6);
  assert_true(r.rc[5]);
  assert_loom_err(r.rc[6], UV_ENOTSUP);
  assert_loom_err(r.rc[2], UV_EINVAL);
  assert_loom_err(r.rc[3], UV_EINVAL);
  assert_loom_err(r.rc[4], UV_EBADF);
}

/* ---- 9. server close from host code and from its own handler ------------------------------ */

static int echo_once(loom_stream_t *s, void *arg) {
  (void)arg;
  char b[16];
  ssize_t n = loom_read(s, b, sizeof(b));
  if (n > 0) loom_write(s, b, (size_t)n);
  loom_close(s);
  return 0;
}
static void close_from_host(uv_timer_t *t) {
  r.rc[1] = loom_server_close(srv, 0);
  uv_close((uv_handle_t *)t, NULL);
}
static int host_close_main(void *arg) {
  (void)arg;
  r.rc[0] = loom_serve(&srv, "127.0.0.1", 0, echo_once, NULL, NULL);
  static uv_timer_t t; /* outlives main's frame until closed */
  uv_timer_init(loom_loop(loom_runtime()), &t);
  uv_timer_start(&t, close_from_host, 1, 0);
  loom_sleep(20);
  /* The server still works. */
  loom_stream_t *c;
  r.rc[2] = connect_to(&c, loom_server_port(srv));
  loom_write(c, "hi", 2);
  char b[4];
  r.rc[3] = loom_read(c, b, sizeof(b));
  loom_close(c);
  r.rc[4] = loom_server_close(srv, 0);
  r.rc[5] = loom_server_close(srv, 0); /* twice */
  r.rc[6] = loom_server_port(srv);
  return 0;
}

static int closing_handler(loom_stream_t *s, void *arg) {
  (void)arg;
  r.rc[10] = loom_server_close(srv, 1000);
  loom_write(s, "bye", 3);
  loom_close(s);
  return 0;
}
static int handler_close_main(void *arg) {
  (void)arg;
  r.rc[0] = loom_serve(&srv, "127.0.0.1", 0, closing_handler, NULL, NULL);
  loom_stream_t *c;
  r.rc[1] = connect_to(&c, loom_server_port(srv));
  char b[4];
  r.rc[2] = loom_read(c, b, sizeof(b));
  loom_close(c);
  r.rc[3] = connect_to(&c, srv_port); /* nobody listens any more */
  return 0;
}
static void run_handler_close(void *arg) {
  (void)arg;
  alarm(RUNNING_ON_VALGRIND ? 60 : 10);
  _exit(loom_run(handler_close_main, NULL) == 0 && r.rc[10] == 0 && r.rc[2] == 3 ? 0 : 1);
}

static void test_server_close_wrong_place(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(host_close_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_err(r.rc[1], LOOM_ENOTASK);
  assert_loom_ok(r.rc[2]);
  assert_int_equal(r.rc[3], 2);
  assert_loom_ok(r.rc[4]);
  assert_loom_err(r.rc[5], UV_EBADF);
  assert_loom_err(r.rc[6], UV_EBADF);
  char out[2048];
  int st = run_in_child(run_handler_close, NULL, out, sizeof(out));
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- 11. sizes near the limits ------------------------------------------------------------- */

static int sizes_main(void *arg) {
  (void)arg;
  loom_server_opts_t o = {.max_connections = (size_t)UINT32_MAX + 1};
  loom_server_t *sv;
  r.rc[0] = loom_serve(&sv, "127.0.0.1", 0, echo_once, NULL, &o);
  loom_udp_t *u;
  loom_udp_bind(&u, "127.0.0.1", 0);
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", loom_udp_port(u), &a);
  static char small[16];
  /* 4 GiB + 16: without reading beyond `small` it must be refused. */
  r.rc[1] = loom_udp_send(u, small, (size_t)4 << 30 | 16, (struct sockaddr *)&a);
  loom_udp_close(u);
  return 0;
}
static void test_sizes_near_limits(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(sizes_main, NULL));
  assert_loom_err(r.rc[0], UV_EINVAL);
  assert_loom_err(r.rc[1], UV_EMSGSIZE);
  /* A runtime's default stack size whose arithmetic would wrap. */
  uv_loop_t loop;
  uv_loop_init(&loop);
  loom_t *rt = NULL;
  loom_config_t cfg = {.stack_size = SIZE_MAX};
  assert_loom_err(loom_init(&rt, &loop, &cfg), UV_EINVAL);
  assert_null(rt);
  assert_loom_ok(uv_loop_close(&loop));
}

/* ---- 12. NULL and consumed handles ---------------------------------------------------------- */

static int misuse_main(void *arg) {
  (void)arg;
  loom_listener_t *l;
  r.rc[0] = loom_tcp_listen(&l, "127.0.0.1", 0, 0);
  loom_task_t *acc;
  loom_spawn(&acc, accept_one, l);
  loom_stream_t *c;
  r.rc[1] = connect_to(&c, loom_listener_port(l));
  loom_join(acc, NULL);
  r.rc[2] = loom_write(c, NULL, 5); /* NULL data */
  r.rc[3] = loom_write(c, "ok", 2); /* the stream still works */
  char b[8];
  r.rc[4] = loom_read(rside, b, sizeof(b));
  r.rc[5] = loom_close(c);
  r.rc[6] = loom_close(c);         /* twice */
  r.rc[7] = loom_write(c, "x", 1); /* after close */
  r.rc[8] = loom_read(c, b, sizeof(b));
  r.rc[9] = loom_abort(c);
  r.rc[10] = (long)loom_stream_queued(c);
  r.rc[11] = loom_stream_handle(c) == NULL;
  r.rc[12] = loom_listener_close(l);
  r.rc[13] = loom_listener_close(l);
  r.rc[14] = loom_accept(l, &c);
  r.rc[15] = loom_close(NULL);
  r.rc[16] = loom_read(NULL, b, 1);
  r.rc[17] = loom_listener_port((loom_listener_t *)rside); /* wrong kind */
  loom_close(rside);
  r.rc[18] = loom_drain(rside);
  r.rc[19] = loom_shutdown_write(rside);
  return 0;
}
static void test_handles_after_close(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(misuse_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_loom_err(r.rc[2], UV_EINVAL);
  assert_loom_ok(r.rc[3]);
  assert_int_equal(r.rc[4], 2);
  assert_loom_ok(r.rc[5]);
  for (int i = 6; i <= 9; i++) assert_loom_err(r.rc[i], UV_EBADF);
  assert_loom_ok(r.rc[10]);
  assert_int_equal(r.rc[11], 1);
  assert_loom_ok(r.rc[12]);
  assert_loom_err(r.rc[13], UV_EBADF);
  assert_loom_err(r.rc[14], UV_EBADF);
  assert_loom_err(r.rc[15], UV_EINVAL);
  assert_loom_err(r.rc[16], UV_EINVAL);
  assert_loom_err(r.rc[17], UV_EBADF);
  assert_loom_err(r.rc[18], UV_EBADF);
  assert_loom_err(r.rc[19], UV_EBADF);
}

/* ---- 13. Unix socket paths longer than sun_path ------------------------------------------------ */

static int long_path_main(void *arg) {
  (void)arg;
  char path[200];
  memset(path, 'a', sizeof(path) - 1);
  memcpy(path, "/tmp/", 5);
  path[sizeof(path) - 1] = 0;
  loom_stream_t *s;
  loom_listener_t *l;
  r.rc[0] = loom_unix_connect(&s, path);
  r.rc[1] = loom_unix_listen(&l, path, 0);
  return 0;
}
static void test_long_unix_path(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(long_path_main, NULL));
  assert_loom_err(r.rc[0], UV_ENAMETOOLONG);
  assert_loom_err(r.rc[1], UV_ENAMETOOLONG);
}

/* ---- close with data queued wakes a waiting reader and writer --------------------- */

static loom_stream_t *qa, *qc;
static int waiting_reader(void *arg) {
  (void)arg;
  char b[16];
  return (int)loom_read(qa, b, sizeof(b));
}
static int waiting_writer(void *arg) {
  (void)arg;
  return loom_write(qa, "x", 1); /* waits for room that never comes */
}
static int close_queued_main(void *arg) {
  (void)arg;
  loom_listener_t *l;
  loom_tcp_listen(&l, "127.0.0.1", 0, 0);
  loom_task_t *acc;
  loom_spawn(&acc, accept_one, l);
  r.rc[0] = connect_to(&qc, loom_listener_port(l));
  loom_join(acc, NULL);
  loom_listener_close(l);
  qa = rside;
  static char big[4 << 20]; /* the peer (qc) never reads it */
  r.rc[1] = loom_write(qa, big, sizeof(big));
  loom_task_t *rd, *wr;
  loom_spawn(&rd, waiting_reader, NULL);
  loom_spawn(&wr, waiting_writer, NULL);
  loom_yield();   /* both park */
  loom_close(qa); /* cannot flush: qc does not read */
  loom_scope_t s;
  loom_timeout_enter(&s, 2000); /* they must not wait for the flush */
  int st[2] = {0, 0};
  r.rc[2] = loom_join(rd, &st[0]);
  r.rc[3] = loom_join(wr, &st[1]);
  loom_scope_exit(&s);
  r.rc[4] = st[0];
  r.rc[5] = st[1];
  loom_abort(qc);
  return 0;
}
static void test_close_wakes_waiters(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(close_queued_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_loom_ok(r.rc[2]);
  assert_loom_ok(r.rc[3]);
  assert_loom_err(r.rc[4], UV_EBADF);
  assert_loom_err(r.rc[5], UV_EPIPE);
}

/* ---- server close from a task its handler waits for ---------------------------------- */

static int subtask_closer(void *arg) {
  (void)arg;
  r.rc[10] = loom_server_close(srv, 50);
  return 0;
}
static int joining_handler(loom_stream_t *s, void *arg) {
  (void)arg;
  char b[4];
  loom_read(s, b, 1);
  loom_task_t *t;
  loom_spawn(&t, subtask_closer, NULL); /* a "shutdown" command */
  loom_join(t, NULL);
  return 0;
}
static int subtask_close_main(void *arg) {
  (void)arg;
  r.rc[10] = 12345;
  if (loom_serve(&srv, "127.0.0.1", 0, joining_handler, NULL, NULL)) return 1;
  loom_stream_t *c;
  if (connect_to(&c, loom_server_port(srv))) return 2;
  loom_write(c, "x", 1);
  for (int i = 0; i < 600 && r.rc[10] == 12345; i++) loom_sleep(5);
  loom_close(c);
  return r.rc[10] == 12345 ? 3 : 0;
}
static void run_subtask_close(void *arg) {
  (void)arg;
  alarm(RUNNING_ON_VALGRIND ? 60 : 10);
  int rc = loom_run(subtask_close_main, NULL);
  /* The close returns: at once, or cancelled with the handler awaiting it. */
  _exit(rc == 0 && (r.rc[10] == 0 || r.rc[10] == UV_ECANCELED || r.rc[10] == UV_ETIMEDOUT)
            ? 0
            : 1);
}

/* ---- loom_run ends when it gives up on a task that holds a stream -------------------- */

static loom_event_t never;
static int stuck_handler(loom_stream_t *s, void *arg) {
  (void)arg;
  (void)s;
  loom_scope_t sc;
  loom_shield_enter(&sc);
  loom_event_wait(&never); /* nothing will ever set it */
  loom_scope_exit(&sc);
  return 0;
}
static int stuck_main(void *arg) {
  (void)arg;
  loom_event_init(&never);
  loom_server_t *sv;
  if (loom_serve(&sv, "127.0.0.1", 0, stuck_handler, NULL, NULL)) return 1;
  loom_stream_t *c;
  if (connect_to(&c, loom_server_port(sv))) return 2;
  loom_sleep(20);
  loom_close(c);
  return 0; /* the server and its stuck handler are left behind */
}
static void run_stuck(void *arg) {
  (void)arg;
  alarm(RUNNING_ON_VALGRIND ? 60 : 10);
  _exit(loom_run(stuck_main, NULL) == LOOM_EDEADLK ? 0 : 1);
}

static void test_close_from_awaited_task_and_stuck_handler(void **state) {
  (void)state;
  char out[4096];
  int st = run_in_child(run_subtask_close, NULL, out, sizeof(out));
  if (!WIFEXITED(st) || WEXITSTATUS(st)) fprintf(stderr, "subtask close: %s\n", out);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  /* What an abandoned task holds is leaked by design (it may never run
   * again): memcheck would report it in the child. */
  if (RUNNING_ON_VALGRIND) return;
  st = run_in_child(run_stuck, NULL, out, sizeof(out));
  if (!WIFEXITED(st) || WEXITSTATUS(st)) fprintf(stderr, "stuck handler: %s\n", out);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  assert_non_null(strstr(out, "deadlock"));
}

/* ---- loom_serve's wait for its acceptor, interrupted --------------------------------- */

static int cancel_task(void *task) {
  loom_cancel(task);
  return 0;
}
static int serve_interrupted_main(void *arg) {
  (void)arg;
  loom_server_t *sv = (loom_server_t *)1;
  /* Cancelled while it waits for its acceptor to start: the canceller was
   * spawned first, so it runs as soon as loom_serve has suspended. */
  loom_task_t *c;
  loom_spawn(&c, cancel_task, loom_current());
  r.rc[0] = loom_serve(&sv, "127.0.0.1", 0, echo_once, NULL, NULL);
  r.rc[1] = sv == NULL;
  loom_join(c, NULL);
  return 0;
}
static int serve_timed_out(void *arg) {
  (void)arg;
  loom_server_t *sv = (loom_server_t *)1;
  loom_scope_t s;
  loom_timeout_enter(&s, 0); /* expired: fires at the first suspension */
  r.rc[2] = loom_serve(&sv, "127.0.0.1", 0, echo_once, NULL, NULL);
  loom_scope_exit(&s);
  r.rc[3] = sv == NULL;
  /* Nothing was left behind: a new server on a fresh port works. */
  r.rc[4] = loom_serve(&sv, "127.0.0.1", 0, echo_once, NULL, NULL);
  if (r.rc[4] == 0) r.rc[5] = loom_server_close(sv, 0);
  return 0;
}
static void test_serve_interrupted(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(serve_interrupted_main, NULL));
  assert_loom_err(r.rc[0], UV_ECANCELED);
  assert_int_equal(r.rc[1], 1);
  assert_loom_ok(loom_run(serve_timed_out, NULL));
  assert_loom_err(r.rc[2], UV_ETIMEDOUT);
  assert_int_equal(r.rc[3], 1);
  assert_loom_ok(r.rc[4]);
  assert_loom_ok(r.rc[5]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_interrupted_request),
      cmocka_unit_test(test_udp_close_under_receiver),
      cmocka_unit_test(test_two_writers),
      cmocka_unit_test(test_shutdown_is_bounded),
      cmocka_unit_test(test_open_fd_files),
      cmocka_unit_test(test_server_close_wrong_place),
      cmocka_unit_test(test_sizes_near_limits),
      cmocka_unit_test(test_handles_after_close),
      cmocka_unit_test(test_long_unix_path),
      cmocka_unit_test(test_close_wakes_waiters),
      cmocka_unit_test(test_close_from_awaited_task_and_stuck_handler),
      cmocka_unit_test(test_serve_interrupted),
  };
  return HARNESS_RUN(tests);
}
