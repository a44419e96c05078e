/* echo_server: a TCP server that sends back whatever its clients send it,
 * one task per connection.
 *
 * Ports the echo server of the tutorial "Async I/O patterns"
 * ("asynchronous server: a TCP echo server based on asyncio"):
 *
 *     async def handle_echo(reader, writer):
 *         addr = writer.get_extra_info('peername')
 *         print(f"Connection from {addr}")
 *         while True:
 *             data = await reader.read(1024)
 *             if not data:
 *                 break
 *             writer.write(data)          # echo back
 *             await writer.drain()
 *         writer.close()
 *         await writer.wait_closed()
 *         print(f"Connection closed {addr}")
 *
 *     async def main():
 *         server = await asyncio.start_server(handle_echo, '127.0.0.1', 8888)
 *         addr = server.sockets[0].getsockname()
 *         print(f"Serving on {addr}")
 *         async with server:
 *             await server.serve_forever()
 *
 * loom_serve() is asyncio.start_server(): it listens and runs the handler
 * in a task of its own for every connection, so a client that sends
 * nothing holds up nobody else. The handler gets one loom_stream_t, the
 * StreamReader and StreamWriter in one: loom_read is reader.read, and
 * loom_write is writer.write with the drain built in (it waits only while a
 * slow client lets too much pile up). loom_server_serve_forever() is
 * serve_forever(): Ctrl-C cancels main, which closes the server and cancels
 * the connections still open. The two calls, as main() above makes them,
 * are serve_until_cancelled() in common/server_log.h, which every server
 * example shares.
 *
 * Usage:
 *     echo_server [PORT]      serve on 127.0.0.1:PORT (default 8888; 0 picks
 *                             a free port) until Ctrl-C
 *     echo_server --selftest  serve on a free port, run three clients
 *                             against it in this process, report, close
 *
 * Try it with `nc 127.0.0.1 8888`. Output, serving (Ctrl-C to stop):
 *
 *     serving on 127.0.0.1:8888
 *     connection from 127.0.0.1:50718
 *     connection closed 127.0.0.1:50718 (12 bytes echoed)
 *     ^Cserver closed
 *
 * The self-test runs three clients at once. Each sends three lines and a
 * 16 KiB block (which the server reads in pieces of at most 1024
 * bytes), checks that every byte comes back, and closes. After their first
 * line the clients wait for each other at a barrier, so all three
 * connections are open at the same time. What the server says is kept and
 * printed afterwards, client by client, so that the output does not depend
 * on how the connections interleave. Output (the ports vary):
 *
 *     serving on 127.0.0.1:41523 (self-test: 3 clients)
 *     client 0 (127.0.0.1:50718): 3 lines and a 16384-byte block echoed back intact
 *     client 1 (127.0.0.1:50722): 3 lines and a 16384-byte block echoed back intact
 *     client 2 (127.0.0.1:50734): 3 lines and a 16384-byte block echoed back intact
 *     server, about client 0:
 *       connection from 127.0.0.1:50718
 *       connection closed 127.0.0.1:50718 (16435 bytes echoed)
 *     ...                                   (clients 1 and 2 likewise)
 *     server: 3 connections at once at most
 *     server closed
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <loom.h>

#include "common/server_log.h" /* shared with the other servers */

#define DEFAULT_PORT 8888
#define NCLIENTS 3       /* self-test clients */
#define NLINES 3         /* lines each client sends */
#define BLOCK_SIZE 16384 /* then one block of this size */

/* The server's state, shared by its connection handlers. */
typedef struct {
  server_log_t log;
  int active, peak; /* connections open now / at most */
} server_t;

/* handle_echo: runs in a task of its own for each connection, and owns s. */
static int handle_echo(loom_stream_t *s, void *arg) {
  server_t *srv = arg;
  char peer[LOOM_ADDRSTRLEN];
  stream_addr(s, 1, peer, sizeof peer);
  log_say(&srv->log, peer, "connection from %s", peer);
  if (++srv->active > srv->peak) srv->peak = srv->active;

  char buf[1024];
  size_t echoed = 0;
  int rc = 0;
  for (;;) {
    /* Whatever has arrived, up to 1024 bytes: a 16 KiB block comes in
     * several reads, a short line in one. 0 is EOF: the client is done. */
    ssize_t n = loom_read(s, buf, sizeof buf);
    if (n <= 0) {
      rc = (int)n;
      break;
    }
    /* Waits only if the client does not read what we send back (more than
     * the stream's high-water mark queued): the drain is built in. */
    rc = loom_write(s, buf, (size_t)n);
    if (rc < 0) break;
    echoed += (size_t)n;
  }
  /* writer.close(): what is still queued is sent first. Never waits. */
  loom_close(s);
  srv->active--;
  /* A reset by the client, or the server closing (Ctrl-C): the error is this
   * connection's, not the server's. Report it and return 0. */
  if (rc < 0)
    log_say(&srv->log, peer, "connection closed %s (%zu bytes echoed; %s)", peer, echoed,
            loom_strerror(rc));
  else
    log_say(&srv->log, peer, "connection closed %s (%zu bytes echoed)", peer, echoed);
  return 0;
}

/* ---- serving ------------------------------------------------------------------------- */

