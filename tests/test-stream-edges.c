/* Stream edge cases the cancellation and allocation-failure sweeps
 * (test-io-sweep, test-faults) ran into, each pinned down on its own so
 * that a regression names itself.
 *
 * 1. Gathered bytes and loom_shutdown_write. A small write is gathered and
 *    reaches libuv only when tasks stop running; loom_shutdown_write asks
 *    libuv for the EOF at once, and libuv refuses writes from then on. The
 *    gathered bytes must go before the EOF: "write a request, shut down,
 *    read the reply" is how an HTTP/1.0-style client talks.
 *
 * 2. A writer waiting at the high-water mark while its peer's bytes wait
 *    unread in the kernel: when the read buffer for them cannot be
 *    allocated, reading stops until the next read. A writer waiting at
 *    that moment must stop waiting, as when the bytes arrive (and not wait
 *    again while they are unread), or a peer that reads its replies only
 *    after sending its requests freezes the connection for good.
 *
 * Each test runs on a socketpair whose other end is a second loom stream,
 * read to EOF by a task of its own. Tasks record what they see in `r`; the
 * asserts run on the main stack after loom_run has returned. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"

static struct {
  long rc[16];
  size_t got;    /* bytes the peer read before EOF */
  int got_ok;    /* they were the bytes written, in order */
  long peer_end; /* the peer's last read: 0 at EOF */
} r;

/* The peer: reads to EOF and checks the bytes against the pattern. */
static char byte_at(size_t i) { return (char)('a' + (i * 7 + i / 251) % 26); }
static int peer_reader(void *arg) {
  loom_stream_t *p = arg;
  static char buf[65536];
  ssize_t n;
  r.got_ok = 1;
  while ((n = loom_read(p, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; i++) r.got_ok &= buf[i] == byte_at(r.got + (size_t)i);
    r.got += (size_t)n;
  }
  r.peer_end = (long)n;
  loom_close(p);
  return 0;
}

/* Both ends as loom streams: *s to write, *p for the peer task. */
static int pair(loom_stream_t **s, loom_stream_t **p) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return -errno;
  int rc = loom_stream_open_fd(s, sv[0]);
  if (rc) {
    close(sv[0]);
    close(sv[1]);
    return rc;
  }
  rc = loom_stream_open_fd(p, sv[1]);
  if (rc) {
    close(sv[1]);
    loom_close(*s);
  }
  return rc;
}

/* ---- 1. gathered bytes go before the EOF of loom_shutdown_write -------------------- */

static size_t shut_big; /* bytes of a large write queued before the small one */

static int shutdown_main(void *arg) {
  (void)arg;
  loom_stream_t *s, *p;
  if ((r.rc[0] = pair(&s, &p)) != 0) return 0;
  /* A large write first, when asked, whose rest libuv queues: the small
   * one is then gathered behind a non-empty queue. The high-water mark is
   * raised so that the small write need not wait for the peer. */
  loom_stream_set_high_water(s, 8u << 20);
  char *big = malloc(shut_big + 5);
  if (!big) {
    r.rc[1] = UV_ENOMEM;
    loom_close(s);
    loom_close(p);
    return 0;
  }
  for (size_t i = 0; i < shut_big + 5; i++) big[i] = byte_at(i);
  if (shut_big) r.rc[1] = loom_write(s, big, shut_big);
  /* Two small writes: the first may go to the kernel at once (nothing
   * before it), the second is gathered. */
  r.rc[2] = loom_write(s, big + shut_big, 2);
  if (r.rc[2] == 0) r.rc[2] = loom_write(s, big + shut_big + 2, 3);
  r.rc[3] = (long)loom_stream_queued(s) >= 3;
  loom_task_t *t;
  r.rc[4] = loom_spawn(&t, peer_reader, p);
  r.rc[5] = loom_shutdown_write(s);
  r.rc[6] = loom_drain(s);
  r.rc[7] = loom_close(s);
  if (r.rc[4] == 0) loom_join(t, NULL);
  free(big);
  return 0;
}

