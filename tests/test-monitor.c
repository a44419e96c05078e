/* The monitor (include/loom/monitor.h): its commands and their replies,
 * bad commands, clients that go away mid-command, several clients at
 * once, cancel by id, stop and start, the socket path's edge cases, and
 * its end with the runtime. Clients are tasks of the runtime they watch,
 * talking to it through loom's own Unix streams. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "lock-waiters.h"
#include "loom.h"
#include "loom/monitor.h"

static char path[108];
static int npath;

static void new_path(void) {
  snprintf(path, sizeof(path), "/tmp/loom-monitor-test-%d-%d.sock", (int)getpid(),
           npath++);
  unlink(path);
}

static int exists(const char *p) {
  struct stat st;
  return lstat(p, &st) == 0;
}

/* Sends `cmds` (lines) on a new connection to the monitor at sock, then
 * EOF; returns the whole reply, malloc'd (NULL on a connection error, in
 * *rc). */
static char *ask_at(const char *sock, const char *cmds, int *rc) {
  loom_stream_t *s;
  *rc = loom_unix_connect(&s, sock);
  if (*rc) return NULL;
  *rc = loom_write(s, cmds, strlen(cmds));
  if (!*rc) *rc = loom_shutdown_write(s);
  char *data = NULL;
  size_t len = 0;
  if (!*rc) *rc = loom_read_all(s, &data, &len, 1 << 20);
  loom_close(s);
  if (*rc) {
    free(data);
    return NULL;
  }
  char *out = malloc(len + 1);
  if (len) memcpy(out, data, len);
  out[len] = '\0';
  free(data);
  return out;
}

/* The same, to the monitor at path. */
static char *ask(const char *cmds, int *rc) { return ask_at(path, cmds, rc); }

/* Asks `cmds`: the connection's error, or 0 when the reply contains
 * needle, or -1 when it does not. For the clients that run as tasks and
 * record one result. */
static int ask_finds(const char *cmds, const char *needle) {
  int rc;
  char *reply = ask(cmds, &rc);
  int ok = reply && strstr(reply, needle);
  free(reply);
  return rc ? rc : ok ? 0 : -1;
}

static int count_lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

static int sleep_forever(void *arg) {
  (void)arg;
  return loom_sleep(3600u * 1000u);
}

/* ---- the commands ------------------------------------------------------------ */

static struct {
  int rc[8];
  char *reply[8];
  uint64_t id;
} r;

static void free_replies(void) {
  for (int i = 0; i < 8; i++) {
    free(r.reply[i]);
    r.reply[i] = NULL;
  }
}

/* Most tests run a body with a monitor started on a new path (its result
 * in r.rc[0]) and stopped once the body is done. */
static int monitored_main(void *arg) {
  loom_fn body = *(loom_fn *)arg;
  new_path();
  r.rc[0] = loom_monitor_start(NULL, path);
  int rc = body(NULL);
  loom_monitor_stop(NULL);
  return rc;
}

/* From the test: r cleared, loom_run of body under a monitor, which must
 * succeed (the body records what it saw in r). */
static void run_monitored(loom_fn body) {
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(monitored_main, &body));
}

static int commands_body(void *arg) {
  (void)arg;
  loom_task_t *t;
  loom_task_opts_t o = {.name = "sleeper"};
  loom_spawn_ex(&t, sleep_forever, NULL, &o);
  r.id = loom_task_id(t);
  loom_yield();
  r.reply[0] = ask("ps\n", &r.rc[1]);
  r.reply[1] = ask("help\n", &r.rc[2]);
  r.reply[2] = ask("stats\n", &r.rc[3]);
  char cmd[64];
  snprintf(cmd, sizeof(cmd), "stack %llu\n", (unsigned long long)r.id);
  r.reply[3] = ask(cmd, &r.rc[4]);
  r.reply[4] = ask("json\n", &r.rc[5]);
  r.reply[5] = ask("tree\n", &r.rc[6]);
  /* Several on one connection, with surrounding blanks and CRLF; quit
   * ends it before the last one. */
  r.reply[6] = ask("\n  help \r\nquit\nps\n", &r.rc[7]);
  loom_cancel(t);
  loom_join(t, NULL);
  return 0;
}

