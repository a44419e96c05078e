/* echo-loom: the loom echo server of the echo benchmark, written as a user
 * would: a handler per connection reads into a buffer and writes back what
 * it read, until EOF.
 *
 *   echo-loom [PORT]     (0 or nothing: any free port)
 *
 * Listens on 127.0.0.1 and prints the port on the first line of stdout.
 */
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

static int serve(void *arg) {
  int port = *(int *)arg;
  loom_server_t *srv;
  loom_server_opts_t opts = {.backlog = 1024};
  int rc = loom_serve(&srv, "127.0.0.1", port, echo, NULL, &opts);
  if (rc < 0) {
    fprintf(stderr, "echo-loom: serve: %s\n", loom_strerror(rc));
    return rc;
  }
  printf("%d\n", loom_server_port(srv));
  fflush(stdout);
  return loom_server_serve_forever(srv);
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 0;
  int rc = loom_run(serve, &port);
  return rc < 0 && rc != UV_ECANCELED ? 1 : 0;
}
