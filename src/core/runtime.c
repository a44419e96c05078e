/* The runtime: binding to a libuv loop, loom_run, embedding and shutdown.
 *
 * A runtime owns four libuv handles on its loop: a check handle that runs the
 * scheduler pass after every poll, an idle handle active only while tasks are
 * ready (so the loop polls without blocking), one timer for all of loom's
 * deadlines, and, under loom_run, an async handle that SIGINT pokes. The check handle is
 * unreferenced: an embedded runtime with no work keeps no host loop alive.
 *
 * Shutdown is the same for loom_run and for embedders, and bounded:
 *   1. mark the runtime closing (tasks spawned from now on are born
 *      cancelled) and cancel every task;
 *   2. once the last task has ended, close every I/O object the program
 *      left open (streams flush what is queued, as loom_close does) and
 *      report them;
 *   3. streams still flushing after the grace period (a peer that never
 *      reads) are aborted, dropping what is unsent, and reported;
 *   4. report tasks never joined nor detached, close loom's own handles,
 *      and free the runtime from the last close callback.
 * loom_run then stops the loop even if the program left raw libuv handles
 * active: it reports them and closes them, so it always returns.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

LOOM__TLS loom_t *loom__tls_home;

/* The streams' spare buffers (io/stream.c, declared in io/io.h). */
void loom__io_spares_free(loom_t *rt);
/* loom_run: starts the monitor if LOOM_MONITOR names a socket (io/monitor.c). */
void loom__monitor_from_env(loom_t *rt);

int loom_init(loom_t **out, uv_loop_t *loop, const loom_config_t *cfg) {
  if (!out || !loop) return UV_EINVAL;
  /* One runtime per thread: the thread-locals that find "the" runtime
   * (loom__tls_rt, loom__tls_home) have room for one, and a second would
   * make handles and loom_now silently resolve against the wrong one. The
   * slot frees up when the runtime is freed (after its shutdown). */
  if (loom__tls_home || loom__tls_rt) return LOOM_EBUSY;
  if (cfg && cfg->stack_size > LOOM_MAX_STACK_SIZE) return UV_EINVAL;
  if (cfg && cfg->offload_threads > LOOM_EXECUTOR_MAX_THREADS) return UV_EINVAL;
  loom_t *rt = calloc(1, sizeof(*rt));
  if (!rt) return UV_ENOMEM;
  int rc = loom__overflow_thread_init(&rt->altstack);
  if (rc) {
    free(rt);
    return rc;
  }
  rt->loop = loop;
  rt->stack_size = cfg && cfg->stack_size ? cfg->stack_size : LOOM_DEFAULT_STACK_SIZE;
  rt->grace_ms = cfg && cfg->shutdown_grace_ms ? cfg->shutdown_grace_ms
                                               : LOOM_SHUTDOWN_GRACE_MS;
  rt->offload_threads = cfg ? cfg->offload_threads : 0;
  loom__stack_pool_init(&rt->stacks);
  /* The pool decays its warm stacks by the scheduler's coarse clock. */
  rt->stacks.clock = &rt->pass_clock;
  loom__records_init(&rt->records, &rt->pass_clock);
  /* These cannot fail for check/idle/timer on a live loop. */
  uv_check_init(loop, &rt->check);
  uv_idle_init(loop, &rt->idle);
  uv_timer_init(loop, &rt->timer);
  uv_timer_init(loop, &rt->grace);
  rt->check.data = rt->idle.data = rt->timer.data = rt->grace.data = rt;
  uv_check_start(&rt->check, loom__on_check);
  uv_unref((uv_handle_t *)&rt->check);
  loom__tls_home = rt;
  loom__debug_mode_init(rt); /* LOOM_DEBUG */
  /* A peer that resets a connection mid-write must give UV_EPIPE, not kill
   * the process: ignore SIGPIPE unless the host has a handler of its own. */
  struct sigaction pipe_sa;
  if (sigaction(SIGPIPE, NULL, &pipe_sa) == 0 && pipe_sa.sa_handler == SIG_DFL)
    signal(SIGPIPE, SIG_IGN);
  *out = rt;
  return 0;
}

uv_loop_t *loom_loop(loom_t *rt) { return rt ? rt->loop : NULL; }
loom_t *loom_runtime(void) { return loom__self() ? loom__tls_rt : NULL; }

