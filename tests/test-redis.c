/* A real component through loom's fd waits: a real redis-server (started
 * next to this program by tests/run-with-redis.sh, port in
 * LOOM_REDIS_PORT) driven by hiredis in its non-blocking mode
 * (examples/common/redis_loom.h). 100 tasks share a few connections for
 * SET/GET/INCR and the counter comes out exact; a command cancelled or
 * timed out mid-flight leaves its connection usable (its late reply never
 * reaches the next command) and a connection the server closes stays
 * closed.
 *
 * Without hiredis at build time, or without redis-server at run time
 * (LOOM_REDIS_SKIP), every test reports SKIPPED with the reason: ctest
 * then lists the test as skipped, not passed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"

#ifdef LOOM_HAVE_HIREDIS
#include "../examples/common/redis_loom.h"

static int redis_port; /* the server's, from LOOM_REDIS_PORT */
#endif

/* Skips the test, saying why, unless a server and hiredis are there. */
static int need_redis(void) {
#ifndef LOOM_HAVE_HIREDIS
  print_message("SKIPPED: hiredis (libhiredis-dev) was not found at configure time\n");
  return 0;
#else
  const char *why = getenv("LOOM_REDIS_SKIP");
  if (why && *why) {
    print_message("SKIPPED: %s\n", why);
    return 0;
  }
  const char *port = getenv("LOOM_REDIS_PORT");
  if (!port || !*port) {
    print_message("SKIPPED: LOOM_REDIS_PORT is not set (run through "
                  "tests/run-with-redis.sh)\n");
    return 0;
  }
  redis_port = atoi(port);
  return 1;
#endif
}

#ifdef LOOM_HAVE_HIREDIS

typedef struct {
  long rc[32];
} rec_t;
static rec_t r;

/* ---- 100 tasks, a few shared connections ----------------------------------- */

enum { NTASKS = 100, NCONNS = 8, ROUNDS = 20 };
static rl_conn_t conns[NCONNS];
static struct { int bad_set, bad_get, bad_incr, errors; } tally;

static int worker(void *arg) {
  int id = (int)(intptr_t)arg;
  rl_conn_t *conn = &conns[id % NCONNS];
  char key[32], val[32];
  for (int i = 0; i < ROUNDS; i++) {
    snprintf(key, sizeof(key), "loom:k:%d", id);
    snprintf(val, sizeof(val), "v%d.%d", id, i);
    redisReply *rep;
    int rc = rl_command(conn, &rep, "SET %s %s", key, val);
    if (rc) {
      tally.errors++;
      return rc;
    }
    if (rep->type != REDIS_REPLY_STATUS || strcmp(rep->str, "OK") != 0) tally.bad_set++;
    freeReplyObject(rep);
    rc = rl_command(conn, &rep, "GET %s", key);
    if (rc) {
      tally.errors++;
      return rc;
    }
    if (rep->type != REDIS_REPLY_STRING || strcmp(rep->str, val) != 0) tally.bad_get++;
    freeReplyObject(rep);
    rc = rl_command(conn, &rep, "INCR loom:counter");
    if (rc) {
      tally.errors++;
      return rc;
    }
    if (rep->type != REDIS_REPLY_INTEGER) tally.bad_incr++;
    freeReplyObject(rep);
    if (i % 4 == 0) loom_yield(); /* mix the tasks' turns */
  }
  return 0;
}

static int many_main(void *arg) {
  (void)arg;
  for (int i = 0; i < NCONNS; i++) {
    r.rc[0] = rl_connect(&conns[i], "127.0.0.1", redis_port);
    if (r.rc[0]) return 0;
  }
  redisReply *rep;
  rl_command(&conns[0], &rep, "DEL loom:counter");
  if (rep) freeReplyObject(rep);
  loom_task_t *t[NTASKS];
  for (int i = 0; i < NTASKS; i++) loom_spawn(&t[i], worker, (void *)(intptr_t)i);
  int st[NTASKS];
  r.rc[1] = loom_gather(t, NTASKS, st, 0);
  r.rc[2] = rl_command(&conns[1], &rep, "GET loom:counter");
  if (rep) {
    r.rc[3] = rep->type == REDIS_REPLY_STRING ? atol(rep->str) : -1;
    freeReplyObject(rep);
  }
  for (int i = 0; i < NCONNS; i++) rl_close(&conns[i]);
  return 0;
}

