/* Task dumps, stats and the dump signal (include/loom/debug.h).
 *
 * The main test puts a task in every wait state loom has a word for, dumps
 * them as text and as JSON into a file, and checks, on the main stack once
 * loom_run has returned, that each task's line names its state and what it
 * waits for, and that its backtrace contains the function it is parked in
 * (those functions are noinline, and do something after the parking call
 * so that it is not a tail call that would leave their frame). */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <inttypes.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/internal.h"
#include "dump-helpers.h"
#include "harness.h"
#include "helpers.h"
#include "lock-waiters.h"
#include "loom.h"

/* What the tasks saw; asserted on the main stack. */
static struct {
  long rc[16];
  uint64_t ids[32];
  loom_stats_t stats;
} r;

/* A file the dumps go to, read back as one string. */
static int dump_file(void) {
  char path[] = "/tmp/loom-test-dump-XXXXXX";
  int fd = mkstemp(path);
  if (fd >= 0) unlink(path);
  return fd;
}

static char *read_all(int fd) {
  off_t len = lseek(fd, 0, SEEK_END);
  char *buf = malloc((size_t)len + 1);
  if (!buf) return NULL;
  ssize_t n = pread(fd, buf, (size_t)len, 0);
  buf[n > 0 ? n : 0] = 0;
  return buf;
}

/* From the test: r cleared, loom_run(main, &fd) for a new dump file fd,
 * which must succeed; returns what was written to the file, malloc'd. */
static char *run_with_dump_file(loom_fn main) {
  memset(&r, 0, sizeof(r));
  int fd = dump_file();
  assert_loom_ok(loom_run(main, &fd));
  char *text = read_all(fd);
  close(fd);
  return text;
}

/* ---- a tiny JSON validator ------------------------------------------------------ */

static void test_json_validator(void **state) {
  (void)state;
  assert_true(json_valid("{\"a\":[1,2,{\"b\":\"x\\u0001\"}],\"c\":true}\n"));
  assert_false(json_valid("{\"a\":[1,2}"));
  assert_false(json_valid("{\"a\":\"x\"} x"));
  assert_false(json_valid("{\"a\" 1}"));
}

/* ---- every wait state ------------------------------------------------------------- */

static volatile int after; /* written after each parking call: no tail call */

static loom_lock_t lock;
static loom_sem_t sem;
static loom_queue_t q_empty, q_full, q_join;
static loom_event_t event;
static loom_lock_t cond_lock;
static loom_cond_t cond;
static loom_barrier_t barrier;
static loom_future_t *future;
static loom_channel_t *channel;
static loom_listener_t *listener;
static loom_stream_t *client, *server_side;
static int job_pipe[2], fd_pipe[2];
static loom_signal_t *sig;
static loom_fd_t *fdw;

__attribute__((noinline)) static int w_sleep(void *a) {
  (void)a;
  int rc = loom_sleep(600000);
  after++;
  return rc;
}

__attribute__((noinline)) static int w_lock(void *a) {
  (void)a;
  int rc = loom_lock_acquire(&lock);
  after++;
  if (rc == 0) loom_lock_release(&lock);
  return rc;
}

__attribute__((noinline)) static int w_sem(void *a) {
  (void)a;
  int rc = loom_sem_acquire(&sem);
  after++;
  return rc;
}

__attribute__((noinline)) static int w_queue_get(void *a) {
  (void)a;
  void *item;
  int rc = loom_queue_get(&q_empty, &item);
  after++;
  return rc;
}

__attribute__((noinline)) static int w_queue_put(void *a) {
  (void)a;
  int rc = loom_queue_put(&q_full, NULL);
  after++;
  return rc;
}

__attribute__((noinline)) static int w_queue_join(void *a) {
  (void)a;
  int rc = loom_queue_join(&q_join);
  after++;
  return rc;
}

__attribute__((noinline)) static int w_event(void *a) {
  (void)a;
  int rc = loom_event_wait(&event);
  after++;
  return rc;
}

__attribute__((noinline)) static int w_cond(void *a) {
  (void)a;
  int rc = loom_lock_acquire(&cond_lock);
  if (rc) return rc;
  rc = loom_cond_wait(&cond);
  after++;
  loom_lock_release(&cond_lock);
  return rc;
}

__attribute__((noinline)) static int w_barrier(void *a) {
  (void)a;
  int rc = loom_barrier_wait(&barrier);
  after++;
  return rc;
}

__attribute__((noinline)) static int w_future(void *a) {
  (void)a;
  void *v;
  int rc = loom_future_await(future, &v);
  after++;
  return rc;
}

__attribute__((noinline)) static int w_channel(void *a) {
  (void)a;
  void *item;
  int rc = loom_channel_get(channel, &item);
  after++;
  return rc;
}

__attribute__((noinline)) static int w_accept(void *a) {
  (void)a;
  loom_stream_t *s;
  int rc = loom_accept(listener, &s);
  after++;
  if (rc == 0) loom_close(s);
  return rc;
}

__attribute__((noinline)) static int w_read(void *a) {
  (void)a;
  char buf[16];
  ssize_t n = loom_read(server_side, buf, sizeof(buf));
  after++;
  return n < 0 ? (int)n : 0;
}

__attribute__((noinline)) static int w_join(void *a) {
  (void)a;
  loom_task_t *child;
  loom_task_opts_t o = {.name = "join-child"};
  int rc = loom_spawn_ex(&child, w_sleep, NULL, &o);
  if (rc) return rc;
  r.ids[20] = 1; /* spawned */
  rc = loom_join(child, NULL);
  after++;
  return rc;
}

