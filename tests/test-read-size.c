/* How stream reads are sized: by what the reader asks for and by what
 * arrives, not by a fixed buffer.
 *
 * loom_read_exactly with a large request reads straight into the caller's
 * buffer, so a 1 MiB read takes a handful of read(2) calls (it took 267
 * with a 4 KiB buffer). The calls are counted without strace or LD_PRELOAD:
 * libuv calls the stream's alloc callback once before each read(2), and the
 * test wraps that callback (a public field of uv_stream_t) once reading is
 * on. Around it: the bytes are right whichever way they came (part buffered
 * and part direct, a short rest through the buffer, the data after the
 * request left buffered), EOF and a timeout in the middle of a direct read
 * report what was read and lose nothing, and loom's own buffer grows for a
 * long line and is given back when the reader waits on an empty buffer (an
 * idle connection holds no read buffer). Each test runs on a socketpair
 * whose other end is a second loom stream.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "io/io.h"
#include "loom.h"

#define MIB (1024u * 1024u)

/* ---- counting read(2) calls --------------------------------------------------------- */

static uv_alloc_cb orig_alloc;
static size_t nallocs;
static void counting_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  nallocs++;
  orig_alloc(h, hint, buf);
}
/* Reading must be on (a first read started it): uv_read_start would set the
 * callback again. */
static void count_reads(loom_stream_t *s) {
  uv_stream_t *u = loom_stream_handle(s);
  orig_alloc = u->alloc_cb;
  u->alloc_cb = counting_alloc;
  nallocs = 0;
}
/* Whether the count covers every read since count_reads (reading was not
 * restarted with loom's own callback). */
static int still_counting(loom_stream_t *s) {
  return loom_stream_handle(s)->alloc_cb == counting_alloc;
}

/* Byte i of the test data: not periodic in any power of two. */
static char byte_at(size_t i) { return (char)('a' + (i * 7 + i / 251) % 26); }
static char *make_data(size_t n) {
  char *p = malloc(n);
  if (p)
    for (size_t i = 0; i < n; i++) p[i] = byte_at(i);
  return p;
}
static int check_data(const char *p, size_t n, size_t from) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != byte_at(from + i)) return 0;
  return 1;
}

/* ---- a pair of loom streams ----------------------------------------------------------- */

typedef struct {
  int (*body)(loom_stream_t *r, loom_stream_t *w);
  int rc; /* what body returned: 0, or the step that went wrong */
} pair_t;

static int pair_main(void *arg) {
  pair_t *p = arg;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return UV_EIO;
  loom_stream_t *r, *w;
  int rc = loom_stream_open_fd(&r, fds[0]);
  if (rc) return rc;
  rc = loom_stream_open_fd(&w, fds[1]);
  if (rc) {
    loom_close(r);
    return rc;
  }
  p->rc = p->body(r, w);
  loom_close(r);
  loom_close(w);
  return 0;
}

static int with_pair(int (*body)(loom_stream_t *r, loom_stream_t *w)) {
  pair_t p = {.body = body, .rc = -1};
  assert_loom_ok(loom_run(pair_main, &p));
  return p.rc;
}

/* ---- 1 MiB in a few reads --------------------------------------------------------------- */

static size_t mib_reads;
static int exactly_mib(loom_stream_t *r, loom_stream_t *w) {
  char one;
  /* Starts reading, so the alloc callback can be wrapped. */
  if (loom_write(w, "x", 1) != 0) return 1;
  if (loom_read_exactly(r, &one, 1, NULL) != 0 || one != 'x') return 2;
  char *out = make_data(MIB), *in = malloc(MIB);
  int step = 0;
  if (!out || !in) {
    step = 3;
    goto done;
  }
  count_reads(r);
  /* Written whole: what the kernel does not take at once is queued and
   * written as the reader makes room. */
  if (loom_write(w, out, MIB) != 0) {
    step = 4;
    goto done;
  }
  size_t got = 0;
  if (loom_read_exactly(r, in, MIB, &got) != 0 || got != MIB)
    step = 5;
  else if (!still_counting(r))
    step = 6;
  else if (!check_data(in, MIB, 0))
    step = 7;
  mib_reads = nallocs;
  if (still_counting(r)) loom_stream_handle(r)->alloc_cb = orig_alloc;
done:
  free(out);
  free(in);
  return step;
}
static void test_exactly_mib_few_reads(void **state) {
  (void)state;
  assert_int_equal(with_pair(exactly_mib), 0);
  print_message("1 MiB read_exactly: %zu reads\n", mib_reads);
  assert_true(mib_reads >= 1);
  assert_true(mib_reads <= 16);
}