static void test_commands(void **state) {
  (void)state;
  run_monitored(commands_body);
  for (int i = 0; i < 8; i++) assert_loom_ok(r.rc[i]);
  const char *ps = r.reply[0];
  assert_non_null(strstr(ps, "ID  STATE     NAME"));
  /* main waits for the reply: parked, or woken already by its write */
  assert_true(strstr(ps, " parked    main") || strstr(ps, " ready     main"));
  assert_non_null(strstr(ps, " running   loom-monitor-client"));
  assert_non_null(strstr(ps, "sleeper"));
  assert_non_null(strstr(ps, " ms  sleep until +"));
  assert_non_null(strstr(ps, "accept on listener /tmp/loom-monitor-test-"));
  assert_non_null(strstr(ps, "loom-monitor [loom] "));
  assert_non_null(strstr(ps, "loom-monitor-client"));
  assert_non_null(strstr(r.reply[1], "cancel ID"));
  assert_non_null(strstr(r.reply[2], "tasks "));
  assert_non_null(strstr(r.reply[2], "switches"));
  assert_non_null(strstr(r.reply[3], "sleeper"));
  assert_null(strstr(r.reply[3], "error:"));
  assert_true(r.reply[4][0] == '{' || r.reply[4][0] == '[');
  assert_non_null(strstr(r.reply[4], "\"sleeper\""));
  assert_non_null(strstr(r.reply[4], "\"system\":true"));
  assert_non_null(strstr(r.reply[5], "sleeper"));
  assert_string_equal(r.reply[6], r.reply[1]); /* help once, nothing after quit */
  assert_false(exists(path));
  free_replies();
}

/* ---- bad commands ------------------------------------------------------------ */

static int bad_body(void *arg) {
  (void)arg;
  r.reply[0] = ask("bogus\n", &r.rc[1]);
  r.reply[1] = ask("stack\nstack abc\ncancel 0\ncancel -3\nstack 1 2\nps now\n",
                   &r.rc[2]);
  r.reply[2] = ask("stack 999999\ncancel 999999\n", &r.rc[3]);
  /* After errors, the connection still serves. */
  r.reply[3] = ask("nope\nps\n", &r.rc[4]);
  /* A line longer than any command: one error line, then hang-up. */
  char big[2048];
  memset(big, 'x', sizeof(big) - 2);
  big[sizeof(big) - 2] = '\n';
  big[sizeof(big) - 1] = '\0';
  r.reply[4] = ask(big, &r.rc[5]);
  return 0;
}

static void test_bad_commands(void **state) {
  (void)state;
  run_monitored(bad_body);
  for (int i = 0; i < 5; i++) assert_loom_ok(r.rc[i]);
  assert_string_equal(r.reply[0],
                      "error: unknown command 'bogus' (help lists the commands)\n");
  assert_int_equal(count_lines(r.reply[1]), 6);
  assert_string_equal(r.reply[1], "error: usage: stack ID (a task id from ps)\n"
                                  "error: usage: stack ID (a task id from ps)\n"
                                  "error: usage: cancel ID (a task id from ps)\n"
                                  "error: usage: cancel ID (a task id from ps)\n"
                                  "error: usage: stack ID (a task id from ps)\n"
                                  "error: ps takes no argument\n");
  assert_string_equal(r.reply[2], "error: no task 999999\nerror: no task 999999\n");
  assert_true(!strncmp(r.reply[3], "error: unknown command 'nope'", 29));
  assert_non_null(strstr(r.reply[3], " running   "));
  assert_string_equal(r.reply[4], "error: line too long\n");
  free_replies();
}

/* ---- clients that go away, several at once ---------------------------------- */

static int vanishing_client(void *arg) {
  int how = (int)(intptr_t)arg;
  loom_stream_t *s;
  int rc = loom_unix_connect(&s, path);
  if (rc) return rc;
  if (how == 0) {
    loom_write(s, "json", 4); /* half a command */
  } else {
    loom_write(s, "json\nps\nstats\n", 14); /* whole ones, reply unread */
  }
  return how == 2 ? loom_close(s) : loom_abort(s);
}

static int ps_client(void *arg) {
  (void)arg;
  return ask_finds("ps\n", "main");
}

static int disconnect_body(void *arg) {
  (void)arg;
  loom_task_t *t[16];
  for (int i = 0; i < 6; i++)
    loom_spawn(&t[i], vanishing_client, (void *)(intptr_t)(i % 3));
  for (int i = 6; i < 16; i++) loom_spawn(&t[i], ps_client, NULL);
  int bad = 0;
  for (int i = 0; i < 16; i++) {
    int st = 0;
    loom_join(t[i], &st);
    if (st) bad++;
  }
  r.rc[1] = bad;
  for (int i = 0; i < 5; i++) loom_sleep(1); /* let the monitor see the hang-ups */
  r.reply[0] = ask("ps\n", &r.rc[2]);
  return 0;
}