__attribute__((noinline)) static int w_gather(void *a) {
  (void)a;
  loom_task_t *t[2];
  loom_task_opts_t o = {.name = "gather-child"};
  for (int i = 0; i < 2; i++)
    if (loom_spawn_ex(&t[i], w_sleep, NULL, &o)) return -1;
  int rc = loom_gather(t, 2, NULL, 0);
  after++;
  return rc;
}

__attribute__((noinline)) static int w_group(void *a) {
  (void)a;
  loom_group_t *g;
  int rc = loom_group_open(&g);
  if (rc) return rc;
  loom_task_opts_t o = {.name = "group-child"};
  loom_group_spawn_ex(g, NULL, w_sleep, NULL, &o);
  rc = loom_group_wait(g);
  after++;
  return rc;
}

static loom_server_t *server;
static loom_stream_t *server_client;

__attribute__((noinline)) static int w_handler(loom_stream_t *st, void *a) {
  (void)a;
  char buf[16];
  ssize_t n = loom_read(st, buf, sizeof(buf));
  after++;
  return n < 0 ? (int)n : 0;
}

static int job(void *a) {
  (void)a;
  char c;
  /* Released by the test once the dump is taken. */
  return read(job_pipe[0], &c, 1) == 1 ? 0 : -1;
}

__attribute__((noinline)) static int w_thread(void *a) {
  (void)a;
  int st;
  int rc = loom_to_thread(job, NULL, &st);
  after++;
  return rc;
}

__attribute__((noinline)) static int w_signal(void *a) {
  (void)a;
  int rc = loom_signal_wait(sig);
  after++;
  return rc < 0 ? rc : 0;
}

__attribute__((noinline)) static int w_fd(void *a) {
  (void)a;
  int rc = loom_fd_wait(fdw, LOOM_FD_READABLE);
  after++;
  return rc < 0 ? rc : 0;
}

static loom_process_t *child;

__attribute__((noinline)) static int w_process(void *a) {
  (void)a;
  int st;
  int rc = loom_process_wait(child, &st);
  after++;
  return rc;
}

static int w_done(void *a) {
  (void)a;
  return 0;
}

typedef struct {
  const char *name; /* the task's and its function's */
  loom_fn fn;
  const char *state;
  const char *reason; /* in the task's line */
} case_t;