static void on_closed(uv_handle_t *h) {
  loom_t *rt = h->data;
  if (--rt->open_handles) return;
  loom__debug_mode_fini(rt);
  loom__stack_pool_destroy(&rt->stacks);
  loom__records_destroy(&rt->records);
  loom__io_spares_free(rt);
  loom__timers_close(rt);
  loom__handles_free(rt);
  loom__debug_free(rt);
  loom__overflow_thread_fini(rt->altstack);
  if (loom__tls_home == rt) loom__tls_home = NULL;
  /* The thread's last switch landed on rt's scheduler fiber: forget it,
   * or a sanitizer's death callback later would read freed memory. */
  if (loom__fiber_running == &rt->sched) loom__fiber_running = NULL;
  if (rt->run_status) *rt->run_status = rt->main_status;
  void (*cb)(void *) = rt->shutdown_cb;
  void *data = rt->shutdown_data;
  free(rt);
  if (cb) cb(data);
}

static void close_one(loom_t *rt, uv_handle_t *h) {
  rt->open_handles++;
  uv_close(h, on_closed);
}

/* ---- I/O objects left open at shutdown -------------------------------------- */

void loom__io_add(loom_t *rt, loom__io_t *o, const char *what,
                  int (*close)(loom__io_t *o, int force)) {
  o->what = what;
  o->close = close;
  loom__list_push_front(&rt->io, &o->link);
}

void loom__io_remove(loom_t *rt, loom__io_t *o) {
  loom__list_remove(&rt->io, &o->link);
  if (loom__list_empty(&rt->io) && rt->io_closing) loom__maybe_close(rt);
}

/* Closes every object on the list with close(o, force) and says how many
 * of each kind it had to act on. Objects leave the list from their close
 * callbacks, later, except servers, which free themselves at once: the
 * next link is read first. */
static void io_close_all(loom_t *rt, int force, const char *verb) {
  /* Few kinds exist (stream, listener, server, UDP socket); a ninth one
   * would still be closed, only not counted. */
  const char *kinds[8] = {0};
  size_t counts[8] = {0}, nk = 0;
  loom__link_t *l, *next;
  loom__list_foreach_safe(l, next, &rt->io) {
    loom__io_t *o = loom__list_entry(l, loom__io_t, link);
    const char *what = o->what;
    if (!o->close(o, force)) continue;
    size_t k = 0;
    while (k < nk && kinds[k] != what) k++;
    if (k == nk && nk < 8) kinds[nk++] = what;
    if (k < 8) counts[k]++;
  }
  for (size_t k = 0; k < nk; k++)
    fprintf(stderr, "loom: shutdown %s %zu %s%s\n", verb, counts[k], kinds[k],
            counts[k] == 1 ? "" : "s");
}

static void on_grace_expired(uv_timer_t *h) {
  loom_t *rt = h->data;
  io_close_all(rt, 1, "aborted, with unsent data,");
}

static void sigint_give_back(loom_t *rt);

void loom__maybe_close_slow(loom_t *rt) {
  if (!loom__list_empty(&rt->io)) {
    if (rt->io_closing) return; /* waiting for the last ones to close */
    rt->io_closing = 1;
    io_close_all(rt, 0, "closed, left open by the program,");
    if (!loom__list_empty(&rt->io))
      uv_timer_start(&rt->grace, on_grace_expired, rt->grace_ms, 0);
    return;
  }
  rt->io_closing = 1;
  uv_timer_stop(&rt->grace);
  sigint_give_back(rt);
  loom__reap_unconsumed(rt);
  loom__offload_close(rt);
  if (rt->inbox) {
    loom__inbox_close(rt); /* posts fail from here on */
    close_one(rt, (uv_handle_t *)&rt->inbox_async);
    close_one(rt, (uv_handle_t *)&rt->inbox_spin);
  }
  close_one(rt, (uv_handle_t *)&rt->check);
  close_one(rt, (uv_handle_t *)&rt->idle);
  close_one(rt, (uv_handle_t *)&rt->timer);
  close_one(rt, (uv_handle_t *)&rt->grace);
  if (rt->has_sigint) close_one(rt, (uv_handle_t *)&rt->sigint);
  if (loom__dump_signal_close(rt, on_closed)) rt->open_handles++;
}