static int serve(int port) {
  server_t srv = {0};
  return serve_until_cancelled("echo_server", "serving", port, handle_echo, &srv);
}

/* ---- the self-test ---------------------------------------------------------------- */

/* One client: set up by main, filled in by its task. */
typedef struct {
  int id;
  int port;                   /* the server's */
  loom_barrier_t *barrier;    /* where the clients wait for each other */
  char addr[LOOM_ADDRSTRLEN]; /* out: the client's own address */
  int lines_ok;               /* out: lines that came back intact */
  int block_ok;               /* out: 1 if the block came back intact */
} client_t;

/* Sends n bytes and reads them back: 1 if they came back intact, 0 if not,
 * or an error. */
static int round_trip(loom_stream_t *s, const char *data, size_t n, char *back) {
  int rc = loom_write(s, data, n);
  if (rc < 0) return rc;
  /* The echo may come in pieces; read_exactly waits for all n bytes. */
  rc = loom_read_exactly(s, back, n, NULL);
  if (rc < 0) return rc;
  return memcmp(data, back, n) == 0;
}

static int client(void *p) {
  client_t *c = p;
  char *block = malloc(2 * BLOCK_SIZE); /* what we send, then what returns */
  loom_stream_t *s = NULL;
  int rc = block ? loom_tcp_connect(&s, "127.0.0.1", c->port) : UV_ENOMEM;
  if (rc < 0) {
    /* The others would wait for us at the barrier forever. */
    loom_barrier_abort(c->barrier);
    free(block);
    return rc;
  }
  stream_addr(s, 0, c->addr, sizeof c->addr);

  for (int i = 0; i < NLINES && rc >= 0; i++) {
    char line[64], echo[64];
    int n = snprintf(line, sizeof line, "client %d, line %d\n", c->id, i + 1);
    rc = round_trip(s, line, (size_t)n, echo);
    if (rc > 0) c->lines_ok++;
    /* After its first line has come back, each client's connection is
     * open and its handler running: wait until all of them are. A client
     * that failed has aborted the barrier, so nobody waits in vain. */
    if (i == 0 && rc >= 0) rc = loom_barrier_wait(c->barrier);
  }
  if (rc >= 0) {
    for (size_t i = 0; i < BLOCK_SIZE; i++)
      block[i] = (char)('a' + (i * 7 + (size_t)c->id) % 26);
    rc = round_trip(s, block, BLOCK_SIZE, block + BLOCK_SIZE);
    c->block_ok = rc > 0;
  }
  if (rc < 0) loom_barrier_abort(c->barrier);
  /* EOF for the server: its read returns 0 and the handler ends. */
  loom_close(s);
  free(block);
  return rc < 0 ? rc : 0;
}

static int selftest(void) {
  loom_barrier_t barrier;
  int rc = loom_barrier_init(&barrier, NCLIENTS);
  if (rc < 0) {
    fprintf(stderr, "echo_server: barrier: %s\n", loom_strerror(rc));
    return rc;
  }
  server_t srv = {.log.record = 1};
  loom_server_t *server;
  rc = loom_serve(&server, "127.0.0.1", 0, handle_echo, &srv, NULL);
  if (rc < 0) {
    fprintf(stderr, "echo_server: cannot serve on 127.0.0.1: %s\n", loom_strerror(rc));
    return rc;
  }
  int port = loom_server_port(server);
  printf("serving on 127.0.0.1:%d (self-test: %d clients)\n", port, NCLIENTS);

  client_t clients[NCLIENTS];
  int statuses[NCLIENTS] = {0};
  for (int i = 0; i < NCLIENTS; i++)
    clients[i] = (client_t){.id = i, .port = port, .barrier = &barrier, .addr = "?"};
  /* All the clients at once; every one is awaited (and, if we are
   * cancelled, cancelled and awaited) before this returns. */
  rc = loom_gather_map(client, clients, sizeof clients[0], NCLIENTS, statuses, 0);

  /* The clients have closed their ends; the handlers end as soon as they
   * read the EOF. A graceful close waits for them (for up to a second;
   * then it would cancel them, and the log would say so). */
  int crc = selftest_close("echo_server", "client", server, rc, statuses, NCLIENTS);
  if (rc < 0) return rc;

  for (int i = 0; i < NCLIENTS; i++) {
    const client_t *c = &clients[i];
    if (c->lines_ok == NLINES && c->block_ok)
      printf("client %d (%s): %d lines and a %d-byte block echoed back intact\n", i,
             c->addr, NLINES, BLOCK_SIZE);
    else
      printf("client %d (%s): %d of %d lines and %s block echoed back intact\n", i,
             c->addr, c->lines_ok, NLINES, c->block_ok ? "the" : "not the");
  }
  /* The server's lines, grouped by client (matched by address). */
  const char *addrs[NCLIENTS];
  for (int i = 0; i < NCLIENTS; i++) addrs[i] = clients[i].addr;
  log_print(&srv.log, "client", addrs, NCLIENTS);
  printf("server: %d connections at once at most\n", srv.peak);
  printf("server closed\n");
  return crc;
}

/* ---- main -------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  return server_example_main("echo_server", argc, argv, DEFAULT_PORT,
                             "run clients against a server on a free port", serve,
                             selftest);
}
