/* Error names and messages for libuv's codes and loom's own, and the
 * version query. libuv's uv_strerror() allocates (and leaks) a string for an
 * unknown code, so the _r variants with a per-thread buffer are used. */
#include <stdio.h>

#include "internal.h"

/* One buffer per function, so that both may appear in one printf. */
static __thread char msgbuf[96];
static __thread char namebuf[32];

#define LOOM__IN_RANGE(err) ((err) < LOOM_ERRNO_BASE && (err) > LOOM_ERRNO_LAST)

const char *loom_strerror(int err) {
  switch (err) {
#define LOOM_ERRNO_CASE_(name, off, msg) \
  case LOOM_##name:                      \
    return msg;
    LOOM_ERRNO_MAP(LOOM_ERRNO_CASE_)
#undef LOOM_ERRNO_CASE_
  default:
    break;
  }
  if (LOOM__IN_RANGE(err)) {
    snprintf(msgbuf, sizeof(msgbuf), "unknown loom error %d", err);
    return msgbuf;
  }
  return uv_strerror_r(err, msgbuf, sizeof(msgbuf));
}

const char *loom_err_name(int err) {
  switch (err) {
#define LOOM_ERRNO_CASE_(name, off, msg) \
  case LOOM_##name:                      \
    return "LOOM_" #name;
    LOOM_ERRNO_MAP(LOOM_ERRNO_CASE_)
#undef LOOM_ERRNO_CASE_
  default:
    break;
  }
  if (LOOM__IN_RANGE(err)) {
    snprintf(namebuf, sizeof(namebuf), "LOOM_E%d", -err);
    return namebuf;
  }
  return uv_err_name_r(err, namebuf, sizeof(namebuf));
}

unsigned loom_version(void) { return LOOM_VERSION_HEX; }
const char *loom_version_string(void) { return LOOM_VERSION_STRING; }
