/* echo-client-cg: closed-loop echo load for callgrind measurements.
 *   echo-client-cg PORT CONNS SIZE TARGET_RTS SERVER_PID
 * Warm-up: every connection completes 2 round trips; then all in-flight
 * echoes are drained, the server's callgrind counters are zeroed
 * (callgrind_control -z), exactly TARGET_RTS round trips are run, drained,
 * and the counters dumped (callgrind_control -d). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
typedef struct {
  int fd;
  size_t sent, got;
  uint64_t rts;
  int want_out, busy;
} conn_t;
static size_t msg_size;
static char *msg;
static char rbuf[1 << 16];
static int ep;
static void die(const char *w) {
  fprintf(stderr, "client: %s: %s\n", w, strerror(errno));
  exit(1);
}
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static void set_out(conn_t *c, int on) {
  if (c->want_out == on) return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
  c->want_out = on;
}
static void send_rest(conn_t *c) {
  while (c->sent < msg_size) {
    ssize_t n = write(c->fd, msg + c->sent, msg_size - c->sent);
    if (n > 0)
      c->sent += (size_t)n;
    else if (n < 0 && errno == EINTR)
      continue;
    else if (n < 0 && errno == EAGAIN) {
      set_out(c, 1);
      return;
    } else
      die("write");
  }
  set_out(c, 0);
}
static void start(conn_t *c) {
  c->busy = 1;
  c->sent = c->got = 0;
  send_rest(c);
}
int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage\n");
    return 2;
  }
  int port = atoi(argv[1]), nconn = atoi(argv[2]);
  msg_size = (size_t)atol(argv[3]);
  uint64_t target = strtoull(argv[4], 0, 10);
  int spid = atoi(argv[5]);
  msg = malloc(msg_size);
  for (size_t i = 0; i < msg_size; i++) msg[i] = (char)('a' + i % 26);
  conn_t *conns = calloc(nconn, sizeof *conns);
  ep = epoll_create1(0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < nconn; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    conns[i].fd = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
  }
  enum { WARM, DRAIN1, MEAS, DRAIN2 } phase = WARM;
  for (int i = 0; i < nconn; i++) start(&conns[i]);
  int busy = nconn, warm_left = nconn;
  uint64_t issued = 0, done = 0;
  double t0 = 0;
  struct epoll_event evs[1024];
  for (;;) {
    int n = epoll_wait(ep, evs, 1024, 1000);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (evs[i].events & EPOLLOUT) send_rest(c);
      if (!(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
      ssize_t r = read(c->fd, rbuf, sizeof rbuf);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) {
        errno = r ? errno : ECONNRESET;
        die("read");
      }
      if (!c->busy || c->got + r > msg_size || c->sent < msg_size) {
        fprintf(stderr, "client: protocol\n");
        return 1;
      }
      c->got += r;
      if (c->got < msg_size) continue;
      c->busy = 0;
      busy--;
      c->rts++;
      if (phase == WARM) {
        if (c->rts == 2) warm_left--;
        if (warm_left > 0 || c->rts < 2) {
          start(c);
          busy++;
        }
      } else if (phase == MEAS) {
        done++;
        if (issued < target) {
          issued++;
          start(c);
          busy++;
        }
      }
    }
    if (phase == WARM && warm_left == 0) phase = DRAIN1;
    if (phase == DRAIN1 && busy == 0) {
      char cmd[128];
      snprintf(cmd, sizeof cmd, "callgrind_control -z %d >/dev/null", spid);
      if (system(cmd) != 0) {
        fprintf(stderr, "client: zero failed\n");
        return 1;
      }
      phase = MEAS;
      t0 = now_s();
      for (int i = 0; i < nconn && issued < target; i++) {
        issued++;
        start(&conns[i]);
        busy++;
      }
    }
    if (phase == MEAS && busy == 0 && issued == target) {
      double el = now_s() - t0;
      char cmd[128];
      snprintf(cmd, sizeof cmd, "callgrind_control -d %d >/dev/null", spid);
      if (system(cmd) != 0) {
        fprintf(stderr, "client: dump failed\n");
        return 1;
      }
      printf("rts=%llu secs=%.2f rtps=%.0f\n", (unsigned long long)done, el, done / el);
      return 0;
    }
  }
}
