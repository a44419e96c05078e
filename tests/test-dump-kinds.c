/* Task dumps of the wait kinds tests/test-dump.c leaves out: DNS, TCP
 * connect, a file call, HTTP, UDP receive, channel send, stream write and
 * drain, loom_wait, as_completed.
 *
 * Each test parks a task in one of them, waits (polling the dump, with a
 * bound) until the dump shows it there, and checks its text and JSON
 * dumps: the state and the kind in words, the object (its address or
 * debug name), how long it has waited, and a backtrace containing the
 * function it is parked in (noinline, with work after the parking call so
 * that the call is no tail call). Checks run in the task and record the
 * first failure, asserted on the main stack once loom_run has returned. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/internal.h"
#include "dump-helpers.h"
#include "harness.h"
#include "loom.h"
#ifdef LOOM_TEST_CURL
#include "loom/http.h"
#endif

static volatile int after; /* written after each parking call: no tail call */

static char failure[1024]; /* the first failed check, "" if none */
static char text[16384], json[16384];
static size_t text_len, json_len;

static void failed(const char *fmt, ...) {
  if (failure[0]) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(failure, sizeof(failure), fmt, ap);
  va_end(ap);
}

static void put_text(void *ctx, const char *p, size_t n) {
  (void)ctx;
  if (n > sizeof(text) - 1 - text_len) n = sizeof(text) - 1 - text_len;
  memcpy(text + text_len, p, n);
  text_len += n;
  text[text_len] = 0;
}

static void put_json(void *ctx, const char *p, size_t n) {
  (void)ctx;
  if (n > sizeof(json) - 1 - json_len) n = sizeof(json) - 1 - json_len;
  memcpy(json + json_len, p, n);
  json_len += n;
  json[json_len] = 0;
}

/* Waits, up to 10 s of loop time, until the dump of t says it is parked
 * with `reason` in its line; then checks its text and JSON dumps. fn is
 * the function t is parked in (its name is the task's), kind the wait's
 * kind in the JSON. */
static void check_parked(loom_task_t *t, const char *fn, const char *reason,
                         const char *kind) {
  uint64_t id = loom_task_id(t);
  char want[128];
  snprintf(want, sizeof(want), "'%s' parked for ", fn);
  for (int i = 0;; i++) {
    text_len = 0;
    text[0] = 0;
    if (loom__dump_to(NULL, put_text, NULL, id, 0)) {
      failed("%s: no dump", fn);
      return;
    }
    const char *line = strstr(text, want);
    const char *nl = strchr(text, '\n');
    const char *r = strstr(text, reason);
    if (line && r && nl && r < nl) break;
    if (i == 10000) {
      failed("%s never showed \"%s\":\n%s", fn, reason, text);
      return;
    }
    loom_sleep(1); /* a poll's interval, not a synchronisation */
  }
  /* The text: state, how long, what, where. */
  if (!strstr(text, " ms: ")) failed("%s: no wait time:\n%s", fn, text);
  snprintf(want, sizeof(want), " %s+0x", fn);
  if (!strstr(text, want)) failed("%s: not in its backtrace:\n%s", fn, text);
  /* The JSON: the same, as fields. */
  json_len = 0;
  json[0] = 0;
  if (loom__dump_to(NULL, put_json, NULL, id, LOOM_DUMP_JSON)) {
    failed("%s: no JSON dump", fn);
    return;
  }
  if (!json_valid(json)) failed("%s: not JSON:\n%s", fn, json);
  snprintf(want, sizeof(want), "\"name\":\"%s\",\"state\":\"parked\"", fn);
  if (!strstr(json, want)) failed("%s: not parked in JSON:\n%s", fn, json);
  snprintf(want, sizeof(want), "\"wait\":{\"kind\":\"%s\",\"object\":\"0x", kind);
  if (!strstr(json, want)) failed("%s: no kind '%s' in JSON:\n%s", fn, kind, json);
  if (!strstr(json, "\"waited_ms\":")) failed("%s: no waited_ms:\n%s", fn, json);
  if (getenv("LOOM_TEST_VERBOSE")) fprintf(stderr, "%s%s", text, json);
  const char *st = strstr(json, "\"stack\":[");
  snprintf(want, sizeof(want), "\"%s+0x", fn);
  if (!st || !strstr(st, want)) failed("%s: not in its JSON stack:\n%s", fn, json);
}

