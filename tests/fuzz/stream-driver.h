/* The stream-reader driver and its reference model, shared by the libFuzzer
 * target (tests/fuzz/fuzz-stream.c) and the deterministic random-chunking
 * suite (tests/test-stream-chunks.c). Header-only (static functions), so
 * each program compiles it with its own flags.
 *
 * An input is a byte string that decodes into a script: chunks of bytes a
 * writer task puts into one end of a Unix socketpair (plain write(2), with a
 * pause of its own after each chunk), and operations a reader task performs
 * on a loom stream opened on the other end (loom_stream_open_fd): loom_read,
 * loom_read_line, loom_read_until, loom_read_exactly, loom_read_all,
 * loom_stream_set_limit, a pause, or an early loom_close. After its last
 * chunk the writer closes its end (EOF). After its last operation the
 * reader reads the rest to EOF with loom_read and calls loom_read_line once
 * more (0 at EOF), then closes the stream.
 *
 * The model knows every byte the writer will ever write, so it knows what
 * each delimiter, exact and read-all call must return whatever the chunking
 * and timing: counts, delimiter positions, UV_ENOBUFS (no delimiter within
 * the limit, a line that does not fit in cap - 1, more than max bytes: the
 * data stays readable), UV_EOF (read_until and read_exactly at EOF), the
 * partial tail of read_line at EOF. loom_read may return any count from 1 to
 * what has been written and not yet read (0 only at EOF); the model then
 * checks the bytes and moves on by what the call returned. Every byte the
 * reader gets is compared with the script, every buffer is exactly the size
 * the call was given (heap, so AddressSanitizer sees a byte too many), and
 * loom_stream_buffered never exceeds what was written and not read.
 *
 * Encoding: each step starts with an opcode byte o; kind = o & 15 (table
 * below), f = o >> 4 its flags. A scaled size is b, or b * 257 when f & 8.
 * A pause (f & 3) is: 0 none, 1 loom_yield, 2 loom_sleep(0) (one loop
 * iteration, so libuv reads), 3 four loom_sleep(0).
 *   chunk   len:1 bytes:len        write the next len input bytes; pause f
 *   fill    lo hi c p              (lo | hi << 8) % 16384 + 1 bytes of c,
 *                                  '\n' every p-th byte (p = 0: none)
 *   read    n:1                    loom_read(n scaled) (n 0: NULL buffer)
 *   line    cap:1                  loom_read_line(cap scaled)
 *   until   delim:d cap:1          d = (f & 3) + 1, or 0 when f & 7 == 7
 *   exact   n:1                    loom_read_exactly(n scaled)
 *   all     m:1                    loom_read_all(max): m 255 SIZE_MAX,
 *                                  254 SIZE_MAX - 1, else m scaled
 *   limit   l:1                    set_limit: 0, 255 SIZE_MAX, 254 default,
 *                                  else l scaled
 *   pause                          the reader pauses (f & 3) + 1
 *   close                          (o == 0xff only) loom_close mid-script
 * Missing bytes read as 0.
 */
#ifndef LOOM_TESTS_FUZZ_STREAM_DRIVER_H
#define LOOM_TESTS_FUZZ_STREAM_DRIVER_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loom.h"

#define SD_MAX_OPS 256
#define SD_MAX_CHUNKS 256
#define SD_MAX_BYTES (256u * 1024u)
/* A hang (a read that never returns) becomes a reported failure. */
#define SD_TIMEOUT_MS 20000

enum {
  SD_CHUNK,
  SD_FILL,
  SD_READ,
  SD_LINE,
  SD_UNTIL,
  SD_EXACT,
  SD_ALL,
  SD_LIMIT,
  SD_PAUSE,
  SD_CLOSE
};
static const unsigned char sd_kinds[16] = {
    SD_CHUNK, SD_CHUNK, SD_FILL, SD_READ,  SD_READ,  SD_LINE,  SD_LINE, SD_UNTIL,
    SD_UNTIL, SD_EXACT, SD_ALL,  SD_LIMIT, SD_PAUSE, SD_CHUNK, SD_LINE, SD_CLOSE};