static void test_disconnect_mid_command(void **state) {
  (void)state;
  run_monitored(disconnect_body);
  assert_loom_ok(r.rc[0]);
  assert_int_equal(r.rc[1], 0);
  assert_loom_ok(r.rc[2]);
  assert_true(strstr(r.reply[0], " parked    main") ||
              strstr(r.reply[0], " ready     main"));
  free_replies();
}

/* ---- cancel by id ------------------------------------------------------------ */

static int cancel_body(void *arg) {
  (void)arg;
  loom_task_t *t;
  loom_task_opts_t o = {.name = "victim"};
  loom_spawn_ex(&t, sleep_forever, NULL, &o);
  loom_yield();
  char cmd[64];
  snprintf(cmd, sizeof(cmd), "cancel %llu\n", (unsigned long long)loom_task_id(t));
  r.reply[0] = ask(cmd, &r.rc[1]);
  r.rc[2] = loom_join(t, &r.rc[3]);
  return 0;
}

static void test_cancel_by_id(void **state) {
  (void)state;
  run_monitored(cancel_body);
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_non_null(strstr(r.reply[0], "cancelled task "));
  assert_loom_ok(r.rc[2]);
  assert_loom_err(r.rc[3], UV_ECANCELED);
  free_replies();
}

/* ---- stop and start ---------------------------------------------------------- */

static int stop_start_body(void *arg) {
  (void)arg;
  r.rc[1] = loom_monitor_start(NULL, path); /* a second one: UV_EALREADY */
  r.rc[2] = loom_monitor_stop(NULL);
  r.rc[3] = exists(path);
  loom_stream_t *s;
  r.rc[4] = loom_unix_connect(&s, path); /* nobody there now */
  if (!r.rc[4]) loom_close(s);
  r.rc[5] = loom_monitor_stop(NULL);        /* UV_ENOENT */
  r.rc[6] = loom_monitor_start(NULL, path); /* again, the same path */
  r.reply[0] = ask("help\n", &r.rc[7]);
  return 0;
}

static void test_stop_start(void **state) {
  (void)state;
  run_monitored(stop_start_body);
  assert_loom_ok(r.rc[0]);
  assert_loom_err(r.rc[1], UV_EALREADY);
  assert_loom_ok(r.rc[2]);
  assert_int_equal(r.rc[3], 0);
  assert_true(r.rc[4] == UV_ENOENT || r.rc[4] == UV_ECONNREFUSED);
  assert_loom_err(r.rc[5], UV_ENOENT);
  assert_loom_ok(r.rc[6]);
  assert_loom_ok(r.rc[7]);
  assert_non_null(strstr(r.reply[0], "commands:"));
  assert_false(exists(path));
  free_replies();
}

/* ---- the socket's path ------------------------------------------------------- */

static int path_main(void *arg) {
  (void)arg;
  char longp[200];
  memset(longp, 'a', sizeof(longp) - 1);
  longp[0] = '/';
  longp[sizeof(longp) - 1] = '\0';
  r.rc[0] = loom_monitor_start(NULL, longp);
  r.rc[1] = loom_monitor_start(NULL, NULL);
  r.rc[2] = loom_monitor_start(NULL, "");
  /* A regular file is never replaced. */
  new_path();
  FILE *f = fopen(path, "w");
  fputs("keep", f);
  fclose(f);
  r.rc[3] = loom_monitor_start(NULL, path);
  r.rc[4] = exists(path);
  unlink(path);
  /* A live socket (another monitor's, here a plain listener) neither. */
  loom_listener_t *l;
  r.rc[5] = loom_unix_listen(&l, path, 4);
  r.rc[6] = loom_monitor_start(NULL, path);
  loom_listener_close(l);
  unlink(path);
  /* A socket file nobody listens on (left by a process that is gone) is
   * replaced. */
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  strcpy(sun.sun_path, path);
  r.rc[7] = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
  close(fd);
  int stale = exists(path);
  int rc = loom_monitor_start(NULL, path);
  if (!rc) {
    rc = ask_finds("help\n", "commands:");
    loom_monitor_stop(NULL);
  }
  r.rc[7] = r.rc[7] ? r.rc[7] : !stale ? -2 : rc;
  return 0;
}