static loom_task_t *spawn_named(loom_fn fn, void *arg, const char *name) {
  loom_task_t *t = NULL;
  loom_task_opts_t o = {.name = name};
  if (loom_spawn_ex(&t, fn, arg, &o)) failed("cannot spawn %s", name);
  return t;
}

static void run(loom_fn main_fn) {
  failure[0] = 0;
  assert_loom_ok(loom_run(main_fn, NULL));
  if (failure[0]) fail_msg("%s", failure);
}

/* ---- a file call, and a DNS lookup queued behind it --------------------------- */

/* The thread pool has one thread (main): a read of a FIFO nobody writes
 * holds it, and the DNS lookup waits in libuv's queue behind it. */
static char fifo_path[64];
static int fifo_fd = -1;
static loom_file_t *fifo;

__attribute__((noinline)) static int w_file(void *a) {
  (void)a;
  char c;
  ssize_t n = loom_file_read(fifo, &c, 1);
  after++;
  return n < 0 ? (int)n : 0;
}

__attribute__((noinline)) static int w_dns(void *a) {
  (void)a;
  struct addrinfo *res = NULL;
  int rc = loom_getaddrinfo("localhost", "80", NULL, &res);
  after++;
  if (res) uv_freeaddrinfo(res);
  return rc;
}

static int file_dns_main(void *a) {
  (void)a;
  snprintf(fifo_path, sizeof(fifo_path), "/tmp/loom-dump-kinds-%d.fifo", (int)getpid());
  unlink(fifo_path);
  if (mkfifo(fifo_path, 0600)) {
    failed("mkfifo");
    return 0;
  }
  /* Our end, read-write so that neither open blocks. */
  fifo_fd = open(fifo_path, O_RDWR);
  int rc = loom_file_open(&fifo, fifo_path, O_RDONLY, 0);
  unlink(fifo_path);
  if (fifo_fd < 0 || rc) {
    failed("open the FIFO: %d", rc);
    return 0;
  }
  loom_task_t *f = spawn_named(w_file, NULL, "w_file");
  check_parked(f, "w_file", ": file read on fd ", "file");
  loom_task_t *d = spawn_named(w_dns, NULL, "w_dns");
  check_parked(d, "w_dns", ": DNS lookup of 'localhost' (0x", "request");
  /* The read gets its byte; then the lookup runs. */
  if (write(fifo_fd, "x", 1) != 1) failed("write the FIFO");
  int st = -1;
  loom_join(f, &st);
  if (st) failed("the file read: %d", st);
  loom_join(d, NULL);
  loom_file_close(fifo);
  close(fifo_fd);
  return 0;
}

static void test_file_and_dns(void **state) {
  (void)state;
  run(file_dns_main);
}

/* ---- TCP connect ------------------------------------------------------------------ */

/* A listener with a backlog of 0 that never accepts: once its queue holds
 * one connection, the kernel drops further SYNs, and a connect stays in
 * progress (the client retries for minutes). */
static int listen_fd = -1;
static int connect_port;

__attribute__((noinline)) static int w_connect(void *a) {
  (void)a;
  loom_stream_t *s[8] = {0};
  int rc = 0, n = 0;
  while (n < 8 && rc == 0) {
    rc = loom_tcp_connect(&s[n], "127.0.0.1", connect_port);
    after++;
    if (rc == 0) n++;
  }
  for (int i = 0; i < n; i++) loom_close(s[i]);
  return rc;
}

static int connect_main(void *a) {
  (void)a;
  listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(sin);
  if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sin, sizeof(sin)) ||
      listen(listen_fd, 0) || getsockname(listen_fd, (struct sockaddr *)&sin, &len)) {
    failed("listen");
    return 0;
  }
  connect_port = ntohs(sin.sin_port);
  loom_task_t *c = spawn_named(w_connect, NULL, "w_connect");
  check_parked(c, "w_connect", ": connect from 127.0.0.1:", "request");
  if (!strstr(text, "(0x")) failed("w_connect: no object:\n%s", text);
  loom_cancel(c);
  int st = 0;
  loom_join(c, &st);
  if (st != UV_ECANCELED) failed("w_connect ended with %d", st);
  close(listen_fd);
  return 0;
}

static void test_connect(void **state) {
  (void)state;
  run(connect_main);
}

/* ---- UDP receive ------------------------------------------------------------------ */

static loom_udp_t *udp;

