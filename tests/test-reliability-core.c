/* Reliability of the core (issue 10): scheduler fairness under CPU-bound
 * tasks that yield, scopes left open in storage outside the task's stack,
 * misuse of detached handles, huge stack sizes, and the internal invariant
 * checks of debug builds (death tests run in a child process).
 *
 * Timing checks are tolerant: they tell "tens of milliseconds" from
 * "seconds", which is what the bugs looked like. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "helpers.h"
#include "loom.h"

/* ---- fairness: timers and I/O under CPU-bound yielding tasks ---------------- */

#define BURNERS 4
#define BURN_MS 2
#define ROUNDS 5
/* A 10 ms sleep used to wake ~1.5 s late; "fair" is a few ms late. The
 * bound leaves room for a loaded machine and Valgrind. */
#define LATE_MAX_MS 100

static volatile int burners_stop;

/* Spins for ms milliseconds of wall time, then yields; until told to stop. */
static void burn(unsigned ms) {
  uint64_t end = wall_ms() + ms;
  while (wall_ms() < end) {
  }
}

static int burner(void *arg) {
  (void)arg;
  while (!burners_stop) {
    burn(BURN_MS);
    if (loom_yield() != 0) break;
  }
  return 0;
}

static int spawn_burners(loom_task_t **t) {
  burners_stop = 0;
  for (int i = 0; i < BURNERS; i++)
    if (loom_spawn(&t[i], burner, NULL) != 0) return -1;
  return 0;
}

static void join_burners(loom_task_t **t) {
  burners_stop = 1;
  for (int i = 0; i < BURNERS; i++) loom_join(t[i], NULL);
}

typedef struct {
  int rc;
  uint64_t worst;   /* ms late, worst of ROUNDS */
} late_t;

static int sleep_late_main(void *arg) {
  late_t *r = arg;
  loom_task_t *t[BURNERS];
  if ((r->rc = spawn_burners(t)) != 0) return 0;
  loom_yield(); /* let the burners get going */
  for (int i = 0; i < ROUNDS; i++) {
    uint64_t t0 = wall_ms();
    int rc = loom_sleep(10);
    uint64_t late = wall_ms() - t0 - 10;
    if (rc) r->rc = rc;
    if (late > r->worst && late < UINT64_MAX / 2) r->worst = late;
  }
  join_burners(t);
  return 0;
}

static void test_sleep_not_starved_by_yielding_burners(void **state) {
  (void)state;
  late_t r = {0, 0};
  assert_int_equal(loom_run(sleep_late_main, &r), 0);
  assert_int_equal(r.rc, 0);
  if (r.worst >= LATE_MAX_MS)
    fprintf(stderr, "10 ms sleep woke %llu ms late\n", (unsigned long long)r.worst);
  assert_true(r.worst < LATE_MAX_MS);
}

/* I/O readiness: a plain thread writes into a socketpair at a moment of its
 * choosing; a task parked in loom_read must see it promptly. */
typedef struct {
  int fd;
  uint64_t written_at[ROUNDS];
  int go[2];        /* main -> writer: "write one now (after 10 ms)" */
} writer_t;

static void *writer_thread(void *arg) {
  writer_t *w = arg;
  char c;
  for (int i = 0; i < ROUNDS; i++) {
    if (read(w->go[0], &c, 1) != 1) break;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL); /* the reader is parked by now */
    w->written_at[i] = wall_ms();
    if (write(w->fd, "x", 1) != 1) break;
  }
  return NULL;
}

typedef struct {
  int rc;
  int fd;
  writer_t *w;
  uint64_t worst;
} io_late_t;

static int read_late_main(void *arg) {
  io_late_t *r = arg;
  loom_stream_t *s;
  if ((r->rc = loom_stream_open_fd(&s, r->fd)) != 0) return 0;
  loom_task_t *t[BURNERS];
  if ((r->rc = spawn_burners(t)) == 0) {
    loom_yield();
    for (int i = 0; i < ROUNDS; i++) {
      char c;
      if (write(r->w->go[1], "g", 1) != 1) r->rc = -1;
      ssize_t n = loom_read(s, &c, 1);
      uint64_t now = wall_ms();
      if (n != 1) {
        r->rc = n < 0 ? (int)n : -1;
        break;
      }
      uint64_t late = now - r->w->written_at[i];
      if (late > r->worst && late < UINT64_MAX / 2) r->worst = late;
    }
    join_burners(t);
  }
  loom_close(s);
  return 0;
}