static const case_t cases[] = {
    {"w_sleep", w_sleep, "parked", ": sleep until +"},
    {"w_lock", w_lock, "parked", ": lock 'accounts' (0x"},
    {"w_sem", w_sem, "parked", ": semaphore 0x"},
    {"w_queue_get", w_queue_get, "parked", ": queue get 'jobs' (0x"},
    {"w_queue_put", w_queue_put, "parked", ": queue put 0x"},
    {"w_queue_join", w_queue_join, "parked", ": queue join 0x"},
    {"w_event", w_event, "parked", ": event 'ready' (0x"},
    {"w_cond", w_cond, "parked", ": condition 0x"},
    {"w_barrier", w_barrier, "parked", ": barrier 0x"},
    {"w_future", w_future, "parked", ": future 0x"},
    {"w_channel", w_channel, "parked", ": channel receive 0x"},
    {"w_accept", w_accept, "parked", ": accept on listener 127.0.0.1:"},
    {"w_read", w_read, "parked", ": read on stream 127.0.0.1:"},
    {"w_join", w_join, "parked", ": join of task "},
    {"w_gather", w_gather, "parked", ": gather of 2 task(s)"},
    {"w_group", w_group, "parked", ": group wait"},
    {"w_thread", w_thread, "parked", ": thread job"},
    {"w_signal", w_signal, "parked", ": signal SIGUSR2 (0x"},
    {"w_fd", w_fd, "parked", ": fd "},
    {"w_process", w_process, "parked", ": child process pid "},
    {"w_done", w_done, "finished", ", status 0 (OK), not joined"},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static int text_fd, json_fd;
static loom_task_t *tasks[NCASES], *ready_task;

static int states_main(void *a) {
  (void)a;
  loom_lock_init(&lock);
  loom_debug_name(&lock, "accounts");
  loom_lock_acquire(&lock);
  loom_sem_init(&sem, 0);
  loom_queue_init(&q_empty, 0, LOOM_QUEUE_FIFO, NULL);
  loom_debug_name(&q_empty, "jobs");
  loom_queue_init(&q_full, 1, LOOM_QUEUE_FIFO, NULL);
  loom_queue_put(&q_full, NULL);
  loom_queue_init(&q_join, 0, LOOM_QUEUE_FIFO, NULL);
  loom_queue_put(&q_join, NULL); /* one unfinished item */
  loom_event_init(&event);
  loom_debug_name(&event, "ready");
  loom_lock_init(&cond_lock);
  loom_cond_init(&cond, &cond_lock);
  loom_barrier_init(&barrier, 2);
  loom_future_new(&future);
  loom_channel_new(&channel, 1);
  r.rc[0] = loom_tcp_listen(&listener, "127.0.0.1", 0, 8);
  if (r.rc[0]) return r.rc[0];
  r.rc[1] = loom_tcp_connect(&client, "127.0.0.1", loom_listener_port(listener));
  if (r.rc[1]) return r.rc[1];
  r.rc[2] = loom_accept(listener, &server_side);
  if (r.rc[2]) return r.rc[2];
  /* Some bytes each way, for the stats. */
  char five[5];
  r.rc[8] = loom_write(client, "hello", 5);
  if (r.rc[8] == 0) r.rc[8] = loom_read_exactly(server_side, five, 5, NULL);
  if (pipe(job_pipe) || pipe(fd_pipe)) return -1;
  /* A server with one connection: its handler sits under the acceptor. */
  r.rc[9] = loom_serve(&server, "127.0.0.1", 0, w_handler, NULL, NULL);
  if (r.rc[9] == 0)
    r.rc[9] = loom_tcp_connect(&server_client, "127.0.0.1", loom_server_port(server));
  char *argv[] = {"sleep", "60", NULL};
  r.rc[10] = loom_process_spawn(&child, argv, NULL);
  r.rc[3] = loom_signal_open(&sig, SIGUSR2);
  r.rc[4] = loom_fd_open(&fdw, fd_pipe[0]);
  for (size_t i = 0; i < NCASES; i++) {
    loom_task_opts_t o = {.name = cases[i].name};
    r.rc[5] |= loom_spawn_ex(&tasks[i], cases[i].fn, NULL, &o);
  }
  /* Everyone parks (the thread job may take a moment to start). */
  for (int i = 0; i < 5; i++) loom_yield();
  loom_task_opts_t o = {.name = "w_ready"};
  loom_spawn_ex(&ready_task, w_done, NULL, &o);
  r.rc[6] = loom_dump(NULL, text_fd, 0);
  r.rc[7] = loom_dump(NULL, json_fd, LOOM_DUMP_JSON);
  loom_stats_get(NULL, &r.stats);

  /* Let everything go. */
  (void)!write(job_pipe[1], "x", 1);
  for (size_t i = 0; i < NCASES; i++) loom_cancel(tasks[i]);
  loom_lock_release(&lock);
  for (size_t i = 0; i < NCASES; i++) loom_join(tasks[i], NULL);
  loom_join(ready_task, NULL);
  loom_close(client);
  loom_close(server_side);
  loom_close(server_client);
  loom_server_close(server, 0);
  loom_listener_close(listener);
  loom_signal_close(sig);
  loom_fd_close(fdw);
  loom_process_kill(child);
  int st;
  loom_process_wait(child, &st);
  loom_process_close(child);
  loom_future_release(future);
  loom_channel_release(channel);
  loom_queue_destroy(&q_empty);
  loom_queue_destroy(&q_full);
  loom_queue_destroy(&q_join);
  loom_debug_name(&lock, NULL);
  close(job_pipe[0]);
  close(job_pipe[1]);
  close(fd_pipe[0]);
  close(fd_pipe[1]);
  return 0;
}

/* The lines of task `name` in a text dump: its own line and the indented
 * ones after it, up to the next task line. */
static char *task_block(const char *dump, const char *name) {
  char key[64];
  snprintf(key, sizeof(key), " '%s' ", name);
  const char *p = strstr(dump, key);
  if (!p) return NULL;
  while (p > dump && p[-1] != '\n') p--;
  const char *end = strchr(p, '\n');
  while (end && end[1]) {
    const char *line = end + 1;
    const char *s = line;
    while (*s == ' ') s++;
    if (!strncmp(s, "task ", 5) || !strncmp(s, "stats:", 6)) break;
    end = strchr(line, '\n');
  }
  size_t len = end ? (size_t)(end - p) : strlen(p);
  /* Not strndup: its malloc would escape the harness's count. */
  char *b = malloc(len + 1);
  if (!b) return NULL;
  memcpy(b, p, len);
  b[len] = 0;
  return b;
}

static void test_every_wait_state(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  text_fd = dump_file();
  json_fd = dump_file();
  assert_true(text_fd >= 0 && json_fd >= 0);
  assert_loom_ok(loom_run(states_main, NULL));
  for (int i = 0; i < 11; i++) assert_loom_ok(r.rc[i]);
  char *text = read_all(text_fd), *json = read_all(json_fd);
  close(text_fd);
  close(json_fd);
  if (getenv("LOOM_TEST_VERBOSE")) fputs(text, stderr);
  assert_non_null(strstr(text, "loom: task dump, "));
  char *main_block = task_block(text, "main");
  assert_non_null(main_block);
  assert_non_null(strstr(main_block, "' running"));
  assert_non_null(strstr(main_block, "states_main+"));
  free(main_block);
  for (size_t i = 0; i < NCASES; i++) {
    char *b = task_block(text, cases[i].name);
    if (!b) fail_msg("no task '%s' in the dump", cases[i].name);
    char want[64];
    snprintf(want, sizeof(want), "'%s' %s", cases[i].name, cases[i].state);
    if (!strstr(b, want)) fail_msg("'%s' not %s:\n%s", cases[i].name, cases[i].state, b);
    if (!strstr(b, cases[i].reason))
      fail_msg("'%s' does not say \"%s\":\n%s", cases[i].name, cases[i].reason, b);
    if (!strcmp(cases[i].state, "parked")) {
      /* Its backtrace names the function it is parked in. */
      char frame[64];
      snprintf(frame, sizeof(frame), " %s", cases[i].name);
      const char *f = strstr(b, "#0 ");
      if (!f || !strstr(f, frame)) fail_msg("no frame of %s in:\n%s", cases[i].name, b);
      assert_non_null(strstr(b, "spawned at states_main+"));
    }
    free(b);
  }
  char *b = task_block(text, "w_ready");
  assert_non_null(b);
  assert_non_null(strstr(b, "'w_ready' ready"));
  free(b);

  /* The tree: a group's child under the group's opener, gathered and
   * joined children under the task that spawned them (deeper indent). */
  const char *parents[] = {"w_group", "w_gather", "w_join"};
  const char *children[] = {"group-child", "gather-child", "join-child"};
  for (int i = 0; i < 3; i++) {
    const char *p = strstr(text, parents[i]), *c;
    char key[64];
    snprintf(key, sizeof(key), "'%s' parked", children[i]);
    c = strstr(p, key);
    assert_non_null(c);
    const char *pl = p, *cl = c;
    while (pl > text && pl[-1] != '\n') pl--;
    while (cl > text && cl[-1] != '\n') cl--;
    size_t pind = strspn(pl, " "), cind = strspn(cl, " ");
    if (cind != pind + 2) fail_msg("%s is not right under %s", children[i], parents[i]);
  }
  b = task_block(text, "group-child");
  assert_non_null(strstr(b, "in group 0x"));
  free(b);
  /* The server's connection handler: in the acceptor's group, under it,
   * reading from its client. */
  const char *h = strstr(text, ": read on stream 127.0.0.1:");
  const char *hb = NULL;
  for (const char *p = text; (p = strstr(p, " w_handler+0x")) != NULL; p++) hb = p;
  assert_non_null(h);
  { /* the handler is found by its frame */
    assert_non_null(hb);
    while (hb > text && strncmp(hb, "task ", 5)) hb--;
    const char *hl = hb;
    while (hl > text && hl[-1] != '\n') hl--;
    assert_true(strspn(hl, " ") >= 4); /* main > acceptor > handler */
    assert_non_null(strstr(hb, "parked for "));
  }
  assert_int_equal(r.stats.handles_by_kind[LOOM_STAT_SERVER], 1);
  assert_int_equal(r.stats.handles_by_kind[LOOM_STAT_PROCESS], 1);

  assert_true(json_valid(json));
  assert_non_null(strstr(json, "\"name\":\"w_lock\",\"state\":\"parked\""));
  assert_non_null(strstr(json, "\"object_name\":\"accounts\""));
  assert_non_null(strstr(json, "\"stats\":{\"tasks_live\":"));

  /* The stats: every task counted, the I/O objects open. */
  assert_true(r.stats.tasks_spawned >= NCASES + 5);
  assert_true(r.stats.tasks_live >= NCASES);
  assert_true(r.stats.tasks_peak >= r.stats.tasks_live);
  assert_true(r.stats.switches > NCASES);
  assert_true(r.stats.passes > 0);
  assert_true(r.stats.stacks_mapped >= r.stats.tasks_live);
  assert_int_equal(r.stats.handles_by_kind[LOOM_STAT_LISTENER], 2);
  assert_int_equal(r.stats.handles_by_kind[LOOM_STAT_STREAM], 4);
  assert_int_equal(r.stats.handles_by_kind[LOOM_STAT_SIGNAL], 1);
  assert_int_equal(r.stats.handles_by_kind[LOOM_STAT_FD], 1);
  assert_true(r.stats.handles_by_kind[LOOM_STAT_TIMER] >= 4);
  assert_true(r.stats.bytes_read >= 5);
  assert_true(r.stats.bytes_written >= 5);
  free(text);
  free(json);
}

/* ---- one task, cancel by id, bad arguments ---------------------------------------- */

static char mem[4096];
static size_t mem_len;

static void put(void *ctx, const char *p, size_t n) {
  (void)ctx;
  if (n > sizeof(mem) - 1 - mem_len) n = sizeof(mem) - 1 - mem_len;
  memcpy(mem + mem_len, p, n);
  mem_len += n;
}

__attribute__((noinline)) static int w_forever(void *a) {
  (void)a;
  int rc = loom_sleep(UINT64_MAX);
  after++;
  return rc;
}

/* A dump asked from a thread that is not the runtime's is refused: it
 * would read the task lists, and resume parked tasks, from there. */
struct foreign_dump {
  loom_t *rt;
  int fd, rc[3];
};

static void *dump_from_another_thread(void *a) {
  struct foreign_dump *f = a;
  f->rc[0] = loom_dump(f->rt, f->fd, 0);
  f->rc[1] = loom_dump_task(f->rt, f->fd, 2, 0);
  f->rc[2] = loom_dump(f->rt, f->fd, LOOM_DUMP_JSON | LOOM_DUMP_NO_STACKS);
  return NULL;
}

static int one_main(void *a) {
  (void)a;
  int fd = *(int *)a;
  loom_task_t *t;
  loom_task_opts_t o = {.name = "w_sleep"};
  loom_spawn_ex(&t, w_sleep, NULL, &o);
  loom_yield();
  /* Ids are given in spawn order: main is 1, this one 2. */
  r.rc[0] = loom_dump_task(NULL, fd, 2, 0);
  r.rc[1] = loom_dump_task(NULL, fd, 999, 0);
  r.rc[2] = loom_cancel_id(NULL, 999);
  r.rc[3] = loom_dump(NULL, -1, 0);
  r.rc[4] = loom_dump(NULL, fd, 0x100);
  r.rc[5] = loom_dump_task(NULL, fd, 2, 0x100);
  r.rc[6] = loom_stats_get(NULL, NULL);
  r.rc[7] = loom_debug_name(NULL, "x");
  r.rc[8] = loom_dump_signal(NULL, -1);
  r.rc[9] = loom_dump_signal(NULL, SIGKILL);
  /* The dump in memory, and a sleep without a deadline (task 3). */
  loom_task_t *f;
  loom_spawn(&f, w_forever, NULL);
  loom_yield();
  mem_len = 0;
  r.rc[13] = loom__dump_to(NULL, put, NULL, 3, 0);
  r.rc[14] = loom__dump_to(NULL, NULL, NULL, 3, 0);
  {
    struct foreign_dump fd2 = {loom__tls_rt, fd, {0, 0, 0}};
    pthread_t th;
    if (pthread_create(&th, NULL, dump_from_another_thread, &fd2)) abort();
    pthread_join(th, NULL); /* the loop's thread blocks here: no wake */
    r.rc[15] = fd2.rc[0] == UV_EINVAL && fd2.rc[1] == UV_EINVAL && fd2.rc[2] == UV_EINVAL
                   ? 0
                   : -1;
  }
  loom_cancel(f);
  loom_join(f, NULL);
  r.rc[10] = loom_cancel_id(NULL, 2);
  int st = 0;
  r.rc[11] = loom_join(t, &st);
  r.rc[12] = st;
  return 0;
}

static void test_one_task_and_bad_args(void **state) {
  (void)state;
  char *text = run_with_dump_file(one_main);
  /* rc[15]: every dump from another thread refused */
  static const rc_want_t want[][RC_ROW] = {
      {RC_OK, RC_ERR(UV_ENOENT), RC_ERR(UV_ENOENT), RC_ERR(UV_EINVAL)},             // 0
      {RC_ERR(UV_EINVAL), RC_ERR(UV_EINVAL), RC_ERR(UV_EINVAL), RC_ERR(UV_EINVAL)}, // 4
      {RC_ERR(UV_EINVAL), RC_ERR(UV_EINVAL), RC_OK, RC_OK},                         // 8
      {RC_ERR(UV_ECANCELED), RC_OK, RC_ERR(UV_EINVAL), RC_EQ(0)},                   // 12
  };
  assert_rcs(r.rc, 0, want);
  assert_non_null(strstr(mem, "task 3 'task-3' parked for "));
  assert_non_null(strstr(mem, ": sleep (no deadline)"));
  assert_non_null(strstr(mem, " w_forever+0x"));
  assert_non_null(strstr(text, "task 2 'w_sleep' parked for "));
  assert_null(strstr(text, "'main'"));
  free(text);
  /* Outside any runtime. */
  loom_stats_t st;
  assert_loom_err(loom_dump(NULL, 2, 0), LOOM_ENOTASK);
  assert_loom_err(loom_dump_task(NULL, 2, 1, 0), LOOM_ENOTASK);
  assert_loom_err(loom_cancel_id(NULL, 1), LOOM_ENOTASK);
  assert_loom_err(loom_stats_get(NULL, &st), LOOM_ENOTASK);
  assert_loom_err(loom_debug_name(&st, "x"), LOOM_ENOTASK);
  assert_loom_err(loom_dump_signal(NULL, SIGQUIT), LOOM_ENOTASK);
}

/* ---- a weird stack ------------------------------------------------------------------ */

/* The frame-pointer walk (the fallback for a task that cannot unwind
 * itself) meets frame pointers that point outside the stack, backwards, at
 * themselves, misaligned, or at a return address of 0: it stops, and never
 * reads outside the task's stack (ASan and Valgrind would say). The task
 * is never resumed with such a frame pointer: it is put back first. */
static int weird_main(void *a) {
  (void)a;
  loom_task_t *h;
  loom_spawn(&h, w_sleep, NULL);
  loom_yield();
  loom_task_t *t = loom__task_of(NULL, h);
  void *pcs[64];
  r.rc[0] = loom__backtrace_task(t, pcs, 64);
#if !defined(LOOM_FIBER_UCONTEXT) && (defined(__x86_64__) || defined(__aarch64__))
  uintptr_t *sp = t->fiber.ctx.sp;
#if defined(__x86_64__)
  uintptr_t *fp = &sp[6];
#else
  uintptr_t *fp = &sp[10];
#endif
  uintptr_t saved = *fp;
  uintptr_t lo = (uintptr_t)t->fiber.stack_lo, hi = lo + t->fiber.stack_size;
  /* A frame record of our own, at the stack's lowest usable bytes (below
   * anything the parked task uses): it points back at itself. */
  uintptr_t *rec = (uintptr_t *)(lo + 64);
  uintptr_t rec_saved[2] = {rec[0], rec[1]};
  const uintptr_t bad[] = {0,
                           1,
                           lo - 16,
                           hi,
                           hi - 8,
                           lo + 3,
                           (uintptr_t)&r,
                           (uintptr_t)rec,
                           UINTPTR_MAX & ~(uintptr_t)15};
  rec[0] = (uintptr_t)rec;
  rec[1] = (uintptr_t)w_sleep;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    *fp = bad[i];
    int n = loom__backtrace_fp(t, pcs, 64);
    if (n < 1 || n > 2) r.rc[1] = -1 - (int)i;
  }
  rec[1] = 0; /* a record with no return address */
  *fp = (uintptr_t)rec;
  if (loom__backtrace_fp(t, pcs, 64) != 1) r.rc[1] = -100;
  rec[0] = rec_saved[0];
  rec[1] = rec_saved[1];
  *fp = saved;
#endif
  /* The walk alone: an empty or upside-down range stops it at once. */
  char area[64];
  if (loom__backtrace_from(area, (void *)w_sleep, area + 64, area, pcs, 64) != 1)
    r.rc[1] = -200;
  if (loom__backtrace_from(area, (void *)w_sleep, area, area, pcs, 64) != 1)
    r.rc[1] = -201;
  if (loom__backtrace_from(area, (void *)w_sleep, area, area + 64, pcs, 0) != 0)
    r.rc[1] = -202;
  /* A park site that forgot to say what it waits for: garbage in kind
   * and obj is never followed. */
  char words[256];
  loom__waiter_t *w = t->wait;
  uint32_t kind = w->kind;
  const void *obj = w->obj;
  const unsigned kinds[] = {LOOM__W_JOIN,   LOOM__W_READ, LOOM__W_PROCESS,
                            LOOM__W_SIGNAL, LOOM__W_FD,   9999};
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
    w->kind = kinds[i];
    w->obj = (const void *)(uintptr_t)0x1230;
    loom__wait_describe(t, words, sizeof(words));
    if (!strstr(words, "0x1230") && !strstr(words, "unknown")) r.rc[1] = -300 - (int)i;
  }
  w->kind = kind;
  w->obj = obj;
  r.rc[2] = loom__backtrace_task(t, pcs, 0);
  r.rc[3] = loom__backtrace_task(NULL, pcs, 64);
  loom_cancel(h);
  loom_join(h, NULL);
  return 0;
}