/* ---- no read(2) that finds nothing --------------------------------------------------- */

/* A read(2) that fills the buffer it was given makes libuv read again at
 * once; when the peer sent exactly what the reader asked for, a direct
 * read fills the reader's buffer and that second read finds nothing
 * (libuv calls read_cb with 0: EAGAIN). loom skips it. The read callback
 * is wrapped as the alloc callback is, once reading is on. */
static uv_read_cb orig_read;
static size_t nempty;
static void counting_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  if (nread == 0) nempty++;
  orig_read(st, nread, buf);
}

static int exact_fill(loom_stream_t *r, loom_stream_t *w) {
  enum { N = 8192, ROUNDS = 20 };
  char one, *out = make_data(N), *in = malloc(N);
  int step = 0;
  if (!out || !in) {
    step = 1;
    goto done;
  }
  if (loom_write(w, "x", 1) != 0 || loom_read_exactly(r, &one, 1, NULL) != 0) {
    step = 2;
    goto done;
  }
  uv_stream_t *u = loom_stream_handle(r);
  orig_read = u->read_cb;
  u->read_cb = counting_read;
  nempty = 0;
  /* The peer sends a request and waits for it to be read, as a client
   * waiting for its answer does. */
  for (int i = 0; i < ROUNDS && !step; i++) {
    size_t got = 0;
    if (loom_write(w, out, N) != 0)
      step = 3;
    else if (loom_read_exactly(r, in, N, &got) != 0 || got != N)
      step = 4;
    else if (!check_data(in, N, 0))
      step = 5;
    else if (loom_sleep(1) != 0) /* libuv ends its round of reads */
      step = 6;
  }
  if (u->read_cb == counting_read)
    u->read_cb = orig_read;
  else if (!step)
    step = 7; /* reading was restarted: the count is not whole */
done:
  free(out);
  free(in);
  return step;
}
static void test_exact_fill_no_empty_read(void **state) {
  (void)state;
  assert_int_equal(with_pair(exact_fill), 0);
  assert_int_equal(nempty, 0);
}

/* ---- bytes right whichever way they came ------------------------------------------------ */

/* A line, then 100,000 bytes of which the line's read buffered a part,
 * then a short exact read through the buffer, then a line that must still
 * be there. */
static int mixed(loom_stream_t *r, loom_stream_t *w) {
  enum { BODY = 100000, SHORT = 100 };
  char *out = make_data(BODY + SHORT), *in = malloc(BODY + SHORT);
  char line[64];
  int step = 0;
  if (!out || !in) {
    step = 1;
    goto done;
  }
  if (loom_write(w, "head\n", 5) != 0 || loom_write(w, out, BODY + SHORT) != 0 ||
      loom_write(w, "tail\n", 5) != 0) {
    step = 2;
    goto done;
  }
  if (loom_read_line(r, line, sizeof(line)) != 5 || strcmp(line, "head\n") != 0) {
    step = 3;
    goto done;
  }
  size_t got = 0;
  if (loom_read_exactly(r, in, BODY, &got) != 0 || got != BODY)
    step = 4;
  else if (!check_data(in, BODY, 0))
    step = 5;
  else if (loom_read_exactly(r, in, SHORT, &got) != 0 || got != SHORT)
    step = 6;
  else if (!check_data(in, SHORT, BODY))
    step = 7;
  else if (loom_read_line(r, line, sizeof(line)) != 5 || strcmp(line, "tail\n") != 0)
    step = 8;
done:
  free(out);
  free(in);
  return step;
}
static void test_exactly_mixed(void **state) {
  (void)state;
  assert_int_equal(with_pair(mixed), 0);
}

/* EOF in the middle of a direct read: UV_EOF, and *got says how much of the
 * buffer holds data. */
static int short_at_eof(loom_stream_t *r, loom_stream_t *w) {
  enum { SENT = 60000, ASKED = 200000 };
  char *out = make_data(SENT), *in = malloc(ASKED);
  int step = 0;
  if (!out || !in) {
    step = 1;
    goto done;
  }
  if (loom_write(w, out, SENT) != 0 || loom_shutdown_write(w) != 0) {
    step = 2;
    goto done;
  }
  size_t got = 0;
  int rc = loom_read_exactly(r, in, ASKED, &got);
  if (rc != UV_EOF)
    step = 3;
  else if (got != SENT)
    step = 4;
  else if (!check_data(in, SENT, 0))
    step = 5;
  else if (loom_read(r, in, ASKED) != 0)
    step = 6;
done:
  free(out);
  free(in);
  return step;
}
static void test_exactly_short_at_eof(void **state) {
  (void)state;
  assert_int_equal(with_pair(short_at_eof), 0);
}