static void test_read_not_starved_by_yielding_burners(void **state) {
  (void)state;
  int sv[2];
  writer_t w;
  memset(&w, 0, sizeof(w));
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  assert_int_equal(pipe(w.go), 0);
  w.fd = sv[1];
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, writer_thread, &w), 0);
  io_late_t r = {0, sv[0], &w, 0};
  assert_int_equal(loom_run(read_late_main, &r), 0);
  close(w.go[1]);
  pthread_join(th, NULL);
  close(w.go[0]);
  close(sv[1]);
  assert_int_equal(r.rc, 0);
  if (r.worst >= LATE_MAX_MS)
    fprintf(stderr, "socket readiness seen %llu ms late\n", (unsigned long long)r.worst);
  assert_true(r.worst < LATE_MAX_MS);
}

/* ---- scopes outside the task's stack, left open when the task ends ----------- */

static loom_scope_t static_scope;

typedef struct {
  loom_scope_t *scope;
  int enter_rc;
} leave_open_t;

static int leaves_scope_open(void *arg) {
  leave_open_t *l = arg;
  l->enter_rc = loom_timeout_enter(l->scope, 20);
  return 0; /* misuse: no loom_scope_exit */
}

static int return_zero(void *arg) {
  (void)arg;
  return 0;
}

static int sleeper_60(void *arg) {
  int *rc = arg;
  *rc = loom_sleep(60);
  return 0;
}

typedef struct {
  int enter_rc, sleep_rc, other_rc, expired, exit_rc;
} open_scope_t;

/* The task that leaves the scope open ends; another task takes its stack
 * from the pool and sleeps past the scope's deadline. The deadline must
 * have been disarmed: it neither marks the scope nor pokes the new task. */
static int open_scope_main(void *arg) {
  open_scope_t *r = ((void **)arg)[0];
  leave_open_t l = {((void **)arg)[1], 0};
  loom_task_t *a, *b;
  if (loom_spawn(&a, leaves_scope_open, &l) != 0) return -1;
  loom_join(a, NULL);
  r->enter_rc = l.enter_rc;
  if (loom_spawn(&b, sleeper_60, &r->other_rc) != 0) return -1;
  r->sleep_rc = loom_sleep(60);
  loom_join(b, NULL);
  r->expired = loom_scope_expired(l.scope);
  r->exit_rc = loom_scope_exit(l.scope); /* not ours, and closed */
  return 0;
}

static void check_open_scope(loom_scope_t *scope) {
  open_scope_t r = {1, 1, 1, 1, 0};
  void *args[2] = {&r, scope};
  assert_int_equal(loom_run(open_scope_main, args), 0);
  assert_int_equal(r.enter_rc, 0);
  assert_int_equal(r.sleep_rc, 0);
  assert_int_equal(r.other_rc, 0);
  assert_int_equal(r.expired, 0);
  assert_int_equal(r.exit_rc, LOOM_ESCOPE);
}

static void test_static_scope_left_open_is_disarmed(void **state) {
  (void)state;
  check_open_scope(&static_scope);
}

static void test_heap_scope_left_open_is_disarmed(void **state) {
  (void)state;
  loom_scope_t *s = malloc(sizeof(*s));
  assert_non_null(s);
  check_open_scope(s);
  free(s);
}

/* ---- detached handles, stack sizes ------------------------------------------- */

static int wait_cancel(void *arg) {
  int *seen = arg;
  /* Its own handle still works after the spawner detached it. */
  seen[0] = loom_task_name(loom_current()) != NULL;
  seen[1] = loom_sleep(UINT64_MAX);
  return 0;
}

typedef struct {
  int cancel_rc, again_rc, id_zero, name_null, done_rc, seen[2], self_cancel;
} detached_t;

