/* echo-client-cg: closed-loop echo load for callgrind measurements.
 *   echo-client-cg PORT CONNS SIZE TARGET_RTS SERVER_PID
 * Warm-up: every connection completes 2 round trips; then all in-flight
 * echoes are drained, the server's callgrind counters are zeroed
 * (callgrind_control -z), exactly TARGET_RTS round trips are run, drained,
 * and the counters dumped (callgrind_control -d). The connections and
 * their loop are echo-load.c's, shared with echo-client. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "echo-load.h"

static enum { WARM, DRAIN1, MEAS } phase = WARM;
static int busy;      /* connections awaiting an echo */
static int warm_left; /* connections short of their 2 warm-up round trips */
static uint64_t target, issued, done;

static void start(echo_load_t *l, echo_conn_t *c) {
  echo_send(l, c);
  busy++;
}

/* Each echo completed: another round trip while the phase wants one. */
static void on_echo(echo_load_t *l, echo_conn_t *c) {
  busy--;
  if (phase == WARM) {
    if (c->rts == 2) warm_left--;
    if (warm_left > 0 || c->rts < 2) start(l, c);
  } else if (phase == MEAS) {
    done++;
    if (issued < target) {
      issued++;
      start(l, c);
    }
  }
}

/* Runs callgrind_control -<op> on the server. */
static int callgrind_control(char op, int pid) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "callgrind_control -%c %d >/dev/null", op, pid);
  if (system(cmd) == 0) return 0;
  fprintf(stderr, "echo-client-cg: callgrind_control -%c failed\n", op);
  return -1;
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: echo-client-cg PORT CONNS SIZE TARGET_RTS SERVER_PID\n");
    return 2;
  }
  int port = atoi(argv[1]), nconn = atoi(argv[2]);
  size_t size = (size_t)atol(argv[3]);
  target = strtoull(argv[4], 0, 10);
  int spid = atoi(argv[5]);
  if (port <= 0 || nconn <= 0 || size == 0 || size > ECHO_LOAD_MAX_SIZE || spid <= 0) {
    fprintf(stderr, "echo-client-cg: bad arguments\n");
    return 2;
  }
  echo_load_t l;
  echo_load_open(&l, "echo-client-cg", port, nconn, size, on_echo);
  warm_left = nconn;
  for (int i = 0; i < nconn; i++) start(&l, &l.conns[i]);
  double t0 = 0;
  for (;;) {
    if (echo_load_poll(&l, 1000) < 0) return 1;
    if (phase == WARM && warm_left == 0) phase = DRAIN1;
    if (phase == DRAIN1 && busy == 0) {
      if (callgrind_control('z', spid) < 0) return 1;
      phase = MEAS;
      t0 = echo_now_s();
      for (int i = 0; i < nconn && issued < target; i++) {
        issued++;
        start(&l, &l.conns[i]);
      }
    }
    if (phase == MEAS && busy == 0 && issued == target) {
      double el = echo_now_s() - t0;
      if (callgrind_control('d', spid) < 0) return 1;
      printf("rts=%llu secs=%.2f rtps=%.0f\n", (unsigned long long)done, el,
             (double)done / el);
      return 0;
    }
  }
}