static void test_weird_stack(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(weird_main, NULL));
  assert_true(r.rc[0] >= 3); /* suspend, sleep, w_sleep at least */
  assert_int_equal(r.rc[1], 0);
  assert_int_equal(r.rc[2], 0);
  assert_int_equal(r.rc[3], 0);
}

/* ---- a parked task asked for its backtrace --------------------------------------- */

/* The dump resumes a parked task to have it unwind its own stack
 * (src/core/sched.c): nothing else may notice. The task's wait goes on
 * and ends normally, the switch count and the running task stay, a task
 * that never ran is not resumed (its backtrace is empty), and one with
 * too little stack left falls back on the frame-pointer walk (at least
 * the frame it switched from). */
static loom_event_t probe_ev;
static int probe_woke;

__attribute__((noinline)) static int p_wait(void *a) {
  (void)a;
  int rc = loom_event_wait(&probe_ev);
  probe_woke++;
  return rc;
}

/* Recurses, a KiB a frame, until less than `room` bytes of stack are
 * left, then waits. */
__attribute__((noinline)) static int p_deep(size_t room) {
  volatile char pad[1024];
  pad[0] = 1;
  loom_task_t *t = loom__self();
  uintptr_t lo = (uintptr_t)t->fiber.stack_lo;
  if ((uintptr_t)pad - lo > room) return p_deep(room) + pad[0] - 1;
  int rc = loom_event_wait(&probe_ev);
  probe_woke++;
  return rc + pad[0] - 1;
}