/* A timeout in the middle of a direct read: UV_ETIMEDOUT with what arrived
 * in *got, and the next read carries on where it stopped. */
static int timeout_midway(loom_stream_t *r, loom_stream_t *w) {
  enum { FIRST = 30000, REST = 50000 };
  char *out = make_data(FIRST + REST), *in = malloc(FIRST + REST);
  int step = 0;
  if (!out || !in) {
    step = 1;
    goto done;
  }
  if (loom_write(w, out, FIRST) != 0) {
    step = 2;
    goto done;
  }
  size_t got = 0;
  loom_scope_t sc;
  if (loom_timeout_enter(&sc, 50) != 0) {
    step = 3;
    goto done;
  }
  int rc = loom_read_exactly(r, in, FIRST + REST, &got);
  loom_scope_exit(&sc);
  if (rc != UV_ETIMEDOUT)
    step = 4;
  else if (got != FIRST || !check_data(in, FIRST, 0))
    step = 5;
  else if (loom_write(w, out + FIRST, REST) != 0)
    step = 6;
  else if (loom_read_exactly(r, in + FIRST, REST, &got) != 0 || got != REST)
    step = 7;
  else if (!check_data(in, FIRST + REST, 0))
    step = 8;
done:
  free(out);
  free(in);
  return step;
}
static void test_exactly_timeout_midway(void **state) {
  (void)state;
  assert_int_equal(with_pair(timeout_midway), 0);
}

/* ---- loom's buffer: grows for a long line, given back when idle ---------------------------- */

typedef struct {
  loom_stream_t *r;
  size_t cap_after_line; /* loom's buffer right after the long line */
  size_t cap_idle;       /* while the reader waits on an empty buffer */
  ssize_t last;          /* the line read after that */
  int parked;            /* the reader is waiting */
} idle_t;
static idle_t idle;

static size_t rbuf_cap(loom_stream_t *h) { return loom__stream_get(h)->rcap; }

static int idle_reader(void *arg) {
  (void)arg;
  char line[16];
  idle.parked = 1;
  idle.last = loom_read_line(idle.r, line, sizeof(line));
  idle.parked = 0;
  return 0;
}

static int long_line_then_idle(loom_stream_t *r, loom_stream_t *w) {
  enum { LINE = 300000 };
  char *out = make_data(LINE), *in = malloc(LINE + 1);
  int step = 0;
  loom_task_t *t = NULL;
  if (!out || !in) {
    step = 1;
    goto done;
  }
  out[LINE - 1] = '\n';
  if (loom_stream_set_limit(r, 2 * LINE) != 0 || loom_write(w, out, LINE) != 0) {
    step = 2;
    goto done;
  }
  if (loom_read_line(r, in, LINE + 1) != LINE || memcmp(in, out, LINE) != 0) {
    step = 3;
    goto done;
  }
  idle.cap_after_line = rbuf_cap(r);
  idle.r = r;
  if (loom_spawn(&t, idle_reader, NULL) != 0) {
    step = 4;
    goto done;
  }
  /* Until the reader waits. */
  for (int i = 0; i < 100 && !(idle.parked && loom__stream_get(r)->reader); i++)
    loom_yield();
  if (!loom__stream_get(r)->reader) step = 5;
  idle.cap_idle = rbuf_cap(r);
  if (loom_write(w, "ok\n", 3) != 0) step = 6;
  loom_join(t, NULL);
  if (!step && idle.last != 3) step = 7;
done:
  free(out);
  free(in);
  return step;
}
static void test_buffer_grows_then_idle_frees(void **state) {
  (void)state;
  memset(&idle, 0, sizeof(idle));
  assert_int_equal(with_pair(long_line_then_idle), 0);
  /* It grew to hold the line... */
  assert_true(idle.cap_after_line >= 300000);
  /* ...and a reader waiting on nothing holds no buffer at all. */
  assert_int_equal(idle.cap_idle, 0);
}

/* ---- spare buffers ------------------------------------------------------------------ */

/* A read buffer given back by a waiting reader, and a gather buffer given
 * back by a flush, are kept as spares of the runtime and taken again by
 * the next read or gathered write; at most LOOM__IO_SPARES_MAX of each
 * size are kept, and none outlives the runtime (the harness checks that
 * nothing leaked). */