int loom_shutdown(loom_t *rt, void (*cb)(void *data), void *data) {
  if (!rt) return UV_EINVAL;
  if (loom__tls_rt == rt || rt->shutdown_requested) return LOOM_EBUSY;
  rt->shutdown_requested = 1;
  rt->shutdown_cb = cb;
  rt->shutdown_data = data;
  rt->closing = 1;
  loom__cancel_all(rt);
  loom__maybe_close(rt);
  return 0;
}

/* SIGINT under loom_run. Every runtime loom_run is running registers here,
 * from whichever thread it runs on; the handler is installed while at least
 * one is registered. The handler itself only counts: the first SIGINT wakes
 * the first registered runtime through its async handle (uv_async_send is
 * async-signal-safe), whose loop cancels its main task and passes the
 * wake-up on to every other registered runtime, so one Ctrl-C stops a
 * process of N runtimes on N threads. The second SIGINT acts in the
 * handler, so it works even when a task spins without ever suspending.
 *
 * A runtime that leaves waits until no handler can still be using it (the
 * handler may run on any thread, holding the pointer it read), and passes
 * on a wake-up it can no longer deliver. */
static pthread_mutex_t sigint_mu = PTHREAD_MUTEX_INITIALIZER;
static loom__list_t sigint_runs;         /* loom_t.sigint_link; sigint_mu */
static struct sigaction sigint_previous; /* sigint_mu */
static _Atomic(loom_t *) sigint_owner;   /* first of sigint_runs, or NULL */
static atomic_int sigint_count;          /* SIGINTs since the list filled */
static atomic_int sigint_forward;        /* the first must be passed on */
static atomic_int sigint_in_handler;     /* handlers running */

static void on_sigint_signal(int signum) {
  atomic_fetch_add(&sigint_in_handler, 1);
  loom_t *rt = atomic_load(&sigint_owner);
  int second = rt && atomic_fetch_add(&sigint_count, 1) > 0;
  if (rt && !second) {
    atomic_store(&sigint_forward, 1);
    uv_async_send(&rt->sigint);
  }
  atomic_fetch_sub(&sigint_in_handler, 1);
  if (!second) return;
  static const char msg[] = "loom: second SIGINT, aborting\n";
  if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) { /* dying anyway */
  }
  signal(signum, SIG_DFL);
  raise(signum);
}

/* Wakes every registered runtime but `self`; under sigint_mu. */
static void sigint_forward_locked(loom_t *self) {
  if (!atomic_exchange(&sigint_forward, 0)) return;
  loom__link_t *l;
  loom__list_foreach(l, &sigint_runs) {
    loom_t *other = loom__list_entry(l, loom_t, sigint_link);
    if (other != self) uv_async_send(&other->sigint);
  }
}

static void on_sigint_async(uv_async_t *h) {
  loom_t *rt = h->data;
  if (rt->main) loom__cancel(rt->main);
  pthread_mutex_lock(&sigint_mu);
  sigint_forward_locked(rt);
  pthread_mutex_unlock(&sigint_mu);
}

static void sigint_take(loom_t *rt) {
  if (uv_async_init(rt->loop, &rt->sigint, on_sigint_async) != 0) return;
  rt->sigint.data = rt;
  rt->has_sigint = 1;
  uv_unref((uv_handle_t *)&rt->sigint);
  pthread_mutex_lock(&sigint_mu);
  if (loom__list_empty(&sigint_runs)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    atomic_store(&sigint_count, 0);
    atomic_store(&sigint_forward, 0);
    atomic_store(&sigint_owner, rt);
    sigaction(SIGINT, &sa, &sigint_previous);
  }
  loom__list_push_back(&sigint_runs, &rt->sigint_link);
  pthread_mutex_unlock(&sigint_mu);
}

