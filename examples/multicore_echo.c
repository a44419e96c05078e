/* multicore_echo: one echo server on every core. N threads each run a loom
 * runtime of their own (loom_run), and each runtime serves the same port:
 * the servers listen with SO_REUSEPORT (loom_server_opts_t.reuseport), and
 * the kernel spreads incoming connections across them. No runtime shares a
 * task, a stream or a lock with another; a connection lives and dies on the
 * runtime that accepted it.
 *
 * What asyncio would do with one event loop per process and a process per
 * core (or uvloop behind a process manager), done with threads:
 *
 *     def worker():
 *         async def main():
 *             server = await asyncio.start_server(handle_echo, '127.0.0.1',
 *                                                 8888, reuse_port=True)
 *             async with server:
 *                 await server.serve_forever()
 *         asyncio.run(main())
 *
 *     threads = [threading.Thread(target=worker) for _ in range(os.cpu_count())]
 *
 * One Ctrl-C stops them all: SIGINT cancels the main task of every runtime
 * that loom_run is running, whichever thread the signal lands on, and each
 * closes its server and cancels its connections.
 *
 * Usage:
 *     multicore_echo [PORT [RUNTIMES]]   serve on 127.0.0.1:PORT (default
 *                                        8888; 0 picks a free port) with
 *                                        RUNTIMES threads (default: one per
 *                                        CPU) until Ctrl-C
 *     multicore_echo --selftest [RUNTIMES]
 *                                        serve on a free port, connect until
 *                                        every runtime has served a client,
 *                                        then stop them all with SIGINT
 *
 * Output, serving (Ctrl-C to stop):
 *
 *     2 runtimes serving on 127.0.0.1:8888
 *     connection from 127.0.0.1:50718 (runtime 1)
 *     connection closed 127.0.0.1:50718 (12 bytes echoed, runtime 1)
 *     ^Cruntime 0: server closed
 *     runtime 1: server closed
 *     all runtimes stopped
 *
 * Output of the self-test (the counts and ports vary):
 *
 *     3 runtimes serving on 127.0.0.1:41523 (self-test)
 *     client: 7 connections, every line echoed back intact
 *     client: every runtime served at least one connection
 *     runtime 0: 3 connections served
 *     runtime 1: 2 connections served
 *     runtime 2: 2 connections served
 *     all runtimes stopped
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <loom.h>

#define DEFAULT_PORT 8888
#define MAX_RUNTIMES 256
#define SELFTEST_MAX_CONNECTIONS 1000 /* gives up if a runtime gets none */

/* What the threads share: set up by main, then only read, except for the
 * start-up handshake (under `mu`) and the counters (atomics). */
typedef struct {
  int selftest;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int port;     /* the port, once runtime 0 has bound it */
  int started;  /* runtimes serving (or failed to) */
  int start_rc; /* the first runtime's failure to serve */
} shared_t;

/* One runtime: its thread, its server, its counters. */
typedef struct {
  shared_t *sh;
  int id;
  pthread_t thread;
  atomic_int served; /* connections accepted */
  int status;        /* loom_run's result */
} runtime_t;

/* Tells main that runtime rt is serving on `port`, or failed with rc. */
static void started(runtime_t *rt, int port, int rc) {
  shared_t *sh = rt->sh;
  pthread_mutex_lock(&sh->mu);
  if (rc < 0 && sh->start_rc == 0) sh->start_rc = rc;
  if (rt->id == 0) sh->port = rc < 0 ? -1 : port;
  sh->started++;
  pthread_cond_broadcast(&sh->cv);
  pthread_mutex_unlock(&sh->mu);
}

/* handle_echo: a task of the runtime that accepted the connection. */
static int handle_echo(loom_stream_t *s, void *arg) {
  runtime_t *rt = arg;
  atomic_fetch_add(&rt->served, 1);
  char peer[LOOM_ADDRSTRLEN] = "?";
  struct sockaddr_storage ss;
  if (loom_stream_peername(s, &ss) == 0)
    loom_addr_format((const struct sockaddr *)&ss, peer, sizeof peer);
  if (!rt->sh->selftest) printf("connection from %s (runtime %d)\n", peer, rt->id);
  char buf[4096];
  size_t echoed = 0;
  ssize_t n;
  while ((n = loom_read(s, buf, sizeof buf)) > 0) {
    if (loom_write(s, buf, (size_t)n) < 0) break;
    echoed += (size_t)n;
  }
  loom_close(s);
  if (!rt->sh->selftest)
    printf("connection closed %s (%zu bytes echoed, runtime %d)\n", peer, echoed, rt->id);
  return 0;
}

/* The main task of each runtime. */
static int serve(void *arg) {
  runtime_t *rt = arg;
  shared_t *sh = rt->sh;
  /* Runtime 0 binds first (port 0: the kernel picks one); the others bind
   * the port it got. Every one of them must ask for SO_REUSEPORT. */
  int port = sh->port;
  loom_server_opts_t opts = {.reuseport = 1};
  loom_server_t *server;
  int rc = loom_serve(&server, "127.0.0.1", port, handle_echo, rt, &opts);
  started(rt, rc < 0 ? 0 : loom_server_port(server), rc);
  if (rc < 0) return rc;
  /* Until Ctrl-C (or the self-test's SIGINT) cancels this task: then the
   * server closes and its connections are cancelled and awaited. */
  rc = loom_server_serve_forever(server);
  if (!sh->selftest) printf("runtime %d: server closed\n", rt->id);
  return rc == UV_ECANCELED ? 0 : rc;
}

