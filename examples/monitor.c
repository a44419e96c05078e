/* monitor: a small server with loom's monitor enabled, to look inside
 * while it runs (Python's aiomonitor).
 *
 * It serves a TCP echo on 127.0.0.1 (one task per connection) and runs two
 * background tasks: "ticker", which wakes once a second, and "janitor",
 * which waits for an event that never comes. The monitor, on a Unix
 * socket, lists them, shows their stacks and can cancel them:
 *
 *     monitor [SOCKET [PORT]]    socket: SOCKET, else $LOOM_MONITOR, else
 *                                /tmp/loom-monitor-<pid>.sock; PORT 0
 *                                picks a free port (default 8888)
 *
 *     $ ./monitor /tmp/m.sock &
 *     monitor on /tmp/m.sock
 *     serving on 127.0.0.1:8888
 *     $ loom-monitor -s /tmp/m.sock ps
 *           ID  STATE     NAME                           FOR  WAITING ON
 *            1  parked    main                       2391 ms  sleep (no deadline)
 *            2  parked    loom-monitor [loom]           0 ms  accept on listener /tmp/m.sock (0x55e34abe8d60)
 *            3  parked    ticker                      325 ms  sleep until +675 ms
 *            4  parked    janitor                    2391 ms  event 0x55e34174c140
 *            5  parked    loom-server                2391 ms  accept on listener 127.0.0.1:8888 (0x55e34abe9fd0)
 *            6  running   loom-monitor-client [loom]
 *     6 tasks
 *     $ loom-monitor -s /tmp/m.sock cancel 3
 *     cancelled task 3
 *     ticker: cancelled after 2 ticks          (the server's output)
 *
 * `socat - UNIX-CONNECT:/tmp/m.sock` works as well (docs/monitor.md).
 * Ctrl-C stops the server; the monitor ends with it and removes its
 * socket. Under loom_run, LOOM_MONITOR=PATH starts the monitor for any
 * loom program without a line of code: this example calls
 * loom_monitor_start itself to pick a default path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <loom.h>
#include <loom/monitor.h>

#define DEFAULT_PORT 8888

static const char *sock_path;
static int port = DEFAULT_PORT;
static loom_event_t never;

static int ticker(void *arg) {
  (void)arg;
  int ticks = 0;
  while (loom_sleep(1000) == 0) ticks++;
  printf("ticker: cancelled after %d tick%s\n", ticks, ticks == 1 ? "" : "s");
  fflush(stdout);
  return 0;
}

static int janitor(void *arg) {
  (void)arg;
  return loom_event_wait(&never) == UV_ECANCELED ? 0 : 1;
}

static int echo(loom_stream_t *s, void *arg) {
  (void)arg;
  char buf[1024];
  ssize_t n;
  while ((n = loom_read(s, buf, sizeof(buf))) > 0)
    if (loom_write(s, buf, (size_t)n)) break;
  return 0;
}

static int main_task(void *arg) {
  (void)arg;
  int rc = loom_monitor_start(NULL, sock_path);
  if (rc) {
    fprintf(stderr, "monitor: cannot start on %s: %s\n", sock_path, loom_strerror(rc));
    return 1;
  }
  printf("monitor on %s\n", sock_path);
  loom_event_init(&never);
  loom_task_opts_t o = {.name = "ticker"};
  loom_spawn_ex(NULL, ticker, NULL, &o);
  o.name = "janitor";
  loom_spawn_ex(NULL, janitor, NULL, &o);

  loom_server_t *srv;
  rc = loom_serve(&srv, "127.0.0.1", port, echo, NULL, NULL);
  if (rc) {
    fprintf(stderr, "monitor: cannot serve on port %d: %s\n", port, loom_strerror(rc));
    return 1;
  }
  printf("serving on 127.0.0.1:%d\n", loom_server_port(srv));
  fflush(stdout);
  /* Until Ctrl-C cancels main; it then closes the server. */
  rc = loom_server_serve_forever(srv);
  printf("server closed\n");
  return rc == UV_ECANCELED ? 0 : rc;
}

int main(int argc, char **argv) {
  static char fallback[64];
  sock_path = argc > 1 ? argv[1] : getenv("LOOM_MONITOR");
  if (!sock_path || !*sock_path) {
    snprintf(fallback, sizeof(fallback), "/tmp/loom-monitor-%d.sock", (int)getpid());
    sock_path = fallback;
  }
  if (argc > 2) port = atoi(argv[2]);
  /* The monitor is started by main_task: keep loom_run from starting a
   * second one on the same path. */
  unsetenv("LOOM_MONITOR");
  return loom_run(main_task, NULL) ? 1 : 0;
}