static int p_deep_task(void *a) {
  (void)a;
  return p_deep(LOOM__PROBE_ROOM / 2);
}

/* Whether one of pcs[0..n) is inside fn (its first 4 KiB). */
static int has_frame_in(void **pcs, int n, void *fn) {
  for (int i = 0; i < n; i++)
    if ((uintptr_t)pcs[i] > (uintptr_t)fn && (uintptr_t)pcs[i] < (uintptr_t)fn + 4096)
      return 1;
  return 0;
}

static int probe_main(void *a) {
  (void)a;
  loom_t *rt = loom__tls_rt;
  loom_event_init(&probe_ev);
  probe_woke = 0;
  loom_task_t *hw, *hd, *hn;
  loom_spawn(&hw, p_wait, NULL);
  loom_spawn(&hd, p_deep_task, NULL);
  loom_yield();
  loom_task_t *tw = loom__task_of(NULL, hw), *td = loom__task_of(NULL, hd);
  loom_spawn(&hn, p_wait, NULL); /* ready, never ran */
  loom_task_t *tn = loom__task_of(NULL, hn);
  void *pcs[64];
  loom_stats_t st0, st1;
  loom_stats_get(NULL, &st0);
  loom_task_t *cur = rt->current;
  for (int i = 0; i < 3; i++) {
    int n = loom__backtrace_task(tw, pcs, 64);
    if (n < 3 || !has_frame_in(pcs, n, (void *)p_wait)) r.rc[0] = -1 - i;
    /* Fewer frames asked than the stack has: only those. */
    if (loom__backtrace_task(tw, pcs, 2) != 2) r.rc[0] = -10;
  }
  r.rc[1] = loom__backtrace_task(tn, pcs, 64);
  /* Many probes of one task: each gives the same backtrace and leaves the
   * task's stack as deep as the first left it (a probe that stayed on the
   * stack would start the next backtrace and eat ~0.5 KiB a probe). */
  {
    void *first[64];
    int nf = loom__backtrace_task(tw, first, 64);
    uintptr_t sp1 = (uintptr_t)loom__ctx_sp(&tw->fiber.ctx);
    for (int i = 0; i < 200 && !r.rc[6]; i++) {
      int n = loom__backtrace_task(tw, pcs, 64);
      if (n != nf || memcmp(pcs, first, (size_t)n * sizeof(void *))) r.rc[6] = -1 - i;
      if ((uintptr_t)loom__ctx_sp(&tw->fiber.ctx) != sp1) r.rc[7] = -1 - i;
    }
  }
  int nd = loom__backtrace_task(td, pcs, 64);
  void *walked[64];
  int nw = loom__backtrace_fp(td, walked, 64);
  if (nd < 1 || nd != nw || memcmp(pcs, walked, (size_t)nd * sizeof(void *)))
    r.rc[2] = -1;
  loom_stats_get(NULL, &st1);
  if (st1.switches != st0.switches || rt->current != cur || rt->prev) r.rc[3] = -1;
  if (tw->state != LOOM__PARKED || td->state != LOOM__PARKED || tn->state != LOOM__READY)
    r.rc[3] = -2;
  loom_event_set(&probe_ev);
  int st[3] = {-1, -1, -1};
  loom_join(hw, &st[0]);
  loom_join(hd, &st[1]);
  loom_join(hn, &st[2]);
  r.rc[4] = st[0] | st[1] | st[2];
  r.rc[5] = probe_woke;
  return 0;
}

