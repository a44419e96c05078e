/* bench-pipeline: a pipelined PING server answering with one write per
 * reply ("one") or batched by hand ("batch"); a forked plain client sends
 * DEPTH requests per round on CONNS connections. Usage:
 *   bench-pipeline one|batch ROUNDS DEPTH CONNS
 * Not run by bench/run.sh; docs/benchmarks.md gives the commands and
 * figures. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "loom.h"

static int batch, rounds, depth, conns;
static loom_server_t *srv;
static int done_conns;

static int handler(loom_stream_t *s, void *arg) {
  (void)arg;
  char line[128], out[8192];
  size_t o = 0;
  while (loom_read_line(s, line, sizeof line) > 0) {
    if (!batch) {
      if (loom_write(s, "+PONG\r\n", 7)) break;
    } else {
      memcpy(out + o, "+PONG\r\n", 7);
      o += 7;
      if (loom_stream_buffered(s) == 0 || o + 7 > sizeof out) {
        if (loom_write(s, out, o)) break;
        o = 0;
      }
    }
  }
  loom_close(s);
  ++done_conns;
  return 0;
}

static void client(int port) {
  char req[64 * 6], buf[65536];
  for (int i = 0; i < depth; i++) memcpy(req + i * 6, "PING\r\n", 6);
  int fds[64];
  for (int c = 0; c < conns; c++) {
    fds[c] = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fds[c], (struct sockaddr *)&a, sizeof a)) _exit(1);
    int one = 1;
    setsockopt(fds[c], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  for (int r = 0; r < rounds; r++) {
    for (int c = 0; c < conns; c++)
      if (write(fds[c], req, depth * 6) != depth * 6) _exit(2);
    for (int c = 0; c < conns; c++) {
      int want = depth * 7, got = 0;
      while (got < want) {
        ssize_t n = read(fds[c], buf, sizeof buf);
        if (n <= 0) _exit(3);
        got += n;
      }
    }
  }
  for (int c = 0; c < conns; c++) close(fds[c]);
  _exit(0);
}

static int main_task(void *arg) {
  (void)arg;
  int rc = loom_serve(&srv, "127.0.0.1", 0, handler, NULL, NULL);
  if (rc) return rc;
  int port = loom_server_port(srv);
  pid_t pid = fork();
  if (pid == 0) client(port);
  while (done_conns < conns) loom_sleep(5);
  return loom_server_close(srv, 0);
}

int main(int argc, char **argv) {
  batch = argc > 1 && strcmp(argv[1], "batch") == 0;
  rounds = argc > 2 ? atoi(argv[2]) : 20000;
  depth = argc > 3 ? atoi(argv[3]) : 16;
  conns = argc > 4 ? atoi(argv[4]) : 4;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int rc = loom_run(main_task, NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  int st;
  wait(&st);
  double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("%s rounds=%d depth=%d conns=%d: %.3f s, %.0f ns/reply rc=%d client=%d\n",
         batch ? "batch" : "one", rounds, depth, conns, s,
         s * 1e9 / ((double)rounds * depth * conns), rc, WEXITSTATUS(st));
  return 0;
}