static void test_redis_100_tasks(void **state) {
  (void)state;
  if (!need_redis()) skip();
  memset(&r, 0, sizeof(r));
  memset(&tally, 0, sizeof(tally));
  assert_loom_ok(loom_run(many_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_loom_ok(r.rc[2]);
  assert_int_equal(tally.errors, 0);
  assert_int_equal(tally.bad_set, 0);
  assert_int_equal(tally.bad_get, 0);
  assert_int_equal(tally.bad_incr, 0);
  assert_int_equal(r.rc[3], NTASKS * ROUNDS);
}

/* ---- cancellation and timeouts mid-command ------------------------------- */

static rl_conn_t c1, c2;

static int blpop_task(void *arg) {
  long *out = arg;
  redisReply *rep;
  *out = rl_command(&c1, &rep, "BLPOP loom:list 10");
  if (rep) freeReplyObject(rep);
  return 0;
}

/* The reply of value a command should get back: "PONG", "OK", the value. */
static int reply_is(redisReply *rep, int type, const char *s) {
  return rep && rep->type == type && strcmp(rep->str, s) == 0;
}

static int cancel_main(void *arg) {
  (void)arg;
  r.rc[0] = rl_connect(&c1, "127.0.0.1", redis_port);
  if (r.rc[0] == 0) r.rc[0] = rl_connect(&c2, "127.0.0.1", redis_port);
  if (r.rc[0]) return 0;
  redisReply *rep;
  rl_command(&c1, &rep, "DEL loom:list");
  freeReplyObject(rep);
  rl_command(&c1, &rep, "SET loom:a alpha");
  freeReplyObject(rep);
  /* Cancelled while the server holds the command (BLPOP blocks there). */
  loom_task_t *t;
  loom_spawn(&t, blpop_task, &r.rc[1]);
  loom_sleep(20); /* the command is sent and blocks in the server */
  loom_cancel(t);
  loom_join(t, NULL);
  /* Its reply comes later: a push releases the BLPOP. */
  rl_command(&c2, &rep, "LPUSH loom:list late");
  freeReplyObject(rep);
  /* The next command on c1 gets its own reply, not the BLPOP's. */
  r.rc[2] = rl_command(&c1, &rep, "GET loom:a");
  r.rc[3] = reply_is(rep, REDIS_REPLY_STRING, "alpha");
  freeReplyObject(rep);
  /* A timeout scope mid-command: same. */
  loom_scope_t sc;
  loom_timeout_enter(&sc, 20);
  r.rc[4] = rl_command(&c1, &rep, "BLPOP loom:empty 0.2");
  loom_scope_exit(&sc);
  r.rc[5] = rep == NULL;
  r.rc[6] = rl_command(&c1, &rep, "PING");
  r.rc[7] = reply_is(rep, REDIS_REPLY_STATUS, "PONG");
  freeReplyObject(rep);
  /* Cancelled before sending: nothing is owed. */
  loom_scope_t sc2;
  loom_timeout_enter(&sc2, 0);
  loom_sleep(1);
  r.rc[8] = rl_command(&c1, &rep, "SET loom:a beta");
  loom_scope_exit(&sc2);
  r.rc[9] = rl_command(&c1, &rep, "GET loom:a");
  r.rc[10] = reply_is(rep, REDIS_REPLY_STRING, "alpha");
  freeReplyObject(rep);
  rl_close(&c1);
  rl_close(&c2);
  return 0;
}

static void test_redis_cancel_mid_command(void **state) {
  (void)state;
  if (!need_redis()) skip();
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(cancel_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_err(r.rc[1], UV_ECANCELED);
  assert_loom_ok(r.rc[2]);
  assert_true(r.rc[3]);
  assert_loom_err(r.rc[4], UV_ETIMEDOUT);
  assert_true(r.rc[5]);
  assert_loom_ok(r.rc[6]);
  assert_true(r.rc[7]);
  assert_loom_err(r.rc[8], UV_ETIMEDOUT);
  assert_loom_ok(r.rc[9]);
  assert_true(r.rc[10]);
}

/* ---- a connection the server closes stays closed ------------------------- */

static int closed_main(void *arg) {
  (void)arg;
  r.rc[0] = rl_connect(&c1, "127.0.0.1", redis_port);
  if (r.rc[0]) return 0;
  redisReply *rep;
  r.rc[1] = rl_command(&c1, &rep, "QUIT");
  if (rep) freeReplyObject(rep);
  r.rc[2] = rl_command(&c1, &rep, "PING");
  r.rc[3] = rl_command(&c1, &rep, "PING"); /* sticky */
  rl_close(&c1);
  /* Nobody listens: refused, nothing left open. */
  int dead = redis_port == 65535 ? 65534 : redis_port + 1;
  r.rc[4] = rl_connect(&c2, "127.0.0.1", dead);
  if (r.rc[4] == 0) rl_close(&c2); /* something listens there after all */
  return 0;
}

static void test_redis_closed_connection(void **state) {
  (void)state;
  if (!need_redis()) skip();
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(closed_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_true(r.rc[2] < 0);
  assert_int_equal(r.rc[3], r.rc[2]);
  /* Refused, unless something else happens to listen there. */
  assert_true(r.rc[4] == UV_ECONNREFUSED || r.rc[4] == 0);
}

#else

static void test_redis_100_tasks(void **state) {
  (void)state;
  need_redis();
  skip();
}
static void test_redis_cancel_mid_command(void **state) {
  (void)state;
  need_redis();
  skip();
}
static void test_redis_closed_connection(void **state) {
  (void)state;
  need_redis();
  skip();
}

#endif

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_redis_100_tasks),
      cmocka_unit_test(test_redis_cancel_mid_command),
      cmocka_unit_test(test_redis_closed_connection),
  };
  return HARNESS_RUN(tests);
}
