/* Runtimes and threads: one runtime per thread (a second one on the same
 * thread is refused with LOOM_EBUSY, for loom_run and embedding alike), N
 * runtimes on N threads running tasks, timers, queues and TCP streams
 * independently, SIGINT reaching every runtime of the process, and
 * SO_REUSEPORT servers: two runtimes on two threads accepting on one port.
 *
 * Threads record what they see; the test asserts on its own thread once
 * they are joined (cmocka's asserts must not run on another thread). */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"

#define NTHREADS 4

/* ---- one runtime per thread ---------------------------------------------- */

typedef struct {
  int init_rc, run_rc;
} nested_t;

static int noop(void *arg) {
  (void)arg;
  return 0;
}

static int nested_main(void *arg) {
  nested_t *n = arg;
  uv_loop_t loop;
  loom_t *rt = NULL;
  if (uv_loop_init(&loop) != 0) return -1;
  n->init_rc = loom_init(&rt, &loop, NULL);
  n->run_rc = loom_run(noop, NULL);
  uv_loop_close(&loop);
  return 0;
}

static void test_second_runtime_in_a_task_refused(void **state) {
  (void)state;
  nested_t n = {0};
  assert_loom_ok(loom_run(nested_main, &n));
  assert_loom_err(n.init_rc, LOOM_EBUSY);
  assert_loom_err(n.run_rc, LOOM_EBUSY);
}

static void test_second_runtime_beside_embedded_refused(void **state) {
  (void)state;
  uv_loop_t a, b;
  loom_t *ra, *rb;
  assert_loom_ok(uv_loop_init(&a));
  assert_loom_ok(uv_loop_init(&b));
  assert_loom_ok(loom_init(&ra, &a, NULL));
  /* The thread has a runtime: neither a second embedded one nor loom_run. */
  assert_loom_err(loom_init(&rb, &b, NULL), LOOM_EBUSY);
  assert_loom_err(loom_init(&rb, &a, NULL), LOOM_EBUSY);
  assert_loom_err(loom_run(noop, NULL), LOOM_EBUSY);
  /* Once the first is shut down and freed, the thread may have another. */
  assert_loom_ok(loom_shutdown(ra, NULL, NULL));
  assert_int_equal(uv_run(&a, UV_RUN_DEFAULT), 0);
  assert_loom_ok(loom_init(&rb, &b, NULL));
  assert_loom_ok(loom_shutdown(rb, NULL, NULL));
  assert_int_equal(uv_run(&b, UV_RUN_DEFAULT), 0);
  assert_loom_ok(loom_run(noop, NULL));
  assert_loom_ok(uv_loop_close(&a));
  assert_loom_ok(uv_loop_close(&b));
}

/* ---- N runtimes on N threads ---------------------------------------------- */

typedef struct {
  int index;
  loom_t *rt;         /* loom_runtime() seen by main */
  uint64_t main_id;   /* main's task id in its own runtime */
  int sleepers_done;  /* sleepers that woke in deadline order */
  int echoed;         /* round trips that came back intact */
  long sum;           /* items through a queue */
  int status;         /* loom_run's result */
  uint64_t order[20]; /* the sleepers' deadlines, in the order they woke */
  int norder;
  atomic_int *running; /* runtimes of the test that have arrived (below) */
  int arrived;
} work_t;

typedef struct {
  work_t *w;
  int ms;
} sleeper_t;

static int sleeper(void *arg) {
  sleeper_t *s = arg;
  /* Its deadline, on the clock loom_sleep reads: a sleeper that starts in
   * a later pass (a pass cut short on a loaded machine leaves the rest for
   * the next) counts its milliseconds from a later loop time, so the order
   * checked is that of deadlines, not of durations. */
  uint64_t deadline = loom_now() + (uint64_t)s->ms;
  if (loom_sleep((uint64_t)s->ms) != 0) return -1;
  if (loom_now() < deadline) return -2; /* woke early */
  s->w->order[s->w->norder++] = deadline;
  return 0;
}

