/* Child processes (loom/process.h): exit statuses and signals, a child
 * that ignores SIGTERM, stdio as pipes, /dev/null, a descriptor, env and
 * cwd, communicate with 10 MiB each way on stdout and stderr at once, a
 * storm of 200 children with no descriptor or zombie left, the cancel
 * policies, a process closed early, its owner returning, the runtime
 * ending with children running, errors (a missing program, bad
 * arguments), use after close, process groups and sessions, what a child
 * starts with (signal mask and dispositions, PATH of env, cwd, a file that
 * is not executable), signal watchers (SIGCHLD, SIGTERM) next to
 * children, and, where the children are watched through SIGCHLD instead
 * of pidfds, the exit, storm, signal-watcher and shutdown scenarios
 * again. (Cancellation and timeouts at every suspension, and allocation
 * failures, are in the shared sweeps, tests/test-io-sweep.c and
 * tests/test-faults.c.)
 *
 * The children are process-helper (built next to this program) and
 * /bin/sh. Tasks record what they see in `r`; the asserts run on the main
 * stack after loom_run has returned (tests/helpers.h). */
#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"

#ifndef PROCESS_HELPER
#error "PROCESS_HELPER: the helper program's path (tests/CMakeLists.txt)"
#endif

#define MIB (1024 * 1024)

typedef struct {
  long rc[48];
  int n;
  char text[256];
  int pid;
  uint64_t ms;
} rec_t;
static rec_t r;

static void rec_reset(void) { memset(&r, 0, sizeof(r)); }

/* The descriptors open before a test. libuv opens a process-wide pipe
 * the first time any loop watches a signal (SIGCHLD, for its first child)
 * and keeps it: one child is run first so that it is counted. */
static int warm(void *arg) {
  (void)arg;
  loom_process_t *p;
  int rc = loom_process_spawn(&p, (char *const[]){PROCESS_HELPER, "exit", "0", NULL},
                              NULL);
  if (rc == 0) rc = loom_process_wait(p, NULL);
  loom_process_close(p);
  return rc;
}

static int fds_before(void) {
  assert_loom_ok(loom_run(warm, NULL));
  return open_fd_count();
}

/* No child of ours is left, running or zombie. */
static int no_children(void) {
  int st;
  return waitpid(-1, &st, WNOHANG) == -1 && errno == ECHILD;
}

static loom_process_opts_t piped(int in, int out, int err) {
  loom_process_opts_t o = {0};
  o.stdio[0].kind = in ? LOOM_STDIO_PIPE : LOOM_STDIO_DEVNULL;
  o.stdio[1].kind = out ? LOOM_STDIO_PIPE : LOOM_STDIO_DEVNULL;
  o.stdio[2].kind = err ? LOOM_STDIO_PIPE : LOOM_STDIO_DEVNULL;
  return o;
}

#define HELPER(...) ((char *const[]){PROCESS_HELPER, __VA_ARGS__, NULL})

/* ---- exit status, kill, poll --------------------------------------------- */

static int status_main(void *arg) {
  (void)arg;
  loom_process_t *p;
  int st = 99;
  r.rc[0] = loom_process_spawn(&p, HELPER("exit", "3"), NULL);
  r.rc[1] = loom_process_pid(p) > 0;
  r.rc[2] = loom_process_poll(p, &st); /* EAGAIN: runs */
  r.rc[3] = loom_process_wait(p, &st);
  r.rc[4] = st;
  st = 99;
  r.rc[5] = loom_process_poll(p, &st);
  r.rc[6] = st;
  r.rc[7] = loom_process_wait(p, NULL);      /* again: at once */
  r.rc[8] = loom_process_signal(p, SIGTERM); /* reaped: ESRCH */
  r.rc[9] = loom_process_close(p);
  loom_process_opts_t quiet = piped(0, 0, 0);
  r.rc[10] = loom_process_spawn(&p, HELPER("sleep", "60000"), &quiet);
  r.rc[11] = loom_process_kill(p);
  r.rc[12] = loom_process_wait(p, &st);
  r.rc[13] = st;
  r.rc[14] = loom_process_close(p);
  return 0;
}

static void test_process_exit_status_and_kill(void **state) {
  (void)state;
  rec_reset();
  assert_loom_ok(loom_run(status_main, NULL));
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_EQ(1), RC_ERR(UV_EAGAIN), RC_OK}, /* 0 */
      {RC_EQ(3), RC_OK, RC_EQ(3), RC_OK},          /* 4 */
      {RC_ERR(UV_ESRCH), RC_OK, RC_OK, RC_OK},     /* 8 */
      {RC_OK, RC_EQ(-SIGKILL), RC_OK},             /* 12 */
  };
  assert_rcs(r.rc, 0, want);
  assert_true(no_children());
}

/* ---- a child that ignores SIGTERM ------------------------------------------ */

static int ignore_term_main(void *arg) {
  (void)arg;
  loom_process_t *p;
  loom_process_opts_t o = piped(0, 1, 0);
  r.rc[0] = loom_process_spawn(&p, HELPER("ignore-term"), &o);
  char line[64];
  r.rc[1] = loom_read_line(loom_process_stream(p, 1), line, sizeof line);
  r.rc[2] = strcmp(line, "ready\n");
  r.rc[3] = loom_process_signal(p, SIGTERM);
  loom_scope_t s;
  loom_timeout_enter(&s, 100);
  int st = 0;
  r.rc[4] = loom_process_wait(p, &st); /* still running */
  r.rc[5] = loom_scope_exit(&s);
  r.rc[6] = loom_process_poll(p, &st);
  r.rc[7] = loom_process_kill(p);
  r.rc[8] = loom_process_wait(p, &st);
  r.rc[9] = st;
  r.rc[10] = loom_process_close(p);
  return 0;
}

