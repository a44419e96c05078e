/* echo-client: the load generator of the echo benchmark (bench/echo/run.sh).
 *
 *   echo-client PORT CONNS SIZE [SECONDS [WARMUP_S [SERVER_PID]]]
 *
 * Opens CONNS TCP connections to 127.0.0.1:PORT. Each connection plays
 * closed-loop ping-pong: it sends a message of SIZE bytes and waits for the
 * whole echo before sending the next. One thread, one epoll set,
 * level-triggered; the socket is written again from the read handler as soon
 * as the echo is complete.
 *
 * Warm-up lasts until every connection has completed at least one round trip
 * (so a slow accept loop is not measured) and WARMUP_S (default 0.5) more
 * seconds have passed. Then SECONDS (default 3) are measured: the round
 * trips completed, and, if SERVER_PID is given, the server's CPU time over
 * the same interval (utime + stime of /proc/PID/stat, all its threads) and
 * the client's own. One result line on stdout:
 *
 *   echo-result rtps=<round trips/s> cpu_us_per_rt=<server CPU us per round
 *     trip> user_us_per_rt=<its user-mode part> server_util=<server CPU /
 *     wall> client_util=<client CPU / wall> steal=<share of the machine's
 *     CPU time the hypervisor stole meanwhile> conns=<n> size=<bytes>
 *     rts=<count> secs=<measured>
 *
 * LOOM_ECHO_VERIFY=1 checks the content of every echo (off by default: the
 * client must stay cheaper than the servers it loads).
 */
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  int fd;
  size_t sent;  /* bytes of the current message written */
  size_t got;   /* bytes of its echo received */
  uint64_t rts; /* round trips completed */
  int want_out; /* EPOLLOUT registered (a partial write) */
} conn_t;

static size_t msg_size;
static char *msg;
static char rbuf[1 << 16];
static int verify;
static int ep;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what) {
  fprintf(stderr, "echo-client: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* utime + stime of a process, in seconds (all threads, dead ones included);
 * *user gets utime alone. */
static double proc_cpu_s(int pid, double *user) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  if (!p) return -1;
  unsigned long utime = 0, stime = 0;
  /* After ") ": state(3) ... utime is field 14, stime 15. */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
             &stime) != 2)
    return -1;
  *user = (double)utime / (double)sysconf(_SC_CLK_TCK);
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* The machine's CPU time stolen by the hypervisor, and all of it, in ticks
 * (the "cpu" line of /proc/stat). */
static void machine_ticks(double *steal, double *total) {
  unsigned long long v[8] = {0};
  *steal = *total = 0;
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return;
  if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
             &v[4], &v[5], &v[6], &v[7]) == 8) {
    for (int i = 0; i < 8; i++) *total += (double)v[i];
    *steal = (double)v[7];
  }
  fclose(f);
}

static double self_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static void set_out(conn_t *c, int on) {
  if (c->want_out == on) return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
  c->want_out = on;
}