__attribute__((noinline)) static int w_udp(void *a) {
  (void)a;
  char buf[16];
  ssize_t n = loom_udp_recv(udp, buf, sizeof(buf), NULL);
  after++;
  return n < 0 ? (int)n : 0;
}

static int udp_main(void *a) {
  (void)a;
  if (loom_udp_bind(&udp, "127.0.0.1", 0)) {
    failed("udp bind");
    return 0;
  }
  loom_debug_name(udp, "beacons");
  char reason[128];
  snprintf(reason, sizeof(reason), ": receive on UDP socket 127.0.0.1:%d 'beacons' (0x",
           loom_udp_port(udp));
  loom_task_t *t = spawn_named(w_udp, NULL, "w_udp");
  check_parked(t, "w_udp", reason, "read");
  if (!strstr(json, "\"object_name\":\"beacons\""))
    failed("w_udp: no object_name:\n%s", json);
  loom_cancel(t);
  loom_join(t, NULL);
  loom_debug_name(udp, NULL);
  loom_udp_close(udp);
  return 0;
}

static void test_udp_receive(void **state) {
  (void)state;
  run(udp_main);
}

/* ---- channel send ------------------------------------------------------------------ */

static loom_channel_t *chan;

__attribute__((noinline)) static int w_chan_send(void *a) {
  int rc = loom_channel_put(chan, a);
  after++;
  return rc;
}

static int chan_main(void *a) {
  (void)a;
  if (loom_channel_new(&chan, 1)) {
    failed("channel");
    return 0;
  }
  loom_channel_put(chan, (void *)1); /* full */
  loom_debug_name(chan, "pipeline");
  loom_task_t *t = spawn_named(w_chan_send, (void *)2, "w_chan_send");
  /* The channel the program holds, by the name it gave it. */
  check_parked(t, "w_chan_send", ": channel send 'pipeline' (0x", "channel send");
  loom_debug_name(chan, NULL);
  /* Room for it: its put goes through. */
  void *item;
  loom_channel_get(chan, &item);
  int st = -1;
  loom_join(t, &st);
  if (st) failed("w_chan_send ended with %d", st);
  loom_channel_release(chan);
  return 0;
}

static void test_channel_send(void **state) {
  (void)state;
  run(chan_main);
}

/* ---- stream write and drain: a peer that never reads ------------------------------ */

static loom_stream_t *writer;

__attribute__((noinline)) static int w_write(void *a) {
  (void)a;
  static char chunk[16384];
  int rc = 0;
  while (rc == 0) {
    rc = loom_write(writer, chunk, sizeof(chunk));
    after++;
  }
  return rc;
}

__attribute__((noinline)) static int w_drain(void *a) {
  (void)a;
  int rc = loom_drain(writer);
  after++;
  return rc;
}

static void small_buffer(loom_stream_t *s, int opt) {
  uv_os_fd_t fd;
  int size = 4096;
  if (uv_fileno((uv_handle_t *)loom_stream_handle(s), &fd) ||
      setsockopt(fd, SOL_SOCKET, opt, &size, sizeof(size)))
    failed("setsockopt");
}

static int write_main(void *a) {
  (void)a;
  loom_listener_t *l;
  loom_stream_t *peer;
  if (loom_tcp_listen(&l, "127.0.0.1", 0, 8) ||
      loom_tcp_connect(&writer, "127.0.0.1", loom_listener_port(l)) ||
      loom_accept(l, &peer)) {
    failed("connect");
    return 0;
  }
  /* Small buffers: the queue backs up after a few chunks. */
  small_buffer(writer, SO_SNDBUF);
  small_buffer(peer, SO_RCVBUF);
  loom_stream_set_high_water(writer, 4096);
  loom_debug_name(writer, "upload");
  loom_task_t *w = spawn_named(w_write, NULL, "w_write");
  check_parked(w, "w_write", ": write on stream 127.0.0.1:", "write");
  if (!strstr(text, " 'upload' (0x")) failed("w_write: no name:\n%s", text);
  loom_task_t *d = spawn_named(w_drain, NULL, "w_drain");
  check_parked(d, "w_drain", ": drain on stream 127.0.0.1:", "drain");
  if (!strstr(text, " 'upload' (0x")) failed("w_drain: no name:\n%s", text);
  loom_cancel(w);
  loom_cancel(d);
  loom_join(w, NULL);
  loom_join(d, NULL);
  loom_debug_name(writer, NULL);
  loom_abort(writer);
  loom_close(peer);
  loom_listener_close(l);
  return 0;
}

