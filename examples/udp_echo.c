/* udp_echo: a UDP echo server and a client in one program, as two tasks on
 * 127.0.0.1: the client sends a few datagrams, the server sends each back
 * to where it came from, and the client checks what returns.
 *
 * UDP is not in the reference programs; this ports the UDP echo server and
 * client of Python's asyncio documentation ("Transports and Protocols",
 * examples), built on the same loop as the TCP ones:
 *
 *     class EchoServerProtocol:
 *         def connection_made(self, transport):
 *             self.transport = transport
 *         def datagram_received(self, data, addr):
 *             print('Received %r from %s' % (data.decode(), addr))
 *             self.transport.sendto(data, addr)
 *
 *     class EchoClientProtocol:
 *         def connection_made(self, transport):
 *             transport.sendto(self.message.encode())
 *         def datagram_received(self, data, addr):
 *             print("Received:", data.decode())
 *             self.transport.close()
 *
 *     transport, protocol = await loop.create_datagram_endpoint(
 *         EchoServerProtocol, local_addr=('127.0.0.1', 9999))
 *
 * loom has no protocol callbacks: a task calls loom_udp_recv and waits for
 * the next datagram, and loom_udp_send sends one (it never waits: it sends
 * at once, or copies the datagram and queues it). The server is a loop of
 * receive and send back; the client sends, then waits for the echo. The
 * server binds port 0, so the kernel picks a free port, read back with
 * loom_udp_port before the client starts.
 *
 * UDP promises nothing: a datagram may be lost, and then its echo never
 * comes. So the client waits for each echo under a 1-second timeout scope
 * rather than forever (on 127.0.0.1 nothing is lost in practice). A server
 * has no end of its own: when the client is done, main cancels the server
 * task (asyncio's task.cancel()), joins it, and closes its socket. Output
 * (the ports vary):
 *
 *     server on 127.0.0.1:41523
 *     client on 127.0.0.1:50718
 *     client: sending "ping 1"
 *     server: received "ping 1" from 127.0.0.1:50718, sending it back
 *     client: received "ping 1" from the server
 *     ...                                   (ping 2 and ping 3 likewise)
 *     client: 3 of 3 datagrams echoed back intact
 *     server: echoed 3 datagrams, then stopped (cancelled)
 *     both sockets closed
 */
#include <stdio.h>
#include <string.h>

#include <loom.h>

#define NDGRAMS 3
#define ECHO_TIMEOUT_MS 1000 /* how long the client waits for an echo */

/* ---- the server -------------------------------------------------------------------------- */

typedef struct {
  loom_udp_t *sock; /* bound by main, which closes it */
  int echoed;       /* out: datagrams sent back */
} server_t;

/* Echoes every datagram until cancelled; returns UV_ECANCELED then, or
 * another error if the socket fails. */
static int udp_server(void *p) {
  server_t *srv = p;
  for (;;) {
    char buf[2048];
    struct sockaddr_storage from;
    /* Waits for the next datagram (a longer one is cut to the buffer). */
    ssize_t n = loom_udp_recv(srv->sock, buf, sizeof buf, &from);
    if (n < 0) return (int)n; /* UV_ECANCELED: main is done with us */
    char peer[LOOM_ADDRSTRLEN];
    if (loom_addr_format((const struct sockaddr *)&from, peer, sizeof peer) < 0)
      snprintf(peer, sizeof peer, "?");
    printf("server: received \"%.*s\" from %s, sending it back\n", (int)n, buf, peer);
    int rc = loom_udp_send(srv->sock, buf, (size_t)n, (const struct sockaddr *)&from);
    if (rc < 0) {
      /* One undeliverable datagram does not stop a server. */
      fprintf(stderr, "udp_echo: server: send to %s: %s\n", peer, loom_strerror(rc));
      continue;
    }
    srv->echoed++;
  }
}

/* ---- the client -------------------------------------------------------------------------- */

typedef struct {
  int server_port;
  int intact; /* out: echoes that came back right, from the server */
} client_t;

/* Sends msg and waits for its echo. Returns 1 if it came back intact from
 * the server, 0 if not, or an error (UV_ETIMEDOUT: no echo in time). */
