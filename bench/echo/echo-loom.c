/* echo-loom: the loom echo server of the echo benchmark, written as a user
 * would: a handler per connection reads into a buffer and writes back what
 * it read, until EOF.
 *
 *   echo-loom [PORT [RUNTIMES]]     (PORT 0 or nothing: any free port)
 *
 * Listens on 127.0.0.1 and prints the port on the first line of stdout.
 * With RUNTIMES > 1 (bench/echo/scale.sh), that many threads each run a
 * runtime serving the same port with SO_REUSEPORT (the first binds, the
 * others join it); the port is printed once all of them listen.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <loom.h>

#ifndef ECHO_BUF_SIZE
#define ECHO_BUF_SIZE (64 * 1024) /* as the Go, uvloop and libuv servers */
#endif

static int echo(loom_stream_t *s, void *arg) {
  (void)arg;
  char buf[ECHO_BUF_SIZE];
  for (;;) {
    ssize_t n = loom_read(s, buf, sizeof(buf));
    if (n <= 0) break; /* 0: EOF; < 0: an error */
    if (loom_write(s, buf, (size_t)n) < 0) break;
  }
  loom_close(s);
  return 0;
}

/* The runtimes' start-up handshake: each reports its port (or error); the
 * last one prints the port, once every runtime listens. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int nruntimes = 1, nstarted, start_port, start_rc;

static int serve(void *arg) {
  int port = *(int *)arg;
  loom_server_t *srv;
  loom_server_opts_t opts = {.backlog = 1024, .reuseport = nruntimes > 1};
  int rc = loom_serve(&srv, "127.0.0.1", port, echo, NULL, &opts);
  pthread_mutex_lock(&mu);
  if (rc < 0 && !start_rc) start_rc = rc;
  if (rc == 0 && !start_port) start_port = loom_server_port(srv);
  if (++nstarted == nruntimes && !start_rc) {
    printf("%d\n", start_port);
    fflush(stdout);
  }
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  if (rc < 0) {
    fprintf(stderr, "echo-loom: serve: %s\n", loom_strerror(rc));
    return rc;
  }
  return loom_server_serve_forever(srv);
}

static void *runtime_main(void *arg) {
  loom_run(serve, arg);
  return NULL;
}

int main(int argc, char **argv) {
  static int ports[1024];
  ports[0] = argc > 1 ? atoi(argv[1]) : 0;
  nruntimes = argc > 2 ? atoi(argv[2]) : 1;
  if (nruntimes < 1 || nruntimes > 1024) {
    fprintf(stderr, "usage: echo-loom [PORT [RUNTIMES]]\n");
    return 2;
  }
  /* Runtimes 0..n-2 on threads of their own, started one by one (each
   * binds the port the first one got); the last one runs here. The
   * benchmark stops the process with a signal. */
  for (int i = 0; i < nruntimes - 1; i++) {
    pthread_t th;
    if (pthread_create(&th, NULL, runtime_main, &ports[i])) return 1;
    pthread_detach(th);
    pthread_mutex_lock(&mu);
    while (nstarted <= i) pthread_cond_wait(&cv, &mu);
    int rc = start_rc;
    ports[i + 1] = start_port;
    pthread_mutex_unlock(&mu);
    if (rc) return 1;
  }
  int rc = loom_run(serve, &ports[nruntimes - 1]);
  return rc < 0 && rc != UV_ECANCELED ? 1 : 0;
}
