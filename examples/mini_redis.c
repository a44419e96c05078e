/* mini_redis: a small server that speaks the Redis protocol (RESP), enough
 * for redis-cli and redis-benchmark: PING, ECHO, GET, SET, INCR, DEL, QUIT,
 * and the CONFIG GET and COMMAND that the tools send when they connect.
 *
 * Written the straightforward way: one task per connection reads a command
 * (loom_read_line for its lines, loom_read_exactly for its arguments),
 * runs it, and answers it with one loom_write. It is the server of the
 * benchmark against redis-server (bench/realload/run.sh), and the kind of
 * program mini-redis is in other ecosystems: small enough to read whole.
 *
 * The protocol, as redis-server speaks it:
 * - a command is an array of bulk strings, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
 *   or an inline line, "GET k\r\n" (what `printf 'PING\r\n' | nc` sends);
 * - every command gets exactly one reply, in order, so pipelined commands
 *   (many sent before any reply is read) are answered in order;
 * - a command that cannot be run (unknown, wrong number of arguments, a
 *   value that is not an integer) gets an error reply, "-ERR ...\r\n", and
 *   the connection goes on; a request that cannot be parsed (a bad array or
 *   bulk length, a line or an argument over the limits) gets
 *   "-ERR Protocol error: ...\r\n" and the server closes the connection,
 *   since it cannot know where the next command starts.
 * Limits bound what a client can make the server hold: MAX_ARGS arguments,
 * MAX_BULK bytes per argument, MAX_LINE bytes per line.
 *
 * The values live in one hash table shared by every connection. All tasks
 * run on one thread and a command never suspends while it uses the table,
 * so no lock is needed. A reply is copied into the connection's own buffer
 * before it is written: the write may wait for a slow reader, and another
 * connection may meanwhile change or delete the value.
 *
 * Usage:
 *     mini_redis [PORT]      serve on 127.0.0.1:PORT (default 6380; 0 picks a
 *                            free port, printed) until Ctrl-C
 *     mini_redis --selftest  serve on a free port, run clients that check
 *                            commands on one connection, pipelining, a command
 *                            split byte by byte, a large value and bad
 *                            requests, report, close
 *
 * Try it with `redis-cli -p 6380`, or `printf 'PING\r\n' | nc -q1 127.0.0.1
 * 6380`. The self-test's output:
 *
 *     serving on 127.0.0.1:41523 (self-test: 6 clients)
 *     keep-alive: PING, SET, GET, INCR x3, DEL, GET, ECHO answered on one connection
 *     pipelining: 16 commands in one write (inline and RESP) answered in order, then QUIT
 *     split: a SET sent byte by byte stored, GET returned it
 *     large value: a 100000-byte value SET and read back intact with GET
 *     errors: unknown command, wrong arity, not an integer answered; a protocol error closed
 *     oversized argument: an argument over 1048576 bytes refused, then the server closed
 *     server: 6 connections, 37 commands answered (5 with an error), 4 keys
 *     server closed
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <loom.h>

#include "common/selftest.h"   /* selftest_run, SELFTEST_PASS, ... */
#include "common/server_log.h" /* serve_until_cancelled, main() */

#define DEFAULT_PORT 6380
#define MAX_LINE 4096       /* an inline command, or an array / bulk header */
#define MAX_ARGS 1024       /* arguments of one command */
#define MAX_BULK (1u << 20) /* bytes of one argument (redis: 512 MB) */

/* ---- the hash table ----------------------------------------------------------------- */

/* Open addressing with linear probing: a slot with key == NULL is free.
 * Deletion shifts the following entries back, so there are no tombstones. */
typedef struct {
  char *key, *val; /* one malloc'd block: the key, then the value */
  size_t klen, vlen;
  uint64_t hash;
} entry_t;

typedef struct {
  entry_t *slots;
  size_t cap; /* a power of two, or 0 */
  size_t n;
} table_t;

static uint64_t hash_bytes(const char *p, size_t n) { /* FNV-1a */
  uint64_t h = 14695981039346656037u;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211u;
  return h;
}