static int ping(loom_udp_t *sock, const struct sockaddr_in *server, const char *msg) {
  size_t len = strlen(msg);
  printf("client: sending \"%s\"\n", msg);
  int rc = loom_udp_send(sock, msg, len, (const struct sockaddr *)server);
  if (rc < 0) return rc;

  char buf[2048];
  struct sockaddr_storage from;
  loom_scope_t deadline;
  rc = loom_timeout_enter(&deadline, ECHO_TIMEOUT_MS);
  if (rc < 0) return rc;
  ssize_t n = loom_udp_recv(sock, buf, sizeof buf, &from);
  /* UV_ETIMEDOUT if our deadline passed (recv returned it already). */
  if (loom_scope_exit(&deadline) == UV_ETIMEDOUT) return UV_ETIMEDOUT;
  if (n < 0) return (int)n;

  const struct sockaddr_in *f = (const struct sockaddr_in *)&from;
  int from_server = from.ss_family == AF_INET && f->sin_port == server->sin_port &&
                    f->sin_addr.s_addr == server->sin_addr.s_addr;
  char peer[LOOM_ADDRSTRLEN];
  if (loom_addr_format((const struct sockaddr *)&from, peer, sizeof peer) < 0)
    snprintf(peer, sizeof peer, "?");
  printf("client: received \"%.*s\" from %s\n", (int)n, buf,
         from_server ? "the server" : peer);
  return from_server && (size_t)n == len && memcmp(buf, msg, len) == 0;
}

static int udp_client(void *p) {
  client_t *c = p;
  struct sockaddr_in server;
  int rc = uv_ip4_addr("127.0.0.1", c->server_port, &server);
  if (rc < 0) return rc;
  loom_udp_t *sock;
  rc = loom_udp_bind(&sock, "127.0.0.1", 0);
  if (rc < 0) {
    fprintf(stderr, "udp_echo: client: bind: %s\n", loom_strerror(rc));
    return rc;
  }
  printf("client on 127.0.0.1:%d\n", loom_udp_port(sock));

  for (int i = 0; i < NDGRAMS; i++) {
    char msg[32];
    snprintf(msg, sizeof msg, "ping %d", i + 1);
    rc = ping(sock, &server, msg);
    if (rc < 0) {
      fprintf(stderr, "udp_echo: client: %s: %s\n", msg, loom_strerror(rc));
      break;
    }
    c->intact += rc;
  }
  loom_udp_close(sock); /* transport.close() */
  return rc < 0 ? rc : 0;
}

/* ---- main ---------------------------------------------------------------------------- */

static int udp_echo_main(void *arg) {
  (void)arg;
  server_t srv = {0};
  /* Bound here, before either task starts, so that the client knows the
   * port the kernel picked. */
  int rc = loom_udp_bind(&srv.sock, "127.0.0.1", 0);
  if (rc < 0) {
    fprintf(stderr, "udp_echo: server: bind: %s\n", loom_strerror(rc));
    return rc;
  }
  client_t client = {.server_port = loom_udp_port(srv.sock)};
  printf("server on 127.0.0.1:%d\n", client.server_port);

  loom_task_t *server_task, *client_task;
  rc = loom_spawn(&server_task, udp_server, &srv);
  if (rc < 0) {
    fprintf(stderr, "udp_echo: spawn the server: %s\n", loom_strerror(rc));
    loom_udp_close(srv.sock);
    return rc;
  }
  int client_status = 0;
  rc = loom_spawn(&client_task, udp_client, &client);
  if (rc < 0)
    fprintf(stderr, "udp_echo: spawn the client: %s\n", loom_strerror(rc));
  else
    rc = loom_join(client_task, &client_status); /* if we are cancelled, so is it */

  /* The client is done (or could not start): stop the server. Its status
   * is UV_ECANCELED when it stopped because we asked; anything else means
   * its socket failed. */
  loom_cancel(server_task);
  int server_status;
  int jrc = loom_join(server_task, &server_status);
  loom_udp_close(srv.sock); /* no task uses it any more */
  if (rc == 0) rc = jrc;
  if (rc == 0 && client_status < 0) rc = client_status;
  if (server_status != UV_ECANCELED) {
    fprintf(stderr, "udp_echo: server: %s\n", loom_strerror(server_status));
    if (rc == 0) rc = server_status < 0 ? server_status : UV_EINVAL;
  }
  if (rc < 0) return rc;

  printf("client: %d of %d datagrams echoed back intact\n", client.intact, NDGRAMS);
  printf("server: echoed %d datagrams, then stopped (cancelled)\n", srv.echoed);
  printf("both sockets closed\n");
  return 0;
}

int main(void) {
  int rc = loom_run(udp_echo_main, NULL);
  if (rc < 0) {
    fprintf(stderr, "udp_echo: %s\n", loom_strerror(rc));
    return 1;
  }
  return 0;
}
