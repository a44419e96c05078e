/* http-client-cg: closed-loop HTTP keep-alive load for callgrind
 * measurements of the "Hello, World!" servers (bench/realload/callgrind.sh):
 * each connection sends one GET, waits for the whole answer, and sends the
 * next (wrk's keep-alive case, one request per round trip).
 *
 *   http-client-cg PORT CONNS TARGET_REQUESTS SERVER_PID
 *
 * Warm-up: every connection completes 2 requests; then, with nothing in
 * flight, the server's callgrind counters are zeroed (callgrind_control
 * -z), exactly TARGET_REQUESTS requests are run, and the counters dumped
 * (callgrind_control -d). The answer must be the servers' 200 with
 * "Hello, World!" (the same bytes from http_hello and hello-libuv). */
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

static const char request[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             "Content-Length: 13\r\n\r\nHello, World!";

typedef struct {
  int fd;
  size_t got;
  uint64_t done;
  int busy;
  char in[sizeof answer];
} conn_t;

static void die(const char *w) {
  fprintf(stderr, "http-client-cg: %s: %s\n", w, strerror(errno));
  exit(1);
}

static void start(conn_t *c) {
  /* A request is far smaller than any socket buffer: one write takes it. */
  if (write(c->fd, request, sizeof request - 1) != (ssize_t)(sizeof request - 1))
    die("write");
  c->busy = 1;
  c->got = 0;
}

static void control(const char *opt, int pid) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "callgrind_control %s %d >/dev/null 2>&1", opt, pid);
  if (system(cmd) != 0) {
    fprintf(stderr, "http-client-cg: callgrind_control %s failed\n", opt);
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: http-client-cg PORT CONNS TARGET_REQUESTS SERVER_PID\n");
    return 2;
  }
  int port = atoi(argv[1]), nconn = atoi(argv[2]), spid = atoi(argv[4]);
  uint64_t target = strtoull(argv[3], 0, 10);
  conn_t *conns = calloc((size_t)nconn, sizeof *conns);
  int ep = epoll_create1(0);
  if (!conns || ep < 0) die("setup");
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
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
  enum { WARM, MEAS } phase = WARM;
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
      ssize_t r = read(c->fd, c->in + c->got, sizeof answer - 1 - c->got);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) {
        errno = r ? errno : ECONNRESET;
        die("read");
      }
      if (!c->busy) {
        fprintf(stderr, "http-client-cg: an answer nobody asked for\n");
        return 1;
      }
      c->got += (size_t)r;
      if (c->got < sizeof answer - 1) continue;
      if (memcmp(c->in, answer, sizeof answer - 1) != 0) {
        fprintf(stderr, "http-client-cg: wrong answer\n");
        return 1;
      }
      c->busy = 0;
      busy--;
      c->done++;
      if (phase == WARM) {
        if (c->done == 2) warm_left--;
        if (c->done < 2) {
          start(c);
          busy++;
        }
      } else {
        done++;
        if (issued < target) {
          issued++;
          start(c);
          busy++;
        }
      }
    }
    if (phase == WARM && warm_left == 0 && busy == 0) {
      control("-z", spid);
      phase = MEAS;
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      t0 = ts.tv_sec + ts.tv_nsec * 1e-9;
      for (int i = 0; i < nconn && issued < target; i++) {
        issued++;
        start(&conns[i]);
        busy++;
      }
    }
    if (phase == MEAS && busy == 0 && issued == target) {
      control("-d", spid);
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      double el = ts.tv_sec + ts.tv_nsec * 1e-9 - t0;
      printf("requests=%llu secs=%.2f rps=%.0f\n", (unsigned long long)done, el,
             done / el);
      return 0;
    }
  }
}
