/* loom networking: streams (TCP, Unix domain sockets, pipes, TTYs), clients
 * and servers, UDP, and DNS, for loom tasks (asyncio.open_connection,
 * start_server, StreamReader/StreamWriter, DatagramTransport, getaddrinfo).
 *
 * Every suspending call here follows loom's error and cancellation rules
 * (docs/core.md, "Errors and misuse" and "Cancellation"; docs/scope.md): it
 * returns a negative code on failure (libuv's codes pass through: UV_EOF,
 * UV_ECONNRESET, UV_EPIPE, ...), honours cancellation and timeout scopes,
 * and never leaves libuv pointing at freed memory: a request interrupted by
 * cancellation lives on until libuv's callback, which frees it. See
 * docs/net.md.
 *
 * Handles (streams, listeners, servers, UDP sockets) are checked tokens, as
 * task handles are: a call on a handle that was closed (or closed twice)
 * returns UV_EBADF, never touches freed memory; NULL gives UV_EINVAL.
 * Functions that return a size give 0 for such handles. Whatever a program
 * leaves open when the runtime shuts down is closed and reported.
 */
#ifndef LOOM_NET_H
#define LOOM_NET_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core.h"
#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- streams ------------------------------------------------------------ */

typedef struct loom_stream_s loom_stream_t; /* opaque, heap */

/* Default read-buffer limit (asyncio's 64 KiB). */
#define LOOM_STREAM_LIMIT (64u * 1024u)

/* Reads up to n bytes: waits until at least one is available. Returns the
 * count, 0 at EOF, or an error. Every read function returns UV_ENOMEM if no
 * read buffer could be allocated: nothing is lost, and the next call reads
 * again. */
LOOM_EXTERN ssize_t loom_read(loom_stream_t *s, void *buf, size_t n);
/* Reads exactly n bytes. UV_EOF if the peer closed first; *got (may be
 * NULL) then says how many bytes were stored in buf. */
LOOM_EXTERN int loom_read_exactly(loom_stream_t *s, void *buf, size_t n, size_t *got);
/* Reads up to and including the delimiter `delim` (of dlen bytes) into buf,
 * NUL-terminated; returns the length. UV_ENOBUFS if no delimiter comes
 * within the stream's limit or the line does not fit in cap-1 bytes: the
 * data stays buffered and readable. UV_EOF if the stream ends first: the
 * partial data stays readable. */
LOOM_EXTERN ssize_t loom_read_until(loom_stream_t *s, const void *delim, size_t dlen,
                                    char *buf, size_t cap);
/* asyncio's readline: like read_until("\n"), but at EOF returns what is
 * left (possibly without "\n"; 0 when nothing is left). */
LOOM_EXTERN ssize_t loom_read_line(loom_stream_t *s, char *buf, size_t cap);
/* Reads everything until EOF into a malloc'd buffer (*data, *len; the
 * caller frees). UV_ENOBUFS beyond `max` bytes. */
LOOM_EXTERN int loom_read_all(loom_stream_t *s, char **data, size_t *len, size_t max);

/* Default output limit: how much may be queued for a peer that sends
 * without reading its replies (loom_stream_set_output_limit). */
#define LOOM_STREAM_OUTPUT_LIMIT (16u * 1024u * 1024u)

/* Writes all of buf. The bytes are copied (or written at once), so buf may
 * be reused when the call returns. A write of up to 4 KiB that answers a
 * lone request (the task's first small write since it last waited for
 * input, with nothing gathered, queued or unread before it) goes to the
 * kernel at once; any other is gathered with the stream's other small
 * writes and reaches the kernel with them when the calling task (and every
 * other ready task) has stopped running, before the loop next polls for
 * I/O, or sooner: when 16 KiB are gathered, before a larger write, at
 * loom_flush, loom_drain, loom_shutdown_write or loom_close. A larger write
 * goes to the kernel at once. While more than the stream's high-water mark
 * is queued, waits (before writing) until the queue is down to the
 * low-water mark (a quarter of it); several writers take turns in FIFO
 * order. Except while the peer has sent bytes not read yet: then the write
 * does not wait, and if the queue would pass the output limit the stream
 * is aborted and UV_ENOBUFS returned. An error means nothing of this call
 * was written, except a sticky stream error (UV_EPIPE, UV_ECONNRESET,
 * UV_ENOBUFS...) after which the stream is broken; an error that happens
 * after a write returned (gathered bytes the kernel refuses) is returned by
 * the next write, loom_flush, loom_drain and loom_close. UV_EINVAL for
 * NULL data with n > 0. */
LOOM_EXTERN int loom_write(loom_stream_t *s, const void *buf, size_t n);
LOOM_EXTERN int loom_writev(loom_stream_t *s, const uv_buf_t *bufs, unsigned nbufs);
/* Hands the gathered small writes to the kernel now (what it does not take
 * at once is queued). Never suspends. Returns the stream's sticky write
 * error, if any, else 0. */
