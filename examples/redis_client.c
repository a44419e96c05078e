/* redis_client: a Redis client on loom, with hiredis doing the protocol and
 * loom's fd waits (loom/fd.h) doing the waiting, what asyncio programs do
 * with redis.asyncio:
 *
 *     r = redis.asyncio.Redis(host="127.0.0.1", port=port)
 *     await r.set("greeting", "hello from loom")
 *     print(await r.get("greeting"))
 *     await asyncio.gather(*(bump(r) for _ in range(10)))   # INCR x 100 each
 *     print(await r.get("hits"))
 *     try:
 *         async with asyncio.timeout(0.1):
 *             await r.blpop("jobs", 5)
 *     except TimeoutError:
 *         print("no job within 100 ms;", await r.ping())
 *
 * hiredis runs in its non-blocking mode: when it would block, the task
 * waits for the socket with loom_fd_wait and the other tasks run
 * (common/redis_loom.h has the glue, a page of it). Ten tasks share two
 * connections; a command owns its connection from sending to reply, so the
 * replies cannot cross. The BLPOP cut short by the timeout leaves its reply
 * to come: the connection drops it before the next command's, so the
 * connection stays usable.
 *
 * Usage:
 *     redis_client PORT        talk to the Redis server on 127.0.0.1:PORT
 *                              (start one: redis-server --port 6380 --save "")
 *
 * Output:
 *
 *     connected to 127.0.0.1:6380 (2 connections)
 *     GET greeting -> "hello from loom"
 *     10 tasks x 100 INCR -> hits = 1000
 *     BLPOP jobs: no job within 100 ms; PING -> PONG
 */
#include <stdio.h>
#include <stdlib.h>

#include <loom.h>

#include "common/redis_loom.h"

#define NCONNS 2
#define NTASKS 10
#define NINCR 100

static rl_conn_t conns[NCONNS];

/* A reply as text, for printing. */
static const char *text(redisReply *rep) {
  if (!rep) return "(none)";
  switch (rep->type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS:
  case REDIS_REPLY_ERROR: return rep->str;
  case REDIS_REPLY_NIL: return "(nil)";
  default: return "(other)";
  }
}

static int bump(void *arg) {
  rl_conn_t *conn = arg;
  for (int i = 0; i < NINCR; i++) {
    redisReply *rep;
    int rc = rl_command(conn, &rep, "INCR hits");
    if (rc) return rc;
    freeReplyObject(rep);
  }
  return 0;
}

static int run(void *arg) {
  int port = *(int *)arg;
  for (int i = 0; i < NCONNS; i++) {
    int rc = rl_connect(&conns[i], "127.0.0.1", port);
    if (rc) {
      fprintf(stderr, "redis_client: cannot connect to 127.0.0.1:%d: %s\n", port,
              loom_strerror(rc));
      while (i--) rl_close(&conns[i]);
      return 1;
    }
  }
  printf("connected to 127.0.0.1:%d (%d connections)\n", port, NCONNS);

  redisReply *rep;
  int rc = rl_command(&conns[0], &rep, "SET greeting %s", "hello from loom");
  if (rc == 0) {
    freeReplyObject(rep);
    rc = rl_command(&conns[0], &rep, "GET greeting");
  }
  if (rc == 0) {
    printf("GET greeting -> \"%s\"\n", text(rep));
    freeReplyObject(rep);
    rc = rl_command(&conns[0], &rep, "DEL hits jobs");
  }
  if (rc == 0) {
    freeReplyObject(rep);
    loom_task_t *t[NTASKS];
    int st[NTASKS];
    for (int i = 0; i < NTASKS; i++) loom_spawn(&t[i], bump, &conns[i % NCONNS]);
    rc = loom_gather(t, NTASKS, st, 0);
  }
  if (rc == 0) rc = rl_command(&conns[1], &rep, "GET hits");
  if (rc == 0) {
    printf("%d tasks x %d INCR -> hits = %s\n", NTASKS, NINCR, text(rep));
    freeReplyObject(rep);
    loom_scope_t sc;
    loom_timeout_enter(&sc, 100);
    rc = rl_command(&conns[0], &rep, "BLPOP jobs 5");
    loom_scope_exit(&sc);
    if (rc == UV_ETIMEDOUT) {
      /* The connection drops BLPOP's late reply (nil, 5 s from now, or a
       * job pushed meanwhile) before PING's: push one so as not to wait. */
      redisReply *push;
      rc = rl_command(&conns[1], &push, "RPUSH jobs wake-up");
      if (rc == 0) {
        freeReplyObject(push);
        rc = rl_command(&conns[0], &rep, "PING");
      }
      if (rc == 0) {
        printf("BLPOP jobs: no job within 100 ms; PING -> %s\n", text(rep));
        freeReplyObject(rep);
      }
    } else if (rc == 0) {
      printf("BLPOP jobs -> a job came\n");
      freeReplyObject(rep);
    }
  }
  if (rc) fprintf(stderr, "redis_client: %s\n", loom_strerror(rc));
  for (int i = 0; i < NCONNS; i++) rl_close(&conns[i]);
  return rc ? 1 : 0;
}

int main(int argc, char **argv) {
  char *end = NULL;
  long port = argc == 2 ? strtol(argv[1], &end, 10) : -1;
  if (argc != 2 || *end || port <= 0 || port > 65535) {
    fprintf(stderr, "usage: redis_client PORT\n");
    return 2;
  }
  int p = (int)port;
  int rc = loom_run(run, &p);
  return rc < 0 ? 1 : rc;
}
