/* Stream readers over arbitrary chunkings, checked against a reference
 * model: the libFuzzer target's driver (fuzz/stream-driver.h) run over a few
 * hundred seeded pseudo-random scripts, with any compiler, so the normal
 * suite (and its ASan and Valgrind passes) covers what the fuzzer covers.
 * Plus regression tests for reads near the limits: read_line at EOF with
 * nothing ever buffered (UBSan: memcpy from NULL, NULL + 0), read_all with
 * max = SIZE_MAX and set_limit(SIZE_MAX) (the buffer cap limit + minimum
 * wrapped, so every read failed with UV_ENOBUFS), read_all of exactly max
 * bytes, the limit lowered while loom's buffer is full and reading is on.
 * Each runs on a plain socketpair whose peer wrote everything and closed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "fuzz/stream-driver.h"
#include "harness.h"
#include "helpers.h"
#include "loom.h"
#include "on-valgrind.h"

/* ---- seeded random scripts ------------------------------------------------------- */

static uint64_t rng;
static unsigned rnd(unsigned n) { /* xorshift64*, uniform enough in [0, n) */
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return (unsigned)((rng * 2685821657736338717ull) >> 33) % n;
}

typedef struct {
  uint8_t b[4096];
  size_t n;
} input_t;

static void put(input_t *in, unsigned byte) {
  if (in->n < sizeof(in->b)) in->b[in->n++] = (uint8_t)byte;
}

/* A byte of a small alphabet, so delimiters are found (or straddle chunks)
 * often. */
static unsigned alpha(void) { return (unsigned)"ab\n\r:x\n"[rnd(7)]; }

/* Small sizes mostly; now and then a large one (scaled by 257). */
static unsigned size_flag(unsigned *b) {
  if (rnd(8) == 0) {
    *b = rnd(256);
    return 8;
  }
  *b = rnd(4) == 0 ? rnd(256) : rnd(24);
  return 0;
}

/* Encodes a random script (stream-driver.h describes the encoding). */
static void gen(input_t *in, uint64_t seed) {
  rng = seed * 0x9E3779B97F4A7C15ull + 1;
  in->n = 0;
  unsigned steps = 4 + rnd(60);
  for (unsigned s = 0; s < steps; s++) {
    unsigned k = rnd(20), b, f;
    if (k < 7) { /* chunk */
      unsigned len = rnd(4) == 0 ? rnd(200) : rnd(12);
      put(in, 0 | rnd(4) << 4);
      put(in, len);
      for (unsigned i = 0; i < len; i++) put(in, alpha());
    } else if (k == 7) { /* fill: up to a few KiB, sometimes past the limit */
      unsigned len = rnd(3) == 0 ? rnd(16384) : rnd(3000);
      put(in, 2 | rnd(4) << 4);
      put(in, len & 255);
      put(in, len >> 8);
      put(in, rnd(2) ? 'y' : alpha());
      put(in, rnd(3) == 0 ? 0 : rnd(256));
    } else if (k == 8 || k == 9) { /* read */
      f = size_flag(&b);
      put(in, 3 | f << 4);
      put(in, b);
    } else if (k == 10 || k == 11) { /* line */
      f = size_flag(&b);
      put(in, 5 | f << 4);
      put(in, rnd(6) ? b + 1 : b);
    } else if (k == 12 || k == 13) { /* until, 1-4 byte delimiter */
      f = size_flag(&b);
      unsigned d = rnd(10) == 0 ? 7 : rnd(3) == 0 ? rnd(4) : 0;
      put(in, 7 | (f | d) << 4);
      for (unsigned i = 0; d != 7 && i <= (d & 3); i++) put(in, alpha());
      put(in, b + 1);
    } else if (k == 14) { /* exact */
      f = size_flag(&b);
      put(in, 9 | f << 4);
      put(in, b);
    } else if (k == 15) { /* all */
      f = size_flag(&b);
      put(in, 10 | f << 4);
      put(in, rnd(5) == 0 ? 254 + rnd(2) : b);
    } else if (k == 16) { /* limit: small, default, SIZE_MAX or 0 */
      unsigned r = rnd(10);
      put(in, 11);
      put(in, r == 0 ? 0 : r == 1 ? 255 : r == 2 ? 254 : 1 + rnd(40));
    } else if (k < 19) { /* reader pause */
      put(in, 12 | rnd(4) << 4);
    } else if (rnd(4) == 0) { /* early close */
      put(in, 0xff);
    }
  }
}

