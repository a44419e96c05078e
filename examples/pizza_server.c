/* pizza_server: a TCP server that takes an order, makes the pizza (a
 * 2-second wait) and hands it over; while one pizza bakes, the server takes
 * the next orders, so three pizzas take 2 seconds, not 6.
 *
 * Ports the "pizza" server of the tutorial "Coroutines and the asyncio API":
 *
 *     async def handle_client(reader, writer):
 *         addr = writer.get_extra_info('peername')
 *         print(f"Connection from {addr}")
 *         data = await reader.read(1024)          # the order
 *         order = data.decode()
 *         print(f"Order received: {order}")
 *         await asyncio.sleep(2)                  # make the pizza
 *         writer.write(b"Here's your pizza!")
 *         await writer.drain()
 *         writer.close()
 *         await writer.wait_closed()
 *
 *     async def run_server(host='localhost', port=8000):
 *         server = await asyncio.start_server(handle_client, host, port)
 *         addr = server.sockets[0].getsockname()
 *         print(f"Pizza server running on {addr}")
 *         async with server:
 *             await server.serve_forever()
 *
 * loom_serve() runs handle_client in a task of its own for each connection,
 * and loom_sleep() suspends only that task: the kitchen makes any number of
 * pizzas at once. (A blocking sleep(2) in the handler would make the
 * customers wait in line: 2, 4, 6 seconds.) run_server() above is
 * serve_until_cancelled() in common/server_log.h, which every server
 * example shares: loom_serve(), then loom_server_serve_forever().
 *
 * One departure: an order is a line ("margherita\n"). TCP delivers a byte
 * stream, not messages, so the original's single read(1024) may return
 * part of an order; reading up to the newline (loom_read_line) gets all of
 * it, however it was split. The server listens on 127.0.0.1 rather than
 * localhost, which may resolve to ::1 first.
 *
 * Usage:
 *     pizza_server [PORT]      serve on 127.0.0.1:PORT (default 8000; 0 picks
 *                              a free port) until Ctrl-C
 *     pizza_server --selftest  serve on a free port, send three customers
 *                              to it in this process, report, close
 *
 * Try it with `echo margherita | nc 127.0.0.1 8000`. Output, serving:
 *
 *     pizza server running on 127.0.0.1:8000
 *     connection from 127.0.0.1:50718
 *     order received: margherita
 *     pizza handed to 127.0.0.1:50718
 *     ^Cserver closed
 *
 * The self-test sends three customers at once; each orders, waits for the
 * pizza and reads the answer to the end. What the server says is kept and
 * printed afterwards, customer by customer, so that the output does not
 * depend on how the connections interleave. Output (the ports vary):
 *
 *     pizza server running on 127.0.0.1:41523 (self-test: 3 customers)
 *     customer 0 ordered margherita: "Here's your pizza!" after 2.0 s
 *     customer 1 ordered marinara: "Here's your pizza!" after 2.0 s
 *     customer 2 ordered quattro formaggi: "Here's your pizza!" after 2.0 s
 *     server, about customer 0:
 *       connection from 127.0.0.1:50718
 *       order received: margherita
 *       pizza handed to 127.0.0.1:50718
 *     ...                                   (customers 1 and 2 likewise)
 *     total: 2.0 s (one pizza at a time would take 6.0 s)
 *     server closed
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <loom.h>

#include "common/server_log.h" /* shared with the other servers */

#define DEFAULT_PORT 8000
#define PIZZA_MS 2000 /* how long a pizza takes */
#define NCUSTOMERS 3  /* self-test customers */

static const char PIZZA[] = "Here's your pizza!";

/* The server's state, shared by its connection handlers. */
typedef struct {
  server_log_t log;
} server_t;

/* Takes one order and delivers one pizza. Returns 0 or an error. */
static int serve_customer(server_t *srv, loom_stream_t *s, const char *peer) {
  char order[128];
  /* The order, up to its newline; at EOF, whatever came (0: nothing).
   * UV_ENOBUFS: a line longer than the buffer, which no pizza has. */
  ssize_t n = loom_read_line(s, order, sizeof order);
  if (n < 0) return (int)n;
  if (n == 0) {
    log_say(&srv->log, peer, "%s left without ordering", peer);
    return 0;
  }
  order[strcspn(order, "\r\n")] = '\0';
  log_say(&srv->log, peer, "order received: %s", order);

  /* Making the pizza. Only this task waits: the server goes on accepting,
   * and the other handlers go on with their own pizzas. */
  int rc = loom_sleep(PIZZA_MS);
  if (rc < 0) return rc; /* Ctrl-C: the kitchen closes */
  rc = loom_write(s, PIZZA, sizeof PIZZA - 1);
  if (rc < 0) return rc; /* the customer went away */
  log_say(&srv->log, peer, "pizza handed to %s", peer);
  return 0;
}