static int echo_server(void *arg) {
  loom_listener_t *l = arg;
  loom_stream_t *s;
  int rc = loom_accept(l, &s);
  if (rc) return rc;
  char line[64];
  ssize_t n;
  while ((n = loom_read_line(s, line, sizeof(line))) > 0)
    if ((rc = loom_write(s, line, (size_t)n)) != 0) break;
  loom_close(s);
  return n < 0 ? (int)n : rc;
}

static int producer(void *arg) {
  loom_queue_t *q = arg;
  for (intptr_t i = 1; i <= 1000; i++) {
    int rc = loom_queue_put(q, (void *)i);
    if (rc) return rc;
  }
  return 0;
}

/* Counts w's runtime among those running; once only, so that a thread
 * whose runtime failed before its main ran arrives too and nobody waits on
 * it for ever. */
static void arrive(work_t *w) {
  if (!w->arrived) atomic_fetch_add(w->running, 1);
  w->arrived = 1;
}

static int work_main(void *arg) {
  work_t *w = arg;
  w->rt = loom_runtime();
  w->main_id = loom_task_id(loom_current());
  /* The runtimes' addresses are compared once the threads are joined: they
   * differ only if the runtimes were alive at the same time, so each waits
   * here for the others. Else one could end and be freed before the next
   * starts (on a loaded machine the threads may well run one after the
   * other), and the next could be given the same memory. */
  arrive(w);
  while (atomic_load(w->running) < NTHREADS)
    if (loom_sleep(1)) return -7;
  /* Timers: sleepers wake in deadline order, in this runtime alone. */
  sleeper_t sl[20];
  loom_task_t *ts[20];
  for (int i = 0; i < 20; i++) {
    sl[i] = (sleeper_t){w, (19 - i) % 7};
    if (loom_spawn(&ts[i], sleeper, &sl[i])) return -1;
  }
  if (loom_gather(ts, 20, NULL, 0)) return -2;
  w->sleepers_done = w->norder;
  for (int i = 1; i < w->norder; i++)
    if (w->order[i] < w->order[i - 1]) w->sleepers_done = -1;
  /* A queue between two tasks. */
  loom_queue_t q;
  loom_task_t *p;
  if (loom_queue_init(&q, 8, LOOM_QUEUE_FIFO, NULL)) return -3;
  if (loom_spawn(&p, producer, &q)) return -4;
  for (int i = 0; i < 1000; i++) {
    void *item;
    if (loom_queue_get(&q, &item)) return -5;
    w->sum += (long)(intptr_t)item;
  }
  if (loom_join(p, NULL)) return -6;
  loom_queue_destroy(&q);
  /* A TCP stream on this runtime's loop. */
  loom_listener_t *l;
  int rc = loom_tcp_listen(&l, "127.0.0.1", 0, 0);
  if (rc) return rc;
  loom_task_t *srv;
  if ((rc = loom_spawn(&srv, echo_server, l))) return rc;
  loom_stream_t *c;
  if ((rc = loom_tcp_connect(&c, "127.0.0.1", loom_listener_port(l)))) return rc;
  for (int i = 0; i < 200; i++) {
    char msg[64], back[64];
    int n = snprintf(msg, sizeof(msg), "thread %d line %d\n", w->index, i);
    if (loom_write(c, msg, (size_t)n)) break;
    if (loom_read_line(c, back, sizeof(back)) != n || memcmp(msg, back, (size_t)n)) break;
    w->echoed++;
  }
  loom_close(c);
  int srv_status = -1;
  loom_join(srv, &srv_status);
  loom_listener_close(l);
  return srv_status;
}

static void *run_work(void *arg) {
  work_t *w = arg;
  w->status = loom_run(work_main, w);
  arrive(w);
  return NULL;
}