static void test_random_chunkings(void **state) {
  (void)state;
  /* Valgrind runs each script some 50 times slower. */
  unsigned runs = RUNNING_ON_VALGRIND ? 40 : 400;
  const char *env = getenv("LOOM_CHUNK_RUNS");
  if (env) runs = (unsigned)strtoul(env, NULL, 10);
  uint64_t base = 0;
  if ((env = getenv("LOOM_CHUNK_SEED"))) base = strtoull(env, NULL, 10);
  static input_t in;
  for (unsigned i = 0; i < runs; i++) {
    char msg[512];
    gen(&in, base + i);
    if (sd_run(in.b, in.n, msg, sizeof(msg)) != 0) {
      fprintf(stderr, "seed %llu: %s\ninput:", (unsigned long long)(base + i), msg);
      for (size_t j = 0; j < in.n; j++)
        fprintf(stderr, "%s%02x", j % 32 ? "" : "\n  ", in.b[j]);
      fprintf(stderr, "\n");
      fail_msg("stream model mismatch (seed %llu)", (unsigned long long)(base + i));
    }
  }
}

/* The seed corpus's first file: two lines in three chunks, read by lines. */
static void test_fixed_script(void **state) {
  (void)state;
  static const uint8_t script[] = {0x00, 9,    'h',  'e', 'l',  'l',
                                   'o',  '\n', 'w',  'o', 'r',  /* chunk */
                                   0x05, 64,                    /* line */
                                   0x20, 3,    'l',  'd', '\n', /* chunk, sleep */
                                   0x05, 64,   0x05, 64};       /* line, line */
  char msg[512];
  int rc = sd_run(script, sizeof(script), msg, sizeof(msg));
  if (rc) fail_msg("%s", msg);
}

/* ---- regression tests: reads near the limits ------------------------------------- */

typedef struct {
  const char *data; /* written to the peer, then EOF */
  size_t len;
  int (*body)(loom_stream_t *s); /* runs in a task on the stream */
  int rc;
} plain_t;

static plain_t cur;
/* 20,000 bytes of text without "\n" (set by the tests that use it). */
static char pattern[20000];
static void set_pattern(void) {
  for (size_t i = 0; i < sizeof(pattern); i++) pattern[i] = (char)('a' + i % 23);
}

static int plain_main(void *arg) {
  (void)arg;
  loom_stream_t *s;
  int fd = -1;
  int rc = stream_pair(&s, &fd);
  if (rc) return rc;
  size_t n = cur.len;
  ssize_t w = write(fd, cur.data, n);
  close(fd);
  if (w != (ssize_t)n) {
    loom_close(s);
    return UV_EIO;
  }
  cur.rc = cur.body(s);
  loom_close(s);
  return 0;
}

static int with_bytes(const char *data, size_t len, int (*body)(loom_stream_t *s)) {
  cur.data = data;
  cur.len = len;
  cur.body = body;
  cur.rc = -1;
  assert_loom_ok(loom_run(plain_main, NULL));
  return cur.rc;
}

static int with_stream(const char *data, int (*body)(loom_stream_t *s)) {
  return with_bytes(data, strlen(data), body);
}

/* Returns 0, or the number of the first step that went wrong. */
static int eof_then_line(loom_stream_t *s) {
  char buf[16];
  /* loom_read with nothing buffered reads straight into buf: loom's own
   * buffer is never allocated. */
  if (loom_read(s, buf, sizeof(buf)) != 3) return 1;
  if (loom_read(s, buf, sizeof(buf)) != 0) return 2;
  if (loom_read_line(s, buf, sizeof(buf)) != 0) return 3;
  if (loom_read_until(s, "ab", 2, buf, sizeof(buf)) != UV_EOF) return 4;
  return 0;
}
static void test_read_line_at_eof_without_buffer(void **state) {
  (void)state;
  assert_int_equal(with_stream("abc", eof_then_line), 0);
}

static int line_on_fresh_stream(loom_stream_t *s) {
  char buf[16];
  if (loom_read_line(s, buf, sizeof(buf)) != 0) return 1;
  return 0;
}
static void test_read_line_at_eof_empty_stream(void **state) {
  (void)state;
  assert_int_equal(with_stream("", line_on_fresh_stream), 0);
}

/* More than loom's first buffer (4 KiB), so the buffer has to grow: its
 * cap, limit + 4 KiB, wrapped to 4095 and libuv got a buffer without room. */