/* handle_client: runs in a task of its own for each connection, and owns s. */
static int handle_client(loom_stream_t *s, void *arg) {
  server_t *srv = arg;
  char peer[LOOM_ADDRSTRLEN];
  stream_addr(s, 1, peer, sizeof peer);
  log_say(&srv->log, peer, "connection from %s", peer);
  int rc = serve_customer(srv, s, peer);
  /* writer.close(): the pizza still queued is sent first. Never waits. */
  loom_close(s);
  /* The error is this connection's, not the server's: report it and
   * return 0. */
  if (rc < 0)
    log_say(&srv->log, peer, "connection from %s ended: %s", peer, loom_strerror(rc));
  return 0;
}

/* ---- serving ------------------------------------------------------------------------- */

static int serve(int port) {
  server_t srv = {0};
  return serve_until_cancelled("pizza_server", "pizza server running", port,
                               handle_client, &srv);
}

/* ---- the self-test ---------------------------------------------------------------- */

/* One customer: set up by main, filled in by its task. */
typedef struct {
  int port; /* the server's */
  const char *order;
  char addr[LOOM_ADDRSTRLEN]; /* out: the customer's own address */
  char answer[64];            /* out: what the server sent */
  uint64_t wait_ms;           /* out: from the order sent to the answer complete */
} customer_t;

static int customer(void *p) {
  customer_t *c = p;
  loom_stream_t *s;
  int rc = loom_tcp_connect(&s, "127.0.0.1", c->port);
  if (rc < 0) return rc;
  stream_addr(s, 0, c->addr, sizeof c->addr);

  char line[96];
  int n = snprintf(line, sizeof line, "%s\n", c->order);
  rc = loom_write(s, line, (size_t)n);
  uint64_t ordered = loom_now();
  if (rc == 0) {
    /* The answer is everything up to the server's close (at most a small
     * buffer's worth: a pizza server does not send novels). */
    char *data;
    size_t len;
    rc = loom_read_all(s, &data, &len, sizeof c->answer - 1);
    if (rc == 0) {
      memcpy(c->answer, data, len);
      c->answer[len] = '\0';
      free(data);
      c->wait_ms = loom_now() - ordered;
    }
  }
  loom_close(s);
  return rc;
}

static int selftest(void) {
  server_t srv = {.log.record = 1};
  loom_server_t *server;
  int rc = loom_serve(&server, "127.0.0.1", 0, handle_client, &srv, NULL);
  if (rc < 0) {
    fprintf(stderr, "pizza_server: cannot serve on 127.0.0.1: %s\n", loom_strerror(rc));
    return rc;
  }
  printf("pizza server running on 127.0.0.1:%d (self-test: %d customers)\n",
         loom_server_port(server), NCUSTOMERS);

  static const char *orders[NCUSTOMERS] = {"margherita", "marinara", "quattro formaggi"};
  customer_t customers[NCUSTOMERS];
  int statuses[NCUSTOMERS] = {0};
  for (int i = 0; i < NCUSTOMERS; i++)
    customers[i] = (customer_t){
        .port = loom_server_port(server), .order = orders[i], .addr = "?"};
  /* All the customers at once; every one is awaited (and, if we are
   * cancelled, cancelled and awaited) before this returns. */
  uint64_t t0 = loom_now();
  rc = loom_gather_map(customer, customers, sizeof customers[0], NCUSTOMERS, statuses, 0);
  uint64_t total_ms = loom_now() - t0;

  /* Every customer has read to the server's close, so every handler has
   * finished or is about to: a graceful close waits for them (a second at
   * most, then it would cancel them, and the log would say so). */
  int crc = selftest_close("pizza_server", "customer", server, rc, statuses, NCUSTOMERS);
  if (rc < 0) return rc;

  for (int i = 0; i < NCUSTOMERS; i++)
    printf("customer %d ordered %s: \"%s\" after %.1f s\n", i, customers[i].order,
           customers[i].answer, (double)customers[i].wait_ms / 1000.0);
  /* The server's lines, grouped by customer (matched by address). */
  const char *addrs[NCUSTOMERS];
  for (int i = 0; i < NCUSTOMERS; i++) addrs[i] = customers[i].addr;
  log_print(&srv.log, "customer", addrs, NCUSTOMERS);
  printf("total: %.1f s (one pizza at a time would take %.1f s)\n",
         (double)total_ms / 1000.0, NCUSTOMERS * PIZZA_MS / 1000.0);
  printf("server closed\n");
  return crc;
}

/* ---- main -------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  return server_example_main("pizza_server", argc, argv, DEFAULT_PORT,
                             "send customers to a server on a free port", serve,
                             selftest);
}
