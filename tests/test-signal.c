/* Signal watchers (loom/signal.h): deliveries counted before a wait,
 * cancellation and timeouts of a wait, two waiters on one watcher and two
 * watchers of one signal, several signals on one watcher, handler tasks,
 * SIGINT taken over from loom_run and given back, dispositions restored
 * (SIGPIPE stays ignored), bad numbers and closed handles, a watcher left
 * open at shutdown, a waiting watcher keeping loom_run alive. (Allocation
 * failures and the cancellation of a wait at once and by a 1 ms timeout
 * are in the shared sweeps, tests/test-faults.c and tests/test-io-sweep.c.)
 *
 * raise() runs libuv's handler at once on this thread; the delivery
 * reaches the watcher when the loop next polls. Tasks record what they see
 * in `r`; the asserts run on the main stack after loom_run has returned
 * (tests/helpers.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"

typedef struct {
  long rc[32];
  int n;
} rec_t;
static rec_t r;

static void rec_reset(void) { memset(&r, 0, sizeof(r)); }

/* ---- deliveries before the wait are counted ------------------------------- */

static int counted_main(void *arg) {
  (void)arg;
  loom_signal_t *s;
  r.rc[0] = loom_signal_open(&s, SIGUSR1);
  raise(SIGUSR1);
  raise(SIGUSR1);
  r.rc[1] = loom_sleep(5); /* the loop polls: both are counted */
  r.rc[2] = loom_signal_pending(s, SIGUSR1);
  r.rc[3] = loom_signal_wait(s);
  r.rc[4] = loom_signal_pending(s, SIGUSR1);
  r.rc[5] = loom_signal_wait(s);
  r.rc[6] = loom_signal_pending(s, SIGUSR1);
  r.rc[7] = loom_signal_pending(s, SIGUSR2); /* not caught: 0 */
  r.rc[8] = loom_signal_close(s);
  return 0;
}

