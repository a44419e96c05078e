/* Write coalescing and the output limit: small writes are gathered and
 * reach the kernel together before the loop polls again, except the one
 * answer to a request that came alone, which goes at once (nothing before
 * it, no unread input, the first small write since the last wait for
 * input); large writes go straight through and keep their order with the
 * small ones, loom_flush and loom_drain hand gathered bytes over at once,
 * an error that happens after loom_write returned is reported by the next
 * write, drain, flush and close, and a peer that sends megabytes of
 * pipelined requests before reading any reply ends with the handler's
 * write reporting UV_ENOBUFS (the output limit), never a hang.
 *
 * The peer is mostly a plain socket of a socketpair: the test can then
 * ask the kernel, without suspending, what has reached it. Tasks record
 * what they see in `r`; the asserts run on the main stack after loom_run
 * has returned (tests/helpers.h). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"
#include "on-valgrind.h"

typedef struct {
  long rc[32];
} rec_t;
static rec_t r;

/* ---- 1. small writes are gathered until the task stops running ------------------ */

static int gather_main(void *arg) {
  (void)arg;
  loom_stream_t *s;
  int fd = -1;
  if ((r.rc[0] = stream_pair(&s, &fd)) != 0) return 0;
  char buf[4096];
  /* The first goes to the kernel at once (nothing before it, no input
   * unread); the other 99 are gathered. */
  for (int i = 0; i < 100; i++) r.rc[1] |= loom_write(s, "0123456789", 10);
  r.rc[2] = (long)loom_stream_queued(s);    /* 99 gathered */
  r.rc[3] = peek_peer(fd, buf, sizeof buf); /* only the first in the kernel */
  r.rc[4] = loom_sleep(1);                  /* the loop polls: flushed before */
  r.rc[5] = peek_peer(fd, buf, sizeof buf);
  r.rc[6] = (long)loom_stream_queued(s);
  int ok = 1;
  for (int i = 0; i < 990 && r.rc[5] == 990; i++) ok &= buf[i] == '0' + i % 10;
  r.rc[7] = ok;
  /* loom_flush hands them over at once, without suspending. */
  r.rc[8] = loom_write(s, "abc", 3);
  r.rc[9] = loom_flush(s);
  r.rc[10] = peek_peer(fd, buf, sizeof buf);
  r.rc[11] = r.rc[10] == 3 && memcmp(buf, "abc", 3) == 0;
  r.rc[12] = loom_close(s);
  close(fd);
  return 0;
}

