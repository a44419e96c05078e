/* Foreign file descriptors (loom/fd.h): readable and writable waits on a
 * socketpair, a reader and a writer sharing one watch, two waits for the
 * same event, cancellation and timeouts, a peer that hangs up (readable),
 * an error condition (a refused connect), bad descriptors, a watch closed
 * under its waiter, a descriptor watched again after release, a watch left
 * open at shutdown. (Allocation failures and the cancellation of a wait at
 * once and by a 1 ms timeout are in the shared sweeps,
 * tests/test-faults.c and tests/test-io-sweep.c.)
 *
 * Tasks record what they see in `r`; the asserts run on the main stack
 * after loom_run has returned (tests/helpers.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"

typedef struct {
  long rc[32];
} rec_t;
static rec_t r;
static int sv[2]; /* the socketpair each test uses: sv[0] watched */

static void rec_reset(void) { memset(&r, 0, sizeof(r)); }

static void pair_open(void) {
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
}
static void pair_close(void) {
  if (sv[0] >= 0) close(sv[0]);
  if (sv[1] >= 0) close(sv[1]);
  sv[0] = sv[1] = -1;
}

/* ---- readable, writable ---------------------------------------------------- */

static loom_fd_t *shared_w;

typedef struct {
  int events;
  long *out;
} wait_arg_t;

static int waiter(void *p) {
  wait_arg_t *a = p;
  *a->out = loom_fd_wait(shared_w, a->events);
  return 0;
}

static int basic_main(void *arg) {
  (void)arg;
  r.rc[0] = loom_fd_open(&shared_w, sv[0]);
  r.rc[1] = loom_fd_fileno(shared_w);
  /* Writable at once: the socket's buffer is empty. */
  r.rc[2] = loom_fd_wait(shared_w, LOOM_FD_WRITABLE);
  /* Readable once the peer writes. */
  loom_task_t *t;
  wait_arg_t a = {.events = LOOM_FD_READABLE, .out = &r.rc[3]};
  loom_spawn(&t, waiter, &a);
  loom_yield();
  r.rc[4] = r.rc[3]; /* still waiting: 0 */
  r.rc[5] = write(sv[1], "hi", 2);
  loom_join(t, NULL);
  char buf[8];
  r.rc[6] = read(sv[0], buf, sizeof(buf));
  /* Level-triggered: nothing left, a wait for readable would block. */
  loom_scope_t sc;
  loom_timeout_enter(&sc, 10);
  r.rc[7] = loom_fd_wait(shared_w, LOOM_FD_READABLE);
  loom_scope_exit(&sc);
  /* Both asked, only one holds. */
  r.rc[8] = loom_fd_wait(shared_w, LOOM_FD_READABLE | LOOM_FD_WRITABLE);
  r.rc[9] = loom_fd_close(shared_w);
  return 0;
}

