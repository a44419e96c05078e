/* Internal declarations shared by the file system calls (fs.c), the whole
 * file helpers (fs-whole.c) and files as streams (fs-stream.c): how a task
 * waits for a file operation, and the open file object. */
#ifndef LOOM_IO_FS_H
#define LOOM_IO_FS_H

#include "io.h"
#include "loom/fs.h"

/* A file operation a task waits for: a request of the seam (io.h,
 * req.c) in its wait-out mode, in the waiting task's frame. The task never
 * returns before libuv's callback has run, so libuv never points at a
 * frame that has gone, no thread writes into the caller's buffer after the
 * call returned, and no allocation is needed. `u.fs` is a uv_fs_t, or
 * `u.work` a uv_work_t for the helpers that do a few system calls in one
 * trip to the thread pool; `status` is then uv_queue_work's (UV_ECANCELED
 * if libuv took the work back), and `done` says the callback has run. */
typedef loom__req_t loom__fsop_t;

/* The first half of a file operation: the running task, checked for
 * cancellation and timeouts, and op made ready for it. */
static inline int loom__fsop_begin(loom__fsop_t *op) {
  loom_task_t *self;
  /* Run at once from the callback rather than at the next scheduler pass:
   * a loop of reads starts its next one a turn of the loop sooner, which
   * is what a sequential read is made of. */
  return loom__req_init(op, LOOM__REQ_WAIT_OUT | LOOM__REQ_WAKE_NOW, &self);
}
/* loom__fsop_begin for a call that makes an object from a path: both
 * pointers checked (the caller has cleared *out if out is not NULL). */
static inline int loom__fsop_begin_path(const void *out, const char *path,
                                        loom__fsop_t *op) {
  if (!out || !path) return UV_EINVAL;
  return loom__fsop_begin(op);
}
/* The loop the running task's runtime runs (after loom__fsop_begin). */
static inline uv_loop_t *loom__fsop_loop(void) { return loom__self()->rt->loop; }
/* For uv_fs_* calls. */
void loom__fsop_cb(uv_fs_t *req);
/* For uv_queue_work's after-work callback. */
void loom__fsop_work_cb(uv_work_t *req, int status);
/* The second half: start_rc is what starting the request returned. Waits
 * until the callback has run, whatever happens (the seam's wait-out mode).
 * Returns start_rc if it failed, the interruption (UV_ECANCELED,
 * UV_ETIMEDOUT), or 0: the result is then in the request. */
static inline int loom__fsop_wait(loom__fsop_t *op, int start_rc) {
  return loom__req_finish(op, start_rc);
}

/* An open file. */
struct loom_file_s {
  loom__obj_t obj; /* list, handle, refs (obj.h); no libuv handle */
  uv_file fd;
  int closing; /* loom_file_close ran while calls were in progress: the
                  last one closes fd */
};

/* The file behind handle h, with a reference the caller drops with
 * loom__file_unref, or NULL (stale, closed, not a file). */
loom_file_t *loom__file_ref(loom_file_t *h);
void loom__file_unref(loom_file_t *f);

/* Opens a file stream reading from fd. On success the stream owns fd (it
 * is closed with the stream); on failure fd stays the caller's, open, for
 * the caller to close. */
int loom__file_stream_new(loom_stream_t **out, loom_t *rt, uv_file fd);

#endif