static void test_small_writes_gathered(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(gather_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_int_equal(r.rc[2], 990);
  assert_int_equal(r.rc[3], 10);
  assert_loom_ok(r.rc[4]);
  assert_int_equal(r.rc[5], 990);
  assert_int_equal(r.rc[6], 0);
  assert_int_equal(r.rc[7], 1);
  assert_loom_ok(r.rc[8]);
  assert_loom_ok(r.rc[9]);
  assert_int_equal(r.rc[11], 1);
  assert_loom_ok(r.rc[12]);
}

/* ---- 2. large writes go straight through, in order with small ones ------------- */

static int order_main(void *arg) {
  (void)arg;
  loom_stream_t *s;
  int fd = -1;
  if ((r.rc[0] = stream_pair(&s, &fd)) != 0) return 0;
  static char big[8192], got[8192 + 16];
  memset(big, 'B', sizeof big);
  r.rc[1] = loom_write(s, "a", 1);
  r.rc[2] = loom_write(s, big, sizeof big); /* flushes "a" first, then itself */
  r.rc[3] = peek_peer(fd, got, sizeof got);
  r.rc[4] = loom_write(s, "z", 1);
  r.rc[5] = loom_drain(s); /* flushes "z" and waits: all in the kernel */
  long more = peek_peer(fd, got + (r.rc[3] > 0 ? r.rc[3] : 0), 16);
  r.rc[6] = r.rc[3] == 1 + (long)sizeof big && more == 1 && got[0] == 'a' &&
            got[1] == 'B' && got[sizeof big] == 'B' && got[sizeof big + 1] == 'z';
  r.rc[7] = loom_close(s);
  close(fd);
  return 0;
}

static void test_large_writes_keep_order(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(order_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_loom_ok(r.rc[2]);
  assert_int_equal(r.rc[3], 1 + 8192);
  assert_loom_ok(r.rc[4]);
  assert_loom_ok(r.rc[5]);
  assert_int_equal(r.rc[6], 1);
  assert_loom_ok(r.rc[7]);
}

/* ---- 3. an error after loom_write returned is reported, never dropped ---------- */

static int error_main(void *arg) {
  (void)arg;
  loom_stream_t *s;
  int fd = -1;
  if ((r.rc[0] = stream_pair(&s, &fd)) != 0) return 0;
  r.rc[13] = loom_write(s, "sent", 4); /* at once: the next are gathered */
  close(fd); /* the peer is gone: the kernel refuses what is flushed */
  r.rc[1] = loom_write(s, "lost", 4); /* gathered: nothing can tell yet */
  r.rc[2] = loom_drain(s);            /* the flush fails: reported here */
  r.rc[3] = loom_write(s, "more", 4); /* and by every later write */
  r.rc[4] = loom_flush(s);
  r.rc[5] = loom_close(s);

  /* The error found by the flush before the loop polls: reported by close. */
  if ((r.rc[6] = stream_pair(&s, &fd)) != 0) return 0;
  r.rc[14] = loom_write(s, "sent", 4);
  close(fd);
  r.rc[7] = loom_write(s, "lost", 4);
  r.rc[8] = loom_sleep(1);
  r.rc[9] = loom_close(s);

  /* And by close itself, which flushes. */
  if ((r.rc[10] = stream_pair(&s, &fd)) != 0) return 0;
  r.rc[15] = loom_write(s, "sent", 4);
  close(fd);
  r.rc[11] = loom_write(s, "lost", 4);
  r.rc[12] = loom_close(s);

  /* A write that goes to the kernel at once reports the error itself
   * (nothing of it was written), and so does every later call. */
  if ((r.rc[16] = stream_pair(&s, &fd)) != 0) return 0;
  close(fd);
  r.rc[17] = loom_write(s, "lost", 4);
  r.rc[18] = loom_write(s, "more", 4);
  r.rc[19] = loom_flush(s);
  r.rc[20] = loom_close(s);
  return 0;
}

static int broken(long rc) { return rc == UV_EPIPE || rc == UV_ECONNRESET; }

static void test_late_errors_reported(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(error_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_true(broken(r.rc[2]));
  assert_int_equal(r.rc[3], r.rc[2]);
  assert_int_equal(r.rc[4], r.rc[2]);
  assert_int_equal(r.rc[5], r.rc[2]);
  assert_loom_ok(r.rc[6]);
  assert_loom_ok(r.rc[7]);
  assert_loom_ok(r.rc[8]);
  assert_true(broken(r.rc[9]));
  assert_loom_ok(r.rc[10]);
  assert_loom_ok(r.rc[11]);
  assert_true(broken(r.rc[12]));
  assert_loom_ok(r.rc[13]);
  assert_loom_ok(r.rc[14]);
  assert_loom_ok(r.rc[15]);
  assert_loom_ok(r.rc[16]);
  assert_true(broken(r.rc[17]));
  assert_int_equal(r.rc[18], r.rc[17]);
  assert_int_equal(r.rc[19], r.rc[17]);
  assert_int_equal(r.rc[20], r.rc[17]);
}

/* ---- 4. a second writer still waits its turn ---------------------------------- */

typedef struct {
  loom_stream_t *s;
  long rc;
} writer_t;

static int small_writer(void *arg) {
  writer_t *w = arg;
  w->rc = loom_write(w->s, "Z", 1);
  return 0;
}

static int turns_main(void *arg) {
  (void)arg;
  loom_stream_t *s;
  int fd = -1;
  if ((r.rc[0] = stream_pair(&s, &fd)) != 0) return 0;
  size_t big = 1u << 20; /* far above the high-water mark */
  char *data = malloc(big);
  memset(data, 'B', big);
  r.rc[1] = loom_write(s, data, big); /* mostly queued */
  writer_t w = {.s = s, .rc = 1};     /* 1: not returned yet */
  loom_task_t *t;
  r.rc[2] = loom_spawn(&t, small_writer, &w);
  r.rc[3] = loom_sleep(5);
  r.rc[4] = w.rc == 1 && loom_stream_queued(s) > 0; /* still waiting */
  /* The plain end is drained by polling between short sleeps. */
  size_t got = 0;
  long last = 0;
  char *in = malloc(big + 16);
  while (got < big + 1) {
    long n = peek_peer(fd, in + got, big + 16 - got);
    if (n > 0)
      got += (size_t)n;
    else if (loom_sleep(1) != 0)
      break;
    if (got >= big + 1) last = in[big];
  }
  r.rc[5] = loom_join(t, NULL);
  r.rc[6] = w.rc;
  r.rc[7] = got == big + 1 && last == 'Z' && in[big - 1] == 'B';
  free(in);
  free(data);
  r.rc[8] = loom_close(s);
  close(fd);
  return 0;
}

static void test_second_writer_waits_its_turn(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(turns_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_loom_ok(r.rc[2]);
  assert_loom_ok(r.rc[3]);
  assert_int_equal(r.rc[4], 1);
  assert_loom_ok(r.rc[5]);
  assert_loom_ok(r.rc[6]);
  assert_int_equal(r.rc[7], 1);
  assert_loom_ok(r.rc[8]);
}

/* ---- 5. when a small write goes to the kernel at once --------------------------- */

/* Reads from the plain end until want bytes have come (polling between
 * short sleeps: the loom side must run to write them). */
static size_t drain_peer(int fd, char *in, size_t want) {
  size_t got = 0;
  while (got < want) {
    long n = peek_peer(fd, in + got, want - got);
    if (n > 0)
      got += (size_t)n;
    else if (loom_sleep(1) != 0)
      break;
  }
  return got;
}

static int at_once_main(void *arg) {
  (void)arg;
  loom_stream_t *s;
  int fd = -1;
  if ((r.rc[0] = stream_pair(&s, &fd)) != 0) return 0;
  char line[16], buf[64];
  /* Unread input buffered (pipelined requests): gathered, so that the
   * answers to a batch go out together. */
  r.rc[1] = write(fd, "q1\nq2\n", 6) == 6;
  r.rc[2] = loom_read_line(s, line, sizeof line); /* q2 stays buffered */
  r.rc[3] = loom_write(s, "A", 1);
  r.rc[4] = peek_peer(fd, buf, sizeof buf) == -1 && loom_stream_queued(s) == 1;
  r.rc[5] = loom_read_line(s, line, sizeof line); /* buffered: no wait */
  r.rc[6] = loom_write(s, "B", 1);                /* gathered after A */
  r.rc[7] = peek_peer(fd, buf, sizeof buf) == -1 && loom_stream_queued(s) == 2;
  /* The wait for the next request flushes them; after it, the first
   * small write goes at once, the next is gathered behind it. */
  r.rc[8] = write(fd, "q3\n", 3) == 3;
  r.rc[9] = loom_read_line(s, line, sizeof line);
  r.rc[10] = peek_peer(fd, buf, 2) == 2 && memcmp(buf, "AB", 2) == 0;
  r.rc[11] = loom_write(s, "C", 1);
  r.rc[12] = peek_peer(fd, buf, sizeof buf) == 1 && buf[0] == 'C' &&
             loom_stream_queued(s) == 0;
  r.rc[13] = loom_write(s, "D", 1);
  r.rc[14] = peek_peer(fd, buf, sizeof buf) == -1 && loom_stream_queued(s) == 1;
  /* Bytes still queued (a large write the kernel could not take): after a
   * wait for input, a small write still goes behind them. */
  size_t big = 1u << 20;
  char *data = malloc(big), *in = malloc(big + 16);
  if (!data || !in) {
    free(data);
    free(in);
    return 0;
  }
  memset(data, 'B', big);
  /* Room for all of it: E must not wait for the peer (this task) to read. */
  loom_stream_set_high_water(s, 4 * big);
  r.rc[15] = loom_write(s, data, big); /* D goes first, the rest is queued */
  r.rc[16] = loom_stream_queued(s) > 0;
  r.rc[17] = write(fd, "q4\n", 3) == 3;
  r.rc[18] = loom_read_line(s, line, sizeof line);
  r.rc[19] = loom_write(s, "E", 1);
  size_t got = drain_peer(fd, in, big + 2);
  r.rc[20] = got == big + 2 && in[0] == 'D' && in[1] == 'B' && in[big] == 'B' &&
             in[big + 1] == 'E';
  free(data);
  free(in);
  r.rc[21] = loom_close(s);
  close(fd);
  return 0;
}

static void test_small_write_at_once(void **state) {
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_loom_ok(loom_run(at_once_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_int_equal(r.rc[1], 1);
  assert_int_equal(r.rc[2], 3);
  assert_loom_ok(r.rc[3]);
  assert_int_equal(r.rc[4], 1);
  assert_int_equal(r.rc[5], 3);
  assert_loom_ok(r.rc[6]);
  assert_int_equal(r.rc[7], 1);
  assert_int_equal(r.rc[8], 1);
  assert_int_equal(r.rc[9], 3);
  assert_int_equal(r.rc[10], 1);
  assert_loom_ok(r.rc[11]);
  assert_int_equal(r.rc[12], 1);
  assert_loom_ok(r.rc[13]);
  assert_int_equal(r.rc[14], 1);
  assert_loom_ok(r.rc[15]);
  assert_int_equal(r.rc[16], 1);
  assert_int_equal(r.rc[17], 1);
  assert_int_equal(r.rc[18], 3);
  assert_loom_ok(r.rc[19]);
  assert_int_equal(r.rc[20], 1);
  assert_loom_ok(r.rc[21]);
}

/* ---- 6. a peer that sends megabytes before reading: bounded, never a hang -------- */

#define REQ "PING\r\n"
#define REPLY "+PONG\r\n"

typedef struct {
  loom_stream_t *s;
  size_t limit; /* the handler's output limit; 0: the default */
  long handled; /* requests answered */
  long rc;      /* the handler's last error */
  long client;  /* the client's: 0 when everything was answered */
  long replies; /* whole replies the client read */
  size_t sends; /* bytes of requests the client sends */
} pipe_t;

/* The straightforward handler: one write per reply. */
static int ping_handler(void *arg) {
  pipe_t *p = arg;
  if (p->limit) loom_stream_set_output_limit(p->s, p->limit);
  char line[64];
  ssize_t n;
  while ((n = loom_read_line(p->s, line, sizeof line)) > 0) {
    int rc = loom_write(p->s, REPLY, sizeof REPLY - 1);
    if (rc) {
      p->rc = rc;
      break;
    }
    p->handled++;
  }
  if (n < 0 && !p->rc) p->rc = (long)n;
  loom_close(p->s);
  return 0;
}

/* Sends every request, then reads the replies: the client a deadlock
 * would freeze (its write blocks while the server's does). */
static int ping_client(void *arg) {
  pipe_t *p = arg;
  int fd = (int)p->client; /* the plain end, blocking */
  p->client = 0;
  static char chunk[6 * 1024];
  for (size_t i = 0; i + sizeof REQ - 1 <= sizeof chunk; i += sizeof REQ - 1)
    memcpy(chunk + i, REQ, sizeof REQ - 1);
  loom_stream_t *c;
  int rc = loom_stream_open_fd(&c, fd); /* libuv owns fd now */
  if (rc) {
    p->client = rc;
    return 0;
  }
  for (size_t sent = 0; sent < p->sends && rc == 0; sent += sizeof chunk)
    rc = loom_write(c, chunk, sizeof chunk);
  if (rc == 0) rc = loom_shutdown_write(c);
  char in[8192];
  size_t bytes = 0;
  ssize_t n = 0;
  while (rc == 0 && (n = loom_read(c, in, sizeof in)) > 0) bytes += (size_t)n;
  if (rc == 0 && n < 0) rc = (int)n;
  p->replies = (long)(bytes / (sizeof REPLY - 1));
  p->client = rc;
  loom_close(c);
  return 0;
}

static int pipeline_main(void *arg) {
  pipe_t *p = arg;
  int fd = -1;
  int rc = stream_pair(&p->s, &fd);
  if (rc) return rc;
  p->client = fd;
  loom_scope_t sc;
  loom_timeout_enter(&sc, RUNNING_ON_VALGRIND ? 120000 : 20000); /* never hang */
  loom_task_t *h, *c;
  rc = loom_spawn(&h, ping_handler, p);
  if (rc == 0) rc = loom_spawn(&c, ping_client, p);
  if (rc == 0) {
    loom_join(c, NULL);
    loom_join(h, NULL);
  }
  if (loom_scope_exit(&sc) == UV_ETIMEDOUT) return UV_ETIMEDOUT;
  return rc;
}

static void test_pipelining_peer_within_limit(void **state) {
  (void)state;
  /* ~690 KB of replies: more than the socket buffers hold, so a handler
   * waiting at the high-water mark would freeze with this client. */
  pipe_t p = {.sends = 96 * 6 * 1024};
  assert_loom_ok(loom_run(pipeline_main, &p));
  long want = (long)(p.sends / (sizeof REQ - 1));
  assert_loom_ok(p.rc);
  assert_loom_ok(p.client);
  assert_int_equal(p.handled, want);
  assert_int_equal(p.replies, want);
}

static void test_pipelining_peer_past_limit(void **state) {
  (void)state;
  pipe_t p = {.sends = 4u << 20, .limit = 256u * 1024u};
  assert_loom_ok(loom_run(pipeline_main, &p));
  long want = (long)(p.sends / (sizeof REQ - 1));
  assert_loom_err(p.rc, UV_ENOBUFS); /* the handler was told */
  assert_true(p.handled > 0 && p.handled < want);
  /* The client was cut off: an error, or fewer replies than requests. */
  assert_true(p.client != 0 || p.replies < want);
}

/* The same kind of peer against loom_serve, whose output_limit option sets
 * every connection's limit: a plain blocking client on a thread sends 4 MiB
 * of requests before reading anything. The handler is told; the client's
 * connection is cut off.
 *
 * The client's own send buffer may take all 4 MiB at once (the kernel
 * grows it up to net.ipv4.tcp_wmem's maximum), so a finished send proves
 * nothing: the client then waits for the handler to end before it closes,
 * since closing with replies unread resets the connection and a slow
 * server (sanitizers, a busy machine) would see that reset first. */
typedef struct {
  pipe_t p;
  int port;
  loom_event_t done; /* the handler has ended */
  sem_t ended;       /* the handler has ended: posted for the thread */
  long sent;         /* bytes the thread's client sent */
  int werr;          /* its send's errno, 0 if all went */
  long replies;      /* whole replies it read after sending everything */
} srv_pipe_t;
static srv_pipe_t sp;

static int srv_handler(loom_stream_t *s, void *arg) {
  srv_pipe_t *x = arg;
  /* A small send buffer too: the kernel's buffers (megabytes on loopback)
   * would otherwise absorb every reply before the limit is reached. */
  uv_os_fd_t fd;
  int small = 4096;
  if (uv_fileno((uv_handle_t *)loom_stream_handle(s), &fd) == 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  char line[64];
  ssize_t n;
  while ((n = loom_read_line(s, line, sizeof line)) > 0) {
    int rc = loom_write(s, REPLY, sizeof REPLY - 1);
    if (rc) {
      x->p.rc = rc;
      break;
    }
    x->p.handled++;
  }
  if (n < 0 && !x->p.rc) x->p.rc = (long)n;
  loom_event_set(&x->done);
  sem_post(&x->ended);
  return 0;
}

static void *srv_client_thread(void *arg) {
  srv_pipe_t *x = arg;
  int fd = plain_connect(x->port, 4096); /* a small receive window */
  if (fd < 0) {
    x->werr = -fd;
    return NULL;
  }
  static char chunk[6 * 1024];
  for (size_t i = 0; i + sizeof REQ - 1 <= sizeof chunk; i += sizeof REQ - 1)
    memcpy(chunk + i, REQ, sizeof REQ - 1);
  while ((size_t)x->sent < x->p.sends) {
    ssize_t n = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
    if (n < 0) {
      x->werr = errno;
      break;
    }
    x->sent += n;
  }
  if (!x->werr) {
    /* Everything went into the kernel: read what the server answered
     * once it is done (to EOF or the reset of its abort). */
    while (sem_wait(&x->ended) != 0 && errno == EINTR) {}
    char buf[4096];
    ssize_t n;
    long bytes = 0;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) bytes += n;
    x->replies = bytes / (long)(sizeof REPLY - 1);
  }
  close(fd);
  return NULL;
}

static int serve_limit_main(void *arg) {
  srv_pipe_t *x = arg;
  loom_server_opts_t o = {.output_limit = 128u * 1024u};
  loom_server_t *srv;
  int rc = loom_serve(&srv, "127.0.0.1", 0, srv_handler, x, &o);
  if (rc) return rc;
  x->port = loom_server_port(srv);
  pthread_t th;
  if (pthread_create(&th, NULL, srv_client_thread, x) != 0) rc = UV_EAGAIN;
  loom_scope_t sc;
  loom_timeout_enter(&sc, RUNNING_ON_VALGRIND ? 120000 : 20000); /* never hang */
  if (rc == 0) rc = loom_event_wait(&x->done);
  loom_scope_exit(&sc);
  loom_server_close(srv, 1000);
  if (rc == 0 || rc == UV_ETIMEDOUT) pthread_join(th, NULL);
  return rc;
}

static void test_server_output_limit_option(void **state) {
  (void)state;
  sp = (srv_pipe_t){.p = {.sends = 4u << 20}};
  assert_int_equal(sem_init(&sp.ended, 0, 0), 0);
  assert_loom_ok(loom_run(serve_limit_main, &sp));
  sem_destroy(&sp.ended);
  long want = (long)(sp.p.sends / (sizeof REQ - 1));
  assert_loom_err(sp.p.rc, UV_ENOBUFS); /* the handler was told */
  assert_true(sp.p.handled > 0 && sp.p.handled < want);
  /* The client was cut off: mid-send, or short of its replies. */
  assert_true(sp.werr != 0 || sp.replies < want);
}

int main(void) {
  alarm(RUNNING_ON_VALGRIND ? 600 : 120); /* a hang fails the test */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_small_writes_gathered),
      cmocka_unit_test(test_large_writes_keep_order),
      cmocka_unit_test(test_late_errors_reported),
      cmocka_unit_test(test_second_writer_waits_its_turn),
      cmocka_unit_test(test_small_write_at_once),
      cmocka_unit_test(test_pipelining_peer_within_limit),
      cmocka_unit_test(test_pipelining_peer_past_limit),
      cmocka_unit_test(test_server_output_limit_option),
  };
  return HARNESS_RUN(tests);
}
