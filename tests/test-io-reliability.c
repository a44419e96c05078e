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

#include "helpers.h"
#include "loom.h"

#ifdef LOOM_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

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
  assert_int_equal(loom_run(gai_timeout_main, NULL), 0);
  assert_int_equal(r.rc[0], UV_ETIMEDOUT);
  assert_int_equal(r.rc[1], 1);
  assert_int_equal(r.rc[2], UV_ETIMEDOUT);
  assert_int_equal(r.rc[3], 0);
  assert_int_equal(r.rc[4], 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_interrupted_request),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