static void test_probe_leaves_no_trace(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(probe_main, NULL));
  assert_int_equal(r.rc[0], 0);
  assert_int_equal(r.rc[1], 0); /* never ran: not resumed, no frames */
  assert_int_equal(r.rc[2], 0);
  assert_int_equal(r.rc[3], 0);
  assert_int_equal(r.rc[4], 0);
  assert_int_equal(r.rc[5], 3);
  assert_int_equal(r.rc[6], 0); /* every backtrace the first one */
  assert_int_equal(r.rc[7], 0); /* the stack no deeper */
}

/* ---- many waiters on one lock -------------------------------------------------- */

/* Every waiter's line names the holder (lock-waiters.h says why it is a
 * test of speed as well). */
static lock_waiters_seen_t crowd;

static void dump_crowd(void *a) {
  r.rc[0] = loom_dump(NULL, *(int *)a, LOOM_DUMP_NO_STACKS);
}

static int many_main(void *a) { return lock_waiters_report(dump_crowd, a, &crowd); }

static void test_many_lock_waiters(void **state) {
  (void)state;
  char *text = run_with_dump_file(many_main);
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(crowd.holder);
  assert_loom_ok(crowd.waiters);
  assert_int_equal(lock_waiters_named(text, crowd.holder_id), MANY_WAITERS);
  free(text);
  if (getenv("LOOM_TEST_VERBOSE"))
    fprintf(stderr, "dump of %d lock waiters: %" PRIu64 " us\n", MANY_WAITERS,
            crowd.report_us);
}