typedef struct {
  int kind;
  size_t n; /* read/exact size, cap, max or limit */
  unsigned char delim[4];
  size_t dlen;
  int pause;
} sd_op_t;

typedef struct {
  size_t off, len; /* in sd_t.bytes */
  int pause;
} sd_chunk_t;

typedef struct {
  /* the script */
  unsigned char *bytes; /* everything the writer writes, in order */
  size_t total;
  sd_chunk_t chunks[SD_MAX_CHUNKS];
  size_t nchunks;
  sd_op_t ops[SD_MAX_OPS];
  size_t nops;
  /* the run */
  int fds[2];     /* [0] the loom stream's, [1] the writer's */
  size_t written; /* bytes the writer has written so far */
  size_t pos;     /* bytes the reader has consumed */
  size_t limit;   /* the model's stream limit */
  int reader_done;
  int failed;
  char msg[512];
} sd_t;

/* ---- decoding ---------------------------------------------------------------------- */

typedef struct {
  const uint8_t *p;
  size_t n, i;
} sd_in_t;

static unsigned sd_byte(sd_in_t *in) { return in->i < in->n ? in->p[in->i++] : 0; }

static size_t sd_scaled(sd_in_t *in, unsigned f) {
  size_t b = sd_byte(in);
  return (f & 8) ? b * 257 : b;
}

/* How many of len more bytes the script has room for. */
static size_t sd_room(const sd_t *d, size_t len) {
  if (len > SD_MAX_BYTES - d->total) len = SD_MAX_BYTES - d->total;
  return len;
}

static int sd_decode(sd_t *d, const uint8_t *data, size_t size) {
  sd_in_t in = {data, size, 0};
  d->bytes = malloc(SD_MAX_BYTES);
  if (!d->bytes) return -1;
  while (in.i < in.n) {
    unsigned o = sd_byte(&in), f = o >> 4;
    int kind = sd_kinds[o & 15];
    if (kind == SD_CLOSE && o != 0xff) kind = SD_PAUSE;
    if (kind == SD_CHUNK || kind == SD_FILL) {
      if (d->nchunks == SD_MAX_CHUNKS) break;
      size_t len;
      sd_chunk_t *c = &d->chunks[d->nchunks];
      c->off = d->total;
      c->pause = (int)(f & 3);
      if (kind == SD_CHUNK) {
        len = sd_byte(&in);
        if (len > in.n - in.i) len = in.n - in.i;
        len = sd_room(d, len);
        memcpy(d->bytes + d->total, in.p + in.i, len);
        in.i += len;
      } else {
        size_t lo = sd_byte(&in), hi = sd_byte(&in);
        unsigned char ch = (unsigned char)sd_byte(&in);
        size_t period = sd_byte(&in);
        len = sd_room(d, (lo | hi << 8) % 16384 + 1);
        for (size_t i = 0; i < len; i++)
          d->bytes[d->total + i] = period && (d->total + i) % period == period - 1 ? '\n'
                                                                                   : ch;
      }
      c->len = len;
      d->total += len;
      d->nchunks++;
      continue;
    }
    if (d->nops == SD_MAX_OPS) break;
    sd_op_t *op = &d->ops[d->nops++];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    switch (kind) {
    case SD_READ:
    case SD_LINE:
    case SD_EXACT: op->n = sd_scaled(&in, f); break;
    case SD_UNTIL:
      op->dlen = (f & 7) == 7 ? 0 : (f & 3) + 1;
      for (size_t i = 0; i < op->dlen; i++) op->delim[i] = (unsigned char)sd_byte(&in);
      op->n = sd_scaled(&in, f);
      break;
    case SD_ALL: {
      unsigned m = sd_byte(&in);
      op->n = m == 255 ? SIZE_MAX : m == 254 ? SIZE_MAX - 1 : (f & 8) ? m * 257u : m;
      break;
    }
    case SD_LIMIT: {
      unsigned l = sd_byte(&in);
      op->n = l == 255 ? SIZE_MAX : l == 254 ? LOOM_STREAM_LIMIT : (f & 8) ? l * 257u : l;
      break;
    }
    case SD_PAUSE: op->pause = (int)(f & 3) + 1; break;
    default: break;
    }
  }
  return 0;
}