static void test_process_ignores_sigterm(void **state) {
  (void)state;
  rec_reset();
  assert_loom_ok(loom_run(ignore_term_main, NULL));
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_EQ(6), RC_EQ(0), RC_OK},                                     /* 0 */
      {RC_ERR(UV_ETIMEDOUT), RC_ERR(UV_ETIMEDOUT), RC_ERR(UV_EAGAIN), RC_OK}, /* 4 */
      {RC_OK, RC_EQ(-SIGKILL), RC_OK},                                        /* 8 */
  };
  assert_rcs(r.rc, 0, want);
  assert_true(no_children());
}

/* TERMINATE: SIGTERM (ignored), then SIGKILL kill_after_ms later. */
static int terminate_owner(void *arg) {
  loom_process_t **pp = arg;
  loom_process_opts_t o = piped(0, 1, 0);
  o.on_cancel = LOOM_PROCESS_TERMINATE;
  o.kill_after_ms = 100;
  r.rc[0] = loom_process_spawn(pp, HELPER("ignore-term"), &o);
  char line[64];
  r.rc[1] = loom_read_line(loom_process_stream(*pp, 1), line, sizeof line);
  r.rc[2] = loom_process_wait(*pp, NULL); /* cancelled here */
  uint64_t t0 = loom_now();
  loom_scope_t sh;
  loom_shield_enter(&sh);
  int st = 0;
  r.rc[3] = loom_process_wait(*pp, &st);
  r.rc[4] = st;
  loom_scope_exit(&sh);
  r.ms = loom_now() - t0;
  loom_process_close(*pp);
  return 0;
}

static int terminate_main(void *arg) {
  (void)arg;
  loom_process_t *p = NULL;
  loom_task_t *t;
  loom_spawn(&t, terminate_owner, &p);
  while (r.rc[1] == 0) loom_sleep(1);
  loom_sleep(5);
  loom_cancel(t);
  int st;
  return loom_join(t, &st);
}

static void test_process_terminate_policy(void **state) {
  (void)state;
  rec_reset();
  assert_loom_ok(loom_run(terminate_main, NULL));
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_EQ(6), RC_ERR(UV_ECANCELED), RC_OK}, /* 0 */
      {RC_EQ(-SIGKILL)},                              /* 4 */
  };
  assert_rcs(r.rc, 0, want);
  assert_true(r.ms >= 90 && r.ms < 5000);
  assert_true(no_children());
}

/* TERMINATE with a delay too large to add to the clock: SIGTERM, and no
 * SIGKILL ever (the deadline used to wrap around and kill at once). */
static int never_owner(void *arg) {
  loom_process_t **pp = arg;
  loom_process_opts_t o = piped(0, 1, 0);
  o.on_cancel = LOOM_PROCESS_TERMINATE;
  o.kill_after_ms = UINT64_MAX;
  r.rc[0] = loom_process_spawn(pp, HELPER("ignore-term"), &o);
  char line[64];
  r.rc[1] = loom_read_line(loom_process_stream(*pp, 1), line, sizeof line);
  r.rc[2] = loom_process_wait(*pp, NULL); /* cancelled here: SIGTERM */
  loom_scope_t sh, to;
  loom_shield_enter(&sh);
  loom_timeout_enter(&to, 300);
  r.rc[3] = loom_process_wait(*pp, NULL); /* it ignores SIGTERM: runs on */
  loom_scope_exit(&to);
  r.rc[4] = loom_process_kill(*pp);
  int st = 0;
  r.rc[5] = loom_process_wait(*pp, &st);
  r.rc[6] = st;
  loom_scope_exit(&sh);
  loom_process_close(*pp);
  return 0;
}

static int never_main(void *arg) {
  (void)arg;
  loom_process_t *p = NULL;
  loom_task_t *t;
  loom_spawn(&t, never_owner, &p);
  while (r.rc[1] == 0) loom_sleep(1);
  loom_sleep(5);
  loom_cancel(t);
  int st;
  return loom_join(t, &st);
}

static void test_process_terminate_huge_delay(void **state) {
  (void)state;
  rec_reset();
  assert_loom_ok(loom_run(never_main, NULL));
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_EQ(6), RC_ERR(UV_ECANCELED), RC_ERR(UV_ETIMEDOUT)}, /* 0 */
      {RC_OK, RC_OK, RC_EQ(-SIGKILL)},                               /* 4 */
  };
  assert_rcs(r.rc, 0, want);
  assert_true(no_children());
}

/* ---- stdio: pipes, /dev/null, a descriptor, env, cwd ---------------------- */