/* The slot of key, or the free slot where it would go. */
static entry_t *table_slot(const table_t *t, const char *key, size_t klen, uint64_t h) {
  size_t mask = t->cap - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    entry_t *e = &t->slots[i];
    if (!e->key || (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0))
      return e;
  }
}

static entry_t *table_get(const table_t *t, const char *key, size_t klen) {
  if (t->n == 0) return NULL;
  entry_t *e = table_slot(t, key, klen, hash_bytes(key, klen));
  return e->key ? e : NULL;
}

/* Doubles the table when it is more than half full: probes stay short. */
static int table_reserve(table_t *t) {
  if ((t->n + 1) * 2 <= t->cap) return 0;
  size_t cap = t->cap ? t->cap * 2 : 64;
  entry_t *slots = calloc(cap, sizeof *slots);
  if (!slots) return UV_ENOMEM;
  table_t bigger = {.slots = slots, .cap = cap, .n = t->n};
  for (size_t i = 0; i < t->cap; i++)
    if (t->slots[i].key)
      *table_slot(&bigger, t->slots[i].key, t->slots[i].klen,
                  t->slots[i].hash) = t->slots[i];
  free(t->slots);
  *t = bigger;
  return 0;
}

/* Stores a copy of key and val, replacing any old value. */
static int table_set(table_t *t, const char *key, size_t klen, const char *val,
                     size_t vlen) {
  if (table_reserve(t) < 0) return UV_ENOMEM;
  uint64_t h = hash_bytes(key, klen);
  entry_t *e = table_slot(t, key, klen, h);
  char *block = malloc(klen + vlen + 1);
  if (!block) return UV_ENOMEM;
  memcpy(block, key, klen);
  memcpy(block + klen, val, vlen);
  if (e->key)
    free(e->key);
  else
    t->n++;
  *e = (entry_t){
      .key = block, .val = block + klen, .klen = klen, .vlen = vlen, .hash = h};
  return 0;
}

static int table_del(table_t *t, const char *key, size_t klen) {
  entry_t *e = table_get(t, key, klen);
  if (!e) return 0;
  free(e->key);
  t->n--;
  /* Backward shift: move up each following entry that would be found
   * from the freed slot's side of its home, until a free slot. */
  size_t mask = t->cap - 1, hole = (size_t)(e - t->slots);
  for (size_t i = (hole + 1) & mask; t->slots[i].key; i = (i + 1) & mask) {
    size_t home = t->slots[i].hash & mask;
    /* The entry at i may fill the hole if its home is not in (hole, i]. */
    if (((i - home) & mask) >= ((i - hole) & mask)) {
      t->slots[hole] = t->slots[i];
      hole = i;
    }
  }
  t->slots[hole] = (entry_t){.key = NULL};
  return 1;
}

static void table_free(table_t *t) {
  for (size_t i = 0; i < t->cap; i++) free(t->slots[i].key);
  free(t->slots);
  *t = (table_t){.slots = NULL};
}

/* ---- connections ------------------------------------------------------------------- */

typedef struct {
  table_t table;
  int connections;
  int commands; /* answered, errors included */
  int errors;   /* answered with an error */
} server_t;

/* One argument: where it is in the connection's argument buffer. */
typedef struct {
  size_t off, len;
} arg_t;

/* A growable byte buffer: a connection's arguments, or its next reply. */
typedef struct {
  char *p;
  size_t len, cap;
} buf_t;

static int buf_reserve(buf_t *b, size_t more) {
  if (b->len + more <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + more) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) return UV_ENOMEM;
  b->p = p;
  b->cap = cap;
  return 0;
}

static int buf_add(buf_t *b, const void *data, size_t n) {
  if (buf_reserve(b, n) < 0) return UV_ENOMEM;
  if (n) memcpy(b->p + b->len, data, n);
  b->len += n;
  return 0;
}

typedef struct {
  loom_stream_t *s;
  server_t *srv;
  buf_t in;    /* the current command's arguments */
  buf_t out;   /* the current reply */
  arg_t *argv; /* grown as needed, up to MAX_ARGS */
  int argc, argv_cap;
  int quit; /* close after this reply */
} conn_t;

