/* bench-tls-bulk: TLS bulk throughput, one end of one connection, as
 * `openssl s_server` and `openssl s_client` are the ends of theirs
 * (bench/tls/run.sh runs each against each).
 *
 *   bench-tls-bulk recv PORT CERT KEY   listen on 127.0.0.1:PORT, accept one
 *                                       connection, complete the server
 *                                       handshake, read until the peer's
 *                                       close_notify, discarding
 *   bench-tls-bulk send HOST PORT CA    connect, handshake verifying the
 *                                       server against CA (as "localhost"),
 *                                       copy stdin (a pipe, as s_client
 *                                       reads it) to the TLS stream until
 *                                       its EOF, close with close_notify
 *
 * Each prints "BYTES bytes in SECONDS s: MIBPS MiB/s", the time from the
 * end of the handshake to the end of the data. Both use the calls a user
 * would: loom_read and loom_write on a TLS stream, 64 KiB at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <loom.h>
#include <loom/tls.h>

#define CHUNK (64u * 1024u)

static char **args;
static int recv_side;

static void report(const char *side, size_t bytes, uint64_t t0_ns) {
  double s = (double)(uv_hrtime() - t0_ns) / 1e9;
  printf("%zu bytes in %.3f s: %.1f MiB/s (%s)\n", bytes, s,
         (double)bytes / 1048576.0 / (s > 0 ? s : 1e-9), side);
}

static int fail(const char *what, int rc, loom_stream_t *s) {
  fprintf(stderr, "bench-tls-bulk: %s: %s %s\n", what, loom_strerror(rc),
          loom_tls_last_error(s));
  return rc;
}

static int receive(loom_tls_ctx_t *ctx) {
  loom_listener_t *l;
  int rc = loom_tcp_listen(&l, "127.0.0.1", atoi(args[2]), 16);
  if (rc < 0) return fail("listen", rc, NULL);
  loom_stream_t *s;
  rc = loom_accept(l, &s);
  loom_listener_close(l);
  if (rc < 0) return fail("accept", rc, NULL);
  rc = loom_tls_start(s, ctx, 1, NULL);
  if (rc < 0) {
    fail("handshake", rc, s);
    loom_close(s);
    return rc;
  }
  char *buf = malloc(CHUNK);
  if (!buf) {
    loom_close(s);
    return UV_ENOMEM;
  }
  uint64_t t0 = uv_hrtime();
  size_t total = 0;
  ssize_t n;
  while ((n = loom_read(s, buf, CHUNK)) > 0) total += (size_t)n;
  if (n < 0) fail("read", (int)n, s);
  report("loom receiver", total, t0);
  free(buf);
  loom_close(s);
  return n < 0 ? (int)n : 0;
}

static int send_stdin(loom_tls_ctx_t *ctx) {
  loom_stream_t *in, *s;
  int rc = loom_stream_open_fd(&in, 0);
  if (rc < 0) return fail("stdin", rc, NULL);
  rc = loom_tls_connect(&s, args[2], atoi(args[3]), ctx, "localhost");
  if (rc < 0) {
    loom_close(in);
    return fail("connect", rc, NULL);
  }
  char *buf = malloc(CHUNK);
  if (!buf) rc = UV_ENOMEM;
  uint64_t t0 = uv_hrtime();
  size_t total = 0;
  ssize_t n = 0;
  while (rc >= 0 && (n = loom_read(in, buf, CHUNK)) > 0) {
    rc = loom_write(s, buf, (size_t)n);
    total += (size_t)n;
  }
  if (n < 0) rc = (int)n;
  /* close_notify, then wait for the receiver's: closing at once would
   * close a socket holding bytes never read (the server's session
   * tickets), which the kernel answers with a reset, and the receiver
   * could lose the end of the data (as s_client, which reads all along,
   * does not). */
  if (rc >= 0) rc = loom_shutdown_write(s);
  while (rc >= 0 && (n = loom_read(s, buf, CHUNK)) > 0) {}
  if (rc >= 0 && n < 0) rc = (int)n;
  if (rc < 0) fail("send", rc, s);
  report("loom sender", total, t0);
  free(buf);
  loom_close(in);
  loom_close(s);
  return rc;
}

static int main_task(void *arg) {
  (void)arg;
  loom_tls_opts_t opts = {0};
  if (recv_side) {
    opts.cert_file = args[3];
    opts.key_file = args[4];
  } else {
    opts.ca_file = args[4];
  }
  loom_tls_ctx_t *ctx;
  int rc = loom_tls_ctx_new(&ctx, recv_side, &opts);
  if (rc < 0) return fail("context", rc, NULL);
  rc = recv_side ? receive(ctx) : send_stdin(ctx);
  loom_tls_ctx_free(ctx);
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 5 || (strcmp(argv[1], "recv") != 0 && strcmp(argv[1], "send") != 0)) {
    fprintf(stderr, "usage: bench-tls-bulk recv PORT CERT KEY\n"
                    "       bench-tls-bulk send HOST PORT CA < DATA\n");
    return 2;
  }
  args = argv;
  recv_side = strcmp(argv[1], "recv") == 0;
  return loom_run(main_task, NULL) < 0 ? 1 : 0;
}