static int all_size_max(loom_stream_t *s) {
  char *data = NULL;
  size_t len = 0;
  int rc = loom_read_all(s, &data, &len, SIZE_MAX);
  if (rc) return rc;
  rc = len == sizeof(pattern) && memcmp(data, pattern, len) == 0 ? 0 : 1;
  free(data);
  return rc;
}
static void test_read_all_size_max(void **state) {
  (void)state;
  set_pattern();
  assert_int_equal(with_bytes(pattern, sizeof(pattern), all_size_max), 0);
}

static int limit_size_max(loom_stream_t *s) {
  int rc = loom_stream_set_limit(s, SIZE_MAX);
  if (rc) return rc;
  char *buf = malloc(sizeof(pattern) + 1);
  if (!buf) return UV_ENOMEM;
  ssize_t n = loom_read_line(s, buf, sizeof(pattern) + 1);
  rc = n < 0                                                                  ? (int)n
       : (size_t)n == sizeof(pattern) && memcmp(buf, pattern, (size_t)n) == 0 ? 0
                                                                              : 1;
  free(buf);
  return rc;
}
static void test_set_limit_size_max(void **state) {
  (void)state;
  set_pattern();
  pattern[sizeof(pattern) - 1] = '\n'; /* one line of 20,000 bytes */
  assert_int_equal(with_bytes(pattern, sizeof(pattern), limit_size_max), 0);
}

/* max at or above the stream's limit, and exactly max bytes before EOF. */
static int all_exactly_max(loom_stream_t *s) {
  char *data = NULL;
  size_t len = 0;
  int rc = loom_stream_set_limit(s, 4);
  if (rc) return rc;
  rc = loom_read_all(s, &data, &len, 10);
  if (rc) return rc;
  rc = len == 10 && memcmp(data, "0123456789", 10) == 0 ? 0 : 1;
  free(data);
  return rc;
}
static void test_read_all_exactly_max(void **state) {
  (void)state;
  assert_int_equal(with_stream("0123456789", all_exactly_max), 0);
}

static int all_over_max(loom_stream_t *s) {
  char *data = NULL, buf[16];
  size_t len = 0;
  loom_stream_set_limit(s, 4);
  int rc = loom_read_all(s, &data, &len, 9);
  if (rc != UV_ENOBUFS || data || len) return 1;
  /* the data stays readable */
  if (loom_read_exactly(s, buf, 10, NULL) != 0) return 2;
  return memcmp(buf, "0123456789", 10) == 0 ? 0 : 3;
}
static void test_read_all_over_max(void **state) {
  (void)state;
  assert_int_equal(with_stream("0123456789", all_over_max), 0);
}

/* The limit lowered while reading is on with loom's buffer full: libuv's
 * next read used to get a buffer without room, which libuv reports as
 * UV_ENOBUFS, and that stuck as the stream's read error for good. */
static int limit_lowered_while_reading(loom_stream_t *s) {
  char *data = NULL;
  size_t len = 0;
  /* Fails once more than 4096 bytes are buffered (8192: two full reads);
   * reading stays on. */
  if (loom_read_all(s, &data, &len, 4096) != UV_ENOBUFS) return 1;
  if (loom_stream_set_limit(s, 5) != 0) return 2;
  loom_sleep(0); /* libuv reads on, into a buffer above the new limit */
  loom_sleep(0);
  char *buf = malloc(sizeof(pattern));
  if (!buf) return UV_ENOMEM;
  size_t got = 0;
  int rc = loom_read_exactly(s, buf, sizeof(pattern), &got);
  if (rc == 0 && memcmp(buf, pattern, sizeof(pattern)) != 0) rc = 3;
  free(buf);
  return rc;
}
static void test_limit_lowered_while_reading(void **state) {
  (void)state;
  set_pattern();
  assert_int_equal(with_bytes(pattern, sizeof(pattern), limit_lowered_while_reading), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fixed_script),
      cmocka_unit_test(test_random_chunkings),
      cmocka_unit_test(test_read_line_at_eof_without_buffer),
      cmocka_unit_test(test_read_line_at_eof_empty_stream),
      cmocka_unit_test(test_read_all_size_max),
      cmocka_unit_test(test_set_limit_size_max),
      cmocka_unit_test(test_read_all_exactly_max),
      cmocka_unit_test(test_read_all_over_max),
      cmocka_unit_test(test_limit_lowered_while_reading),
  };
  return HARNESS_RUN(tests);
}