static void test_write_and_drain(void **state) {
  (void)state;
  run(write_main);
}

/* ---- loom_wait and as_completed ---------------------------------------------------- */

static loom_task_t *sleepers[2];

static int sleeper(void *a) {
  (void)a;
  return loom_sleep(UINT64_MAX);
}

__attribute__((noinline)) static int w_wait(void *a) {
  (void)a;
  size_t nd = 0;
  int rc = loom_wait(sleepers, 2, LOOM_WAIT_FOREVER, LOOM_ALL_COMPLETED, &nd);
  after++;
  return rc;
}

__attribute__((noinline)) static int w_as_completed(void *a) {
  (void)a;
  loom_as_completed_t it;
  int rc = loom_as_completed_init(&it, sleepers, 2, LOOM_WAIT_FOREVER);
  if (rc) return rc;
  loom_task_t *t;
  rc = loom_as_completed_next(&it, &t);
  after++;
  loom_as_completed_close(&it);
  return rc;
}

static int combinators_main(void *a) {
  (void)a;
  for (int i = 0; i < 2; i++) sleepers[i] = spawn_named(sleeper, NULL, "sleeper");
  loom_task_t *w = spawn_named(w_wait, NULL, "w_wait");
  loom_task_t *c = spawn_named(w_as_completed, NULL, "w_as_completed");
  check_parked(w, "w_wait", ": wait of 2 task(s)", "wait");
  check_parked(c, "w_as_completed", ": as_completed 0x", "as_completed");
  loom_cancel(w);
  loom_cancel(c);
  loom_join(w, NULL);
  loom_join(c, NULL);
  for (int i = 0; i < 2; i++) {
    loom_cancel(sleepers[i]);
    loom_join(sleepers[i], NULL);
  }
  return 0;
}

static void test_wait_and_as_completed(void **state) {
  (void)state;
  run(combinators_main);
}

/* ---- a lock's holder ------------------------------------------------------------ */

static loom_lock_t accounts;

__attribute__((noinline)) static int w_lock(void *a) {
  (void)a;
  int rc = loom_lock_acquire(&accounts);
  after++;
  if (rc == 0) loom_lock_release(&accounts);
  return rc;
}

/* Takes the lock and keeps it until cancelled (a = 0), or ends holding
 * it (a = 1). */
static int holder(void *a) {
  int rc = loom_lock_acquire(&accounts);
  if (rc || a) return rc;
  rc = loom_sleep(UINT64_MAX);
  loom_lock_release(&accounts);
  return rc;
}

static int lock_main(void *a) {
  (void)a;
  loom_lock_init(&accounts);
  loom_debug_name(&accounts, "accounts");
  /* Held by a running task. */
  loom_task_t *h = spawn_named(holder, NULL, "worker");
  loom_yield();
  loom_task_t *w = spawn_named(w_lock, NULL, "w_lock");
  check_parked(w, "w_lock", " held by task ", "lock");
  char want[128], addr[32];
  snprintf(addr, sizeof(addr), "%p", (void *)&accounts);
  snprintf(want, sizeof(want),
           ": lock 'accounts' (%s) held by task %" PRIu64 " 'worker'\n", addr,
           loom_task_id(h));
  if (!strstr(text, want)) failed("w_lock: not \"%s\":\n%s", want, text);
  if (!strstr(json, "held by task ")) failed("w_lock: no holder in JSON:\n%s", json);
  loom_cancel(h);
  loom_join(h, NULL);
  loom_join(w, NULL);
  /* Handed over: the longest waiter holds it from the release on, before
   * it runs. */
  loom_lock_acquire(&accounts);
  w = spawn_named(w_lock, NULL, "w_lock");
  loom_task_t *w2 = spawn_named(w_lock, NULL, "w_lock");
  check_parked(w2, "w_lock", " held by task 1 'main'", "lock");
  loom_lock_release(&accounts);
  text_len = 0;
  loom__dump_to(NULL, put_text, NULL, loom_task_id(w2), 0);
  snprintf(want, sizeof(want), " held by task %" PRIu64 " 'w_lock'\n", loom_task_id(w));
  if (!strstr(text, want)) failed("w_lock2: not \"%s\":\n%s", want, text);
  loom_join(w, NULL);
  loom_join(w2, NULL);
  /* Held by a task that ended without releasing it. */
  h = spawn_named(holder, (void *)1, "quitter");
  uint64_t gone = loom_task_id(h);
  loom_join(h, NULL);
  w = spawn_named(w_lock, NULL, "w_lock");
  check_parked(w, "w_lock", " held by a finished task ", "lock");
  snprintf(want, sizeof(want), " held by a finished task %" PRIu64 "\n", gone);
  if (!strstr(text, want)) failed("w_lock: not \"%s\":\n%s", want, text);
  loom_lock_release(&accounts); /* any task may */
  loom_join(w, NULL);
  loom_debug_name(&accounts, NULL);
  return 0;
}

