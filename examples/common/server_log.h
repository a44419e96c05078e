/* server_log.h: what the TCP server examples share (echo_server.c,
 * pizza_server.c, and for the last three http_hello.c and mini_redis.c): a
 * connection's address as text, the server's log, serving until Ctrl-C,
 * the end of a self-test, and main().
 *
 * The log prints each line at once when serving. In the self-test it keeps
 * the lines instead, with the address of the client each is about, and
 * prints them afterwards grouped by client, so that the output does not
 * depend on how the connections interleave.
 *
 * A header of static functions rather than a library: each example stays
 * one C file plus what it includes, built exactly as a user's program would
 * be. Include it as "common/server_log.h" from an example's directory.
 */
#ifndef LOOM_EXAMPLES_SERVER_LOG_H
#define LOOM_EXAMPLES_SERVER_LOG_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <loom.h>

#define SERVER_LOG_MAX 64 /* lines kept in the self-test */

/* One line the server said, and the client it was about. */
typedef struct {
  char peer[LOOM_ADDRSTRLEN];
  char text[128];
} log_entry_t;

typedef struct {
  int record; /* self-test: keep the lines instead of printing */
  log_entry_t entries[SERVER_LOG_MAX];
  int n;
} server_log_t;

/* The address of s as text: the peer's (peer = 1) or its own (peer = 0),
 * "127.0.0.1:50718"; "?" if it has none. */
static inline void stream_addr(loom_stream_t *s, int peer, char *buf, size_t size) {
  struct sockaddr_storage ss;
  int rc = peer ? loom_stream_peername(s, &ss) : loom_stream_sockname(s, &ss);
  if (rc < 0 || loom_addr_format((const struct sockaddr *)&ss, buf, size) < 0)
    snprintf(buf, size, "?");
}

/* What the server says about the client at `peer`. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static inline void
log_say(server_log_t *log, const char *peer, const char *fmt, ...) {
  char text[128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (!log->record) {
    printf("%s\n", text);
    return;
  }
  if (log->n == SERVER_LOG_MAX) return; /* the self-tests say far fewer */
  log_entry_t *e = &log->entries[log->n++];
  snprintf(e->peer, sizeof e->peer, "%s", peer);
  snprintf(e->text, sizeof e->text, "%s", text);
}

/* Prints the kept lines, grouped by client (matched by address): "server,
 * about <who> <i>:" for each of the n addresses. */
static inline void log_print(const server_log_t *log, const char *who,
                             const char *const *addrs, int n) {
  int shown = 0;
  for (int i = 0; i < n; i++) {
    printf("server, about %s %d:\n", who, i);
    for (int j = 0; j < log->n; j++)
      if (strcmp(log->entries[j].peer, addrs[i]) == 0) {
        printf("  %s\n", log->entries[j].text);
        shown++;
      }
  }
  if (shown != log->n)
    printf("server: %d lines about unknown %ss\n", log->n - shown, who);
}

/* Serves handler (with arg) on 127.0.0.1:port, or on a free port if port
 * is 0, until the calling task is cancelled (Ctrl-C): asyncio's
 * start_server() and serve_forever(). Prints "<banner> on
 * 127.0.0.1:PORT" once listening, and "server closed" at the end.
 * loom_server_serve_forever() closes the server on the way out: no new
 * connections, and the open ones are cancelled and their handlers
 * awaited, so none outlives arg. Returns 0 when Ctrl-C stopped it, or the
 * error; prog names the program in a message on stderr. */
static inline int serve_until_cancelled(const char *prog, const char *banner, int port,
                                        loom_handler_fn handler, void *arg) {
  loom_server_t *server;
  int rc = loom_serve(&server, "127.0.0.1", port, handler, arg, NULL);
  if (rc < 0) {
    fprintf(stderr, "%s: cannot serve on 127.0.0.1:%d: %s\n", prog, port,
            loom_strerror(rc));
    return rc;
  }
  printf("%s on 127.0.0.1:%d\n", banner, loom_server_port(server));
  rc = loom_server_serve_forever(server);
  printf("server closed\n");
  return rc == UV_ECANCELED ? 0 : rc; /* Ctrl-C is how a server stops */
}

/* Ends a self-test: closes the server, giving its handlers up to a second
 * to end (then they would be cancelled, and the log would say so), and
 * reports each of the n clients that failed (statuses[], from
 * loom_gather) when rc, the gather's result, is a failure. Returns the
 * close's status. */
static inline int selftest_close(const char *prog, const char *who, loom_server_t *server,
                                 int rc, const int *statuses, int n) {
  int crc = loom_server_close(server, 1000);
  if (crc < 0) fprintf(stderr, "%s: closing: %s\n", prog, loom_strerror(crc));
  if (rc < 0)
    for (int i = 0; i < n; i++)
      if (statuses[i] < 0)
        fprintf(stderr, "%s: %s %d: %s\n", prog, who, i, loom_strerror(statuses[i]));
  return crc;
}

/* What the main task of a server example runs. */
typedef struct {
  int port; /* -1: the self-test */
  int (*serve)(int port);
  int (*selftest)(void);
} server_example_t;

static inline int server_example_task(void *arg) {
  const server_example_t *ex = arg;
  return ex->port < 0 ? ex->selftest() : ex->serve(ex->port);
}

/* main() of a server example: `prog [PORT | --selftest]`. Runs serve(PORT)
 * or selftest() as the main task; prints the usage (what the self-test
 * does: selftest_help) for a bad command line. Returns main's exit
 * status. */
static inline int server_example_main(const char *prog, int argc, char **argv,
                                      int default_port, const char *selftest_help,
                                      int (*serve)(int port), int (*selftest)(void)) {
  int port = default_port;
  int bad = argc > 2;
  if (argc == 2 && strcmp(argv[1], "--selftest") == 0) {
    port = -1;
  } else if (argc == 2) {
    char *end;
    errno = 0;
    long v = strtol(argv[1], &end, 10);
    bad = errno || *end || end == argv[1] || v < 0 || v > 65535;
    port = (int)v;
  }
  if (bad) {
    fprintf(stderr,
            "usage: %s [PORT]      serve on 127.0.0.1:PORT (default %d)\n"
            "       %s --selftest  %s\n",
            prog, default_port, prog, selftest_help);
    return 2;
  }
  /* A server's lines should show up as they happen, even in a pipe. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  server_example_t ex = {.port = port, .serve = serve, .selftest = selftest};
  int rc = loom_run(server_example_task, &ex);
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", prog, loom_strerror(rc));
    return 1;
  }
  return 0;
}

#endif