static void check_work(work_t *w, int n) {
  for (int i = 0; i < n; i++) {
    assert_loom_ok(w[i].status);
    assert_int_equal(w[i].main_id, 1); /* ids are per runtime */
    assert_int_equal(w[i].sleepers_done, 20);
    assert_int_equal(w[i].sum, 1000L * 1001L / 2);
    assert_int_equal(w[i].echoed, 200);
    for (int j = 0; j < i; j++) assert_ptr_not_equal(w[i].rt, w[j].rt);
  }
}

static void test_runtimes_on_threads(void **state) {
  (void)state;
  pthread_t th[NTHREADS];
  work_t w[NTHREADS];
  atomic_int running = 0;
  memset(w, 0, sizeof(w));
  for (int i = 0; i < NTHREADS; i++) {
    w[i].index = i;
    w[i].running = &running;
    assert_int_equal(pthread_create(&th[i], NULL, run_work, &w[i]), 0);
  }
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
  check_work(w, NTHREADS);
}

/* Embedded runtimes: each thread owns its loop and attaches a runtime. */
typedef struct {
  work_t w;
  int init_rc, second_rc, spawn_rc, done, shut_down;
} embedded_t;

static int embedded_main(void *arg) {
  embedded_t *e = arg;
  e->w.status = work_main(&e->w);
  return 0;
}

static void on_embedded_shut_down(void *data) {
  embedded_t *e = data;
  e->shut_down = 1;
}

static void *run_embedded(void *arg) {
  embedded_t *e = arg;
  uv_loop_t loop;
  loom_t *rt, *again;
  if (uv_loop_init(&loop)) {
    arrive(&e->w);
    return NULL;
  }
  e->init_rc = loom_init(&rt, &loop, NULL);
  if (e->init_rc == 0) {
    e->second_rc = loom_init(&again, &loop, NULL);
    loom_task_t *t;
    e->spawn_rc = loom_spawn_on(rt, &t, embedded_main, e);
    uv_run(&loop, UV_RUN_DEFAULT); /* until the task has ended */
    e->done = loom_task_done(t);
    loom_detach(t);
    loom_shutdown(rt, on_embedded_shut_down, e);
    uv_run(&loop, UV_RUN_DEFAULT); /* until the runtime is freed */
  }
  arrive(&e->w);
  uv_loop_close(&loop);
  return NULL;
}

static void test_embedded_runtimes_on_threads(void **state) {
  (void)state;
  pthread_t th[NTHREADS];
  embedded_t e[NTHREADS];
  atomic_int running = 0;
  memset(e, 0, sizeof(e));
  for (int i = 0; i < NTHREADS; i++) {
    e[i].w.index = i;
    e[i].w.running = &running;
    assert_int_equal(pthread_create(&th[i], NULL, run_embedded, &e[i]), 0);
  }
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
  work_t w[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) {
    assert_loom_ok(e[i].init_rc);
    assert_loom_err(e[i].second_rc, LOOM_EBUSY);
    assert_loom_ok(e[i].spawn_rc);
    assert_int_equal(e[i].done, 1);
    assert_int_equal(e[i].shut_down, 1);
    w[i] = e[i].w;
    w[i].main_id = 1; /* the host spawned it, not loom_run: not "main" */
  }
  check_work(w, NTHREADS);
}

/* ---- SIGINT with several runtimes ------------------------------------------ */

/* Every main registers, then the last one to arrive sends SIGINT to the
 * process (any thread may take it): every main must be cancelled. */
typedef struct {
  atomic_int *arrived;
  int n;
  int sleep_rc;
  int status;
} sig_t_;

static int sig_main(void *arg) {
  sig_t_ *s = arg;
  if (atomic_fetch_add(s->arrived, 1) + 1 == s->n) kill(getpid(), SIGINT);
  s->sleep_rc = loom_sleep(30000);
  return s->sleep_rc;
}

static void *run_sig(void *arg) {
  sig_t_ *s = arg;
  s->status = loom_run(sig_main, s);
  return NULL;
}