static int stdio_main(void *arg) {
  (void)arg;
  /* cat with stdin from /dev/null: EOF at once, nothing out. */
  loom_process_t *p;
  loom_process_opts_t o = piped(0, 1, 0);
  r.rc[0] = loom_process_spawn(&p, HELPER("cat"), &o);
  loom_communicate_t c = {0};
  r.rc[1] = loom_process_communicate(p, &c);
  r.rc[2] = (long)c.out_len;
  r.rc[3] = c.status;
  r.rc[4] = c.err == NULL;
  free(c.out);
  loom_process_close(p);
  /* A pipe each way through cat. */
  o = piped(1, 1, 0);
  r.rc[5] = loom_process_spawn(&p, HELPER("cat"), &o);
  loom_stream_t *in = loom_process_stream(p, 0), *out = loom_process_stream(p, 1);
  r.rc[6] = loom_process_stream(p, 2) == NULL;
  r.rc[7] = loom_write(in, "one\ntwo\n", 8);
  char line[64];
  r.rc[8] = loom_read_line(out, line, sizeof line);
  r.rc[9] = loom_close(in); /* EOF for cat */
  r.rc[10] = loom_process_stream(p, 0) == NULL;
  r.rc[11] = loom_read_line(out, line, sizeof line);
  r.rc[12] = loom_read_line(out, line, sizeof line); /* EOF */
  int st = -1;
  r.rc[13] = loom_process_wait(p, &st);
  r.rc[14] = st;
  loom_process_close(p);
  /* stdout to a descriptor of ours; env and cwd. */
  int fds[2];
  r.rc[15] = pipe(fds);
  char *env[] = {"LOOM_TEST_VAR=hello", NULL};
  o = piped(0, 0, 0);
  o.stdio[1] = (loom_stdio_t){.kind = LOOM_STDIO_FD, .fd = fds[1]};
  o.env = env;
  o.cwd = "/";
  r.rc[16] = loom_process_spawn(&p, HELPER("env", "LOOM_TEST_VAR"), &o);
  close(fds[1]);
  r.rc[17] = loom_process_wait(p, &st);
  loom_process_close(p);
  ssize_t n = read(fds[0], r.text, sizeof r.text - 1);
  if (n > 0) r.text[n] = 0;
  close(fds[0]);
  /* file: the program apart from argv[0]. */
  o = piped(0, 1, 0);
  o.file = PROCESS_HELPER;
  r.rc[18] = loom_process_spawn(&p, (char *const[]){"renamed", "exit", "7", NULL}, &o);
  r.rc[19] = loom_process_wait(p, &st);
  r.rc[20] = st;
  loom_process_close(p);
  return 0;
}

static void test_process_stdio(void **state) {
  (void)state;
  rec_reset();
  int fds0 = fds_before();
  assert_loom_ok(loom_run(stdio_main, NULL));
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_OK, RC_EQ(0), RC_EQ(0)},    /* 0 */
      {RC_EQ(1), RC_OK, RC_EQ(1), RC_OK},    /* 4 */
      {RC_EQ(4), RC_OK, RC_EQ(1), RC_EQ(4)}, /* 8 */
      {RC_EQ(0), RC_OK, RC_EQ(0), RC_EQ(0)}, /* 12 */
      {RC_OK, RC_OK, RC_OK, RC_OK},          /* 16 */
      {RC_EQ(7)},                            /* 20 */
  };
  assert_rcs(r.rc, 0, want);
  assert_string_equal(r.text, "hello /\n");
  assert_int_equal(open_fd_count(), fds0);
  assert_true(no_children());
}

/* ---- nothing of the parent's leaks into a child ------------------------------- */

/* A child sees only its three streams and what the parent holds without
 * close-on-exec (what the test program inherited itself): not loom's
 * loop descriptors, nor another child's pipes. */
static int inherit_main(void *arg) {
  (void)arg;
  loom_process_t *other, *p;
  loom_process_opts_t o = piped(1, 1, 1);
  r.rc[0] = loom_process_spawn(&other, HELPER("sleep", "60000"), &o);
  r.rc[1] = loom_process_spawn(&p, HELPER("fds"), &o);
  loom_communicate_t c = {0};
  r.rc[2] = loom_process_communicate(p, &c);
  r.rc[3] = 0; /* descriptors the child should not have */
  for (char *line = c.out; line && *line;) {
    int fd = atoi(line);
    int flags = fcntl(fd, F_GETFD);
    if (flags == -1 || (flags & FD_CLOEXEC)) r.rc[3]++;
    char *nl = strchr(line, '\n');
    line = nl ? nl + 1 : line + strlen(line);
  }
  free(c.out);
  free(c.err);
  loom_process_close(p);
  loom_process_close(other);
  return 0;
}

static void test_process_no_fd_inherited(void **state) {
  (void)state;
  rec_reset();
  assert_loom_ok(loom_run(inherit_main, NULL));
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_OK, RC_OK, RC_EQ(0)}, /* 0 */
  };
  assert_rcs(r.rc, 0, want);
  assert_true(no_children());
}

/* ---- communicate: 10 MiB out and err at once, 10 MiB in ------------------- */

static int flood_main(void *arg) {
  (void)arg;
  loom_process_t *p;
  loom_process_opts_t o = piped(1, 1, 1);
  char nbuf[32];
  snprintf(nbuf, sizeof nbuf, "%d", 10 * MIB);
  r.rc[0] = loom_process_spawn(&p, HELPER("flood", nbuf, nbuf), &o);
  char *input = malloc(10 * MIB);
  memset(input, 'i', 10 * MIB);
  loom_communicate_t c = {.input = input, .input_len = 10 * MIB};
  r.rc[1] = loom_process_communicate(p, &c);
  free(input);
  r.rc[2] = (long)c.out_len;
  r.rc[3] = (long)c.err_len;
  r.rc[4] = c.status;
  r.rc[5] = c.out && c.err && c.out[0] == 'x' && c.err[c.err_len - 1] == 'x';
  free(c.out);
  free(c.err);
  r.rc[6] = loom_process_stream(p, 1) == NULL; /* communicate closed it */
  loom_process_close(p);
  /* max_output: UV_ENOBUFS. */
  r.rc[7] = loom_process_spawn(&p, HELPER("flood", "100000", "0"), &o);
  loom_communicate_t c2 = {.max_output = 1000};
  r.rc[8] = loom_process_communicate(p, &c2);
  r.rc[9] = c2.out == NULL && c2.err == NULL;
  loom_process_close(p);
  return 0;
}