static void test_lock_holder(void **state) {
  (void)state;
  run(lock_main);
}

/* Held by host code: an embedded runtime's lock taken before any task. */
static void test_lock_held_by_host(void **state) {
  (void)state;
  failure[0] = 0;
  uv_loop_t loop;
  loom_t *rt;
  loom_task_t *w;
  assert_loom_ok(uv_loop_init(&loop));
  assert_loom_ok(loom_init(&rt, &loop, NULL));
  loom_lock_init(&accounts);
  assert_loom_ok(loom_lock_try_acquire(&accounts));
  loom_task_opts_t o = {.name = "w_lock"};
  assert_loom_ok(loom_spawn_on_ex(rt, &w, w_lock, NULL, &o));
  uv_run(&loop, UV_RUN_NOWAIT); /* it runs and parks */
  text_len = 0;
  assert_loom_ok(loom__dump_to(rt, put_text, NULL, loom_task_id(w), 0));
  assert_non_null(strstr(text, "'w_lock' parked for "));
  assert_non_null(strstr(text, ": lock 0x"));
  assert_non_null(strstr(text, " held by host code\n"));
  assert_loom_ok(loom_lock_release(&accounts));
  uv_run(&loop, UV_RUN_DEFAULT); /* it takes the lock, and ends */
  assert_int_equal(loom_task_done(w), 1);
  assert_loom_ok(loom_detach(w));
  assert_loom_ok(loom_shutdown(rt, NULL, NULL));
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_loom_ok(uv_loop_close(&loop));
}

/* ---- HTTP, against a local server that never answers ------------------------------ */

#ifdef LOOM_TEST_CURL
static char url[64];

__attribute__((noinline)) static int w_http(void *a) {
  (void)a;
  loom_http_body_t body = {0};
  int rc = loom_http_get(url, 1024, &body);
  after++;
  free(body.data);
  return rc;
}

/* Takes the connection and reads the request, never answering. */
static int mute_server(void *a) {
  loom_listener_t *l = a;
  loom_stream_t *s;
  int rc = loom_accept(l, &s);
  if (rc) return rc;
  char buf[256];
  while ((rc = (int)loom_read(s, buf, sizeof(buf))) > 0) {}
  loom_close(s);
  return 0;
}

static int http_main(void *a) {
  (void)a;
  loom_listener_t *l;
  if (loom_tcp_listen(&l, "127.0.0.1", 0, 8)) {
    failed("listen");
    return 0;
  }
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/never", loom_listener_port(l));
  loom_task_t *s = spawn_named(mute_server, l, "mute_server");
  loom_task_t *t = spawn_named(w_http, NULL, "w_http");
  /* The method and the URL, as the program asked for them. */
  char want[128];
  snprintf(want, sizeof(want), ": HTTP request GET %s (0x", url);
  check_parked(t, "w_http", want, "HTTP request");
  loom_cancel(t);
  loom_join(t, NULL);
  loom_cancel(s);
  loom_join(s, NULL);
  loom_listener_close(l);
  return 0;
}
#endif

static void test_http(void **state) {
  (void)state;
#ifdef LOOM_TEST_CURL
  run(http_main);
#else
  print_message("(loom built without libcurl: no HTTP wait to dump)\n");
  skip();
#endif
}

int main(void) {
  /* One thread in libuv's pool, so that one blocked file call holds back
   * the DNS lookup (read before the pool starts, at its first job). */
  setenv("UV_THREADPOOL_SIZE", "1", 1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_file_and_dns),
      cmocka_unit_test(test_connect),
      cmocka_unit_test(test_udp_receive),
      cmocka_unit_test(test_channel_send),
      cmocka_unit_test(test_write_and_drain),
      cmocka_unit_test(test_wait_and_as_completed),
      cmocka_unit_test(test_lock_holder),
      cmocka_unit_test(test_lock_held_by_host),
      cmocka_unit_test(test_http),
  };
  return HARNESS_RUN(tests);
}