static void test_signal_counted_before_wait(void **state) {
  (void)state;
  rec_reset();
  assert_loom_ok(loom_run(counted_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_int_equal(r.rc[2], 2);
  assert_int_equal(r.rc[3], SIGUSR1);
  assert_int_equal(r.rc[4], 1);
  assert_int_equal(r.rc[5], SIGUSR1);
  assert_int_equal(r.rc[6], 0);
  assert_int_equal(r.rc[7], 0);
  assert_loom_ok(r.rc[8]);
}

/* ---- a wait that ends on the signal itself ------------------------------- */

static int raiser(void *arg) {
  int sig = (int)(intptr_t)arg;
  raise(sig);
  return 0;
}

static int wakes_main(void *arg) {
  (void)arg;
  loom_signal_t *s;
  r.rc[0] = loom_signal_open(&s, SIGHUP);
  loom_task_t *t;
  loom_spawn(&t, raiser, (void *)(intptr_t)SIGHUP);
  r.rc[1] = loom_signal_wait(s); /* parked before the raise */
  loom_join(t, NULL);
  loom_signal_close(s);
  return 0;
}

static void test_signal_wakes_waiter(void **state) {
  (void)state;
  rec_reset();
  assert_loom_ok(loom_run(wakes_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_int_equal(r.rc[1], SIGHUP);
}

/* ---- cancellation and timeouts ------------------------------------------- */

static loom_signal_t *shared_sig;

static int waiter(void *arg) {
  long *out = arg;
  *out = loom_signal_wait(shared_sig);
  return 0;
}

static int cancel_main(void *arg) {
  (void)arg;
  loom_signal_open(&shared_sig, SIGUSR1);
  loom_task_t *t;
  loom_spawn(&t, waiter, &r.rc[0]);
  loom_yield(); /* it waits */
  loom_cancel(t);
  r.rc[1] = loom_join(t, NULL);
  /* A delivery after the cancelled wait stays for the next one. */
  raise(SIGUSR1);
  loom_sleep(5);
  r.rc[2] = loom_signal_pending(shared_sig, SIGUSR1);
  r.rc[3] = loom_signal_wait(shared_sig);
  /* A timeout scope ends a wait with UV_ETIMEDOUT. */
  loom_scope_t sc;
  uint64_t t0 = wall_ms();
  loom_timeout_enter(&sc, 20);
  r.rc[4] = loom_signal_wait(shared_sig);
  r.rc[5] = loom_scope_exit(&sc);
  r.rc[6] = (long)(wall_ms() - t0);
  /* ...and the watcher still works. */
  raise(SIGUSR1);
  r.rc[7] = loom_signal_wait(shared_sig);
  /* A cancelled task's wait fails at once. */
  loom_cancel(loom_current());
  r.rc[8] = loom_signal_wait(shared_sig);
  loom_signal_close(shared_sig);
  return 0;
}

static void test_signal_cancel_and_timeout(void **state) {
  (void)state;
  rec_reset();
  loom_run(cancel_main, NULL);
  assert_loom_err(r.rc[0], UV_ECANCELED);
  assert_loom_ok(r.rc[1]);
  assert_int_equal(r.rc[2], 1);
  assert_int_equal(r.rc[3], SIGUSR1);
  assert_loom_err(r.rc[4], UV_ETIMEDOUT);
  assert_loom_err(r.rc[5], UV_ETIMEDOUT);
  assert_true(r.rc[6] < 2000);
  assert_int_equal(r.rc[7], SIGUSR1);
  assert_loom_err(r.rc[8], UV_ECANCELED);
}

/* ---- two waiters on one watcher, two watchers of one signal --------------- */

static int two_waiters_main(void *arg) {
  (void)arg;
  loom_signal_open(&shared_sig, SIGUSR2);
  loom_task_t *a, *b;
  r.rc[0] = r.rc[1] = 1;
  loom_spawn(&a, waiter, &r.rc[0]);
  loom_spawn(&b, waiter, &r.rc[1]);
  loom_yield();
  raise(SIGUSR2);
  loom_sleep(5);
  /* One delivery, one waiter woken: the first to wait. */
  r.rc[2] = r.rc[0];
  r.rc[3] = r.rc[1];
  raise(SIGUSR2);
  loom_join(a, NULL);
  loom_join(b, NULL);
  loom_signal_close(shared_sig);
  /* Each watcher of a signal sees every delivery. */
  loom_signal_t *s1, *s2;
  loom_signal_open(&s1, SIGUSR2);
  loom_signal_open(&s2, SIGUSR2);
  raise(SIGUSR2);
  r.rc[4] = loom_signal_wait(s1);
  r.rc[5] = loom_signal_wait(s2);
  loom_signal_close(s1);
  /* Closing one leaves the other catching. */
  raise(SIGUSR2);
  r.rc[6] = loom_signal_wait(s2);
  loom_signal_close(s2);
  return 0;
}

static void test_signal_two_waiters(void **state) {
  (void)state;
  rec_reset();
  assert_loom_ok(loom_run(two_waiters_main, NULL));
  assert_int_equal(r.rc[2], SIGUSR2);
  assert_int_equal(r.rc[3], 1); /* still waiting then */
  assert_int_equal(r.rc[0], SIGUSR2);
  assert_int_equal(r.rc[1], SIGUSR2);
  assert_int_equal(r.rc[4], SIGUSR2);
  assert_int_equal(r.rc[5], SIGUSR2);
  assert_int_equal(r.rc[6], SIGUSR2);
}

/* ---- several signals on one watcher --------------------------------------- */

static int several_main(void *arg) {
  (void)arg;
  loom_signal_t *s;
  r.rc[0] = loom_signal_open(&s, SIGUSR2);
  r.rc[1] = loom_signal_add(s, SIGUSR1);
  r.rc[2] = loom_signal_add(s, SIGUSR1); /* again: no-op */
  raise(SIGUSR2);
  raise(SIGUSR1);
  loom_sleep(5);
  r.rc[3] = loom_signal_wait(s); /* lowest number first */
  r.rc[4] = loom_signal_wait(s);
  loom_signal_close(s);
  return 0;
}

static void test_signal_several(void **state) {
  (void)state;
  rec_reset();
  assert_loom_ok(loom_run(several_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_loom_ok(r.rc[2]);
  assert_int_equal(r.rc[3], SIGUSR1);
  assert_int_equal(r.rc[4], SIGUSR2);
}

/* ---- handler tasks -------------------------------------------------------- */

static int on_usr1(int signum, void *arg) {
  long *count = arg;
  r.rc[10 + (*count)++] = signum;
  loom_sleep(1); /* a handler may suspend; deliveries meanwhile queue */
  return *count == 3 ? 7 : 0;
}

static int handler_main(void *arg) {
  (void)arg;
  loom_signal_t *s;
  loom_signal_open(&s, SIGUSR1);
  long count = 0;
  loom_task_t *h;
  r.rc[0] = loom_signal_handle(s, &h, on_usr1, &count);
  for (int i = 0; i < 3; i++) {
    raise(SIGUSR1);
    loom_sleep(2);
  }
  int st = -1;
  r.rc[1] = loom_join(h, &st);
  r.rc[2] = st;
  r.rc[3] = count;
  /* A detached handler ends when its watcher closes. */
  long count2 = 0;
  r.rc[4] = loom_signal_handle(s, NULL, on_usr1, &count2);
  loom_yield();
  loom_signal_close(s);
  /* Misuse. */
  r.rc[5] = loom_signal_handle(s, NULL, on_usr1, &count2);
  r.rc[6] = loom_signal_handle(NULL, NULL, on_usr1, NULL);
  return 0;
}

static void test_signal_handler_task(void **state) {
  (void)state;
  rec_reset();
  assert_loom_ok(loom_run(handler_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_loom_ok(r.rc[1]);
  assert_int_equal(r.rc[2], 7);
  assert_int_equal(r.rc[3], 3);
  assert_int_equal(r.rc[10], SIGUSR1);
  assert_int_equal(r.rc[12], SIGUSR1);
  assert_loom_ok(r.rc[4]);
  assert_loom_err(r.rc[5], UV_EBADF);
  assert_loom_err(r.rc[6], UV_EINVAL);
}

/* A handler task registered while main waits on an event the handler sets:
 * the handler's wait keeps loom_run's loop alive (no deadlock report). */
static loom_event_t stop_ev;
static int set_stop(int signum, void *arg) {
  (void)arg;
  r.rc[1] = signum;
  loom_event_set(&stop_ev);
  return 0;
}
static void *kill_later(void *arg) {
  (void)arg;
  usleep(30 * 1000);
  kill(getpid(), SIGTERM);
  return NULL;
}

static int keepalive_main(void *arg) {
  (void)arg;
  memset(&stop_ev, 0, sizeof(stop_ev));
  loom_signal_t *s;
  loom_signal_open(&s, SIGTERM);
  loom_signal_handle(s, NULL, set_stop, NULL);
  pthread_t th;
  pthread_create(&th, NULL, kill_later, NULL);
  r.rc[0] = loom_event_wait(&stop_ev);
  pthread_join(th, NULL);
  loom_signal_close(s);
  return 0;
}

static void test_signal_keeps_loop_alive(void **state) {
  (void)state;
  rec_reset();
  assert_loom_ok(loom_run(keepalive_main, NULL));
  assert_loom_ok(r.rc[0]);
  assert_int_equal(r.rc[1], SIGTERM);
}

/* ---- SIGINT taken over from loom_run and given back ----------------------- */

static int sigint_main(void *arg) {
  (void)arg;
  struct sigaction loom_sa, during, after;
  sigaction(SIGINT, NULL, &loom_sa); /* loom_run's handler */
  loom_signal_t *s;
  r.rc[0] = loom_signal_open(&s, SIGINT);
  sigaction(SIGINT, NULL, &during);
  r.rc[1] = during.sa_handler != loom_sa.sa_handler;
  raise(SIGINT);
  r.rc[2] = loom_signal_wait(s);
  r.rc[3] = loom_sleep(1); /* main was not cancelled */
  r.rc[4] = loom_signal_close(s);
  sigaction(SIGINT, NULL, &after);
  r.rc[5] = after.sa_handler == loom_sa.sa_handler;
  /* loom_run's handling is back: SIGINT cancels main. */
  raise(SIGINT);
  uint64_t t0 = wall_ms();
  r.rc[6] = loom_sleep(10000);
  r.rc[7] = (long)(wall_ms() - t0);
  return 0;
}

static void test_signal_sigint_take_and_give_back(void **state) {
  (void)state;
  rec_reset();
  struct sigaction before, after;
  sigaction(SIGINT, NULL, &before);
  loom_run(sigint_main, NULL);
  sigaction(SIGINT, NULL, &after);
  assert_loom_ok(r.rc[0]);
  assert_true(r.rc[1]);
  assert_int_equal(r.rc[2], SIGINT);
  assert_loom_ok(r.rc[3]);
  assert_loom_ok(r.rc[4]);
  assert_true(r.rc[5]);
  assert_loom_err(r.rc[6], UV_ECANCELED);
  assert_true(r.rc[7] < 5000);
  assert_ptr_equal((void *)before.sa_handler, (void *)after.sa_handler);
}

/* ---- dispositions restored ------------------------------------------------ */

static volatile sig_atomic_t usr2_seen;
static void on_usr2(int sig) {
  (void)sig;
  usr2_seen++;
}

static int restore_main(void *arg) {
  (void)arg;
  loom_signal_t *s, *p;
  loom_signal_open(&s, SIGUSR2);
  loom_signal_open(&p, SIGPIPE);
  raise(SIGUSR2);
  r.rc[0] = loom_signal_wait(s); /* the program's handler did not run */
  r.rc[1] = usr2_seen;
  loom_signal_close(s);
  loom_signal_close(p);
  struct sigaction sa;
  sigaction(SIGPIPE, NULL, &sa);
  r.rc[2] = sa.sa_handler == SIG_IGN; /* SIGPIPE stays ignored */
  raise(SIGUSR2);                     /* the program's handler is back */
  r.rc[3] = usr2_seen;
  return 0;
}

static void test_signal_dispositions_restored(void **state) {
  (void)state;
  rec_reset();
  usr2_seen = 0;
  struct sigaction sa, old;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_usr2;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR2, &sa, &old);
  assert_loom_ok(loom_run(restore_main, NULL));
  sigaction(SIGUSR2, &old, NULL);
  assert_int_equal(r.rc[0], SIGUSR2);
  assert_int_equal(r.rc[1], 0);
  assert_true(r.rc[2]);
  assert_int_equal(r.rc[3], 1);
}

/* ---- misuse --------------------------------------------------------------- */

static int misuse_main(void *arg) {
  (void)arg;
  loom_signal_t *s = (loom_signal_t *)1;
  const int bad[] = {0, -1, 65, 1000, SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
  int n = 0;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (loom_signal_open(&s, bad[i]) == UV_EINVAL && s == NULL) n++;
  r.rc[0] = n;
  r.rc[1] = loom_signal_open(NULL, SIGUSR1);
  loom_signal_open(&s, SIGUSR1);
  r.rc[2] = loom_signal_add(s, SIGKILL);
  r.rc[3] = loom_signal_add(s, 0);
  r.rc[4] = loom_signal_pending(s, 0);
  loom_signal_close(s);
  r.rc[5] = loom_signal_close(s);
  r.rc[6] = loom_signal_wait(s);
  r.rc[7] = loom_signal_add(s, SIGUSR2);
  r.rc[8] = loom_signal_pending(s, SIGUSR1);
  r.rc[9] = loom_signal_wait(NULL);
  r.rc[10] = loom_signal_close(NULL);
  r.rc[11] = loom_signal_add(NULL, SIGUSR1);
  r.rc[12] = loom_signal_pending(NULL, SIGUSR1);
  return 0;
}

static void test_signal_misuse(void **state) {
  (void)state;
  rec_reset();
  assert_loom_ok(loom_run(misuse_main, NULL));
  assert_int_equal(r.rc[0], 10);
  assert_loom_err(r.rc[1], UV_EINVAL);
  assert_loom_err(r.rc[2], UV_EINVAL);
  assert_loom_err(r.rc[3], UV_EINVAL);
  assert_loom_err(r.rc[4], UV_EINVAL);
  assert_loom_err(r.rc[5], UV_EBADF);
  assert_loom_err(r.rc[6], UV_EBADF);
  assert_loom_err(r.rc[7], UV_EBADF);
  assert_loom_err(r.rc[8], UV_EBADF);
  for (int i = 9; i <= 12; i++) assert_loom_err(r.rc[i], UV_EINVAL);
  /* Outside a task. */
  loom_signal_t *s;
  assert_loom_err(loom_signal_open(&s, SIGUSR1), LOOM_ENOTASK);
}

/* ---- closed under a waiting task, left open at shutdown -------------------- */

static int close_under_main(void *arg) {
  (void)arg;
  loom_signal_open(&shared_sig, SIGUSR1);
  loom_task_t *t;
  loom_spawn(&t, waiter, &r.rc[0]);
  loom_yield();
  r.rc[1] = loom_signal_close(shared_sig);
  loom_join(t, NULL);
  return 0;
}

static void test_signal_close_under_waiter(void **state) {
  (void)state;
  rec_reset();
  assert_loom_ok(loom_run(close_under_main, NULL));
  assert_loom_err(r.rc[0], UV_EBADF);
  assert_loom_ok(r.rc[1]);
}

static int left_open_main(void *arg) {
  (void)arg;
  loom_signal_t *s;
  r.rc[0] = loom_signal_open(&s, SIGUSR1);
  /* A waiter left too: shutdown cancels it, then closes the watcher. */
  loom_signal_handle(s, NULL, set_stop, NULL);
  return 0;
}

static void test_signal_left_open_at_shutdown(void **state) {
  (void)state;
  rec_reset();
  harness_expect_leftovers();
  struct sigaction sa, old, after;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_IGN;
  sigaction(SIGUSR1, &sa, &old);
  assert_loom_ok(loom_run(left_open_main, NULL));
  sigaction(SIGUSR1, NULL, &after);
  sigaction(SIGUSR1, &old, NULL);
  assert_loom_ok(r.rc[0]);
  assert_true(after.sa_handler == SIG_IGN); /* given back */
}

/* ---- two runtimes on two threads ------------------------------------------ */

/* Both watch SIGUSR1; one kill() reaches both; the signal is given back
 * once the second closes, whichever it is. */
static _Atomic int mt_waiting, mt_closed;
static long mt_got[2];

static int mt_main(void *arg) {
  long *got = arg;
  loom_signal_t *s;
  if (loom_signal_open(&s, SIGUSR1)) return -1;
  mt_waiting++;
  *got = loom_signal_wait(s);
  loom_signal_close(s);
  mt_closed++;
  return 0;
}
static void *mt_thread(void *arg) {
  /* Signals go to the main thread only: the runtimes' threads hear of
   * them through libuv's pipe. */
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  loom_run(mt_main, arg);
  return NULL;
}

static void test_signal_two_runtimes(void **state) {
  (void)state;
  mt_waiting = mt_closed = 0;
  mt_got[0] = mt_got[1] = 0;
  struct sigaction before, after;
  sigaction(SIGUSR1, NULL, &before);
  pthread_t th[2];
  for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, mt_thread, &mt_got[i]);
  /* Wait for both watchers to be open (they count once open). */
  for (int i = 0; i < 10000 && mt_waiting < 2; i++) usleep(1000);
  assert_int_equal(mt_waiting, 2);
  kill(getpid(), SIGUSR1);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  sigaction(SIGUSR1, NULL, &after);
  assert_int_equal(mt_got[0], SIGUSR1);
  assert_int_equal(mt_got[1], SIGUSR1);
  assert_ptr_equal((void *)before.sa_handler, (void *)after.sa_handler);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_signal_counted_before_wait),
      cmocka_unit_test(test_signal_wakes_waiter),
      cmocka_unit_test(test_signal_cancel_and_timeout),
      cmocka_unit_test(test_signal_two_waiters),
      cmocka_unit_test(test_signal_several),
      cmocka_unit_test(test_signal_handler_task),
      cmocka_unit_test(test_signal_keeps_loop_alive),
      cmocka_unit_test(test_signal_sigint_take_and_give_back),
      cmocka_unit_test(test_signal_dispositions_restored),
      cmocka_unit_test(test_signal_misuse),
      cmocka_unit_test(test_signal_close_under_waiter),
      cmocka_unit_test(test_signal_left_open_at_shutdown),
      cmocka_unit_test(test_signal_two_runtimes),
  };
  return HARNESS_RUN(tests);
}
