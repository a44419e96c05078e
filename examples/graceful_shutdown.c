/* graceful_shutdown: a TCP server that, on SIGTERM or SIGINT, stops
 * accepting, lets the requests in flight finish, and exits 0: what a
 * service does when its supervisor (systemd, Kubernetes, docker stop)
 * asks it to stop.
 *
 * Ports the graceful shutdown of "asyncio in practice":
 *
 *     async def gracefulShutdown():
 *         server = await asyncio.start_server(handle, "0.0.0.0", 8000)
 *         loop = asyncio.get_running_loop()
 *         stop = loop.create_future()
 *         loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
 *         loop.add_signal_handler(signal.SIGINT, stop.set_result, None)
 *         async with server:
 *             await stop
 *         print("server shut down gracefully")
 *
 * A loom signal watcher plays the future and the two handlers: it catches
 * SIGTERM and SIGINT from the moment it is opened (before the server
 * starts, so that no signal is lost), and main waits on it. Leaving
 * `async with server` is loom_server_close with a grace period: no new
 * connections, and the handlers running get up to GRACE_MS to finish. A
 * second signal during the grace period stops waiting: the handlers left
 * are cancelled and the server exits with status 1.
 *
 * Catching SIGINT takes it over from loom_run (which would otherwise
 * cancel main on Ctrl-C); closing the watcher gives it back.
 *
 * The requests: a client sends one line, "work MS", and the server works
 * MS milliseconds on it (a sleep stands for the work) and answers
 * "done MS". The server listens on 127.0.0.1.
 *
 * Usage:
 *     graceful_shutdown [PORT]   serve on 127.0.0.1:PORT (default 8000; 0
 *                                picks a free port) until SIGTERM or SIGINT
 *
 * Try it: `echo "work 5000" | nc 127.0.0.1 8000 &`, then Ctrl-C or
 * `kill -TERM <pid>` while the request runs. Output:
 *
 *     serving on 127.0.0.1:8000
 *     request from 127.0.0.1:50718: work 5000
 *     SIGTERM: closing, 1 request(s) in flight
 *     request from 127.0.0.1:50718 done
 *     server shut down gracefully
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <loom.h>

#define DEFAULT_PORT 8000
#define GRACE_MS 10000 /* how long requests in flight may take to finish */
#define MAX_WORK_MS 60000

static int handle(loom_stream_t *s, void *arg) {
  (void)arg;
  char peer[LOOM_ADDRSTRLEN] = "?";
  struct sockaddr_storage ss;
  if (loom_stream_peername(s, &ss) == 0)
    loom_addr_format((struct sockaddr *)&ss, peer, sizeof peer);
  char line[64];
  ssize_t n = loom_read_line(s, line, sizeof line);
  int ms;
  if (n <= 0 || sscanf(line, "work %d", &ms) != 1 || ms < 0 || ms > MAX_WORK_MS) {
    loom_write(s, "bad request\n", 12);
    loom_close(s);
    return 0;
  }
  printf("request from %s: work %d\n", peer, ms);
  int rc = loom_sleep((uint64_t)ms); /* the work */
  if (rc == 0) {
    char reply[32];
    int len = snprintf(reply, sizeof reply, "done %d\n", ms);
    rc = loom_write(s, reply, (size_t)len); /* loom_close sends it */
  }
  if (rc == 0)
    printf("request from %s done\n", peer);
  else
    printf("request from %s abandoned: %s\n", peer, loom_strerror(rc));
  loom_close(s);
  return 0;
}

/* During the grace period: a second signal cancels main's wait, and with
 * it the requests still running. */
typedef struct {
  loom_signal_t *sig;
  loom_task_t *main;
} impatient_t;

static int impatient(void *p) {
  impatient_t *im = p;
  int sig = loom_signal_wait(im->sig);
  if (sig < 0) return 0; /* cancelled: the requests finished in time */
  printf("second %s: cancelling the requests in flight\n",
         sig == SIGTERM ? "SIGTERM" : "SIGINT");
  loom_cancel(im->main);
  return 0;
}

static int serve(void *arg) {
  int port = *(int *)arg;
  loom_signal_t *stop;
  int rc = loom_signal_open(&stop, SIGTERM);
  if (rc == 0) rc = loom_signal_add(stop, SIGINT);
  if (rc < 0) {
    fprintf(stderr, "graceful_shutdown: cannot catch signals: %s\n", loom_strerror(rc));
    return 1;
  }
  loom_server_t *server;
  rc = loom_serve(&server, "127.0.0.1", port, handle, NULL, NULL);
  if (rc < 0) {
    fprintf(stderr, "graceful_shutdown: cannot serve on 127.0.0.1:%d: %s\n", port,
            loom_strerror(rc));
    loom_signal_close(stop);
    return 1;
  }
  printf("serving on 127.0.0.1:%d\n", loom_server_port(server));

  int sig = loom_signal_wait(stop); /* await stop */
  if (sig < 0) sig = 0;
  printf("%s: closing, %zu request(s) in flight\n",
         sig == SIGTERM  ? "SIGTERM"
         : sig == SIGINT ? "SIGINT"
                         : "stopped",
         loom_server_connections(server));

  impatient_t im = {.sig = stop, .main = loom_current()};
  loom_task_t *t;
  int spawned = loom_spawn(&t, impatient, &im) == 0;
  rc = loom_server_close(server, GRACE_MS);
  if (spawned) {
    loom_cancel(t);
    loom_join(t, NULL);
  }
  loom_signal_close(stop); /* SIGINT is loom_run's again */
  if (rc == 0) {
    printf("server shut down gracefully\n");
    return 0;
  }
  printf("server shut down, requests cancelled: %s\n", loom_strerror(rc));
  return 1;
}

int main(int argc, char **argv) {
  int port = DEFAULT_PORT;
  if (argc > 1) {
    char *end;
    long p = strtol(argv[1], &end, 10);
    if (argc > 2 || *end || p < 0 || p > 65535) {
      fprintf(stderr, "usage: graceful_shutdown [PORT]\n");
      return 2;
    }
    port = (int)p;
  }
  setvbuf(stdout, NULL, _IOLBF, 0); /* a supervisor reads the log live */
  int rc = loom_run(serve, &port);
  return rc < 0 ? 1 : rc;
}
