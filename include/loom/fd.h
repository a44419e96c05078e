/* loom foreign file descriptors: tasks waiting until a file descriptor that
 * loom does not own is readable or writable (asyncio's loop.add_reader /
 * add_writer), so that non-blocking C drivers (hiredis, libpq, c-ares...)
 * run inside tasks. See docs/fd.md.
 *
 * A watch (loom_fd_t) is one libuv uv_poll_t on the descriptor; libuv
 * allows one per descriptor and loop, so open one watch per descriptor and
 * share it: a reader task and a writer task may wait on the same watch at
 * the same time, and several tasks may wait for the same event (each is
 * woken). Readiness is level-triggered and only a hint: after a wake-up, do
 * the non-blocking operation, and on EAGAIN wait again.
 *
 * Rules for the descriptor:
 *   - libuv switches it to non-blocking mode when the watch opens;
 *   - loom never reads, writes nor closes it;
 *   - close it only after loom_fd_close has returned (closing releases the
 *     watch from the kernel's poll set at once). Closing it while watched
 *     leaves a waiting task with nothing to wake it, and the number may be
 *     reused by another open() that the stale watch would then confuse.
 *
 * Handles are checked tokens like streams: a call on a closed watch returns
 * UV_EBADF, never touches freed memory; NULL gives UV_EINVAL. A watch left
 * open when the runtime shuts down is released and reported (the
 * descriptor stays open: it is the program's).
 */
#ifndef LOOM_FD_H
#define LOOM_FD_H

#include "core.h"
#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_fd_s loom_fd_t; /* opaque, heap */

/* Events to wait for, and what a wait reports (a bitmask). */
enum {
  LOOM_FD_READABLE = 1,   /* data to read, or the peer closed (read gives
                             0 or an error) */
  LOOM_FD_WRITABLE = 2,   /* room to write, or a connect that finished */
  LOOM_FD_DISCONNECT = 4, /* the peer shut its side down (EPOLLRDHUP);
                             reported only when asked for */
  LOOM_FD_ERROR = 8       /* reported, never asked for: the descriptor has
                             an error pending (a failed connect...); it comes
                             with the events waited for, so the driver's next
                             call returns the error (getsockopt SO_ERROR
                             names it) */
};

/* Opens a watch of `fd` in the calling task's runtime. Does not suspend.
 * Errors: UV_EBADF (fd < 0 or not open), UV_EPERM (a descriptor epoll
 * cannot watch: a regular file, a directory), UV_EEXIST (fd is watched
 * already on this loop: by another loom watch, a loom stream or a raw libuv
 * handle), LOOM_ENOTASK outside a task, UV_EINVAL (NULL out), UV_ENOMEM. */
LOOM_EXTERN int loom_fd_open(loom_fd_t **w, int fd);

/* Waits until one of `events` (LOOM_FD_READABLE | LOOM_FD_WRITABLE |
 * LOOM_FD_DISCONNECT) holds, and returns those that do (> 0, plus
 * LOOM_FD_ERROR for an error condition). While a task waits, the watch
 * keeps the loop alive. Errors: UV_ECANCELED, UV_ETIMEDOUT (a timeout
 * scope), LOOM_ENOTASK, UV_EINVAL (NULL, no or unknown events), UV_EBADF
 * (closed, also while waiting); libuv's errors pass through. */
LOOM_EXTERN int loom_fd_wait(loom_fd_t *w, int events);

/* The descriptor a watch is on, or UV_EINVAL / UV_EBADF. */
LOOM_EXTERN int loom_fd_fileno(loom_fd_t *w);

/* Releases the watch (the descriptor stays open); tasks waiting on it wake
 * with UV_EBADF. Once it returns the descriptor may be closed. Does not
 * suspend. Errors: UV_EINVAL, UV_EBADF (closed already). */
LOOM_EXTERN int loom_fd_close(loom_fd_t *w);

#ifdef __cplusplus
}
#endif

#endif /* LOOM_FD_H */