static int detached_main(void *arg) {
  detached_t *r = arg;
  loom_task_t *t;
  if (loom_spawn(&t, wait_cancel, r->seen) != 0) return -1;
  loom_yield(); /* it runs and sleeps */
  if (loom_detach(t) != 0) return -1;
  r->cancel_rc = loom_cancel(t);
  r->name_null = loom_task_name(t) == NULL;
  r->id_zero = loom_task_id(t) == 0;
  r->done_rc = loom_task_done(t);
  r->again_rc = loom_detach(t);
  /* main is detached (loom_run spawns it so): its own handle works. */
  r->self_cancel = loom_task_name(loom_current()) != NULL;
  return 0; /* shutdown cancels the sleeper */
}

static void test_detached_handle_is_stale(void **state) {
  (void)state;
  detached_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(loom_run(detached_main, &r), 0);
  assert_int_equal(r.cancel_rc, LOOM_EBADTASK);
  assert_int_equal(r.again_rc, LOOM_EBADTASK);
  assert_true(r.name_null);
  assert_true(r.id_zero);
  assert_int_equal(r.done_rc, 0);
  assert_true(r.self_cancel);
  assert_true(r.seen[0]);
  assert_int_equal(r.seen[1], UV_ECANCELED); /* by shutdown, not by us */
}

typedef struct {
  int rc[5];
} huge_t;

static int huge_main(void *arg) {
  huge_t *r = arg;
  size_t sizes[5] = {SIZE_MAX, SIZE_MAX - 4096, (size_t)1 << 63,
                     LOOM_MAX_STACK_SIZE + 1, SIZE_MAX - LOOM_MIN_STACK_SIZE};
  for (int i = 0; i < 5; i++) {
    loom_task_opts_t o = {"huge", sizes[i]};
    loom_task_t *t = NULL;
    r->rc[i] = loom_spawn_ex(&t, return_zero, NULL, &o);
    if (r->rc[i] == 0) loom_join(t, NULL);
  }
  return 0;
}

static void test_huge_stack_sizes_are_refused(void **state) {
  (void)state;
  huge_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(loom_run(huge_main, &r), 0);
  for (int i = 0; i < 5; i++) assert_int_equal(r.rc[i], UV_EINVAL);
}

static int deep(int n) {
  volatile char pad[512];
  pad[0] = (char)n;
  if (n > 100000000) return pad[0];
  return deep(n + 1) + pad[0];
}
static int recurse(void *arg) {
  (void)arg;
  return deep(0);
}
static int tiny_stack_main(void *arg) {
  (void)arg;
  loom_task_opts_t o = {"tiny", 1};
  loom_task_t *t;
  if (loom_spawn_ex(&t, recurse, NULL, &o) != 0) return -1;
  return loom_join(t, NULL);
}
static void tiny_stack_child(void *arg) {
  (void)arg;
  loom_run(tiny_stack_main, NULL);
}

static void test_overflow_reports_real_stack_size(void **state) {
  (void)state;
  char out[4096];
  int st = run_in_child(tiny_stack_child, NULL, out, sizeof(out));
  assert_true(WIFSIGNALED(st));
  const char *p = strstr(out, "stack overflow in task 'tiny' (stack size ");
  assert_non_null(p);
  unsigned long long size = strtoull(p + strlen("stack overflow in task 'tiny' (stack size "), NULL, 10);
  /* The minimum stack, less the task record at its top. */
  if (size < LOOM_MIN_STACK_SIZE / 2) fprintf(stderr, "%s", out);
  assert_true(size >= LOOM_MIN_STACK_SIZE / 2);
  assert_true(size < 2 * LOOM_MIN_STACK_SIZE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sleep_not_starved_by_yielding_burners),
      cmocka_unit_test(test_read_not_starved_by_yielding_burners),
      cmocka_unit_test(test_static_scope_left_open_is_disarmed),
      cmocka_unit_test(test_heap_scope_left_open_is_disarmed),
      cmocka_unit_test(test_detached_handle_is_stale),
      cmocka_unit_test(test_huge_stack_sizes_are_refused),
      cmocka_unit_test(test_overflow_reports_real_stack_size),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
