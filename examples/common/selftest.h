/* selftest.h: the self-test runner of the request-reply server examples
 * (http_hello.c, mini_redis.c). Each client is a check: it connects to the
 * server, talks to it, and says what it saw. The runner serves on a free
 * port, runs every client at once, each in a task of its own and on its own
 * connection, closes the server and reports, one line per client, in the
 * order of the array (not of completion), so that the output does not
 * depend on how the connections interleave:
 *
 *     serving on 127.0.0.1:41523 (self-test: 2 clients)
 *     keep-alive: <its outcome>
 *     split: FAILED: <what went wrong>
 *     <the server's own summary>
 *     server closed
 *
 * An example that starts its server itself (over TLS, https_hello.c) runs
 * the clients against it with selftest_run_on.
 *
 * A header of static functions rather than a library: each example stays
 * one C file plus what it includes, built exactly as a user's program would
 * be. Include it as "common/selftest.h" from an example's directory.
 */
#ifndef LOOM_EXAMPLES_SELFTEST_H
#define LOOM_EXAMPLES_SELFTEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <loom.h>

#include "server_log.h" /* selftest_close */

#define SELFTEST_MAX_CLIENTS 16

typedef struct selftest_client_s selftest_client_t;
struct selftest_client_s {
  const char *name;
  /* Runs on the client's connection, s (which the runner closes); returns 1
   * if the server passed, 0 with c->outcome saying why if not. */
  int (*check)(selftest_client_t *c, loom_stream_t *s);
  int port;          /* the server's: set by the runner */
  char outcome[160]; /* out: what it saw, or what went wrong */
};

/* What a check returns: sets c->outcome, printf-style, and is 1 (the
 * server passed) or 0 (it failed). */
#define SELFTEST_PASS(c, ...) (snprintf((c)->outcome, sizeof(c)->outcome, __VA_ARGS__), 1)
#define SELFTEST_FAIL(c, ...) (snprintf((c)->outcome, sizeof(c)->outcome, __VA_ARGS__), 0)

/* Sends data (len bytes) one byte per write, a millisecond apart, so that
 * the server's reads see it in pieces (the pause paces the bytes; a check
 * must not depend on it). Returns 1, or 0 with c->outcome saying why. */
static inline int selftest_send_bytewise(selftest_client_t *c, loom_stream_t *s,
                                         const char *data, size_t len) {
  int rc = 0;
  for (size_t i = 0; i < len && rc >= 0; i++) {
    rc = loom_write(s, data + i, 1);
    if (rc >= 0) rc = loom_sleep(1);
  }
  return rc < 0 ? SELFTEST_FAIL(c, "%s", loom_strerror(rc)) : 1;
}

/* Sends req, then compares everything the server sends up to its close
 * (at most 64 KiB) with want. Returns 1, or 0 with c->outcome saying what
 * came instead. */
static inline int selftest_exchange_to_close(selftest_client_t *c, loom_stream_t *s,
                                             const char *req, const char *want) {
  int rc = loom_write(s, req, strlen(req));
  char *got = NULL;
  size_t len = 0;
  if (rc >= 0) rc = loom_read_all(s, &got, &len, 64 * 1024);
  int ok = rc >= 0 && len == strlen(want) && memcmp(got, want, len) == 0;
  if (!ok && rc >= 0)
    snprintf(c->outcome, sizeof c->outcome, "unexpected answer (%zu bytes): %.60s", len,
             got ? got : "");
  else if (!ok)
    snprintf(c->outcome, sizeof c->outcome, "%s", loom_strerror(rc));
  free(got);
  return ok;
}

/* One client's task: connects, runs the check, closes. */
static inline int selftest_client_task(void *p) {
  selftest_client_t *c = p;
  loom_stream_t *s;
  int rc = loom_tcp_connect(&s, "127.0.0.1", c->port);
  if (rc < 0) {
    snprintf(c->outcome, sizeof c->outcome, "connect: %s", loom_strerror(rc));
    return rc;
  }
  int ok = c->check(c, s);
  loom_close(s);
  return ok ? 0 : UV_EPROTO;
}

/* Runs the n clients at once against server (serving on 127.0.0.1),
 * closes it (giving its handlers a second to end), then prints each
 * client's outcome, what summary(arg) prints about the server (summary may
 * be NULL) and "server closed". Returns 0 if every check passed,
 * UV_EPROTO if one failed, or the error that kept the test from running;
 * prog names the program in messages on stderr. At most
 * SELFTEST_MAX_CLIENTS clients. */
static inline int selftest_run_on(const char *prog, loom_server_t *server,
                                  selftest_client_t *clients, int n,
                                  void (*summary)(void *arg), void *arg) {
  if (n < 1 || n > SELFTEST_MAX_CLIENTS) {
    loom_server_close(server, 0);
    return UV_EINVAL;
  }
  int port = loom_server_port(server);
  printf("serving on 127.0.0.1:%d (self-test: %d clients)\n", port, n);
  for (int i = 0; i < n; i++) clients[i].port = port;

  int statuses[SELFTEST_MAX_CLIENTS] = {0};
  int rc = loom_gather_map(selftest_client_task, clients, sizeof clients[0], (size_t)n,
                           statuses, 0);
  int crc = selftest_close(prog, "client", server, 0, statuses, n);

  int failed = 0;
  for (int i = 0; i < n; i++) {
    printf("%s: %s%s\n", clients[i].name, statuses[i] < 0 ? "FAILED: " : "",
           clients[i].outcome);
    failed += statuses[i] < 0;
  }
  if (summary) summary(arg);
  printf("server closed\n");
  if (failed) return UV_EPROTO;
  return rc < 0 ? rc : crc;
}

/* Serves handler (with arg) on a free port of 127.0.0.1 and runs the n
 * clients against it (selftest_run_on). */
static inline int selftest_run(const char *prog, loom_handler_fn handler, void *arg,
                               selftest_client_t *clients, int n,
                               void (*summary)(void *arg)) {
  if (n < 1 || n > SELFTEST_MAX_CLIENTS) return UV_EINVAL;
  loom_server_t *server;
  int rc = loom_serve(&server, "127.0.0.1", 0, handler, arg, NULL);
  if (rc < 0) {
    fprintf(stderr, "%s: cannot serve on 127.0.0.1: %s\n", prog, loom_strerror(rc));
    return rc;
  }
  return selftest_run_on(prog, server, clients, n, summary, arg);
}

#endif