LOOM_EXTERN int loom_flush(loom_stream_t *s);
/* Flushes, then waits until everything written has been handed to the
 * kernel, or the stream failed (its sticky error is returned). */
LOOM_EXTERN int loom_drain(loom_stream_t *s);
/* Sends EOF (after what is queued); the stream can still be read. */
LOOM_EXTERN int loom_shutdown_write(loom_stream_t *s);
/* Closes the stream after what is queued has been written, and frees it.
 * Never suspends; the handle is consumed. Returns the stream's sticky write
 * error if one is known (the stream is closed all the same): call
 * loom_drain first to learn whether everything was written. If the
 * runtime shuts down while
 * the queue is still flushing (a peer that never reads), the stream is
 * aborted after the runtime's grace period. */
LOOM_EXTERN int loom_close(loom_stream_t *s);
/* Closes at once, dropping what is queued (TCP: with a reset). The handle
 * is consumed. */
LOOM_EXTERN int loom_abort(loom_stream_t *s);

/* Buffer limit (read_until / read_line) and write high-water mark. */
LOOM_EXTERN int loom_stream_set_limit(loom_stream_t *s, size_t limit);
LOOM_EXTERN int loom_stream_set_high_water(loom_stream_t *s, size_t bytes);
/* Output limit (default LOOM_STREAM_OUTPUT_LIMIT; SIZE_MAX: none): while
 * the peer has sent bytes the program has not read, writers do not wait at
 * the high-water mark (waiting would stop the task reading, and a peer
 * that reads only once it has sent everything would never read again);
 * the queue grows instead, up to this many bytes, past which the stream is
 * aborted and the write returns UV_ENOBUFS (as redis's
 * client-output-buffer-limit). */
LOOM_EXTERN int loom_stream_set_output_limit(loom_stream_t *s, size_t bytes);
/* Bytes written but not yet handed to the kernel (gathered or queued);
 * bytes buffered unread. */
LOOM_EXTERN size_t loom_stream_queued(const loom_stream_t *s);
LOOM_EXTERN size_t loom_stream_buffered(const loom_stream_t *s);
/* The underlying libuv handle (a uv_tcp_t, uv_pipe_t or uv_tty_t). */
LOOM_EXTERN uv_stream_t *loom_stream_handle(loom_stream_t *s);

/* TCP details. NODELAY is on by default, as in asyncio. */
LOOM_EXTERN int loom_tcp_nodelay(loom_stream_t *s, int on);
LOOM_EXTERN int loom_tcp_keepalive(loom_stream_t *s, int on, unsigned delay_s);
LOOM_EXTERN int loom_stream_peername(loom_stream_t *s, struct sockaddr_storage *addr);
LOOM_EXTERN int loom_stream_sockname(loom_stream_t *s, struct sockaddr_storage *addr);

/* ---- clients --------------------------------------------------------------- */

/* Resolves host (getaddrinfo) and tries each address in turn. */
LOOM_EXTERN int loom_tcp_connect(loom_stream_t **s, const char *host, int port);
LOOM_EXTERN int loom_tcp_connect_addr(loom_stream_t **s, const struct sockaddr *addr);
LOOM_EXTERN int loom_unix_connect(loom_stream_t **s, const char *path);
/* Wraps an open file descriptor: a pipe, a socket or a TTY (stdin = 0,
 * stdout = 1 work), or a regular file (stdin redirected from a file),
 * which gives a read-only stream as loom_file_stream_open does (loom/fs.h).
 * The stream owns the descriptor: loom_close closes it. */
LOOM_EXTERN int loom_stream_open_fd(loom_stream_t **s, int fd);

/* ---- servers ------------------------------------------------------------------ */

typedef struct loom_listener_s loom_listener_t; /* opaque, heap */

/* Binds and listens. port 0 picks a free port: see loom_listener_port. */
LOOM_EXTERN int loom_tcp_listen(loom_listener_t **l, const char *host, int port,
                                int backlog);
/* loom_tcp_listen's flags. LOOM_LISTEN_REUSEPORT sets SO_REUSEPORT before
 * binding: several listeners (one per runtime, each on its own thread) may
 * then bind the same address and port, and the kernel spreads incoming
 * connections across them (docs/runtimes.md). Every listener sharing the
 * port must set it. UV_ENOTSUP where the system has no SO_REUSEPORT. */
#define LOOM_LISTEN_REUSEPORT 1u
/* loom_tcp_listen with flags (UV_EINVAL for an unknown flag). */
LOOM_EXTERN int loom_tcp_listen_ex(loom_listener_t **l, const char *host, int port,
                                   int backlog, unsigned flags);
LOOM_EXTERN int loom_unix_listen(loom_listener_t **l, const char *path, int backlog);
LOOM_EXTERN int loom_listener_port(loom_listener_t *l);
/* Waits for the next connection. Survives EMFILE: waits and retries. */
LOOM_EXTERN int loom_accept(loom_listener_t *l, loom_stream_t **s);
/* Stops listening and frees the listener. */
LOOM_EXTERN int loom_listener_close(loom_listener_t *l);

