/* loom-monitor: a client for loom's monitor socket (include/loom/monitor.h,
 * docs/monitor.md).
 *
 *   loom-monitor [-s PATH] COMMAND [ARG...]   sends one command, prints the
 *                                             reply, exits (1 if the reply
 *                                             is an error line)
 *   loom-monitor [-s PATH]                    relays standard input to the
 *                                             monitor line by line and
 *                                             prints what it answers
 *
 * PATH defaults to $LOOM_MONITOR, the variable that makes loom_run start
 * the monitor. The protocol is plain lines, so `socat - UNIX-CONNECT:PATH`
 * does the same. Needs nothing but POSIX sockets (no libloom).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void usage(FILE *f) {
  fprintf(f,
          "usage: loom-monitor [-s PATH] [COMMAND [ARG...]]\n"
          "  -s PATH   the monitor's socket (default: $LOOM_MONITOR)\n"
          "  COMMAND   ps, tree, stack ID, cancel ID, stats, json, help\n"
          "            (without one: commands are read from standard input)\n");
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Copies the socket to stdout until EOF; notes whether a line of the
 * reply starts with "error: ". */
typedef struct {
  int at_line_start, saw_error;
  char head[8];
  size_t nhead;
} scan_t;

static void scan(scan_t *s, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (s->at_line_start) {
      s->nhead = 0;
      s->at_line_start = 0;
    }
    if (s->nhead < sizeof(s->head)) s->head[s->nhead++] = p[i];
    if (s->nhead == 7 && !memcmp(s->head, "error: ", 7)) s->saw_error = 1;
    if (p[i] == '\n') s->at_line_start = 1;
  }
}

int main(int argc, char **argv) {
  const char *path = getenv("LOOM_MONITOR");
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (!strcmp(argv[i], "-s") && i + 1 < argc) {
      path = argv[++i];
    } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(argv[i], "--")) {
      i++;
      break;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (!path || !*path) {
    fprintf(stderr, "loom-monitor: no socket: give -s PATH or set LOOM_MONITOR\n");
    return 2;
  }
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(sun.sun_path)) {
    fprintf(stderr, "loom-monitor: %s: path too long for a Unix socket\n", path);
    return 2;
  }
  memcpy(sun.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
    fprintf(stderr, "loom-monitor: cannot connect to %s: %s\n", path, strerror(errno));
    return 2;
  }

  int interactive = i >= argc;
  if (!interactive) {
    /* One command: its words joined by spaces, then EOF, so the monitor
     * answers and hangs up. */
    size_t len = 2;
    for (int k = i; k < argc; k++) len += strlen(argv[k]) + 1;
    char *line = malloc(len);
    if (!line) return 2;
    line[0] = '\0';
    for (int k = i; k < argc; k++) {
      if (k > i) strcat(line, " ");
      strcat(line, argv[k]);
    }
    strcat(line, "\n");
    int bad = write_all(fd, line, strlen(line));
    free(line);
    if (bad) {
      fprintf(stderr, "loom-monitor: write: %s\n", strerror(errno));
      return 2;
    }
    shutdown(fd, SHUT_WR);
  }

  scan_t sc = {.at_line_start = 1};
  struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
  int nfds = interactive ? 2 : 1;
  char buf[8192];
  for (;;) {
    if (poll(p, (nfds_t)nfds, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break; /* the monitor hung up */
      scan(&sc, buf, (size_t)n);
      if (write_all(1, buf, (size_t)n)) break;
    }
    if (nfds == 2 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = read(0, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) { /* end of input: let the monitor finish, then hang up */
        shutdown(fd, SHUT_WR);
        nfds = 1;
      } else if (write_all(fd, buf, (size_t)n)) {
        break;
      }
    }
  }
  close(fd);
  return sc.saw_error ? 1 : 0;
}