static void test_fd_readable_writable(void **state) {
  (void)state;
  rec_reset();
  pair_open();
  assert_loom_ok(loom_run(basic_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_int_equal(r.rc[1], sv[0]);
  assert_int_equal(r.rc[2], LOOM_FD_WRITABLE);
  assert_int_equal(r.rc[3], LOOM_FD_READABLE);
  assert_int_equal(r.rc[4], 0);
  assert_int_equal(r.rc[5], 2);
  assert_int_equal(r.rc[6], 2);
  assert_loom_err(r.rc[7], UV_ETIMEDOUT);
  assert_int_equal(r.rc[8], LOOM_FD_WRITABLE);
  assert_loom_ok(r.rc[9]);
  /* The descriptor is the program's: still open. */
  assert_true(fcntl(sv[0], F_GETFD) >= 0);
  pair_close();
}

/* ---- a reader and a writer on one watch ----------------------------------- */

static int shared_main(void *arg) {
  (void)arg;
  loom_fd_open(&shared_w, sv[0]);
  /* Fill sv[0]'s send buffer (the watch made it non-blocking). */
  char chunk[4096];
  memset(chunk, 'x', sizeof(chunk));
  long filled = 0;
  ssize_t n;
  while ((n = write(sv[0], chunk, sizeof(chunk))) > 0) filled += n;
  r.rc[0] = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  loom_task_t *rd, *wr, *rd2;
  wait_arg_t ra = {.events = LOOM_FD_READABLE, .out = &r.rc[1]};
  wait_arg_t rb = {.events = LOOM_FD_READABLE, .out = &r.rc[2]};
  wait_arg_t wa = {.events = LOOM_FD_WRITABLE, .out = &r.rc[3]};
  loom_spawn(&rd, waiter, &ra);
  loom_spawn(&rd2, waiter, &rb);
  loom_spawn(&wr, waiter, &wa);
  loom_yield();
  /* The peer writes: both readers wake, the writer still waits. */
  write(sv[1], "z", 1);
  loom_join(rd, NULL);
  loom_join(rd2, NULL);
  r.rc[4] = r.rc[3];
  /* The peer drains: the writer wakes. */
  char buf[65536];
  long drained = 0;
  while ((n = read(sv[1], buf, sizeof(buf))) > 0) drained += n;
  loom_join(wr, NULL);
  r.rc[5] = drained == filled;
  loom_fd_close(shared_w);
  return 0;
}

static void test_fd_reader_and_writer_share(void **state) {
  (void)state;
  rec_reset();
  pair_open();
  assert_loom_ok(loom_run(shared_main, NULL));
  assert_true(r.rc[0]);
  assert_int_equal(r.rc[1], LOOM_FD_READABLE);
  assert_int_equal(r.rc[2], LOOM_FD_READABLE);
  assert_int_equal(r.rc[4], 0);
  assert_int_equal(r.rc[3], LOOM_FD_WRITABLE);
  assert_true(r.rc[5]);
  pair_close();
}

/* ---- cancellation, timeouts, close under a waiter -------------------------- */

static int cancel_main(void *arg) {
  (void)arg;
  loom_fd_open(&shared_w, sv[0]);
  loom_task_t *t;
  wait_arg_t a = {.events = LOOM_FD_READABLE, .out = &r.rc[0]};
  loom_spawn(&t, waiter, &a);
  loom_yield();
  loom_cancel(t);
  loom_join(t, NULL);
  /* The watch still works after the cancelled wait. */
  write(sv[1], "a", 1);
  r.rc[1] = loom_fd_wait(shared_w, LOOM_FD_READABLE);
  char c;
  read(sv[0], &c, 1);
  /* A timeout scope. */
  loom_scope_t sc;
  loom_timeout_enter(&sc, 10);
  r.rc[2] = loom_fd_wait(shared_w, LOOM_FD_READABLE);
  r.rc[3] = loom_scope_exit(&sc);
  /* Closed under a waiter. */
  wait_arg_t b = {.events = LOOM_FD_READABLE, .out = &r.rc[4]};
  loom_spawn(&t, waiter, &b);
  loom_yield();
  r.rc[5] = loom_fd_close(shared_w);
  loom_join(t, NULL);
  r.rc[6] = loom_fd_wait(shared_w, LOOM_FD_READABLE);
  r.rc[7] = loom_fd_close(shared_w);
  r.rc[8] = loom_fd_fileno(shared_w);
  /* Released: the descriptor can be watched again at once. */
  loom_fd_t *again;
  r.rc[9] = loom_fd_open(&again, sv[0]);
  r.rc[10] = loom_fd_wait(again, LOOM_FD_WRITABLE);
  loom_fd_close(again);
  /* A cancelled task's wait fails at once. */
  loom_fd_open(&again, sv[0]);
  loom_cancel(loom_current());
  r.rc[11] = loom_fd_wait(again, LOOM_FD_WRITABLE);
  loom_fd_close(again);
  return 0;
}

static void test_fd_cancel_timeout_close(void **state) {
  (void)state;
  rec_reset();
  pair_open();
  loom_run(cancel_main, NULL);
  assert_loom_err(r.rc[0], UV_ECANCELED);
  assert_int_equal(r.rc[1], LOOM_FD_READABLE);
  assert_loom_err(r.rc[2], UV_ETIMEDOUT);
  assert_loom_err(r.rc[3], UV_ETIMEDOUT);
  assert_loom_err(r.rc[4], UV_EBADF);
  assert_loom_ok(r.rc[5]);
  assert_loom_err(r.rc[6], UV_EBADF);
  assert_loom_err(r.rc[7], UV_EBADF);
  assert_loom_err(r.rc[8], UV_EBADF);
  assert_loom_ok(r.rc[9]);
  assert_int_equal(r.rc[10], LOOM_FD_WRITABLE);
  assert_loom_err(r.rc[11], UV_ECANCELED);
  pair_close();
}

/* ---- the peer hangs up; an error condition --------------------------------- */

static int hup_main(void *arg) {
  (void)arg;
  loom_fd_open(&shared_w, sv[0]);
  loom_task_t *t;
  wait_arg_t a = {.events = LOOM_FD_READABLE | LOOM_FD_DISCONNECT, .out = &r.rc[0]};
  loom_spawn(&t, waiter, &a);
  loom_yield();
  close(sv[1]);
  sv[1] = -1;
  loom_join(t, NULL);
  char c;
  r.rc[1] = read(sv[0], &c, 1); /* EOF */
  r.rc[2] = loom_fd_wait(shared_w, LOOM_FD_READABLE);
  loom_fd_close(shared_w);
  return 0;
}

static void test_fd_peer_hangs_up(void **state) {
  (void)state;
  rec_reset();
  pair_open();
  assert_loom_ok(loom_run(hup_main, NULL));
  assert_true(r.rc[0] & LOOM_FD_READABLE);
  assert_true(r.rc[0] & LOOM_FD_DISCONNECT);
  assert_int_equal(r.rc[1], 0);
  assert_true(r.rc[2] & LOOM_FD_READABLE);
  pair_close();
}

static int refused_main(void *arg) {
  (void)arg;
  /* A port nobody listens on: bind one, read it, close it. */
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(l, (struct sockaddr *)&a, sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(l, (struct sockaddr *)&a, &len);
  close(l);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
  if (rc == 0 || errno != EINPROGRESS) {
    r.rc[9] = 1; /* refused at once: nothing to wait for */
    close(fd);
    return 0;
  }
  loom_fd_t *w;
  loom_fd_open(&w, fd);
  r.rc[0] = loom_fd_wait(w, LOOM_FD_WRITABLE);
  int err = 0;
  len = sizeof(err);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  r.rc[1] = err;
  loom_fd_close(w);
  close(fd);
  return 0;
}

static void test_fd_error_condition(void **state) {
  (void)state;
  rec_reset();
  assert_loom_ok(loom_run(refused_main, NULL));
  if (r.rc[9]) skip();
  assert_true(r.rc[0] > 0);
  assert_true(r.rc[0] & LOOM_FD_WRITABLE);
  assert_int_equal(r.rc[1], ECONNREFUSED);
}

/* ---- bad descriptors, misuse ------------------------------------------------ */

static int bad_main(void *arg) {
  (void)arg;
  loom_fd_t *w = (loom_fd_t *)1, *w2;
  r.rc[0] = loom_fd_open(&w, -1);
  r.rc[1] = w == NULL;
  int dead = dup(sv[0]);
  close(dead);
  r.rc[2] = loom_fd_open(&w, dead);
  char path[] = "/tmp/loom-test-fd.XXXXXX";
  int file = mkstemp(path);
  unlink(path);
  r.rc[3] = loom_fd_open(&w, file); /* epoll cannot watch a regular file */
  close(file);
  r.rc[4] = loom_fd_open(NULL, sv[0]);
  loom_fd_open(&w, sv[0]);
  r.rc[5] = loom_fd_open(&w2, sv[0]); /* one watch per descriptor */
  r.rc[6] = loom_fd_wait(w, 0);
  r.rc[7] = loom_fd_wait(w, LOOM_FD_ERROR);
  r.rc[8] = loom_fd_wait(w, 64);
  r.rc[9] = loom_fd_wait(NULL, LOOM_FD_READABLE);
  r.rc[10] = loom_fd_close(NULL);
  r.rc[11] = loom_fd_fileno(NULL);
  loom_fd_close(w);
  return 0;
}

static void test_fd_bad_descriptors(void **state) {
  (void)state;
  rec_reset();
  pair_open();
  assert_loom_ok(loom_run(bad_main, NULL));
  assert_loom_err(r.rc[0], UV_EBADF);
  assert_true(r.rc[1]);
  assert_loom_err(r.rc[2], UV_EBADF);
  assert_loom_err(r.rc[3], UV_EPERM);
  assert_loom_err(r.rc[4], UV_EINVAL);
  assert_loom_err(r.rc[5], UV_EEXIST);
  for (int i = 6; i <= 11; i++) assert_loom_err(r.rc[i], UV_EINVAL);
  loom_fd_t *w;
  assert_loom_err(loom_fd_open(&w, sv[0]), LOOM_ENOTASK);
  pair_close();
}

/* ---- left open at shutdown -------------------------------------------------- */

static int left_open_main(void *arg) {
  (void)arg;
  r.rc[0] = loom_fd_open(&shared_w, sv[0]);
  /* A waiter too: shutdown cancels it, then releases the watch. */
  static wait_arg_t a;
  a = (wait_arg_t){.events = LOOM_FD_READABLE, .out = &r.rc[1]};
  loom_spawn(NULL, waiter, &a);
  return 0;
}

static void test_fd_left_open_at_shutdown(void **state) {
  (void)state;
  rec_reset();
  pair_open();
  harness_expect_leftovers();
  assert_loom_ok(loom_run(left_open_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_err(r.rc[1], UV_ECANCELED);
  assert_true(fcntl(sv[0], F_GETFD) >= 0);
  pair_close();
}

int main(void) {
  sv[0] = sv[1] = -1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fd_readable_writable),
      cmocka_unit_test(test_fd_reader_and_writer_share),
      cmocka_unit_test(test_fd_cancel_timeout_close),
      cmocka_unit_test(test_fd_peer_hangs_up),
      cmocka_unit_test(test_fd_error_condition),
      cmocka_unit_test(test_fd_bad_descriptors),
      cmocka_unit_test(test_fd_left_open_at_shutdown),
  };
  return HARNESS_RUN(tests);
}
