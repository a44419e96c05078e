/* echo-load: the connections and the epoll loop of the echo benchmark's
 * load clients (echo-load.h). */
#define _GNU_SOURCE
#include "echo-load.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char rbuf[ECHO_LOAD_MAX_SIZE];

double echo_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void echo_die(const char *prog, const char *what) {
  fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
  exit(1);
}

void echo_load_open(echo_load_t *l, const char *prog, int port, int nconn, size_t size,
                    void (*done)(echo_load_t *l, echo_conn_t *c)) {
  *l = (echo_load_t){.prog = prog, .msg_size = size, .nconn = nconn, .done = done};
  l->msg = malloc(size);
  l->conns = calloc((size_t)nconn, sizeof *l->conns);
  if (!l->msg || !l->conns) echo_die(prog, "malloc");
  for (size_t i = 0; i < size; i++) l->msg[i] = (char)('a' + i % 26);
  l->ep = epoll_create1(0);
  if (l->ep < 0) echo_die(prog, "epoll_create1");

  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < nconn; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) echo_die(prog, "socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) echo_die(prog, "connect");
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    l->conns[i].fd = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->conns[i]};
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) < 0) echo_die(prog, "epoll_ctl");
  }
}

static void set_out(echo_load_t *l, echo_conn_t *c, int on) {
  if (c->want_out == on) return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) echo_die(l->prog, "epoll_ctl");
  c->want_out = on;
}

/* Writes what is left of the current message; EPOLLOUT while some is. */
static void send_rest(echo_load_t *l, echo_conn_t *c) {
  while (c->sent < l->msg_size) {
    ssize_t n = write(c->fd, l->msg + c->sent, l->msg_size - c->sent);
    if (n > 0) {
      c->sent += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      set_out(l, c, 1);
      return;
    } else {
      echo_die(l->prog, "write");
    }
  }
  set_out(l, c, 0);
}

void echo_send(echo_load_t *l, echo_conn_t *c) {
  c->sent = c->got = 0;
  send_rest(l, c);
}

int echo_load_poll(echo_load_t *l, int timeout_ms) {
  struct epoll_event evs[1024];
  int n = epoll_wait(l->ep, evs, 1024, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return 0;
    echo_die(l->prog, "epoll_wait");
  }
  for (int i = 0; i < n; i++) {
    echo_conn_t *c = evs[i].data.ptr;
    if (evs[i].events & EPOLLOUT) send_rest(l, c);
    if (!(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
    ssize_t r = read(c->fd, rbuf, sizeof rbuf);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (r <= 0) {
      if (r == 0) errno = ECONNRESET;
      echo_die(l->prog, "read (the server closed a connection)");
    }
    /* An echo already complete (got == msg_size) takes no more. */
    if (c->got + (size_t)r > l->msg_size || c->sent < l->msg_size) {
      fprintf(stderr, "%s: more echoed than sent\n", l->prog);
      return -1;
    }
    if (l->verify && memcmp(rbuf, l->msg + c->got, (size_t)r) != 0) {
      fprintf(stderr, "%s: the echo differs from the message\n", l->prog);
      return -1;
    }
    c->got += (size_t)r;
    if (c->got == l->msg_size) {
      c->rts++;
      l->done(l, c);
    }
  }
  return 0;
}