static void run_shutdown(size_t big) {
  memset(&r, 0, sizeof(r));
  shut_big = big;
  assert_loom_ok(loom_run(shutdown_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_loom_ok(r.rc[2]);
  assert_int_equal(r.rc[3], 1);
  assert_loom_ok(r.rc[4]);
  assert_loom_ok(r.rc[5]); /* shutdown */
  assert_loom_ok(r.rc[6]); /* drain */
  assert_loom_ok(r.rc[7]); /* close */
  assert_int_equal(r.peer_end, 0);
  assert_int_equal(r.got, big + 5);
  assert_int_equal(r.got_ok, 1);
}

static void test_shutdown_after_gathered_write(void **state) {
  (void)state;
  run_shutdown(0);
}

static void test_shutdown_after_gathered_write_behind_queue(void **state) {
  (void)state;
  run_shutdown(1u << 20); /* more than a socketpair's buffers take at once */
}

/* ---- 2. no wait at the high-water mark for a peer's bytes left unread ------------- */

/* Fails loom's next realloc (the read buffer: libuv's are never failed),
 * once armed. */
static int fail_armed;
static int fail_next_realloc(int kind, int from_uv) {
  if (!fail_armed || kind == HARNESS_CALLOC || from_uv) return 0;
  fail_armed = 0;
  r.rc[15] = 1; /* it happened */
  return 1;
}

enum { NW = 16, WLEN = 64 * 1024 };
static int writer_task(void *arg) {
  loom_stream_t *s = arg;
  char line[16];
  r.rc[1] = loom_read_line(s, line, sizeof line); /* "a\n": reading is on */
  /* A read that times out (a handler's idle timeout): the connection is
   * idle, so it holds no read buffer; the next bytes need a new one. */
  loom_scope_t sc;
  loom_timeout_enter(&sc, 1);
  r.rc[10] = loom_read_line(s, line, sizeof line);
  loom_scope_exit(&sc);
  static char big[WLEN];
  for (size_t i = 0; i < sizeof big; i++) big[i] = 'w';
  for (int i = 0; i < NW && r.rc[2] == 0; i++) r.rc[2] = loom_write(s, big, sizeof big);
  r.rc[3] = loom_read_line(s, line, sizeof line); /* "b\n" */
  r.rc[4] = r.rc[3] == 2 && memcmp(line, "b\n", 2) == 0;
  return 0;
}

static int unread_main(void *arg) {
  (void)arg;
  loom_stream_t *s, *p;
  if ((r.rc[0] = pair(&s, &p)) != 0) return 0;
  int small = 4096;
  uv_send_buffer_size((uv_handle_t *)loom_stream_handle(s), &small);
  uv_recv_buffer_size((uv_handle_t *)loom_stream_handle(p), &small);
  loom_task_t *t;
  if ((r.rc[5] = loom_spawn(&t, writer_task, s)) != 0) return 0;
  r.rc[6] = loom_write(p, "a\n", 2);
  /* Until the writer waits at the high-water mark, its line read. */
  for (int i = 0; i < 2000 && !(loom_stream_queued(s) > 64 * 1024 && r.rc[1] == 2); i++)
    loom_sleep(1);
  r.rc[7] = loom_stream_queued(s) > 64 * 1024;
  /* Another connection takes the runtime's spare read buffer (the one the
   * writer gave back when its read timed out) and keeps it, a byte still
   * buffered in it: the writer's next read buffer must then be allocated.
   * (Not the peer: reading on, it would allocate more as replies come.) */
  loom_stream_t *q1 = NULL, *q2 = NULL;
  char one;
  size_t took = 0;
  r.rc[11] = pair(&q1, &q2) == 0 && loom_write(q1, "xy", 2) == 0 &&
             loom_read_exactly(q2, &one, 1, &took) == 0 && took == 1;
  /* The next bytes find no read buffer. */
  r.rc[8] = loom_write(p, "b\n", 2); /* may be gathered: out after this pass */
  fail_armed = 1;
  loom_scope_t sc;
  loom_timeout_enter(&sc, 2000);
  r.rc[9] = loom_join(t, NULL); /* it must end by itself */
  loom_scope_exit(&sc);
  fail_armed = 0;
  if (q1) loom_close(q1);
  if (q2) loom_close(q2);
  /* The peer reads the replies at last, to the EOF of the close. */
  loom_close(s);
  static char buf[65536];
  ssize_t n;
  while ((n = loom_read(p, buf, sizeof buf)) > 0) r.got += (size_t)n;
  loom_close(p);
  return 0;
}

static void test_no_wait_for_unread_bytes_without_buffer(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  harness_alloc_set_hooks(
      &(harness_alloc_hooks_t){.should_fail = fail_next_realloc, .watch = NULL});
  int rc = loom_run(unread_main, NULL);
  harness_alloc_set_hooks(NULL);
  assert_loom_ok(rc);
  assert_loom_ok(r.rc[0]);
  assert_int_equal(r.rc[1], 2);
  assert_loom_err(r.rc[10], UV_ETIMEDOUT);
  assert_int_equal(r.rc[7], 1);  /* the writer waited at the high-water mark */
  assert_int_equal(r.rc[11], 1); /* the peer holds the spare buffer */
  assert_int_equal(r.rc[15], 1); /* the read buffer's allocation failed */
  assert_loom_ok(r.rc[9]);       /* the writer ended by itself */
  assert_loom_ok(r.rc[2]);       /* every write went */
  assert_int_equal(r.rc[4], 1);  /* and then the line was read */
  assert_int_equal(r.got, (size_t)NW * WLEN);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shutdown_after_gathered_write),
      cmocka_unit_test(test_shutdown_after_gathered_write_behind_queue),
      cmocka_unit_test(test_no_wait_for_unread_bytes_without_buffer),
  };
  return HARNESS_RUN(tests);
}