/* ---- replies ------------------------------------------------------------------------ */

static int reply_raw(conn_t *c, const char *s) { return buf_add(&c->out, s, strlen(s)); }

static int reply_error(conn_t *c, const char *msg) {
  c->srv->errors++;
  if (buf_add(&c->out, "-", 1) < 0 || reply_raw(c, msg) < 0) return UV_ENOMEM;
  return reply_raw(c, "\r\n");
}

static int reply_int(conn_t *c, long long v) {
  char num[32];
  int n = snprintf(num, sizeof num, ":%lld\r\n", v);
  return buf_add(&c->out, num, (size_t)n);
}

static int reply_bulk(conn_t *c, const char *p, size_t len) {
  char head[32];
  int n = snprintf(head, sizeof head, "$%zu\r\n", len);
  if (buf_reserve(&c->out, (size_t)n + len + 2) < 0) return UV_ENOMEM;
  buf_add(&c->out, head, (size_t)n);
  buf_add(&c->out, p, len);
  return buf_add(&c->out, "\r\n", 2);
}

/* ---- commands ------------------------------------------------------------------------ */

static const char *arg_ptr(const conn_t *c, int i) { return c->in.p + c->argv[i].off; }
static size_t arg_len(const conn_t *c, int i) { return c->argv[i].len; }

static int arg_is(const conn_t *c, int i, const char *word) {
  return arg_len(c, i) == strlen(word) &&
         strncasecmp(arg_ptr(c, i), word, arg_len(c, i)) == 0;
}

/* Parses a whole argument as a signed 64-bit integer, as INCR wants. */
static int parse_ll(const char *p, size_t n, long long *out) {
  if (n == 0 || n > 20) return 0;
  char tmp[24];
  memcpy(tmp, p, n);
  tmp[n] = 0;
  char *end;
  errno = 0;
  long long v = strtoll(tmp, &end, 10);
  if (errno || *end || tmp[0] == ' ' || tmp[0] == '+' || (tmp[0] == '0' && n > 1) ||
      (tmp[0] == '-' && (n == 1 || tmp[1] == '0')))
    return 0; /* redis takes only the canonical form: no "+1", "01", " 1" */
  *out = v;
  return 1;
}

static int wrong_arity(conn_t *c, const char *name) {
  char msg[96];
  snprintf(msg, sizeof msg, "ERR wrong number of arguments for '%s' command", name);
  return reply_error(c, msg);
}