static void *runtime_thread(void *arg) {
  runtime_t *rt = arg;
  rt->status = loom_run(serve, rt);
  return NULL;
}

/* Starts runtime i and waits until it serves (or has failed). */
static int start(runtime_t *rts, int i) {
  shared_t *sh = rts[i].sh;
  if (pthread_create(&rts[i].thread, NULL, runtime_thread, &rts[i]) != 0)
    return UV_EAGAIN;
  pthread_mutex_lock(&sh->mu);
  while (sh->started <= i) pthread_cond_wait(&sh->cv, &sh->mu);
  int rc = sh->start_rc;
  pthread_mutex_unlock(&sh->mu);
  return rc;
}

/* The self-test's client: plain blocking sockets on main's thread, so that
 * it has nothing in common with the servers but the port. One connection,
 * one line echoed back; 1 if intact. */
static int visit(int port, int k) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  char line[64], back[64];
  int n = snprintf(line, sizeof line, "hello from connection %d\n", k);
  int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
           write(fd, line, (size_t)n) == n;
  int got = 0;
  while (ok && got < n) {
    ssize_t r = read(fd, back + got, (size_t)(n - got));
    if (r <= 0) break;
    got += (int)r;
  }
  close(fd);
  return ok && got == n && memcmp(line, back, (size_t)n) == 0;
}

static int every_runtime_served(runtime_t *rts, int n) {
  for (int i = 0; i < n; i++)
    if (atomic_load(&rts[i].served) == 0) return 0;
  return 1;
}

static int selftest(runtime_t *rts, int n, int port) {
  int visits = 0, intact = 0;
  while (visits < SELFTEST_MAX_CONNECTIONS && !every_runtime_served(rts, n))
    intact += visit(port, visits++);
  if (intact == visits)
    printf("client: %d connections, every line echoed back intact\n", visits);
  else
    printf("client: %d connections, %d echoed back intact\n", visits, intact);
  printf("client: %s\n", every_runtime_served(rts, n)
                             ? "every runtime served at least one connection"
                             : "some runtime served no connection");
  return intact == visits && every_runtime_served(rts, n) ? 0 : -1;
}

static int parse(const char *s, long lo, long hi, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || end == s || v < lo || v > hi) return -1;
  *out = (int)v;
  return 0;
}

int main(int argc, char **argv) {
  shared_t sh = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
  int port = DEFAULT_PORT;
  int n = (int)uv_available_parallelism();
  int bad = argc > 3;
  int a = 1;
  if (argc > 1 && strcmp(argv[1], "--selftest") == 0) {
    sh.selftest = 1;
    port = 0;
    a = 2;
    bad = bad || argc > 3;
  } else if (argc > 1) {
    bad = bad || parse(argv[1], 0, 65535, &port);
    a = 2;
  }
  if (!bad && argc > a) bad = parse(argv[a], 1, MAX_RUNTIMES, &n);
  if (bad) {
    fprintf(stderr,
            "usage: %s [PORT [RUNTIMES]]     serve on 127.0.0.1:PORT (default %d)\n"
            "       %s --selftest [RUNTIMES] connect until every runtime has served\n"
            "RUNTIMES: threads, each with its own runtime (default: one per CPU)\n",
            argv[0], DEFAULT_PORT, argv[0]);
    return 2;
  }
  if (n > MAX_RUNTIMES) n = MAX_RUNTIMES;
  /* A server's lines should show up as they happen, even in a pipe. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  sh.port = port;

  runtime_t *rts = calloc((size_t)n, sizeof *rts);
  if (!rts) return 1;
  int rc = 0, running = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    rts[i].sh = &sh;
    rts[i].id = i;
    rc = start(rts, i);
    if (rc != UV_EAGAIN) running++;
  }
  if (rc == 0) {
    printf("%d runtime%s serving on 127.0.0.1:%d%s\n", n, n == 1 ? "" : "s", sh.port,
           sh.selftest ? " (self-test)" : "");
    /* Serving: the runtimes run until Ctrl-C. The self-test plays the
     * client, then sends the SIGINT itself. */
    if (sh.selftest) {
      rc = selftest(rts, n, sh.port);
      kill(getpid(), SIGINT);
    }
  } else {
    fprintf(stderr, "multicore_echo: cannot serve on 127.0.0.1:%d: %s\n", port,
            loom_strerror(rc));
    if (running > 0) kill(getpid(), SIGINT); /* stop those that started */
  }
  for (int i = 0; i < running; i++) {
    pthread_join(rts[i].thread, NULL);
    if (rts[i].status < 0 && rc == 0) rc = rts[i].status;
  }
  if (sh.selftest)
    for (int i = 0; i < running; i++)
      printf("runtime %d: %d connection%s served\n", i, atomic_load(&rts[i].served),
             atomic_load(&rts[i].served) == 1 ? "" : "s");
  if (running > 0) printf("all runtimes stopped\n");
  free(rts);
  return rc < 0 ? 1 : 0;
}