static struct {
  size_t rd_base, rd_waited, rd_reread, rd_many;
  size_t ga_base, ga_flushed, ga_regathered, ga_reflushed;
} sp;

static size_t spares_read(void) { return loom__io_spares_count(LOOM__SPARE_READ); }
static size_t spares_gather(void) { return loom__io_spares_count(LOOM__SPARE_GATHER); }

/* Waits for a line for at most 2 ms: the reader waits on an empty buffer,
 * which gives its read buffer back. */
static ssize_t short_wait(loom_stream_t *r) {
  char line[16];
  loom_scope_t sc;
  loom_timeout_enter(&sc, 2);
  ssize_t n = loom_read_line(r, line, sizeof line);
  loom_scope_exit(&sc);
  return n;
}

static int spares_body(loom_stream_t *r, loom_stream_t *w) {
  char line[16];
  sp.rd_base = spares_read();
  sp.ga_base = spares_gather();
  /* A read takes a buffer; the reader waiting on it empty gives it back. */
  if (loom_write(w, "a\n", 2) != 0) return 1;
  if (loom_read_line(r, line, sizeof line) != 2) return 2;
  if (short_wait(r) != UV_ETIMEDOUT) return 3;
  sp.rd_waited = spares_read();
  /* The next read takes it again. */
  if (loom_write(w, "b\n", 2) != 0) return 4;
  if (loom_read_line(r, line, sizeof line) != 2) return 5;
  sp.rd_reread = spares_read();
  /* w has not waited for input since its first write: these are gathered,
   * and the flushes (loom_flush, the one before the loop polled) give the
   * buffer back; the next gathered write takes it again. */
  if (loom_write(w, "c\n", 2) != 0 || loom_flush(w) != 0) return 6;
  sp.ga_flushed = spares_gather();
  if (loom_write(w, "d\n", 2) != 0) return 7;
  sp.ga_regathered = spares_gather();
  if (loom_flush(w) != 0) return 8;
  sp.ga_reflushed = spares_gather();
  for (int i = 0; i < 2; i++)
    if (loom_read_line(r, line, sizeof line) != 2) return 9;

  /* Twenty streams give their read buffers back: eight are kept. */
  enum { N = 20 };
  loom_stream_t *rs[N], *ws[N];
  int n = 0, step = 0;
  for (; n < N; n++) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) break;
    if (loom_stream_open_fd(&rs[n], fds[0]) != 0) {
      close(fds[0]);
      close(fds[1]);
      break;
    }
    if (loom_stream_open_fd(&ws[n], fds[1]) != 0) {
      loom_close(rs[n]);
      close(fds[1]);
      break;
    }
  }
  if (n < N) step = 10;
  for (int i = 0; i < n && !step; i++)
    if (loom_write(ws[i], "x\n", 2) != 0) step = 11;
  for (int i = 0; i < n && !step; i++)
    if (loom_read_line(rs[i], line, sizeof line) != 2) step = 12;
  for (int i = 0; i < n && !step; i++)
    if (short_wait(rs[i]) != UV_ETIMEDOUT) step = 13;
  sp.rd_many = spares_read();
  for (int i = 0; i < n; i++) {
    loom_close(rs[i]);
    loom_close(ws[i]);
  }
  return step;
}

static void test_spare_buffers(void **state) {
  (void)state;
  memset(&sp, 0, sizeof(sp));
  assert_int_equal(with_pair(spares_body), 0);
  /* A read buffer given back, then taken again. */
  assert_int_equal(sp.rd_waited, sp.rd_base + 1);
  assert_int_equal(sp.rd_reread, sp.rd_base);
  /* A gather buffer given back, taken again, given back. */
  assert_true(sp.ga_flushed >= 1);
  assert_int_equal(sp.ga_regathered, sp.ga_flushed - 1);
  assert_int_equal(sp.ga_reflushed, sp.ga_flushed);
  /* Bounded: twenty given back, the maximum kept. */
  assert_int_equal(sp.rd_many, LOOM__IO_SPARES_MAX);
  /* Freed when the runtime ended. */
  assert_int_equal(spares_read(), 0);
  assert_int_equal(spares_gather(), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exactly_mib_few_reads),
      cmocka_unit_test(test_exact_fill_no_empty_read),
      cmocka_unit_test(test_exactly_mixed),
      cmocka_unit_test(test_exactly_short_at_eof),
      cmocka_unit_test(test_exactly_timeout_midway),
      cmocka_unit_test(test_buffer_grows_then_idle_frees),
      cmocka_unit_test(test_spare_buffers),
  };
  return HARNESS_RUN(tests);
}