/* ---- the model ----------------------------------------------------------------------- */

/* What loom_read_until / loom_read_line must return when rem[0, len) is
 * everything left in the stream (EOF after it): the line's length (the
 * caller consumes it), UV_ENOBUFS or UV_EOF (nothing consumed). */
static ssize_t sd_model_until(const unsigned char *rem, size_t len,
                              const unsigned char *delim, size_t dlen, size_t cap,
                              size_t limit, int partial_at_eof) {
  if (dlen == 0 || cap == 0) return UV_EINVAL;
  size_t end = 0; /* the end of the first delimiter, 0: none */
  for (size_t i = 0; i + dlen <= len; i++)
    if (memcmp(rem + i, delim, dlen) == 0) {
      end = i + dlen;
      break;
    }
  if (end && end <= limit) return end + 1 > cap ? UV_ENOBUFS : (ssize_t)end;
  /* No delimiter within the limit: the reader waits until the limit is
   * buffered (ENOBUFS) or the stream ends short of it. */
  if (len >= limit) return UV_ENOBUFS;
  if (!partial_at_eof) return UV_EOF;
  return len + 1 > cap ? UV_ENOBUFS : (ssize_t)len;
}

/* ---- the run ----------------------------------------------------------------------------- */

#define SD_FAIL(d, ...)                                  \
  do {                                                   \
    if (!(d)->failed) {                                  \
      (d)->failed = 1;                                   \
      snprintf((d)->msg, sizeof((d)->msg), __VA_ARGS__); \
    }                                                    \
  } while (0)

static void sd_pause(int kind) {
  if (kind == 1) loom_yield();
  for (int i = 0; i < (kind == 2 ? 1 : kind == 3 ? 4 : 0); i++) loom_sleep(0);
}

/* The writer: each chunk with write(2) on a non-blocking socket (yielding
 * while the kernel's buffer is full: the reader empties it), then EOF. */
static int sd_writer(void *arg) {
  sd_t *d = arg;
  for (size_t c = 0; c < d->nchunks && !d->reader_done; c++) {
    const sd_chunk_t *ch = &d->chunks[c];
    size_t done = 0;
    while (done < ch->len && !d->reader_done) {
      ssize_t k = send(d->fds[1], d->bytes + ch->off + done, ch->len - done,
                       MSG_NOSIGNAL);
      if (k > 0) {
        done += (size_t)k;
        d->written += (size_t)k;
      } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        loom_sleep(0);
      } else if (k < 0 && errno == EINTR) {
        continue;
      } else {
        break; /* EPIPE: the reader closed early */
      }
    }
    sd_pause(ch->pause);
  }
  close(d->fds[1]);
  return 0;
}

/* Checks that got[0, n) is the script's next n bytes and consumes them. */
static int sd_consume(sd_t *d, size_t i, const char *what, const void *got, size_t n) {
  if (n > d->written - d->pos) {
    SD_FAIL(d, "op %zu %s: %zu bytes, only %zu written and unread", i, what, n,
            d->written - d->pos);
    return 0;
  }
  if (n && memcmp(got, d->bytes + d->pos, n) != 0) {
    SD_FAIL(d, "op %zu %s: wrong bytes at stream offset %zu", i, what, d->pos);
    return 0;
  }
  d->pos += n;
  return 1;
}

