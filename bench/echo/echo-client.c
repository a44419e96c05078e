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
 * client must stay cheaper than the servers it loads). The connections and
 * their loop are echo-load.c's, shared with echo-client-cg.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "echo-load.h"

static int fresh;         /* connections without a completed round trip */
static uint64_t rts_done; /* round trips completed */

/* Each echo completed: the next message at once. */
static void on_echo(echo_load_t *l, echo_conn_t *c) {
  if (c->rts == 1) fresh--;
  rts_done++;
  echo_send(l, c);
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

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr,
            "usage: echo-client PORT CONNS SIZE [SECONDS [WARMUP_S [SERVER_PID]]]\n");
    return 2;
  }
  int port = atoi(argv[1]);
  int nconn = atoi(argv[2]);
  size_t size = (size_t)atol(argv[3]);
  double secs = argc > 4 ? atof(argv[4]) : 3.0;
  double warm = argc > 5 ? atof(argv[5]) : 0.5;
  int spid = argc > 6 ? atoi(argv[6]) : 0;
  if (port <= 0 || nconn <= 0 || size == 0 || size > ECHO_LOAD_MAX_SIZE || secs <= 0) {
    fprintf(stderr, "echo-client: bad arguments\n");
    return 2;
  }

  echo_load_t l;
  echo_load_open(&l, "echo-client", port, nconn, size, on_echo);
  const char *v = getenv("LOOM_ECHO_VERIFY");
  l.verify = v && *v == '1';
  fresh = nconn;
  for (int i = 0; i < nconn; i++) echo_send(&l, &l.conns[i]);

  enum { WARMING, MEASURING } phase = WARMING;
  double t_start = echo_now_s(), t0 = 0, t_end = 0, srv0 = 0, usr0 = 0, cli0 = 0;
  double steal0 = 0, ticks0 = 0;
  double warm_from = -1; /* when the last connection completed its first */
  uint64_t rt0 = 0;
  for (;;) {
    if (echo_load_poll(&l, 100) < 0) return 1;
    double t = echo_now_s();
    if (phase == WARMING) {
      if (fresh == 0 && warm_from < 0) warm_from = t;
      if (warm_from >= 0 && t - warm_from >= warm) {
        phase = MEASURING;
        t0 = t;
        rt0 = rts_done;
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
      uint64_t rts = rts_done - rt0;
      double srv_cpu = srv1 - srv0;
      int ok = spid && srv0 >= 0 && srv1 >= 0 && rts > 0;
      printf("echo-result rtps=%.0f cpu_us_per_rt=%.3f user_us_per_rt=%.3f "
             "server_util=%.3f client_util=%.3f steal=%.3f conns=%d size=%zu "
             "rts=%llu secs=%.3f\n",
             (double)rts / el, ok ? srv_cpu * 1e6 / (double)rts : -1.0,
             ok ? (usr1 - usr0) * 1e6 / (double)rts : -1.0, spid ? srv_cpu / el : -1.0,
             (cli1 - cli0) / el,
             ticks1 > ticks0 ? (steal1 - steal0) / (ticks1 - ticks0) : 0.0, nconn, size,
             (unsigned long long)rts, el);
      fflush(stdout);
      return 0; /* exit closes the connections */
    }
  }
}