/* ---- names ------------------------------------------------------------------------ */

static int names_main(void *a) {
  (void)a;
  /* Enough names to make the table grow, then forget every other one. */
  static loom_lock_t locks[100];
  char name[64];
  for (int i = 0; i < 100; i++) {
    snprintf(name, sizeof(name), "lock-%d-with-a-name-longer-than-31-bytes", i);
    r.rc[0] |= loom_debug_name(&locks[i], name);
  }
  for (int i = 0; i < 100; i += 2) r.rc[1] |= loom_debug_name(&locks[i], NULL);
  r.rc[2] = loom_debug_name(&locks[0], NULL); /* not named: fine */
  return 0;
}

static void test_names(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(names_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_loom_ok(r.rc[2]);
}

/* ---- dumping while tasks come and go ------------------------------------------------ */

static int short_lived(void *a) {
  (void)a;
  loom_yield();
  return 0;
}

static int churn(void *a) {
  int *stop = a;
  while (!*stop) {
    loom_task_t *t[4];
    for (int i = 0; i < 4; i++) loom_spawn(&t[i], short_lived, NULL);
    loom_spawn(NULL, short_lived, NULL);
    loom_yield();
    loom_join(t[0], NULL); /* the others end unjoined for a while */
    loom_yield();
    for (int i = 1; i < 4; i++) loom_join(t[i], NULL);
  }
  return 0;
}

static int churn_main(void *a) {
  int fd = *(int *)a;
  int stop = 0;
  loom_task_t *c[2];
  loom_spawn(&c[0], churn, &stop);
  loom_spawn(&c[1], churn, &stop);
  for (int i = 0; i < 200; i++) {
    r.rc[0] |= loom_dump(NULL, fd, i & 1 ? LOOM_DUMP_JSON : 0);
    loom_yield();
  }
  stop = 1;
  loom_join(c[0], NULL);
  loom_join(c[1], NULL);
  return 0;
}

static void test_dump_while_tasks_churn(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  int fd = open("/dev/null", O_WRONLY);
  assert_true(fd >= 0);
  assert_loom_ok(loom_run(churn_main, &fd));
  close(fd);
  assert_loom_ok(r.rc[0]);
}

/* ---- the dump signal -------------------------------------------------------------- */

static int signal_main(void *a) {
  int fd = *(int *)a;
  loom_task_t *t;
  loom_task_opts_t o = {.name = "w_sleep"};
  loom_spawn_ex(&t, w_sleep, NULL, &o);
  loom_yield();
  /* stderr goes to the file while the signal's dump is written. */
  int saved = dup(2);
  dup2(fd, 2);
  raise(SIGQUIT);
  for (int i = 0; i < 2000 && lseek(fd, 0, SEEK_END) == 0; i++) loom_sleep(1);
  r.rc[0] = (int)lseek(fd, 0, SEEK_END) > 0;

  /* A watcher of the program's own takes the signal over. */
  loom_signal_t *s;
  r.rc[1] = loom_signal_open(&s, SIGQUIT);
  off_t before = lseek(fd, 0, SEEK_END);
  raise(SIGQUIT);
  r.rc[2] = loom_signal_wait(s);
  loom_yield();
  r.rc[3] = lseek(fd, 0, SEEK_END) == before;
  loom_signal_close(s);
  dup2(saved, 2);
  close(saved);

  /* Turned off: SIGQUIT is back to what it was. */
  r.rc[4] = loom_dump_signal(NULL, 0);
  struct sigaction sa;
  sigaction(SIGQUIT, NULL, &sa);
  r.rc[5] = sa.sa_handler == SIG_DFL;
  r.rc[6] = loom_dump_signal(NULL, SIGUSR1);
  r.rc[7] = loom_dump_signal(NULL, SIGUSR1);
  loom_cancel(t);
  loom_join(t, NULL);
  return 0;
}

static void test_dump_signal(void **state) {
  (void)state;
  char *text = run_with_dump_file(signal_main);
  static const rc_want_t want[][RC_ROW] = {
      {RC_EQ(1), RC_EQ(0), RC_EQ(SIGQUIT), RC_EQ(1)}, // 0
      {RC_OK, RC_EQ(1), RC_OK, RC_OK},                // 4
  };
  assert_rcs(r.rc, 0, want);
  assert_non_null(strstr(text, "loom: task dump, 2 task(s)"));
  assert_non_null(strstr(text, "'w_sleep' parked for "));
  assert_non_null(strstr(text, "stats: tasks live 2"));
  free(text);
  /* After the run, SIGQUIT is as it was before it. */
  struct sigaction sa;
  sigaction(SIGQUIT, NULL, &sa);
  assert_true(sa.sa_handler == SIG_DFL);
}

static int nosig_main(void *a) {
  (void)a;
  struct sigaction sa;
  sigaction(SIGQUIT, NULL, &sa);
  r.rc[0] = sa.sa_handler == SIG_DFL;
  return 0;
}

static void test_dump_signal_env_off(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  setenv("LOOM_DUMP_SIGNAL", "0", 1);
  assert_loom_ok(loom_run(nosig_main, NULL));
  unsetenv("LOOM_DUMP_SIGNAL");
  assert_int_equal(r.rc[0], 1);
}

/* ---- host code of an embedded runtime ---------------------------------------------- */

static void test_embedded_host_dump(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  uv_loop_t loop;
  loom_t *rt;
  loom_task_t *t;
  assert_loom_ok(uv_loop_init(&loop));
  assert_loom_ok(loom_init(&rt, &loop, NULL));
  loom_task_opts_t o = {.name = "w_sleep"};
  assert_loom_ok(loom_spawn_on_ex(rt, &t, w_sleep, NULL, &o));
  uv_run(&loop, UV_RUN_NOWAIT); /* it runs and parks */
  int fd = dump_file();
  /* From host code: rt given, or NULL for the thread's runtime. */
  assert_loom_ok(loom_dump(rt, fd, 0));
  assert_loom_ok(loom_dump(NULL, fd, LOOM_DUMP_JSON));
  loom_stats_t st;
  assert_loom_ok(loom_stats_get(NULL, &st));
  assert_int_equal(st.tasks_live, 1);
  assert_loom_ok(loom_debug_name(&st, "host-named"));
  assert_loom_ok(loom_debug_name(&st, NULL));
  /* An embedded runtime has no dump signal until it asks. */
  struct sigaction sa;
  sigaction(SIGQUIT, NULL, &sa);
  assert_true(sa.sa_handler == SIG_DFL);
  assert_loom_ok(loom_dump_signal(rt, SIGUSR1));
  assert_loom_ok(loom_cancel_id(rt, 1));
  uv_run(&loop, UV_RUN_DEFAULT); /* it ends */
  assert_int_equal(loom_task_done(t), 1);
  assert_loom_ok(loom_detach(t)); /* host code cannot join */
  assert_loom_ok(loom_shutdown(rt, NULL, NULL));
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_loom_ok(uv_loop_close(&loop));
  sigaction(SIGUSR1, NULL, &sa);
  assert_true(sa.sa_handler == SIG_DFL);
  char *text = read_all(fd);
  close(fd);
  assert_non_null(strstr(text, "task 1 'w_sleep' parked for "));
  assert_non_null(strstr(text, "\"name\":\"w_sleep\",\"state\":\"parked\""));
  free(text);
}

/* ---- stats: timer lateness ----------------------------------------------------------- */

static int late_main(void *a) {
  (void)a;
  for (int i = 0; i < 5; i++) loom_sleep(1);
  loom_stats_get(NULL, &r.stats);
  return 0;
}

static void test_stats_timers(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(late_main, NULL));
  uint64_t fired = 0;
  for (int i = 0; i < LOOM_STAT_LATE_BUCKETS; i++) fired += r.stats.timer_late_hist[i];
  assert_int_equal(fired, 5);
  assert_int_equal(r.stats.tasks_live, 1);
  assert_int_equal(r.stats.tasks_spawned, 1);
  assert_string_equal(loom_stat_kind_name(LOOM_STAT_TIMER), "timer");
  assert_string_equal(loom_stat_kind_name(-1), "?");
  assert_string_equal(loom_stat_kind_name(LOOM_STAT_KINDS), "?");
}