static void test_process_communicate_10mib(void **state) {
  (void)state;
  rec_reset();
  assert_loom_ok(loom_run(flood_main, NULL));
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_OK, RC_EQ(10 * MIB), RC_EQ(10 * MIB)}, /* 0 */
      {RC_EQ(0), RC_EQ(1), RC_EQ(1), RC_OK},            /* 4: the child read all 10 MiB */
      {RC_ERR(UV_ENOBUFS), RC_EQ(1)},                   /* 8 */
  };
  assert_rcs(r.rc, 0, want);
  assert_true(no_children());
}

/* ---- a storm of 200 children ------------------------------------------------ */

#define STORM 200

static int storm_child(void *arg) {
  long i = (long)(intptr_t)arg;
  loom_process_t *p;
  loom_process_opts_t o = piped(1, 1, 1);
  char code[8];
  snprintf(code, sizeof code, "%ld", i % 7);
  int rc = loom_process_spawn(&p, HELPER("exit", code), &o);
  if (rc) return rc;
  if (i % 3 == 0) {
    /* Closed at once: killed (or already gone), reaped all the same. */
    return loom_process_close(p);
  }
  loom_communicate_t c = {.input = "x", .input_len = 1};
  rc = loom_process_communicate(p, &c);
  free(c.out);
  free(c.err);
  if (rc == 0 && c.status != i % 7) rc = -1000;
  loom_process_close(p);
  return rc;
}

static int storm_main(void *arg) {
  (void)arg;
  loom_task_t *t[STORM];
  int st[STORM];
  for (long i = 0; i < STORM; i++) loom_spawn(&t[i], storm_child, (void *)(intptr_t)i);
  r.rc[0] = loom_gather(t, STORM, st, 0);
  return 0;
}