typedef struct loom_server_s loom_server_t; /* opaque, heap */

/* A connection handler: runs as its own task; owns (and should close) s. If
 * it returns without closing s, the server closes it. A negative return
 * (other than UV_ECANCELED) is logged on stderr; it never affects the
 * server or the other connections. */
typedef int (*loom_handler_fn)(loom_stream_t *s, void *arg);

typedef struct {
  int backlog;            /* 0: 511 */
  size_t max_connections; /* 0: no limit; beyond it, accepting pauses.
                             At most UINT_MAX (UV_EINVAL beyond). */
  size_t output_limit;    /* 0: LOOM_STREAM_OUTPUT_LIMIT; else each
                             connection's loom_stream_set_output_limit */
  int reuseport;          /* 1: listen with LOOM_LISTEN_REUSEPORT, so that
                             N runtimes on N threads serve one port */
} loom_server_opts_t;

/* Starts a server on host:port whose connections each run handler(s, arg)
 * in a task of their own. Returns once the server is accepting (it yields
 * once for its acceptor task to start); the server runs until closed. */
LOOM_EXTERN int loom_serve(loom_server_t **srv, const char *host, int port,
                           loom_handler_fn handler, void *arg,
                           const loom_server_opts_t *opts);
LOOM_EXTERN int loom_server_port(loom_server_t *srv);
LOOM_EXTERN size_t loom_server_connections(loom_server_t *srv);
/* Graceful close: stops accepting, gives running handlers grace_ms to end,
 * then cancels them, waits for them to end, and frees the server. Returns
 * 0. Must be called from a task (LOOM_ENOTASK otherwise, and the server is
 * left as it was). The wait is bounded, so that it cannot wait for itself
 * (the caller may be a task that one of the handlers awaits): if the
 * handlers have not all ended a second after the grace period, or if the
 * caller is cancelled or times out meanwhile, close returns UV_ETIMEDOUT
 * (or the caller's UV_ECANCELED / UV_ETIMEDOUT), the handlers being
 * cancelled, and the server is freed when its last handler has ended.
 * Called from one of the server's own handlers, it stops accepting and
 * returns 0 at once, the same way. The handle is consumed in every case
 * but LOOM_ENOTASK. */
LOOM_EXTERN int loom_server_close(loom_server_t *srv, uint64_t grace_ms);
/* Runs until cancelled, then closes with no grace period. */
LOOM_EXTERN int loom_server_serve_forever(loom_server_t *srv);

/* ---- UDP ---------------------------------------------------------------------- */

typedef struct loom_udp_s loom_udp_t; /* opaque, heap */

LOOM_EXTERN int loom_udp_bind(loom_udp_t **u, const char *host, int port);
LOOM_EXTERN int loom_udp_port(loom_udp_t *u);
LOOM_EXTERN int loom_udp_send(loom_udp_t *u, const void *buf, size_t n,
                              const struct sockaddr *to);
/* Waits for a datagram; returns its size (truncated to n), fills *from. */
LOOM_EXTERN ssize_t loom_udp_recv(loom_udp_t *u, void *buf, size_t n,
                                  struct sockaddr_storage *from);
/* Closes the socket; a task waiting in loom_udp_recv gets UV_EBADF. */
LOOM_EXTERN int loom_udp_close(loom_udp_t *u);

/* ---- DNS ------------------------------------------------------------------------ */

/* getaddrinfo / getnameinfo on libuv's thread pool. Free *res with
 * uv_freeaddrinfo. */
LOOM_EXTERN int loom_getaddrinfo(const char *node, const char *service,
                                 const struct addrinfo *hints, struct addrinfo **res);
LOOM_EXTERN int loom_getnameinfo(const struct sockaddr *addr, int flags, char *host,
                                 size_t hostlen, char *service, size_t servlen);

/* ---- addresses ------------------------------------------------------------------ */

/* Writes an IPv4 or IPv6 socket address with its port into buf, for logs
 * and messages: "127.0.0.1:8080", "[::1]:8080" (IPv6 in brackets, as in a
 * URL; a link-local address keeps its zone by number: "[fe80::1%2]:8080").
 * Never suspends, needs no runtime. Returns the length written (without
 * the NUL), or UV_EINVAL for a NULL sa (or a NULL buf with size > 0),
 * UV_ENOSPC if buf cannot hold the text and its NUL, UV_EAFNOSUPPORT for
 * another family (AF_UNIX...). On every error buf, if size > 0, holds the
 * empty string: never a truncated address. LOOM_ADDRSTRLEN bytes always
 * suffice (the longest IPv6 text, a 32-bit zone, a port, brackets). */
#define LOOM_ADDRSTRLEN 72
LOOM_EXTERN int loom_addr_format(const struct sockaddr *sa, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* LOOM_NET_H */