/* Runs the command in c->argv and puts its reply in c->out. */
static int run_command(conn_t *c) {
  table_t *t = &c->srv->table;
  int argc = c->argc;
  if (arg_is(c, 0, "PING")) {
    if (argc == 1) return reply_raw(c, "+PONG\r\n");
    if (argc == 2) return reply_bulk(c, arg_ptr(c, 1), arg_len(c, 1));
    return wrong_arity(c, "ping");
  }
  if (arg_is(c, 0, "ECHO")) {
    if (argc != 2) return wrong_arity(c, "echo");
    return reply_bulk(c, arg_ptr(c, 1), arg_len(c, 1));
  }
  if (arg_is(c, 0, "GET")) {
    if (argc != 2) return wrong_arity(c, "get");
    entry_t *e = table_get(t, arg_ptr(c, 1), arg_len(c, 1));
    return e ? reply_bulk(c, e->val, e->vlen) : reply_raw(c, "$-1\r\n");
  }
  if (arg_is(c, 0, "SET")) {
    if (argc < 3) return wrong_arity(c, "set");
    if (argc > 3) return reply_error(c, "ERR syntax error"); /* no EX, NX, ... */
    if (table_set(t, arg_ptr(c, 1), arg_len(c, 1), arg_ptr(c, 2), arg_len(c, 2)) < 0)
      return reply_error(c, "ERR out of memory");
    return reply_raw(c, "+OK\r\n");
  }
  if (arg_is(c, 0, "INCR")) {
    if (argc != 2) return wrong_arity(c, "incr");
    long long v = 0;
    entry_t *e = table_get(t, arg_ptr(c, 1), arg_len(c, 1));
    if (e && !parse_ll(e->val, e->vlen, &v))
      return reply_error(c, "ERR value is not an integer or out of range");
    if (v == LLONG_MAX)
      return reply_error(c, "ERR increment or decrement would overflow");
    char num[24];
    int n = snprintf(num, sizeof num, "%lld", ++v);
    if (table_set(t, arg_ptr(c, 1), arg_len(c, 1), num, (size_t)n) < 0)
      return reply_error(c, "ERR out of memory");
    return reply_int(c, v);
  }
  if (arg_is(c, 0, "DEL")) {
    if (argc < 2) return wrong_arity(c, "del");
    long long n = 0;
    for (int i = 1; i < argc; i++) n += table_del(t, arg_ptr(c, i), arg_len(c, i));
    return reply_int(c, n);
  }
  if (arg_is(c, 0, "CONFIG")) {
    /* redis-benchmark asks for "save" and "appendonly" when it starts. A
     * parameter this server does not have matches nothing: an empty array. */
    if (argc != 3 || !arg_is(c, 1, "GET"))
      return reply_error(c, "ERR only CONFIG GET <parameter> is supported");
    if (arg_is(c, 2, "save")) return reply_raw(c, "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    if (arg_is(c, 2, "appendonly"))
      return reply_raw(c, "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
    return reply_raw(c, "*0\r\n");
  }
  if (arg_is(c, 0, "COMMAND")) {
    /* redis-cli asks for the command table (COMMAND DOCS) for its hints:
     * none here. */
    return reply_raw(c, "*0\r\n");
  }
  if (arg_is(c, 0, "QUIT")) {
    c->quit = 1;
    return reply_raw(c, "+OK\r\n");
  }
  char msg[96];
  snprintf(msg, sizeof msg, "ERR unknown command '%.*s'",
           (int)(arg_len(c, 0) < 40 ? arg_len(c, 0) : 40), arg_ptr(c, 0));
  return reply_error(c, msg);
}

/* ---- reading a command --------------------------------------------------------------- */

/* What reading a command can end in besides success (0). */
enum { CMD_EOF = 1, CMD_EMPTY = 2 };

/* A protocol error: the reply to send before closing. */
static int protocol_error(conn_t *c, const char *what) {
  char msg[96];
  snprintf(msg, sizeof msg, "ERR Protocol error: %s", what);
  c->quit = 1;
  return reply_error(c, msg);
}

/* Parses "<prefix><n>\r\n" in line: n >= 0 within max, or -1 if not a
 * number in range. */
static long parse_header(const char *line, size_t n, long max) {
  if (n < 4 || line[n - 2] != '\r') return -1;
  long v = 0;
  for (size_t i = 1; i < n - 2; i++) {
    if (line[i] < '0' || line[i] > '9') return -1;
    v = v * 10 + (line[i] - '0');
    if (v > max) return -1;
  }
  return v;
}

/* Appends an argument to c->argv: 0, or a protocol error past MAX_ARGS. */
static int add_arg(conn_t *c, size_t off, size_t len) {
  if (c->argc == c->argv_cap) {
    if (c->argc == MAX_ARGS) return protocol_error(c, "too many arguments");
    int cap = c->argv_cap ? c->argv_cap * 2 : 8;
    arg_t *argv = realloc(c->argv, (size_t)cap * sizeof *argv);
    if (!argv) return UV_ENOMEM;
    c->argv = argv;
    c->argv_cap = cap;
  }
  c->argv[c->argc++] = (arg_t){.off = off, .len = len};
  return 0;
}

/* Splits an inline command ("SET k v\r\n") at spaces into c->argv. */
static int split_inline(conn_t *c, const char *line, size_t n) {
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
  if (buf_add(&c->in, line, n) < 0) return UV_ENOMEM;
  size_t i = 0;
  while (i < n) {
    while (i < n && (line[i] == ' ' || line[i] == '\t')) i++;
    if (i == n) break;
    size_t start = i;
    while (i < n && line[i] != ' ' && line[i] != '\t') i++;
    int rc = add_arg(c, start, i - start);
    if (rc < 0 || c->quit) return rc;
  }
  return c->argc ? 0 : CMD_EMPTY; /* redis ignores empty lines */
}

/* Reads one command into c->argv: 0, CMD_EOF, CMD_EMPTY, a negative error,
 * or 0 with c->quit set and a protocol error in c->out. */
static int read_command(conn_t *c) {
  char line[MAX_LINE + 1];
  c->argc = 0;
  c->in.len = 0;
  c->out.len = 0;
  ssize_t n = loom_read_line(c->s, line, sizeof line);
  if (n == 0) return CMD_EOF;
  if (n == UV_ENOBUFS) return protocol_error(c, "too big inline request");
  if (n < 0) return (int)n;
  if (line[n - 1] != '\n') return CMD_EOF; /* the client left mid-line */
  if (line[0] != '*') return split_inline(c, line, (size_t)n);

  long argc = parse_header(line, (size_t)n, MAX_ARGS);
  if (argc < 0) return protocol_error(c, "invalid multibulk length");
  if (argc == 0) return CMD_EMPTY;
  for (long i = 0; i < argc; i++) {
    n = loom_read_line(c->s, line, sizeof line);
    if (n == 0 || (n > 0 && line[n - 1] != '\n')) return CMD_EOF;
    if (n == UV_ENOBUFS) return protocol_error(c, "too big bulk count string");
    if (n < 0) return (int)n;
    if (line[0] != '$') return protocol_error(c, "expected '$'");
    long len = parse_header(line, (size_t)n, MAX_BULK);
    if (len < 0) return protocol_error(c, "invalid bulk length");
    /* The argument and its CRLF, straight into the argument buffer. */
    if (buf_reserve(&c->in, (size_t)len + 2) < 0) return UV_ENOMEM;
    int rc = loom_read_exactly(c->s, c->in.p + c->in.len, (size_t)len + 2, NULL);
    if (rc == UV_EOF) return CMD_EOF;
    if (rc < 0) return rc;
    if (memcmp(c->in.p + c->in.len + len, "\r\n", 2) != 0)
      return protocol_error(c, "bulk string not followed by CRLF");
    rc = add_arg(c, c->in.len, (size_t)len);
    if (rc < 0) return rc;
    c->in.len += (size_t)len + 2;
  }
  return 0;
}

/* handle_redis: runs in a task of its own for each connection, owns s. */
static int handle_redis(loom_stream_t *s, void *arg) {
  server_t *srv = arg;
  srv->connections++;
  conn_t *c = malloc(sizeof *c);
  int rc = c ? 0 : UV_ENOMEM;
  if (c) *c = (conn_t){.s = s, .srv = srv};
  while (rc >= 0) {
    rc = read_command(c);
    if (rc == CMD_EOF) {
      rc = 0;
      break;
    }
    if (rc == CMD_EMPTY) {
      rc = 0;
      continue;
    }
    if (rc < 0) break;
    if (!c->quit) rc = run_command(c); /* else: a protocol error is the reply */
    if (rc < 0) break;
    /* One write per reply: the straightforward way. */
    rc = loom_write(s, c->out.p, c->out.len);
    srv->commands++;
    if (c->quit) break;
  }
  loom_close(s); /* what was written is sent first */
  if (c) {
    free(c->in.p);
    free(c->out.p);
    free(c->argv);
    free(c);
  }
  /* A reset by a client, or the server closing: the connection's error,
   * not the server's. */
  return rc == UV_ECONNRESET || rc == UV_EPIPE || rc == UV_ECANCELED ? 0 : rc;
}

/* ---- serving ------------------------------------------------------------------------- */

static int serve(int port) {
  server_t srv = {0};
  int rc = serve_until_cancelled("mini_redis", "serving", port, handle_redis, &srv);
  table_free(&srv.table);
  return rc;
}

/* ---- the self-test ---------------------------------------------------------------- */

/* A command as redis-cli sends it: "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n". */
#define RESP_GET(k, klen) "*2\r\n$3\r\nGET\r\n$" #klen "\r\n" k "\r\n"

/* The clients' checks (common/selftest.h runs them): each takes the
 * connection it is given, and says what it saw in c->outcome. */
typedef selftest_client_t client_t;

/* Sends req (len bytes), reads strlen(want) bytes and compares. */
static int expect(client_t *c, loom_stream_t *s, const char *req, size_t len,
                  const char *want) {
  size_t wlen = strlen(want);
  char *got = malloc(wlen + 1);
  int rc = got ? loom_write(s, req, len) : UV_ENOMEM;
  if (rc >= 0) rc = loom_read_exactly(s, got, wlen, NULL);
  int ok = rc >= 0 && memcmp(got, want, wlen) == 0;
  if (!ok) {
    if (rc >= 0) got[wlen] = 0;
    snprintf(c->outcome, sizeof c->outcome, "%.40s: %s%.60s", req,
             rc < 0 ? loom_strerror(rc) : "got ", rc < 0 ? "" : got);
  }
  free(got);
  return ok;
}

static int expects(client_t *c, loom_stream_t *s, const char *req, const char *want) {
  return expect(c, s, req, strlen(req), want);
}

/* After the reply it has read, the server must close: EOF, nothing more. */
static int expect_close(client_t *c, loom_stream_t *s) {
  char b;
  ssize_t n = loom_read(s, &b, 1);
  if (n == 0) return 1;
  return SELFTEST_FAIL(c, "the server did not close (%s)",
                       n > 0 ? "more data" : loom_strerror((int)n));
}

static int check_keep_alive(client_t *c, loom_stream_t *s) {
  static const struct {
    const char *req, *want;
  } steps[] = {
      {"*1\r\n$4\r\nPING\r\n", "+PONG\r\n"},
      {"*3\r\n$3\r\nSET\r\n$8\r\ngreeting\r\n$5\r\nhello\r\n", "+OK\r\n"},
      {"*2\r\n$3\r\nGET\r\n$8\r\ngreeting\r\n", "$5\r\nhello\r\n"},
      {"*2\r\n$4\r\nINCR\r\n$6\r\nvisits\r\n", ":1\r\n"},
      {"INCR visits\r\n", ":2\r\n"}, /* inline, as nc would send it */
      {"*2\r\n$4\r\nincr\r\n$6\r\nvisits\r\n", ":3\r\n"},
      {"*4\r\n$3\r\nDEL\r\n$8\r\ngreeting\r\n$6\r\nvisits\r\n$7\r\nmissing\r\n",
       ":2\r\n"},
      {"*2\r\n$3\r\nGET\r\n$8\r\ngreeting\r\n", "$-1\r\n"},
      {"*2\r\n$4\r\nECHO\r\n$9\r\nsee\r\n you\r\n", "$9\r\nsee\r\n you\r\n"},
  };
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
    if (!expects(c, s, steps[i].req, steps[i].want)) return 0;
  return SELFTEST_PASS(
      c, "PING, SET, GET, INCR x3, DEL, GET, ECHO answered on one connection");
}

/* Sixteen INCRs in one write, inline and RESP by turns, then QUIT: the
 * replies must come in order, :1 to :16, then +OK and the close. */
static int check_pipelining(client_t *c, loom_stream_t *s) {
  char req[1024], want[256];
  size_t rlen = 0, wlen = 0;
  for (int i = 1; i <= 16; i++) {
    rlen += (size_t)snprintf(
        req + rlen, sizeof req - rlen, "%s",
        i % 2 ? "INCR pipe\r\n" : "*2\r\n$4\r\nINCR\r\n$4\r\npipe\r\n");
    wlen += (size_t)snprintf(want + wlen, sizeof want - wlen, ":%d\r\n", i);
  }
  rlen += (size_t)snprintf(req + rlen, sizeof req - rlen, "*1\r\n$4\r\nQUIT\r\n");
  snprintf(want + wlen, sizeof want - wlen, "+OK\r\n");
  if (!expect(c, s, req, rlen, want) || !expect_close(c, s)) return 0;
  return SELFTEST_PASS(
      c, "16 commands in one write (inline and RESP) answered in order, then QUIT");
}

/* A SET sent byte by byte, so that the server's reads see it in pieces;
 * then a GET. */
static int check_split(client_t *c, loom_stream_t *s) {
  static const char set[] = "*3\r\n$3\r\nSET\r\n$5\r\nsplit\r\n$12\r\nbyte by byte\r\n";
  if (!selftest_send_bytewise(c, s, set, strlen(set))) return 0;
  if (!expects(c, s, "", "+OK\r\n") ||
      !expects(c, s, "GET split\r\n", "$12\r\nbyte by byte\r\n"))
    return 0;
  return SELFTEST_PASS(c, "a SET sent byte by byte stored, GET returned it");
}

/* A value of 100,000 bytes, as redis-benchmark -d 100000 sends. */
#define LARGE 100000
static int check_large(client_t *c, loom_stream_t *s) {
  char *req = malloc(LARGE + 64), *want = malloc(LARGE + 16);
  int ok = 0;
  if (req && want) {
    int h = snprintf(req, 64, "*3\r\n$3\r\nSET\r\n$5\r\nlarge\r\n$%d\r\n", LARGE);
    int w = snprintf(want, 16, "$%d\r\n", LARGE);
    for (int i = 0; i < LARGE; i++) req[h + i] = want[w + i] = (char)('a' + i % 23);
    memcpy(req + h + LARGE, "\r\n", 3);
    memcpy(want + w + LARGE, "\r\n", 3);
    ok = expect(c, s, req, (size_t)h + LARGE + 2, "+OK\r\n") &&
         expects(c, s, RESP_GET("large", 5), want);
  }
  free(req);
  free(want);
  return ok &&
         SELFTEST_PASS(c, "a %d-byte value SET and read back intact with GET", LARGE);
}

/* Errors that leave the connection open, then one that closes it. */
static int check_errors(client_t *c, loom_stream_t *s) {
  if (!expects(c, s, "FLY away\r\n", "-ERR unknown command 'FLY'\r\n") ||
      !expects(c, s, "*1\r\n$3\r\nGET\r\n",
               "-ERR wrong number of arguments for 'get' command\r\n") ||
      !expects(c, s, "SET word text\r\n", "+OK\r\n") ||
      !expects(c, s, "INCR word\r\n",
               "-ERR value is not an integer or out of range\r\n") ||
      !expects(c, s, "PING\r\n", "+PONG\r\n") ||
      !expects(c, s, "*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n") ||
      !expect_close(c, s))
    return 0;
  return SELFTEST_PASS(
      c,
      "unknown command, wrong arity, not an integer answered; a protocol error closed");
}

/* An argument announced as larger than MAX_BULK is refused before a byte
 * of it is read. */
static int check_oversized(client_t *c, loom_stream_t *s) {
  if (!expects(c, s, "*2\r\n$3\r\nGET\r\n$1073741824\r\n",
               "-ERR Protocol error: invalid bulk length\r\n") ||
      !expect_close(c, s))
    return 0;
  return SELFTEST_PASS(c, "an argument over %u bytes refused, then the server closed",
                       MAX_BULK);
}

static void print_server(void *arg) {
  const server_t *srv = arg;
  printf("server: %d connections, %d commands answered (%d with an error), %zu keys\n",
         srv->connections, srv->commands, srv->errors, srv->table.n);
}

/* All the clients at once, each on its own connection and its own keys. */
static int selftest(void) {
  server_t srv = {0};
  client_t clients[] = {
      {.name = "keep-alive", .check = check_keep_alive},
      {.name = "pipelining", .check = check_pipelining},
      {.name = "split", .check = check_split},
      {.name = "large value", .check = check_large},
      {.name = "errors", .check = check_errors},
      {.name = "oversized argument", .check = check_oversized},
  };
  int rc = selftest_run("mini_redis", handle_redis, &srv, clients,
                        (int)(sizeof clients / sizeof clients[0]), print_server);
  table_free(&srv.table);
  return rc;
}

/* ---- main -------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  return server_example_main("mini_redis", argc, argv, DEFAULT_PORT,
                             "check commands, pipelining, split and bad requests", serve,
                             selftest);
}
