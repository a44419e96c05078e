/* hiredis on loom: a Redis connection that tasks share, driven by hiredis
 * in its non-blocking mode through loom's fd waits (loom/fd.h). A task
 * calls rl_command and reads straight-line code; while hiredis would block,
 * the task waits for the socket and the other tasks run.
 *
 * hiredis parses replies in order, so one command at a time owns the
 * connection (a loom lock, held from sending the command to reading its
 * reply); several connections serve tasks in parallel. A task cancelled,
 * or timed out, in the middle of a command leaves its command queued in
 * hiredis's output buffer or its reply on the way: the connection counts
 * that reply as owed, and the next command reads and drops it before its
 * own. So an interrupted command never hands its reply to someone else:
 * the connection stays usable, or, after an I/O or protocol error, is
 * closed for good (every later command returns that error).
 *
 * The rule for foreign descriptors: the watch is released (loom_fd_close)
 * before hiredis closes the socket (redisFree).
 *
 * Header-only (static functions), shared by examples/redis_client.c and
 * tests/test-redis.c. */
#ifndef LOOM_EXAMPLES_REDIS_LOOM_H
#define LOOM_EXAMPLES_REDIS_LOOM_H

#include <errno.h>
#include <hiredis/hiredis.h>
#include <loom.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>

typedef struct {
  redisContext *c;  /* hiredis, non-blocking; owns the socket */
  loom_fd_t *w;     /* loom's watch of c->fd */
  loom_lock_t lock; /* held by the command in flight */
  int owed;         /* replies of interrupted commands, still to drop */
  int err;          /* sticky: the connection is broken (negative) */
} rl_conn_t;

/* A libuv-style code for what broke a hiredis context. */
static int rl__err(redisContext *c) {
  switch (c->err) {
  case REDIS_ERR_EOF: return UV_EOF;
  case REDIS_ERR_OOM: return UV_ENOMEM;
  case REDIS_ERR_PROTOCOL: return UV_EPROTO;
  case REDIS_ERR_IO: return errno > 0 ? -errno : UV_EIO;
  default: return UV_EIO;
  }
}

/* Connects to ip:port (numeric). Suspends; honours cancellation and
 * timeout scopes. Returns 0 or a negative code; on failure nothing is left
 * open. */
static int rl_connect(rl_conn_t *conn, const char *ip, int port) {
  memset(conn, 0, sizeof(*conn));
  conn->c = redisConnectNonBlock(ip, port);
  if (!conn->c) return UV_ENOMEM;
  int rc = conn->c->err ? rl__err(conn->c) : loom_fd_open(&conn->w, conn->c->fd);
  if (rc == 0) rc = loom_fd_wait(conn->w, LOOM_FD_WRITABLE); /* connected */
  if (rc > 0) {
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    rc = getsockopt(conn->c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) ? -errno : -soerr;
  }
  if (rc) {
    if (conn->w) loom_fd_close(conn->w); /* release the watch first */
    redisFree(conn->c);
    memset(conn, 0, sizeof(*conn));
  }
  return rc;
}

/* Reads one reply (*out), waiting for the socket as needed. */
static int rl__read(rl_conn_t *conn, redisReply **out) {
  for (;;) {
    void *reply = NULL;
    if (redisGetReplyFromReader(conn->c, &reply) != REDIS_OK) return rl__err(conn->c);
    if (reply) {
      *out = reply;
      return 0;
    }
    int rc = loom_fd_wait(conn->w, LOOM_FD_READABLE);
    if (rc < 0) return rc;
    if (redisBufferRead(conn->c) != REDIS_OK) return rl__err(conn->c);
  }
}

/* Writes what hiredis has queued, waiting for room as needed. */
static int rl__flush(rl_conn_t *conn) {
  for (;;) {
    int done = 0;
    if (redisBufferWrite(conn->c, &done) != REDIS_OK) return rl__err(conn->c);
    if (done) return 0;
    int rc = loom_fd_wait(conn->w, LOOM_FD_WRITABLE);
    if (rc < 0) return rc;
  }
}

/* An error that ends a command: an interruption leaves the connection
 * usable (the reply is owed), anything else breaks it. */
static int rl__fail(rl_conn_t *conn, int rc, int reply_owed) {
  if (rc == UV_ECANCELED || rc == UV_ETIMEDOUT) {
    conn->owed += reply_owed;
  } else {
    conn->err = rc;
  }
  loom_lock_release(&conn->lock);
  return rc;
}

/* Sends a command (hiredis's printf-like format) and waits for its reply
 * (*out, freed by the caller with freeReplyObject; a Redis error is a reply
 * of type REDIS_REPLY_ERROR, not a failure). Suspends; honours cancellation
 * and timeout scopes. Returns 0, UV_ECANCELED / UV_ETIMEDOUT (the
 * connection stays usable), or the error that broke the connection. */
static int rl_command(rl_conn_t *conn, redisReply **out, const char *fmt, ...) {
  *out = NULL;
  if (!conn->c) return UV_EBADF;
  int rc = loom_lock_acquire(&conn->lock);
  if (rc) return rc;
  if (conn->err) return rl__fail(conn, conn->err, 0);
  while (conn->owed > 0) {
    redisReply *stale;
    rc = rl__read(conn, &stale);
    if (rc) return rl__fail(conn, rc, 0);
    freeReplyObject(stale);
    conn->owed--;
  }
  va_list ap;
  va_start(ap, fmt);
  rc = redisvAppendCommand(conn->c, fmt, ap);
  va_end(ap);
  /* The formatting failed: nothing was queued, the connection is intact. */
  if (rc != REDIS_OK) {
    loom_lock_release(&conn->lock);
    return UV_ENOMEM;
  }
  /* From here on the command is queued: an interruption owes its reply. */
  rc = rl__flush(conn);
  if (rc == 0) rc = rl__read(conn, out);
  if (rc) return rl__fail(conn, rc, 1);
  loom_lock_release(&conn->lock);
  return 0;
}

/* Closes the connection: the watch first, then the socket. */
static void rl_close(rl_conn_t *conn) {
  if (!conn->c) return;
  loom_fd_close(conn->w);
  redisFree(conn->c);
  memset(conn, 0, sizeof(*conn));
}

#endif