static void test_process_storm(void **state) {
  (void)state;
  rec_reset();
  int fds0 = fds_before();
  assert_loom_ok(loom_run(storm_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_int_equal(open_fd_count(), fds0);
  assert_true(no_children());
}

/* ---- the cancel policies ------------------------------------------------- */

typedef struct {
  loom_process_t *p;
  int started;
  int rc;     /* what the interrupted call returned */
  int after;  /* the child's status, read in a shield */
  int polled; /* loom_process_poll just after the interruption */
} cut_t;

/* LEAVE: cancellation leaves the child running; it is still reaped. */
static int leave_owner(void *arg) {
  cut_t *c = arg;
  loom_process_opts_t o = piped(0, 0, 0);
  o.on_cancel = LOOM_PROCESS_LEAVE;
  loom_process_spawn(&c->p, HELPER("sleep", "60000"), &o);
  c->started = 1;
  c->rc = loom_process_wait(c->p, NULL);
  c->polled = loom_process_poll(c->p, NULL);
  loom_process_kill(c->p);
  loom_scope_t sh;
  loom_shield_enter(&sh);
  loom_process_wait(c->p, &c->after);
  loom_scope_exit(&sh);
  loom_process_close(c->p);
  return 0;
}

static int leave_main(void *arg) {
  loom_task_t *t;
  cut_t *c = arg;
  loom_spawn(&t, leave_owner, c);
  while (!c->started) loom_sleep(1);
  loom_cancel(t);
  return loom_join(t, NULL);
}

static void test_process_leave_policy(void **state) {
  (void)state;
  cut_t c;
  memset(&c, 0, sizeof c);
  assert_loom_ok(loom_run(leave_main, &c));
  assert_loom_err(c.rc, UV_ECANCELED);
  assert_loom_err(c.polled, UV_EAGAIN);
  assert_int_equal(c.after, -SIGKILL);
  assert_true(no_children());
}

/* ---- closed early, owner returns, the runtime ends ---------------------- */

static int returns_owner(void *arg) {
  (void)arg;
  loom_process_t *p;
  loom_process_opts_t o = piped(1, 1, 1);
  r.rc[0] = loom_process_spawn(&p, HELPER("sleep", "60000"), &o);
  r.pid = loom_process_pid(p);
  return 0; /* p still open: killed and reaped */
}

static int returns_main(void *arg) {
  (void)arg;
  loom_task_t *t;
  loom_spawn(&t, returns_owner, NULL);
  loom_join(t, NULL);
  loom_sleep(1);
  return 0;
}

static void test_process_owner_returns(void **state) {
  (void)state;
  rec_reset();
  int fds0 = fds_before();
  uint64_t t0 = wall_ms();
  assert_loom_ok(loom_run(returns_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_true(r.pid > 0);
  assert_true(wall_ms() - t0 < 30000);
  assert_int_equal(open_fd_count(), fds0);
  assert_true(no_children());
}

/* main returns with a LEAVE child running and nothing to wait for it:
 * shutdown waits the grace period, then kills and reaps it. */
static int shutdown_main(void *arg) {
  (void)arg;
  loom_process_t *p;
  loom_process_opts_t o = piped(0, 0, 0);
  o.on_cancel = LOOM_PROCESS_LEAVE;
  r.rc[0] = loom_process_spawn(&p, HELPER("sleep", "60000"), &o);
  loom_process_close(p); /* left running */
  r.rc[1] = loom_process_spawn(&p, HELPER("sleep", "20"), &o);
  loom_process_close(p); /* exits during the grace period */
  return 0;
}

static void test_process_runtime_ends_with_children(void **state) {
  (void)state;
  rec_reset();
  uint64_t t0 = wall_ms();
  assert_loom_ok(loom_run(shutdown_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  uint64_t ms = wall_ms() - t0;
  assert_true(ms >= LOOM_SHUTDOWN_GRACE_MS - 50 && ms < 30000);
  assert_true(no_children());
}

/* ---- errors ------------------------------------------------------------- */

static int errors_main(void *arg) {
  (void)arg;
  loom_process_t *p = (loom_process_t *)1;
  r.rc[0] = loom_process_spawn(&p, (char *const[]){"/nonexistent/program", NULL}, NULL);
  r.rc[1] = p == NULL;
  loom_process_opts_t o = piped(1, 1, 1);
  r.rc[2] = loom_process_spawn(&p, (char *const[]){"no-such-program-loom", NULL}, &o);
  r.rc[3] = loom_process_spawn(&p, NULL, NULL);
  r.rc[4] = loom_process_spawn(&p, (char *const[]){NULL}, NULL);
  r.rc[5] = loom_process_spawn(NULL, HELPER("exit", "0"), NULL);
  o = piped(0, 0, 0);
  o.stdio[1] = (loom_stdio_t){.kind = LOOM_STDIO_FD, .fd = 9999};
  r.rc[6] = loom_process_spawn(&p, HELPER("exit", "0"), &o);
  o.stdio[1] = (loom_stdio_t){.kind = LOOM_STDIO_FD, .fd = -1};
  r.rc[7] = loom_process_spawn(&p, HELPER("exit", "0"), &o);
  o = piped(0, 0, 0);
  o.stdio[2].kind = 42;
  r.rc[8] = loom_process_spawn(&p, HELPER("exit", "0"), &o);
  o = piped(0, 0, 0);
  o.flags = 0x80;
  r.rc[9] = loom_process_spawn(&p, HELPER("exit", "0"), &o);
  o = piped(0, 0, 0);
  o.on_cancel = 7;
  r.rc[10] = loom_process_spawn(&p, HELPER("exit", "0"), &o);
  o = piped(0, 0, 0);
  o.cwd = "/nonexistent/dir";
  r.rc[11] = loom_process_spawn(&p, HELPER("exit", "0"), &o);
  r.rc[12] = 1;
  /* NULL handles. */
  r.rc[13] = loom_process_wait(NULL, NULL);
  r.rc[14] = loom_process_poll(NULL, NULL);
  r.rc[15] = loom_process_signal(NULL, SIGTERM);
  r.rc[16] = loom_process_close(NULL);
  r.rc[17] = loom_process_pid(NULL);
  r.rc[18] = loom_process_communicate(NULL, NULL);
  r.rc[19] = loom_process_stream(NULL, 1) == NULL;
  /* A bad signal number; input without a stdin pipe. */
  o = piped(0, 1, 0);
  loom_process_spawn(&p, HELPER("exit", "0"), &o);
  r.rc[20] = loom_process_signal(p, -1);
  r.rc[21] = loom_process_signal(p, 1000);
  loom_communicate_t c = {.input = "x", .input_len = 1};
  r.rc[22] = loom_process_communicate(p, &c);
  r.rc[23] = loom_process_communicate(p, NULL);
  r.rc[24] = loom_process_stream(p, 3) == NULL;
  loom_process_close(p);
  return 0;
}

static void test_process_errors(void **state) {
  (void)state;
  rec_reset();
  int fds0 = fds_before();
  assert_loom_ok(loom_run(errors_main, NULL));
  assert_int_equal(open_fd_count(), fds0);
  static const rc_want_t want[][RC_ROW] = {
      {RC_ERR(UV_ENOENT), RC_EQ(1), RC_ERR(UV_ENOENT), RC_ERR(UV_EINVAL)},        /* 0 */
      {RC_ERR(UV_EINVAL), RC_ERR(UV_EINVAL), RC_ERR(UV_EBADF), RC_ERR(UV_EBADF)}, /* 4 */
      {RC_ERR(UV_EINVAL), RC_ERR(UV_EINVAL), RC_ERR(UV_EINVAL),
       RC_ERR(UV_ENOENT)},                                                 /* 8 */
      {RC_EQ(1), RC_ERR(UV_EINVAL), RC_ERR(UV_EINVAL), RC_ERR(UV_EINVAL)}, /* 12 */
      {RC_ERR(UV_EINVAL), RC_ERR(UV_EINVAL), RC_ERR(UV_EINVAL), RC_EQ(1)}, /* 16 */
      {RC_ERR(UV_EINVAL), RC_ERR(UV_EINVAL), RC_ERR(UV_EINVAL),
       RC_ERR(UV_EINVAL)}, /* 20 */
      {RC_EQ(1)},          /* 24 */
  };
  assert_rcs(r.rc, 0, want);
  assert_true(no_children());
}

static void test_process_outside_task(void **state) {
  (void)state;
  loom_process_t *p;
  assert_loom_err(loom_process_spawn(&p, HELPER("exit", "0"), NULL), LOOM_ENOTASK);
  assert_loom_err(loom_process_wait((loom_process_t *)(uintptr_t)0x100000001, NULL),
                  UV_EBADF);
}

/* A cancelled task starts nothing. */
static int cancelled_main(void *arg) {
  (void)arg;
  loom_cancel(loom_current());
  loom_process_t *p;
  r.rc[0] = loom_process_spawn(&p, HELPER("exit", "0"), NULL);
  return 0;
}

static void test_process_spawn_when_cancelled(void **state) {
  (void)state;
  rec_reset();
  loom_run(cancelled_main, NULL);
  assert_loom_err(r.rc[0], UV_ECANCELED);
  assert_true(no_children());
}

/* ---- use after close ------------------------------------------------------ */

static int waiter_task(void *arg) {
  r.rc[20] = loom_process_wait(arg, NULL);
  return 0;
}

static int after_close_main(void *arg) {
  (void)arg;
  loom_process_t *p;
  loom_process_opts_t o = piped(1, 1, 0);
  loom_process_spawn(&p, HELPER("sleep", "60000"), &o);
  loom_stream_t *out = loom_process_stream(p, 1);
  loom_task_t *t;
  loom_spawn(&t, waiter_task, p);
  loom_yield();
  r.rc[0] = loom_process_close(p);
  loom_join(t, NULL);
  r.rc[1] = loom_process_wait(p, NULL);
  r.rc[2] = loom_process_poll(p, NULL);
  r.rc[3] = loom_process_signal(p, SIGTERM);
  r.rc[4] = loom_process_kill(p);
  r.rc[5] = loom_process_pid(p);
  r.rc[6] = loom_process_stream(p, 1) == NULL;
  r.rc[7] = loom_process_close(p);
  loom_communicate_t c = {0};
  r.rc[8] = loom_process_communicate(p, &c);
  char buf[8];
  r.rc[9] = loom_read(out, buf, sizeof buf); /* its pipe was closed too */
  return 0;
}

static void test_process_use_after_close(void **state) {
  (void)state;
  rec_reset();
  assert_loom_ok(loom_run(after_close_main, NULL));
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_ERR(UV_EBADF), RC_ERR(UV_EBADF), RC_ERR(UV_EBADF)},    /* 0 */
      {RC_ERR(UV_EBADF), RC_ERR(UV_EBADF), RC_EQ(1), RC_ERR(UV_EBADF)}, /* 4 */
      {RC_ERR(UV_EBADF), RC_ERR(UV_EBADF)},                             /* 8 */
  };
  assert_rcs(r.rc, 0, want);
  assert_loom_err(r.rc[20], UV_EBADF);
  assert_true(no_children());
}

/* ---- process groups ------------------------------------------------------- */

/* A shell whose own child holds stdout: killing the group ends both, so
 * stdout reaches EOF. */
static int group_main(void *arg) {
  (void)arg;
  loom_process_t *p;
  loom_process_opts_t o = piped(0, 1, 0);
  o.flags = LOOM_PROCESS_GROUP;
  char script[512];
  snprintf(script, sizeof script, "%s sleep 60000 & echo started; wait", PROCESS_HELPER);
  r.rc[0] = loom_process_spawn(&p, (char *const[]){"/bin/sh", "-c", script, NULL}, &o);
  loom_stream_t *out = loom_process_stream(p, 1);
  char line[64];
  r.rc[1] = loom_read_line(out, line, sizeof line);
  r.rc[2] = loom_process_kill(p);
  loom_scope_t s;
  loom_timeout_enter(&s, 10000);
  char *all = NULL;
  size_t n = 0;
  r.rc[3] = loom_read_all(out, &all, &n, 1024); /* EOF: the group died */
  free(all);
  int st = 0;
  r.rc[4] = loom_process_wait(p, &st);
  r.rc[5] = st;
  loom_scope_exit(&s);
  loom_process_close(p);
  /* DETACHED: a session (and so a group) of its own; without: ours. */
  o = piped(0, 0, 0);
  o.flags = LOOM_PROCESS_DETACHED;
  r.rc[6] = loom_process_spawn(&p, HELPER("sleep", "60000"), &o);
  int pid = loom_process_pid(p);
  r.rc[7] = getsid(pid) == pid && getpgid(pid) == pid;
  loom_process_close(p);
  o.flags = 0;
  r.rc[8] = loom_process_spawn(&p, HELPER("sleep", "60000"), &o);
  pid = loom_process_pid(p);
  r.rc[9] = getsid(pid) == getsid(0) && getpgid(pid) == getpgid(0);
  loom_process_close(p);
  /* GROUP alone: a group of its own in our session; both: a session. */
  o.flags = LOOM_PROCESS_GROUP;
  r.rc[10] = loom_process_spawn(&p, HELPER("sleep", "60000"), &o);
  pid = loom_process_pid(p);
  r.rc[11] = getsid(pid) == getsid(0) && getpgid(pid) == pid;
  loom_process_close(p);
  o.flags = LOOM_PROCESS_GROUP | LOOM_PROCESS_DETACHED;
  r.rc[12] = loom_process_spawn(&p, HELPER("sleep", "60000"), &o);
  pid = loom_process_pid(p);
  r.rc[13] = getsid(pid) == pid && getpgid(pid) == pid;
  loom_process_close(p);
  return 0;
}

static void test_process_group(void **state) {
  (void)state;
  rec_reset();
  assert_loom_ok(loom_run(group_main, NULL));
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_EQ(8), RC_OK, RC_OK},           /* 0 */
      {RC_OK, RC_EQ(-SIGKILL), RC_OK, RC_EQ(1)}, /* 4 */
      {RC_OK, RC_EQ(1), RC_OK, RC_EQ(1)},        /* 8 */
      {RC_OK, RC_EQ(1)},                         /* 12 */
  };
  assert_rcs(r.rc, 0, want);
  assert_true(no_children());
}

/* ---- what the child starts with: signals, PATH, cwd ----------------------- */

/* Signals 1-31 of a "SigXxx:\thex" line of /proc/PID/status (glibc's
 * posix_spawn leaves its internal signals 32 and 33 ignored). */
static unsigned long sig_bits(const char *text, const char *name) {
  const char *at = text ? strstr(text, name) : NULL;
  if (!at) return 0xdead;
  unsigned long long v = strtoull(at + strlen(name), NULL, 16);
  return (unsigned long)(v & 0x7fffffffu);
}

static int start_main(void *arg) {
  const char *dir = arg;
  loom_process_t *p;
  loom_process_opts_t o = piped(0, 1, 0);
  /* loom ignores SIGPIPE; the task blocks SIGUSR2 and SIGINT is ignored:
   * the program starts with neither (as with libuv, signals 1-31). */
  struct sigaction ign = {.sa_handler = SIG_IGN}, old_int;
  sigaction(SIGINT, &ign, &old_int);
  sigset_t usr2, old_mask;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &usr2, &old_mask);
  r.rc[0] = loom_process_spawn(
      &p, (char *const[]){"/bin/sh", "-c", "exec cat /proc/self/status", NULL}, &o);
  pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
  sigaction(SIGINT, &old_int, NULL);
  loom_communicate_t c = {0};
  r.rc[1] = loom_process_communicate(p, &c);
  r.rc[2] = (long)sig_bits(c.out, "SigIgn:");
  r.rc[3] = (long)sig_bits(c.out, "SigBlk:");
  free(c.out);
  loom_process_close(p);
  /* A name is looked up in the child's PATH when env is given. */
  char path_env[600];
  snprintf(path_env, sizeof path_env, "PATH=/nonexistent::%s", dir);
  char *env[] = {path_env, NULL};
  o = piped(0, 0, 0);
  o.env = env;
  r.rc[4] = loom_process_spawn(&p, (char *const[]){"process-helper", "exit", "4", NULL},
                               &o);
  int st = -1;
  r.rc[5] = loom_process_wait(p, &st);
  r.rc[6] = st;
  loom_process_close(p);
  char *no_path[] = {"PATH=/nonexistent", NULL};
  o.env = no_path;
  r.rc[7] = loom_process_spawn(&p, (char *const[]){"process-helper", NULL}, &o);
  /* A file that is not executable, by name in PATH and by path. */
  char tmpl[] = "/tmp/loom-test-process-XXXXXX";
  char file[64];
  if (mkdtemp(tmpl)) {
    snprintf(file, sizeof file, "%s/noexec", tmpl);
    int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd >= 0) close(fd);
    char tmp_path[64];
    snprintf(tmp_path, sizeof tmp_path, "PATH=%s", tmpl);
    char *env2[] = {tmp_path, NULL};
    o.env = env2;
    r.rc[8] = loom_process_spawn(&p, (char *const[]){"noexec", NULL}, &o);
    o.env = NULL;
    r.rc[9] = loom_process_spawn(&p, (char *const[]){file, NULL}, &o);
    r.rc[10] = loom_process_spawn(&p, (char *const[]){tmpl, NULL}, &o); /* a directory */
    unlink(file);
    rmdir(tmpl);
  }
  /* A relative path is relative to cwd. */
  o = piped(0, 0, 0);
  o.cwd = dir;
  r.rc[11] = loom_process_spawn(
      &p, (char *const[]){"./process-helper", "exit", "5", NULL}, &o);
  r.rc[12] = loom_process_wait(p, &st);
  r.rc[13] = st;
  loom_process_close(p);
  o.cwd = PROCESS_HELPER; /* not a directory */
  r.rc[14] = loom_process_spawn(&p, HELPER("exit", "0"), &o);
  return 0;
}

