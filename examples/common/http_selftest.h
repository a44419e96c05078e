/* http_selftest.h: the self-test clients of the HTTP server examples
 * (http_hello.c over TCP, https_hello.c over TLS). Both servers answer the
 * same requests the same way, so their self-tests send the same requests:
 * the requests are here, the answers are each example's own (passed in).
 * Each check is a step of a common/selftest.h check: it returns 1, or 0
 * with c->outcome saying what went wrong; the example's check says what
 * passed.
 *
 * A header of static functions rather than a library: each example stays
 * one C file plus what it includes, built exactly as a user's program would
 * be. Include it as "common/http_selftest.h" from an example's directory.
 */
#ifndef LOOM_EXAMPLES_HTTP_SELFTEST_H
#define LOOM_EXAMPLES_HTTP_SELFTEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <loom.h>

#include "selftest.h"

#define GET(path) "GET " path " HTTP/1.1\r\nHost: localhost\r\n\r\n"
#define GET_CLOSE(path) \
  "GET " path " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"

/* Three requests, each answered with ok_keep while the connection stays
 * open, then one with Connection: close, answered with ok_close, after
 * which the server closes. */
static inline int http_selftest_keep_alive(selftest_client_t *c, loom_stream_t *s,
                                           const char *ok_keep, const char *ok_close) {
  size_t n = strlen(ok_keep);
  char *buf = malloc(n);
  if (!buf) return SELFTEST_FAIL(c, "%s", loom_strerror(UV_ENOMEM));
  for (int i = 0; i < 3; i++) {
    int rc = loom_write(s, GET("/"), strlen(GET("/")));
    if (rc >= 0) rc = loom_read_exactly(s, buf, n, NULL);
    if (rc < 0 || memcmp(buf, ok_keep, n) != 0) {
      free(buf);
      return SELFTEST_FAIL(c, "request %d: %s", i + 1,
                           rc < 0 ? loom_strerror(rc) : "wrong answer");
    }
  }
  free(buf);
  return selftest_exchange_to_close(c, s, GET_CLOSE("/bye"), ok_close);
}

/* Appends str to buf, which holds len bytes and has room for str and a
 * terminating 0; returns the new length. Builds pipelined requests and
 * the answers they expect. */
static inline size_t http_selftest_append(char *buf, size_t len, const char *str) {
  size_t n = strlen(str);
  memcpy(buf + len, str, n + 1);
  return len + n;
}

/* Two requests sent byte by byte, so that the server's reads see the
 * heads in pieces: answered with ok_keep then ok_close, then the close. */
static inline int http_selftest_split(selftest_client_t *c, loom_stream_t *s,
                                      const char *ok_keep, const char *ok_close) {
  static const char req[] = GET("/one") GET_CLOSE("/two");
  if (!selftest_send_bytewise(c, s, req, strlen(req))) return 0;
  size_t n = strlen(ok_keep) + strlen(ok_close) + 1;
  char *want = malloc(n);
  if (!want) return SELFTEST_FAIL(c, "%s", loom_strerror(UV_ENOMEM));
  snprintf(want, n, "%s%s", ok_keep, ok_close);
  int ok = selftest_exchange_to_close(c, s, "", want);
  free(want);
  return ok;
}

#endif