/* Runs one operation; 0 when it did not match the model. */
static int sd_op(sd_t *d, loom_stream_t *s, size_t i, const sd_op_t *op) {
  size_t rem = d->total - d->pos;
  if (getenv("LOOM_SD_TRACE"))
    fprintf(stderr,
            "op %zu: kind %d n %zu dlen %zu; at %zu of %zu, %zu written, "
            "%zu buffered, limit %zu\n",
            i, op->kind, op->n, op->dlen, d->pos, d->total, d->written,
            loom_stream_buffered(s), d->limit);
  const unsigned char *r = d->bytes + d->pos;
  switch (op->kind) {
  case SD_READ: {
    char *buf = op->n ? malloc(op->n) : NULL;
    if (op->n && !buf) return 1;
    ssize_t k = loom_read(s, buf, op->n);
    int ok = 1;
    if (k < 0 || (k == 0 && op->n && rem) || (k > 0 && (size_t)k > op->n)) {
      SD_FAIL(d, "op %zu read(%zu): got %zd, %zu left in the stream", i, op->n, k, rem);
      ok = 0;
    } else {
      ok = sd_consume(d, i, "read", buf, (size_t)k);
    }
    free(buf);
    return ok;
  }
  case SD_LINE:
  case SD_UNTIL: {
    int line = op->kind == SD_LINE;
    const unsigned char *delim = line ? (const unsigned char *)"\n" : op->delim;
    size_t dlen = line ? 1 : op->dlen;
    ssize_t want = sd_model_until(r, rem, delim, dlen, op->n, d->limit, line);
    char *buf = op->n ? malloc(op->n) : NULL;
    if (op->n && !buf) return 1;
    ssize_t k = line ? loom_read_line(s, buf, op->n)
                     : loom_read_until(s, op->delim, op->dlen, buf, op->n);
    int ok = 1;
    if (k != want) {
      SD_FAIL(d,
              "op %zu %s(dlen %zu, cap %zu, limit %zu): got %zd, want %zd "
              "(%zu left in the stream)",
              i, line ? "read_line" : "read_until", dlen, op->n, d->limit, k, want, rem);
      ok = 0;
    } else if (k >= 0) {
      if (buf[k] != 0) {
        SD_FAIL(d, "op %zu: line of %zd bytes not NUL-terminated", i, k);
        ok = 0;
      } else {
        ok = sd_consume(d, i, line ? "read_line" : "read_until", buf, (size_t)k);
      }
    }
    free(buf);
    return ok;
  }
  case SD_EXACT: {
    char *buf = op->n ? malloc(op->n) : NULL;
    if (op->n && !buf) return 1;
    size_t got = SIZE_MAX;
    int rc = loom_read_exactly(s, buf, op->n, &got);
    int want = rem >= op->n ? 0 : UV_EOF;
    size_t wgot = rem >= op->n ? op->n : rem;
    int ok = 1;
    if (rc != want || got != wgot) {
      SD_FAIL(d, "op %zu read_exactly(%zu): got %d (%zu bytes), want %d (%zu)", i, op->n,
              rc, got, want, wgot);
      ok = 0;
    } else {
      ok = sd_consume(d, i, "read_exactly", buf, got);
    }
    free(buf);
    return ok;
  }
  case SD_ALL: {
    char *data = (char *)1;
    size_t len = SIZE_MAX;
    int rc = loom_read_all(s, &data, &len, op->n);
    int want = rem <= op->n ? 0 : UV_ENOBUFS;
    int ok = 1;
    if (rc != want) {
      SD_FAIL(d, "op %zu read_all(max %zu): got %d, want %d (%zu left)", i, op->n, rc,
              want, rem);
      ok = 0;
    } else if (rc == 0 && (!data || len != rem || data[len] != 0)) {
      SD_FAIL(d, "op %zu read_all: %zu bytes (want %zu), data %p", i, len, rem,
              (void *)data);
      ok = 0;
    } else if (rc == 0) {
      ok = sd_consume(d, i, "read_all", data, len);
    } else if (data != NULL || len != 0) {
      SD_FAIL(d, "op %zu read_all failed but left data %p, len %zu", i, (void *)data,
              len);
      ok = 0;
    }
    if (rc == 0) free(data);
    return ok;
  }
  case SD_LIMIT: {
    int rc = loom_stream_set_limit(s, op->n);
    int want = op->n == 0 ? UV_EINVAL : 0;
    if (rc != want) {
      SD_FAIL(d, "op %zu set_limit(%zu): got %d, want %d", i, op->n, rc, want);
      return 0;
    }
    if (rc == 0) d->limit = op->n;
    return 1;
  }
  case SD_PAUSE: sd_pause(op->pause); return 1;
  default: return 1;
  }
}