static void test_process_child_start(void **state) {
  (void)state;
  rec_reset();
  char dir[512];
  snprintf(dir, sizeof dir, "%s", PROCESS_HELPER);
  char *slash = strrchr(dir, '/');
  assert_non_null(slash);
  *slash = 0;
  int fds0 = fds_before();
  assert_loom_ok(loom_run(start_main, dir));
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_OK, RC_EQ(0), RC_EQ(0)},                               /* 0 */
      {RC_OK, RC_OK, RC_EQ(4), RC_ERR(UV_ENOENT)},                      /* 4 */
      {RC_ERR(UV_EACCES), RC_ERR(UV_EACCES), RC_ERR(UV_EACCES), RC_OK}, /* 8 */
      {RC_OK, RC_EQ(5), RC_ERR(UV_ENOTDIR)},                            /* 12 */
  };
  assert_rcs(r.rc, 0, want);
  assert_int_equal(open_fd_count(), fds0);
  assert_true(no_children());
}

/* ---- signal watchers next to children ----------------------------------- */

static int signals_main(void *arg) {
  (void)arg;
  loom_signal_t *chld, *term;
  r.rc[0] = loom_signal_open(&chld, SIGCHLD);
  r.rc[1] = loom_signal_open(&term, SIGTERM);
  loom_process_t *p;
  r.rc[2] = loom_process_spawn(&p, HELPER("exit", "5"), NULL);
  int st = 0;
  r.rc[3] = loom_process_wait(p, &st);
  r.rc[4] = st;
  loom_process_close(p);
  r.rc[5] = loom_signal_wait(chld); /* the watcher saw it too */
  raise(SIGTERM);
  r.rc[6] = loom_signal_wait(term);
  r.rc[7] = loom_signal_close(chld);
  /* libuv still reaps after the SIGCHLD watcher is gone. */
  r.rc[8] = loom_process_spawn(&p, HELPER("exit", "6"), NULL);
  r.rc[9] = loom_process_wait(p, &st);
  r.rc[10] = st;
  loom_process_close(p);
  r.rc[11] = loom_signal_close(term);
  return 0;
}

