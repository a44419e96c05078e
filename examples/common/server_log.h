/* server_log.h: what the two TCP server examples share (echo_server.c,
 * pizza_server.c): a connection's address as text, the server's log, and
 * the command line.
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
  int record;                /* self-test: keep the lines instead of printing */
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
static inline void log_say(server_log_t *log, const char *peer, const char *fmt, ...) {
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
  if (shown != log->n) printf("server: %d lines about unknown %ss\n", log->n - shown, who);
}

/* The command line: [PORT | --selftest]. Sets *port (-1: the self-test;
 * default_port without an argument). Returns 0, or -1 for a bad command
 * line. */
static inline int server_args(int argc, char **argv, int default_port, int *port) {
  *port = default_port;
  if (argc > 2) return -1;
  if (argc == 2 && strcmp(argv[1], "--selftest") == 0) {
    *port = -1;
  } else if (argc == 2) {
    char *end;
    errno = 0;
    long v = strtol(argv[1], &end, 10);
    if (errno || *end || end == argv[1] || v < 0 || v > 65535) return -1;
    *port = (int)v;
  }
  return 0;
}

#endif