static void test_sigint_cancels_every_runtime(void **state) {
  (void)state;
  atomic_int arrived = 0;
  pthread_t th[NTHREADS];
  sig_t_ s[NTHREADS];
  uint64_t t0 = wall_ms();
  for (int i = 0; i < NTHREADS; i++) {
    s[i] = (sig_t_){&arrived, NTHREADS, 0, 0};
    assert_int_equal(pthread_create(&th[i], NULL, run_sig, &s[i]), 0);
  }
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < NTHREADS; i++) {
    assert_loom_err(s[i].sleep_rc, UV_ECANCELED);
    assert_loom_err(s[i].status, UV_ECANCELED);
  }
  assert_true(wall_ms() - t0 < 10000);
}

/* The runtime that registered first ends while the other runs; SIGINT
 * must still reach the one left running. */
typedef struct {
  atomic_int stage; /* 1: first running; 2: second running; 3: first ended */
  int first_status, second_rc, second_status;
} handover_t;

static int first_main(void *arg) {
  handover_t *h = arg;
  atomic_store(&h->stage, 1);
  while (atomic_load(&h->stage) < 2)
    if (loom_sleep(1)) return -1;
  return 0;
}

static int second_main(void *arg) {
  handover_t *h = arg;
  atomic_store(&h->stage, 2);
  while (atomic_load(&h->stage) != 3)
    if (loom_sleep(1)) return -1;
  kill(getpid(), SIGINT);
  h->second_rc = loom_sleep(30000);
  return h->second_rc;
}

static void *run_first(void *arg) {
  handover_t *h = arg;
  h->first_status = loom_run(first_main, h);
  atomic_store(&h->stage, 3);
  return NULL;
}

static void *run_second(void *arg) {
  handover_t *h = arg;
  h->second_status = loom_run(second_main, h);
  return NULL;
}

static void test_sigint_after_first_runtime_ended(void **state) {
  (void)state;
  handover_t h = {0};
  pthread_t a, b;
  assert_int_equal(pthread_create(&a, NULL, run_first, &h), 0);
  while (atomic_load(&h.stage) < 1) usleep(1000); /* the first registers first */
  assert_int_equal(pthread_create(&b, NULL, run_second, &h), 0);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  assert_loom_ok(h.first_status);
  assert_loom_err(h.second_rc, UV_ECANCELED);
  assert_loom_err(h.second_status, UV_ECANCELED);
}

/* ---- SO_REUSEPORT: two runtimes, one port ----------------------------------- */

typedef struct {
  atomic_int *port;     /* the first server's port, once bound */
  atomic_int *stop;     /* set when the clients are done */
  int first;            /* binds port 0 and publishes it */
  atomic_int listening; /* 1: its server listens; -1: it never will */
  atomic_int accepted;  /* connections this runtime served */
  int status;
} share_t;

static int share_handler(loom_stream_t *s, void *arg) {
  share_t *sh = arg;
  atomic_fetch_add(&sh->accepted, 1);
  char line[32];
  ssize_t n = loom_read_line(s, line, sizeof(line));
  if (n > 0) loom_write(s, line, (size_t)n);
  loom_close(s);
  return 0;
}

static int share_main(void *arg) {
  share_t *sh = arg;
  int port = 0;
  if (!sh->first)
    while ((port = atomic_load(sh->port)) == 0)
      if (loom_sleep(1)) return -1;
  loom_server_opts_t o = {.reuseport = 1};
  loom_server_t *srv;
  int rc = loom_serve(&srv, "127.0.0.1", port, share_handler, sh, &o);
  if (rc) {
    atomic_store(sh->port, -1);
    return rc;
  }
  if (sh->first) atomic_store(sh->port, loom_server_port(srv));
  atomic_store(&sh->listening, 1);
  while (!atomic_load(sh->stop))
    if (loom_sleep(2)) break;
  return loom_server_close(srv, 1000);
}

static void *run_share(void *arg) {
  share_t *sh = arg;
  sh->status = loom_run(share_main, sh);
  int no = 0;
  atomic_compare_exchange_strong(&sh->listening, &no, -1);
  return NULL;
}