static void test_process_signal_watchers(void **state) {
  (void)state;
  rec_reset();
  assert_loom_ok(loom_run(signals_main, NULL));
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_OK, RC_OK, RC_OK},                      /* 0 */
      {RC_EQ(5), RC_EQ(SIGCHLD), RC_EQ(SIGTERM), RC_OK}, /* 4 */
      {RC_OK, RC_OK, RC_EQ(6), RC_OK},                   /* 8 */
  };
  assert_rcs(r.rc, 0, want);
  assert_true(no_children());
}

/* ---- without a pidfd: the SIGCHLD watchers -------------------------------- */

/* Where pidfd_open fails (Linux < 5.3, a seccomp filter), each child is
 * watched through SIGCHLD; loom__process_no_pidfd takes that path here. */
extern int loom__process_no_pidfd;

static int no_pidfd_setup(void **state) {
  (void)state;
  loom__process_no_pidfd = 1;
  return 0;
}

static int no_pidfd_teardown(void **state) {
  (void)state;
  loom__process_no_pidfd = 0;
  return 0;
}

/* The SIGCHLD watcher starts and stops SIGCHLD as every loom watcher does
 * (signal.c's registry): when the last child is reaped and it stops, the
 * disposition the host had before comes back, instead of the SIG_DFL
 * libuv leaves; and a loom_signal watcher of SIGCHLD opened while it runs
 * and closed after it gives the host's handler back too. */