static int sd_reader(void *arg) {
  sd_t *d = arg;
  loom_stream_t *s;
  loom_scope_t sc;
  loom_timeout_enter(&sc, SD_TIMEOUT_MS);
  int rc = loom_stream_open_fd(&s, d->fds[0]);
  if (rc) {
    SD_FAIL(d, "loom_stream_open_fd: %s", loom_strerror(rc));
    close(d->fds[0]);
    d->reader_done = 1;
    loom_scope_exit(&sc);
    return 0;
  }
  size_t i;
  for (i = 0; i < d->nops && !d->failed; i++) {
    if (d->ops[i].kind == SD_CLOSE) break;
    if (!sd_op(d, s, i, &d->ops[i])) break;
    size_t b = loom_stream_buffered(s);
    if (b > d->written - d->pos)
      SD_FAIL(d, "op %zu: %zu bytes buffered, %zu written and unread", i, b,
              d->written - d->pos);
  }
  if (!d->failed && i == d->nops) {
    /* The rest, to EOF; then EOF again, and read_line at EOF (0). */
    char buf[4096];
    ssize_t k;
    while ((k = loom_read(s, buf, sizeof(buf))) > 0)
      if (!sd_consume(d, i, "final read", buf, (size_t)k)) break;
    if (!d->failed && (k != 0 || d->pos != d->total))
      SD_FAIL(d, "final read: got %zd at offset %zu of %zu", k, d->pos, d->total);
    if (!d->failed && (k = loom_read(s, buf, sizeof(buf))) != 0)
      SD_FAIL(d, "read after EOF: got %zd", k);
    if (!d->failed && (k = loom_read_line(s, buf, sizeof(buf))) != 0)
      SD_FAIL(d, "read_line after EOF: got %zd", k);
  }
  d->reader_done = 1;
  loom_close(s);
  loom_scope_exit(&sc);
  return 0;
}

static int sd_main(void *arg) {
  sd_t *d = arg;
  loom_task_t *w, *r;
  int rc = loom_spawn(&r, sd_reader, d);
  if (rc) {
    SD_FAIL(d, "spawn: %s", loom_strerror(rc));
    close(d->fds[0]);
    close(d->fds[1]);
    return 0;
  }
  rc = loom_spawn(&w, sd_writer, d);
  if (rc) {
    SD_FAIL(d, "spawn: %s", loom_strerror(rc));
    close(d->fds[1]);
    loom_join(r, NULL); /* ends: the writer's end is closed, so EOF */
    return 0;
  }
  loom_join(r, NULL);
  loom_join(w, NULL);
  return 0;
}

/* Runs one input. Returns 0 when every call matched the model, else -1 with
 * the first mismatch described in msg. */
static int sd_run(const uint8_t *data, size_t size, char *msg, size_t msgcap) {
  sd_t *d = calloc(1, sizeof(*d));
  if (!d) return 0; /* out of memory is not a finding */
  d->limit = LOOM_STREAM_LIMIT;
  int rc = sd_decode(d, data, size);
  if (rc == 0 && socketpair(AF_UNIX, SOCK_STREAM, 0, d->fds) != 0) rc = -1;
  if (rc == 0) {
    fcntl(d->fds[1], F_SETFL, fcntl(d->fds[1], F_GETFL) | O_NONBLOCK);
    rc = loom_run(sd_main, d);
    if (rc) SD_FAIL(d, "loom_run: %s", loom_strerror(rc));
    rc = d->failed ? -1 : 0;
    if (msg && msgcap) snprintf(msg, msgcap, "%s", d->msg);
  } else {
    rc = 0; /* no memory or descriptors: not a finding */
  }
  free(d->bytes);
  free(d);
  return rc;
}

#endif
