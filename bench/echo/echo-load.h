/* echo-load: what the echo benchmark's two load clients share
 * (echo-client.c for wall-clock figures, echo-client-cg.c for callgrind):
 * connections to 127.0.0.1 that each play closed-loop ping-pong, sending a
 * message and waiting for its whole echo, on one epoll set, level-triggered,
 * in one thread. When to send the next message is the client's: it is
 * told of every echo completed.
 *
 * Errors of the system (socket, connect, epoll, a connection the server
 * closes) end the program with a message: a load client has no one to
 * report them to.
 */
#ifndef LOOM_BENCH_ECHO_LOAD_H
#define LOOM_BENCH_ECHO_LOAD_H

#include <stddef.h>
#include <stdint.h>

#define ECHO_LOAD_MAX_SIZE (1 << 16) /* the largest message */

typedef struct {
  int fd;
  size_t sent;  /* bytes of the current message written */
  size_t got;   /* bytes of its echo received */
  uint64_t rts; /* round trips completed */
  int want_out; /* EPOLLOUT registered (a partial write) */
} echo_conn_t;

typedef struct echo_load_s echo_load_t;
struct echo_load_s {
  const char *prog; /* names the program in messages */
  int ep;
  char *msg; /* the message, msg_size bytes */
  size_t msg_size;
  int verify; /* compare every echo with the message */
  echo_conn_t *conns;
  int nconn;
  /* Called when c's echo is complete, c->rts counting it: may call
   * echo_send(l, c) to start the next round trip. Until then, a byte more
   * from the server is a protocol error. */
  void (*done)(echo_load_t *l, echo_conn_t *c);
};

/* Seconds on the monotonic clock. */
double echo_now_s(void);

/* Prints "prog: what: <errno's text>" and exits with status 1. */
void echo_die(const char *prog, const char *what);

/* Connects nconn connections to 127.0.0.1:port, one after the other with
 * blocking connects (the kernel completes each handshake at once, and the
 * server's accept loop keeps up), then makes them non-blocking and adds
 * them to a new epoll set. The message is size bytes (at most
 * ECHO_LOAD_MAX_SIZE) of a repeated alphabet. Nothing is sent yet. */
void echo_load_open(echo_load_t *l, const char *prog, int port, int nconn, size_t size,
                    void (*done)(echo_load_t *l, echo_conn_t *c));

/* Starts a round trip on c: the message from its start. */
void echo_send(echo_load_t *l, echo_conn_t *c);

/* Waits up to timeout_ms for events and handles them all: partial writes
 * continued, echoes read, l->done called for each echo completed. Returns
 * 0, or -1 after a message when the server sent more than it was sent or
 * (l->verify) something else. */
int echo_load_poll(echo_load_t *l, int timeout_ms);

#endif