static volatile sig_atomic_t host_chld;
static void on_host_chld(int sig) {
  (void)sig;
  host_chld++;
}

static int chld_give_back_main(void *arg) {
  int with_watcher = *(int *)arg;
  loom_process_t *p;
  loom_signal_t *w = NULL;
  int st = 0;
  r.rc[0] = loom_process_spawn(&p, HELPER("sleep", "20"), NULL);
  /* Opened while the SIGCHLD watcher holds the signal. */
  if (with_watcher) r.rc[1] = loom_signal_open(&w, SIGCHLD);
  r.rc[2] = loom_process_wait(p, &st);
  r.rc[3] = st;
  loom_process_close(p);
  if (w) {
    loom_sleep(1); /* the watcher's close ran: only w holds SIGCHLD */
    r.rc[4] = loom_signal_close(w);
  }
  return 0;
}

static void test_process_sigchld_given_back(void **state) {
  (void)state;
  struct sigaction sa = {.sa_handler = on_host_chld}, old, after;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGCHLD, &sa, &old);
  for (int with_watcher = 0; with_watcher <= 1; with_watcher++) {
    rec_reset();
    assert_loom_ok(loom_run(chld_give_back_main, &with_watcher));
    static const rc_want_t want[][RC_ROW] = {
        {RC_OK, RC_OK, RC_OK, RC_EQ(0)}, /* 0 */
        {RC_OK},                         /* 4 */
    };
    assert_rcs(r.rc, 0, want);
    sigaction(SIGCHLD, NULL, &after);
    if (after.sa_handler != on_host_chld)
      fail_msg("SIGCHLD not given back (%s): %s",
               with_watcher ? "with a watcher" : "alone",
               after.sa_handler == SIG_DFL ? "SIG_DFL" : "another handler");
    sig_atomic_t n = host_chld;
    raise(SIGCHLD);
    assert_int_equal(host_chld, n + 1);
  }
  sigaction(SIGCHLD, &old, NULL);
  assert_true(no_children());
}

static void test_process_without_pidfd(void **state) {
  test_process_exit_status_and_kill(state);
  test_process_storm(state);
  test_process_signal_watchers(state);
  test_process_runtime_ends_with_children(state);
  test_process_sigchld_given_back(state);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_process_exit_status_and_kill),
      cmocka_unit_test(test_process_ignores_sigterm),
      cmocka_unit_test(test_process_terminate_policy),
      cmocka_unit_test(test_process_terminate_huge_delay),
      cmocka_unit_test(test_process_stdio),
      cmocka_unit_test(test_process_no_fd_inherited),
      cmocka_unit_test(test_process_communicate_10mib),
      cmocka_unit_test(test_process_storm),
      cmocka_unit_test(test_process_leave_policy),
      cmocka_unit_test(test_process_owner_returns),
      cmocka_unit_test(test_process_runtime_ends_with_children),
      cmocka_unit_test(test_process_errors),
      cmocka_unit_test(test_process_outside_task),
      cmocka_unit_test(test_process_spawn_when_cancelled),
      cmocka_unit_test(test_process_use_after_close),
      cmocka_unit_test(test_process_group),
      cmocka_unit_test(test_process_child_start),
      cmocka_unit_test(test_process_signal_watchers),
      cmocka_unit_test_setup_teardown(test_process_without_pidfd, no_pidfd_setup,
                                      no_pidfd_teardown),
  };
  return HARNESS_RUN(tests);
}