static void sigint_give_back(loom_t *rt) {
  if (!rt->has_sigint) return;
  pthread_mutex_lock(&sigint_mu);
  loom__list_remove(&sigint_runs, &rt->sigint_link);
  loom__link_t *first = sigint_runs.head;
  atomic_store(&sigint_owner,
               first ? loom__list_entry(first, loom_t, sigint_link) : NULL);
  pthread_mutex_unlock(&sigint_mu);
  /* A handler that read the old owner may still be sending to it. */
  while (atomic_load(&sigint_in_handler)) sched_yield();
  pthread_mutex_lock(&sigint_mu);
  sigint_forward_locked(rt); /* its async callback will not run now */
  if (loom__list_empty(&sigint_runs)) sigaction(SIGINT, &sigint_previous, NULL);
  pthread_mutex_unlock(&sigint_mu);
}

/* loom_run's shutdown callback: the runtime is gone, stop the loop even if
 * the program left raw handles active on it. */
typedef struct {
  uv_loop_t *loop;
  int done;
} run_state_t;

static void on_run_done(void *p) {
  run_state_t *st = p;
  st->done = 1;
  uv_stop(st->loop);
}

static void close_left_open(uv_handle_t *h, void *arg) {
  (void)arg;
  if (uv_is_closing(h)) return;
  fprintf(stderr, "loom: main returned with a libuv %s handle %s; closing it\n",
          uv_handle_type_name(h->type), uv_is_active(h) ? "active" : "open");
  uv_close(h, NULL);
}

int loom_run(loom_fn main, void *arg) {
  if (!main) return UV_EINVAL;
  /* uv_run is not reentrant, and a thread has room for one runtime. */
  if (loom__tls_rt || loom__tls_home) return LOOM_EBUSY;
  uv_loop_t loop;
  int rc = uv_loop_init(&loop);
  if (rc) return rc;
  loom_t *rt;
  rc = loom_init(&rt, &loop, NULL);
  if (rc) {
    uv_loop_close(&loop);
    return rc;
  }
  /* Shut down as soon as the last task has ended (main first). */
  run_state_t st = {.loop = &loop};
  int status = 0;
  rt->run_status = &status;
  rt->shutdown_cb = on_run_done;
  rt->shutdown_data = &st;
  rt->shutdown_requested = 1;
  loom_task_opts_t opts = {.name = "main"};
  rc = loom__spawn(rt, NULL, main, arg, &opts, 1);
  if (rc == 0) {
    sigint_take(rt);
    loom__dump_signal_default(rt);
    loom__monitor_from_env(rt);
  } else {
    loom__maybe_close(rt);
  }
  for (int stuck = 0; !st.done; stuck++) {
    uv_run(&loop, UV_RUN_DEFAULT);
    if (st.done) break;
    if (rt->nalive == 0) { /* nothing left but the closing */
      /* Objects still listed with nothing left to close them are held by
       * tasks given up on below (a reference that is never dropped). */
      if (rt->io_closing && !loom__list_empty(&rt->io) && !uv_loop_alive(&loop)) {
        size_t n = 0;
        while (!loom__list_empty(&rt->io)) {
          n++;
          /* The last one closes the runtime. */
          loom__io_remove(rt, loom__list_entry(rt->io.head, loom__io_t, link));
        }
        fprintf(stderr,
                "loom: shutdown leaked %zu I/O object(s) held by "
                "abandoned tasks\n",
                n);
        continue;
      }
      loom__maybe_close(rt);
      continue;
    }
    /* Another thread that holds a loom_remote_t may still wake them. */
    if (loom__inbox_expect(rt)) {
      stuck = -1;
      continue;
    }
    /* Nothing can wake the tasks that are left: no handle, no request,
     * nothing ready. Cancel them once; if even that cannot end them (a
     * shielded wait on each other), give up on them. */
    if (stuck == 0) {
      fprintf(stderr,
              "loom: deadlock: %zu task(s) blocked with nothing left "
              "to wake them; cancelling them\n",
              rt->nalive);
      rt->closing = 1;
      loom__cancel_all(rt);
      continue;
    }
    fprintf(stderr, "loom: %zu task(s) cannot end; abandoning them\n", rt->nalive);
    rt->nalive = 0;
    rc = LOOM_EDEADLK;
    loom__maybe_close(rt);
  }
  /* Raw handles the program left on the loop would keep it from closing. */
  if (uv_loop_alive(&loop) || uv_loop_close(&loop) == UV_EBUSY) {
    uv_walk(&loop, close_left_open, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
      fprintf(stderr, "loom: the loop still has handles open at exit\n");
  }
  return rc ? rc : status;
}