static void test_paths(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(path_main, NULL));
  assert_loom_err(r.rc[0], UV_ENAMETOOLONG);
  assert_loom_err(r.rc[1], UV_EINVAL);
  assert_loom_err(r.rc[2], UV_EINVAL);
  assert_loom_err(r.rc[3], UV_EADDRINUSE);
  assert_int_equal(r.rc[4], 1);
  assert_loom_ok(r.rc[5]);
  assert_loom_err(r.rc[6], UV_EADDRINUSE);
  assert_loom_ok(r.rc[7]);
  assert_false(exists(path));
}

/* ---- the end of the runtime ------------------------------------------------- */

static int left_running_main(void *arg) {
  (void)arg;
  new_path();
  r.rc[0] = loom_monitor_start(NULL, path);
  /* A client still connected when the runtime ends. */
  loom_stream_t *s;
  r.rc[1] = loom_unix_connect(&s, path);
  r.reply[0] = NULL;
  r.rc[2] = loom_write(s, "help\n", 5);
  char line[64];
  r.rc[3] = loom_read_line(s, line, sizeof(line)) > 0 ? 0 : -1;
  loom_close(s);
  return 0; /* the monitor is not stopped: loom_run's shutdown ends it */
}

static void test_ends_with_runtime(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(left_running_main, NULL));
  for (int i = 0; i < 4; i++) assert_loom_ok(r.rc[i]);
  assert_false(exists(path));
}

/* An embedded runtime on a loop of the test's own, and a new path. */
static loom_t *host_open(uv_loop_t *loop) {
  assert_int_equal(uv_loop_init(loop), 0);
  loom_t *rt;
  assert_loom_ok(loom_init(&rt, loop, NULL));
  new_path();
  return rt;
}

/* Its end: the runtime shut down, the loop closed with nothing left on it,
 * and no socket left at path. */
static void host_close(loom_t *rt, uv_loop_t *loop) {
  assert_loom_ok(loom_shutdown(rt, NULL, NULL));
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0);
  assert_false(exists(path));
}

/* LOOM_MONITOR=path: loom_run starts it; it listens once main has let
 * its task run. */
static int env_main(void *arg) {
  (void)arg;
  loom_yield();
  r.reply[0] = ask("ps\n", &r.rc[0]);
  r.rc[1] = loom_monitor_stop(NULL);
  return 0;
}

static void test_env(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  new_path();
  setenv("LOOM_MONITOR", path, 1);
  int rc = loom_run(env_main, NULL);
  unsetenv("LOOM_MONITOR");
  assert_loom_ok(rc);
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_non_null(strstr(r.reply[0], "       1  "));
  assert_non_null(strstr(r.reply[0], "       2  parked    loom-monitor "));
  assert_false(exists(path));
  free_replies();
}

/* Started from host code, before any task: it listens from the first
 * scheduler pass. */
static int host_client(void *arg) {
  (void)arg;
  int rc = ask_finds("help\n", "commands:");
  loom_monitor_stop(NULL);
  r.rc[0] = rc;
  return 0;
}

static void test_host_start(void **state) {
  (void)state;
  uv_loop_t loop;
  loom_t *rt = host_open(&loop);
  assert_loom_ok(loom_monitor_start(rt, path));
  memset(&r, 0, sizeof(r));
  r.rc[0] = 1;
  assert_loom_ok(loom_spawn_on(rt, NULL, host_client, NULL));
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_loom_ok(r.rc[0]);
  host_close(rt, &loop);
}

/* Stopped from host code before its task ever ran: nothing is bound. */
static void test_host_stop_before_run(void **state) {
  (void)state;
  uv_loop_t loop;
  loom_t *rt = host_open(&loop);
  assert_loom_ok(loom_monitor_start(rt, path));
  assert_loom_err(loom_monitor_start(rt, path), UV_EALREADY);
  assert_loom_ok(loom_monitor_stop(rt));
  assert_loom_err(loom_monitor_stop(rt), UV_ENOENT);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_false(exists(path));
  host_close(rt, &loop);
}

/* Start and stop belong to the runtime's own thread: from another one
 * they fail with UV_EINVAL and leave the monitor as it was. */
typedef struct {
  loom_t *rt;
  int start_rc, stop_rc;
} other_thread_t;

static void *other_thread(void *arg) {
  other_thread_t *o = arg;
  o->start_rc = loom_monitor_start(o->rt, path);
  o->stop_rc = loom_monitor_stop(o->rt);
  return NULL;
}