/* ---- stats: spawn count and peak ---------------------------------------------------- */

static int st_empty(void *a) {
  (void)a;
  return 0;
}

static int st_parent(void *a) { /* two children, the first one detached */
  (void)a;
  loom_task_t *t;
  if (loom_spawn(NULL, st_empty, NULL)) return -1;
  if (loom_spawn(&t, st_empty, NULL)) return -1;
  return loom_join(t, NULL);
}

static loom_stats_t st_seen[4];

static int stats_main(void *a) {
  (void)a;
  loom_task_t *t[10];
  for (int i = 0; i < 10; i++)
    if (loom_spawn(&t[i], st_empty, NULL)) return -1;
  loom_stats_get(NULL, &st_seen[0]); /* the peak still rising */
  for (int i = 0; i < 10; i++)
    if (loom_join(t[i], NULL)) return -1;
  loom_stats_get(NULL, &st_seen[1]); /* it fell back */
  for (int i = 0; i < 3; i++)
    if (loom_spawn(&t[i], st_parent, NULL)) return -1;
  for (int i = 0; i < 3; i++)
    if (loom_join(t[i], NULL)) return -1;
  loom_yield(); /* the detached grandchildren end */
  loom_stats_get(NULL, &st_seen[2]);
  return 0;
}

static void test_stats_tasks(void **state) {
  (void)state;
  memset(st_seen, 0, sizeof(st_seen));
  assert_loom_ok(loom_run(stats_main, NULL));
  assert_int_equal(st_seen[0].tasks_spawned, 11);
  assert_int_equal(st_seen[0].tasks_live, 11);
  assert_int_equal(st_seen[0].tasks_peak, 11);
  assert_int_equal(st_seen[1].tasks_spawned, 11);
  assert_int_equal(st_seen[1].tasks_live, 1);
  assert_int_equal(st_seen[1].tasks_peak, 11);
  /* main, 3 parents, then their 6 children: 10 at most at once. */
  assert_int_equal(st_seen[2].tasks_spawned, 11 + 3 + 6);
  assert_int_equal(st_seen[2].tasks_live, 1);
  assert_int_equal(st_seen[2].tasks_peak, 11);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json_validator),
      cmocka_unit_test(test_every_wait_state),
      cmocka_unit_test(test_one_task_and_bad_args),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_weird_stack),
      cmocka_unit_test(test_probe_leaves_no_trace),
      cmocka_unit_test(test_many_lock_waiters),
      cmocka_unit_test(test_dump_while_tasks_churn),
      cmocka_unit_test(test_dump_signal),
      cmocka_unit_test(test_dump_signal_env_off),
      cmocka_unit_test(test_embedded_host_dump),
      cmocka_unit_test(test_stats_timers),
      cmocka_unit_test(test_stats_tasks),
  };
  return HARNESS_RUN(tests);
}
