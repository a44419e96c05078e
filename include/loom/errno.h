/* loom's own error codes.
 *
 * Every loom function that can fail returns a negative code. Codes from libuv
 * (UV_ECANCELED, UV_ETIMEDOUT, UV_ENOMEM, ...) pass through unchanged; the
 * codes below are loom's own and live in [LOOM_ERRNO_LAST, LOOM_ERRNO_BASE),
 * a range libuv does not use (libuv's codes are negated errno values and
 * -3000..-4095). loom_strerror() and loom_err_name() describe both kinds.
 */
#ifndef LOOM_ERRNO_H
#define LOOM_ERRNO_H

#define LOOM_ERRNO_BASE (-20000)

/* X(name, offset, message): one map generates the enum and the tables. */
#define LOOM_ERRNO_MAP(X)                                                     \
  X(ENOTASK, 1, "operation must be called from inside a loom task")           \
  X(EBADTASK, 2, "invalid task handle (already joined, detached or unknown)") \
  X(EDEADLK, 3, "operation would deadlock (a task cannot join itself)")       \
  X(ECLOSED, 4, "runtime is shutting down")                                   \
  X(EBUSY, 5, "runtime still has tasks or is already running")                \
  X(ESCOPE, 7, "scope is not the innermost open scope of this task")          \
  X(EBROKEN, 8, "barrier is broken (reset or aborted)")                       \
  X(ESHUTDOWN, 9, "queue is shut down")                                       \
  X(EDONE, 10, "future is already resolved")                                  \
  X(ETLS, 20, "TLS protocol error")                                           \
  X(ETLSVERIFY, 21, "TLS peer certificate verification failed")               \
  X(ETLSTRUNC, 22, "TLS stream truncated (peer closed without close_notify)")

typedef enum {
#define LOOM_ERRNO_GEN_(name, off, msg) LOOM_##name = LOOM_ERRNO_BASE - (off),
  LOOM_ERRNO_MAP(LOOM_ERRNO_GEN_)
#undef LOOM_ERRNO_GEN_
      LOOM_ERRNO_LAST = LOOM_ERRNO_BASE - 100
} loom_errno_t;

#endif /* LOOM_ERRNO_H */
