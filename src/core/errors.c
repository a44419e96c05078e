/* Error names and messages for libuv's codes and loom's own, and the
 * version query.
 *
 * Every known code (0, each of libuv's, each of loom's) maps to a static
 * string, so any number of results can be used side by side, as in
 * printf("%s %s", loom_strerror(a), loom_strerror(b)). The tables are built
 * from libuv's own X-macro (UV_ERRNO_MAP) and loom's (LOOM_ERRNO_MAP), so a
 * code added to either is covered by recompiling. Only a code nobody knows
 * is formatted, into a per-thread buffer (one per function): libuv's
 * uv_strerror() would allocate and leak a string for it, and its _r
 * variants copy even the known ones, which is what made two results share
 * one buffer. */
#include <stdio.h>

#include "internal.h"

static __thread char msgbuf[96];
static __thread char namebuf[48];

#define LOOM__IN_RANGE(err) ((err) < LOOM_ERRNO_BASE && (err) > LOOM_ERRNO_LAST)

const char *loom_strerror(int err) {
  switch (err) {
  case 0: return "success";
#define LOOM_UV_CASE_(name, msg) \
  case UV_##name: return msg;
    UV_ERRNO_MAP(LOOM_UV_CASE_)
#undef LOOM_UV_CASE_
#define LOOM_ERRNO_CASE_(name, off, msg) \
  case LOOM_##name: return msg;
    LOOM_ERRNO_MAP(LOOM_ERRNO_CASE_)
#undef LOOM_ERRNO_CASE_
  default: break;
  }
  if (LOOM__IN_RANGE(err))
    snprintf(msgbuf, sizeof(msgbuf), "unknown loom error %d", err);
  else
    snprintf(msgbuf, sizeof(msgbuf), "Unknown system error %d", err);
  return msgbuf;
}

const char *loom_err_name(int err) {
  switch (err) {
  case 0: return "OK";
#define LOOM_UV_CASE_(name, msg) \
  case UV_##name: return #name;
    UV_ERRNO_MAP(LOOM_UV_CASE_)
#undef LOOM_UV_CASE_
#define LOOM_ERRNO_CASE_(name, off, msg) \
  case LOOM_##name: return "LOOM_" #name;
    LOOM_ERRNO_MAP(LOOM_ERRNO_CASE_)
#undef LOOM_ERRNO_CASE_
  default: break;
  }
  if (LOOM__IN_RANGE(err))
    snprintf(namebuf, sizeof(namebuf), "LOOM_E%d", -err);
  else
    snprintf(namebuf, sizeof(namebuf), "Unknown system error %d", err);
  return namebuf;
}

unsigned loom_version(void) { return LOOM_VERSION_HEX; }
const char *loom_version_string(void) { return LOOM_VERSION_STRING; }