/* A plain blocking client: connect, send a line, read it back. */
static int client_round_trip(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  char buf[8] = {0};
  int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
           write(fd, "hi\n", 3) == 3 && read(fd, buf, sizeof(buf)) == 3 &&
           memcmp(buf, "hi\n", 3) == 0;
  close(fd);
  return ok ? 0 : -1;
}

static void test_reuseport_two_runtimes_one_port(void **state) {
  (void)state;
  atomic_int port = 0, stop = 0;
  share_t sh[2];
  memset(sh, 0, sizeof(sh));
  pthread_t th[2];
  for (int i = 0; i < 2; i++) {
    sh[i].port = &port;
    sh[i].stop = &stop;
    sh[i].first = i == 0;
  }
  assert_int_equal(pthread_create(&th[0], NULL, run_share, &sh[0]), 0);
  while (atomic_load(&port) == 0) usleep(1000);
  assert_true(atomic_load(&port) > 0);
  assert_int_equal(pthread_create(&th[1], NULL, run_share, &sh[1]), 0);
  /* Clients start once the second server listens too (or never will):
   * else the first could serve them all while the second thread waits for
   * a CPU. With both listening, the kernel spreads connections by their
   * address hash, so a few dozen reach both. */
  while (atomic_load(&sh[1].listening) == 0) usleep(1000);
  int failures = 0, n = 0;
  while (n < 2000 &&
         (atomic_load(&sh[0].accepted) == 0 || atomic_load(&sh[1].accepted) == 0)) {
    if (client_round_trip(atomic_load(&port)) != 0) failures++;
    n++;
  }
  atomic_store(&stop, 1);
  pthread_join(th[0], NULL);
  pthread_join(th[1], NULL);
  assert_loom_ok(sh[0].status);
  assert_loom_ok(sh[1].status);
  assert_int_equal(failures, 0);
  assert_true(atomic_load(&sh[0].accepted) > 0);
  assert_true(atomic_load(&sh[1].accepted) > 0);
}

/* Without the flag the second bind fails as it always did. */
typedef struct {
  int rc_reuse, rc_plain, rc_bad_flag;
} bind_t;

static int bind_main(void *arg) {
  bind_t *b = arg;
  loom_listener_t *l1, *l2 = NULL, *l3 = NULL;
  int rc = loom_tcp_listen_ex(&l1, "127.0.0.1", 0, 0, LOOM_LISTEN_REUSEPORT);
  if (rc) return rc;
  int port = loom_listener_port(l1);
  b->rc_reuse = loom_tcp_listen_ex(&l2, "127.0.0.1", port, 0, LOOM_LISTEN_REUSEPORT);
  b->rc_plain = loom_tcp_listen(&l3, "127.0.0.1", port, 0);
  b->rc_bad_flag = loom_tcp_listen_ex(&l3, "127.0.0.1", 0, 0, 0x80);
  if (l2) loom_listener_close(l2);
  loom_listener_close(l1);
  return 0;
}

static void test_reuseport_listeners(void **state) {
  (void)state;
  bind_t b = {0};
  assert_loom_ok(loom_run(bind_main, &b));
  assert_loom_ok(b.rc_reuse);
  assert_loom_err(b.rc_plain, UV_EADDRINUSE);
  assert_loom_err(b.rc_bad_flag, UV_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_second_runtime_in_a_task_refused),
      cmocka_unit_test(test_second_runtime_beside_embedded_refused),
      cmocka_unit_test(test_runtimes_on_threads),
      cmocka_unit_test(test_embedded_runtimes_on_threads),
      cmocka_unit_test(test_sigint_cancels_every_runtime),
      cmocka_unit_test(test_sigint_after_first_runtime_ended),
      cmocka_unit_test(test_reuseport_two_runtimes_one_port),
      cmocka_unit_test(test_reuseport_listeners),
  };
  return HARNESS_RUN(tests);
}