/* Writes what is left of the current message. */
static void send_rest(conn_t *c) {
  while (c->sent < msg_size) {
    ssize_t n = write(c->fd, msg + c->sent, msg_size - c->sent);
    if (n > 0) {
      c->sent += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      set_out(c, 1);
      return;
    } else {
      die("write");
    }
  }
  set_out(c, 0);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr,
            "usage: echo-client PORT CONNS SIZE [SECONDS [WARMUP_S [SERVER_PID]]]\n");
    return 2;
  }
  int port = atoi(argv[1]);
  int nconn = atoi(argv[2]);
  msg_size = (size_t)atol(argv[3]);
  double secs = argc > 4 ? atof(argv[4]) : 3.0;
  double warm = argc > 5 ? atof(argv[5]) : 0.5;
  int spid = argc > 6 ? atoi(argv[6]) : 0;
  const char *v = getenv("LOOM_ECHO_VERIFY");
  verify = v && *v == '1';
  if (port <= 0 || nconn <= 0 || msg_size == 0 || msg_size > sizeof(rbuf) || secs <= 0) {
    fprintf(stderr, "echo-client: bad arguments\n");
    return 2;
  }

  msg = malloc(msg_size);
  for (size_t i = 0; i < msg_size; i++) msg[i] = (char)('a' + i % 26);
  conn_t *conns = calloc((size_t)nconn, sizeof(*conns));
  ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");

  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  /* Blocking connects, one after the other: the kernel completes each
   * handshake at once, and the server's accept loop keeps up with them. */
  for (int i = 0; i < nconn; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) die("connect");
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    conns[i].fd = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
  }
  for (int i = 0; i < nconn; i++) send_rest(&conns[i]);

  enum { WARMING, MEASURING } phase = WARMING;
  int fresh = nconn; /* connections without a completed round trip */
  double t_start = now_s(), t0 = 0, t_end = 0, srv0 = 0, usr0 = 0, cli0 = 0;
  double steal0 = 0, ticks0 = 0;
  double warm_from = -1; /* when the last connection completed its first */
  uint64_t total = 0, rt0 = 0;
  struct epoll_event evs[1024];
  for (;;) {
    int n = epoll_wait(ep, evs, 1024, 100);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (evs[i].events & EPOLLOUT) send_rest(c);
      if (!(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
      ssize_t r = read(c->fd, rbuf, sizeof(rbuf));
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) {
        if (r == 0) errno = ECONNRESET;
        die("read (the server closed a connection)");
      }
      if (c->got + (size_t)r > msg_size || c->sent < msg_size) {
        fprintf(stderr, "echo-client: more echoed than sent\n");
        return 1;
      }
      if (verify && memcmp(rbuf, msg + c->got, (size_t)r) != 0) {
        fprintf(stderr, "echo-client: the echo differs from the message\n");
        return 1;
      }
      c->got += (size_t)r;
      if (c->got == msg_size) {
        c->got = c->sent = 0;
        if (c->rts++ == 0) fresh--;
        total++;
        send_rest(c);
      }
    }
    double t = now_s();
    if (phase == WARMING) {
      if (fresh == 0 && warm_from < 0) warm_from = t;
      if (warm_from >= 0 && t - warm_from >= warm) {
        phase = MEASURING;
        t0 = t;
        rt0 = total;
        srv0 = spid ? proc_cpu_s(spid, &usr0) : 0;
        cli0 = self_cpu_s();
        machine_ticks(&steal0, &ticks0);
        t_end = t0 + secs;
      } else if (t - t_start > 30) {
        fprintf(stderr, "echo-client: %d connections without an echo after 30 s\n",
                fresh);
        return 1;
      }
    } else if (t >= t_end) {
      double usr1 = 0;
      double srv1 = spid ? proc_cpu_s(spid, &usr1) : 0;
      double cli1 = self_cpu_s(), steal1, ticks1;
      machine_ticks(&steal1, &ticks1);
      double el = t - t0;
      uint64_t rts = total - rt0;
      double srv_cpu = srv1 - srv0;
      int ok = spid && srv0 >= 0 && srv1 >= 0 && rts > 0;
      printf("echo-result rtps=%.0f cpu_us_per_rt=%.3f user_us_per_rt=%.3f "
             "server_util=%.3f client_util=%.3f steal=%.3f conns=%d size=%zu "
             "rts=%llu secs=%.3f\n",
             (double)rts / el, ok ? srv_cpu * 1e6 / (double)rts : -1.0,
             ok ? (usr1 - usr0) * 1e6 / (double)rts : -1.0, spid ? srv_cpu / el : -1.0,
             (cli1 - cli0) / el,
             ticks1 > ticks0 ? (steal1 - steal0) / (ticks1 - ticks0) : 0.0, nconn,
             msg_size, (unsigned long long)rts, el);
      fflush(stdout);
      return 0; /* exit closes the connections */
    }
  }
}
