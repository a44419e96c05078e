/* tls_echo_server: the echo server over TLS, one task per connection.
 *
 * asyncio's version differs from the plain echo server only in how it
 * listens:
 *
 *     ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
 *     ctx.load_cert_chain("server.pem", "server.key")
 *     server = await asyncio.start_server(handle_echo, '127.0.0.1', 8443,
 *                                         ssl=ctx)
 *
 * and so does this one (compare echo_server.c): a TLS context made once
 * from the certificate and key (loom_tls_ctx_new), and loom_tls_serve
 * instead of loom_serve. The server completes each connection's TLS
 * handshake (within a timeout) before the handler runs, and the handler
 * reads and writes the stream with the very calls the plain echo server
 * uses: loom_read and loom_write see the plaintext. Clients that fail
 * their handshake (a plain-text client, an unknown CA) are dropped without
 * running the handler. loom_close sends TLS's close_notify before closing.
 *
 * Usage:
 *     tls_echo_server CERT KEY [PORT]   serve on 127.0.0.1:PORT (default 8443;
 *                                       0 picks a free port) until Ctrl-C
 *
 * Try it with `openssl s_client -connect 127.0.0.1:8443 -CAfile ca.pem`.
 * Output, serving (Ctrl-C to stop):
 *
 *     serving TLS on 127.0.0.1:8443
 *     connection from 127.0.0.1:50718 (TLSv1.3, ALPN none)
 *     connection closed 127.0.0.1:50718 (15 bytes echoed)
 *     ^Cserver closed
 */
#include <stdio.h>
#include <stdlib.h>

#include <loom.h>
#include <loom/tls.h>

#define DEFAULT_PORT 8443

static const char *cert_file, *key_file;
static int port = DEFAULT_PORT;

/* The peer's address, "127.0.0.1:50718". */
static void peer_name(loom_stream_t *s, char *buf, size_t size) {
  struct sockaddr_storage ss;
  if (loom_stream_peername(s, &ss) != 0 ||
      loom_addr_format((struct sockaddr *)&ss, buf, size) < 0)
    snprintf(buf, size, "?");
}

/* handle_echo: runs once the handshake is done, in a task of its own. */
static int handle_echo(loom_stream_t *s, void *arg) {
  (void)arg;
  char peer[LOOM_ADDRSTRLEN];
  peer_name(s, peer, sizeof peer);
  const char *alpn = loom_tls_alpn(s);
  printf("connection from %s (%s, ALPN %s)\n", peer, loom_tls_version(s),
         alpn ? alpn : "none");
  fflush(stdout);
  char buf[1024];
  size_t echoed = 0;
  ssize_t n;
  int rc = 0;
  while ((n = loom_read(s, buf, sizeof buf)) > 0) {
    if ((rc = loom_write(s, buf, (size_t)n)) < 0) break;
    echoed += (size_t)n;
  }
  if (n < 0) rc = (int)n;
  loom_close(s); /* close_notify, then the TCP close */
  /* A client gone without close_notify (LOOM_ETLSTRUNC), or a reset: the
   * connection's business, not the server's. */
  if (rc < 0)
    printf("connection closed %s (%zu bytes echoed; %s)\n", peer, echoed,
           loom_strerror(rc));
  else
    printf("connection closed %s (%zu bytes echoed)\n", peer, echoed);
  fflush(stdout);
  return 0;
}

static int serve(void *arg) {
  (void)arg;
  loom_tls_opts_t opts = {.cert_file = cert_file, .key_file = key_file};
  loom_tls_ctx_t *ctx;
  int rc = loom_tls_ctx_new(&ctx, 1, &opts);
  if (rc < 0) {
    fprintf(stderr, "tls_echo_server: %s: %s\n", loom_strerror(rc),
            loom_tls_last_error(NULL));
    return rc;
  }
  loom_server_t *srv;
  rc = loom_tls_serve(&srv, "127.0.0.1", port, ctx, handle_echo, NULL, NULL);
  if (rc < 0) {
    fprintf(stderr, "tls_echo_server: cannot serve on 127.0.0.1:%d: %s\n", port,
            loom_strerror(rc));
    loom_tls_ctx_free(ctx);
    return rc;
  }
  printf("serving TLS on 127.0.0.1:%d\n", loom_server_port(srv));
  fflush(stdout);
  /* Until Ctrl-C, which cancels this task: the server then closes. */
  loom_server_serve_forever(srv);
  printf("server closed\n");
  loom_tls_ctx_free(ctx); /* after the server: its handlers used it */
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: tls_echo_server CERT KEY [PORT]\n");
    return 2;
  }
  cert_file = argv[1];
  key_file = argv[2];
  if (argc == 4) port = atoi(argv[3]);
  int rc = loom_run(serve, NULL);
  return rc < 0 ? 1 : 0;
}