static void test_other_thread(void **state) {
  (void)state;
  uv_loop_t loop;
  loom_t *rt = host_open(&loop);
  other_thread_t o = {.rt = rt};
  pthread_t th;
  /* Not started: the other thread can neither start it nor stop it. */
  assert_int_equal(pthread_create(&th, NULL, other_thread, &o), 0);
  pthread_join(th, NULL);
  assert_loom_err(o.start_rc, UV_EINVAL);
  assert_loom_err(o.stop_rc, UV_EINVAL);
  assert_false(exists(path));
  /* Started here: the other thread cannot stop it, nor start a second. */
  assert_loom_ok(loom_monitor_start(rt, path));
  assert_int_equal(pthread_create(&th, NULL, other_thread, &o), 0);
  pthread_join(th, NULL);
  assert_loom_err(o.start_rc, UV_EINVAL);
  assert_loom_err(o.stop_rc, UV_EINVAL);
  /* Still running: stopped from its own thread, once. */
  assert_loom_ok(loom_monitor_stop(rt));
  assert_loom_err(loom_monitor_stop(rt), UV_ENOENT);
  uv_run(&loop, UV_RUN_DEFAULT);
  host_close(rt, &loop);
}

/* Runtimes on several threads, each with its own monitor: the monitors'
 * registry is shared (ThreadSanitizer runs this, label `threads`). */
typedef struct {
  char path[108];
  int rc, ok;
} thread_mon_t;

static int thread_main(void *arg) {
  thread_mon_t *m = arg;
  m->rc = loom_monitor_start(NULL, m->path);
  if (m->rc) return 0;
  for (int i = 0; i < 3 && !m->rc; i++) {
    char *reply = ask_at(m->path, "ps\n", &m->rc);
    if (!m->rc && reply && strstr(reply, "loom-monitor [loom]")) m->ok++;
    free(reply);
  }
  if (!m->rc) m->rc = loom_monitor_stop(NULL);
  return 0;
}

static void *thread_run(void *arg) {
  thread_mon_t *m = arg;
  int rc = loom_run(thread_main, m);
  if (rc) m->rc = rc;
  return NULL;
}

static void test_monitors_on_threads(void **state) {
  (void)state;
  enum { N = 4 };
  thread_mon_t m[N];
  pthread_t th[N];
  for (int i = 0; i < N; i++) {
    memset(&m[i], 0, sizeof(m[i]));
    new_path();
    memcpy(m[i].path, path, sizeof(path));
  }
  for (int i = 0; i < N; i++)
    assert_int_equal(pthread_create(&th[i], NULL, thread_run, &m[i]), 0);
  for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < N; i++) {
    assert_loom_ok(m[i].rc);
    assert_int_equal(m[i].ok, 3);
    assert_false(exists(m[i].path));
  }
}

/* ---- many waiters on one lock ------------------------------------------------- */

/* ps names the holder on every waiter's line (lock-waiters.h says why it
 * is a test of speed as well). */
static lock_waiters_seen_t crowd;

static void ask_ps(void *a) {
  (void)a;
  r.reply[0] = ask("ps\n", &r.rc[1]);
}

static int many_body(void *a) { return lock_waiters_report(ask_ps, a, &crowd); }

static void test_ps_many_lock_waiters(void **state) {
  (void)state;
  run_monitored(many_body);
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_loom_ok(crowd.holder);
  assert_loom_ok(crowd.waiters);
  assert_int_equal(lock_waiters_named(r.reply[0], crowd.holder_id), MANY_WAITERS);
  if (getenv("LOOM_TEST_VERBOSE"))
    fprintf(stderr, "ps of %d lock waiters: %llu ms\n", MANY_WAITERS,
            (unsigned long long)(crowd.report_us / 1000));
  free_replies();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_commands),
      cmocka_unit_test(test_bad_commands),
      cmocka_unit_test(test_disconnect_mid_command),
      cmocka_unit_test(test_cancel_by_id),
      cmocka_unit_test(test_stop_start),
      cmocka_unit_test(test_paths),
      cmocka_unit_test(test_ends_with_runtime),
      cmocka_unit_test(test_env),
      cmocka_unit_test(test_host_start),
      cmocka_unit_test(test_host_stop_before_run),
      cmocka_unit_test(test_other_thread),
      cmocka_unit_test(test_monitors_on_threads),
      cmocka_unit_test(test_ps_many_lock_waiters),
  };
  return HARNESS_RUN(tests);
}
