/* The runtime: binding to a libuv loop, loom_run, embedding and shutdown.
 *
 * A runtime owns four libuv handles on its loop: a check handle that runs the
 * scheduler pass after every poll, an idle handle active only while tasks are
 * ready (so the loop polls without blocking), one timer for all of loom's
 * deadlines, and, under loom_run, an async handle that SIGINT pokes. The check handle is
 * unreferenced: an embedded runtime with no work keeps no host loop alive.
 *
 * Shutdown is the same for loom_run and for embedders: mark the runtime
 * closing (tasks spawned from now on are born cancelled), cancel every task,
 * and once the last one has ended, report tasks never joined nor detached,
 * close the handles, and free the runtime from the last close callback.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

LOOM__TLS loom_t *loom__tls_home;

int loom_init(loom_t **out, uv_loop_t *loop, const loom_config_t *cfg) {
  if (!out || !loop) return UV_EINVAL;
  loom_t *rt = calloc(1, sizeof(*rt));
  if (!rt) return UV_ENOMEM;
  int rc = loom__overflow_thread_init(&rt->altstack);
  if (rc) {
    free(rt);
    return rc;
  }
  rt->loop = loop;
  rt->stack_size = cfg && cfg->stack_size ? cfg->stack_size
                                          : LOOM_DEFAULT_STACK_SIZE;
  loom__stack_pool_init(&rt->stacks);
  /* These cannot fail for check/idle/timer on a live loop. */
  uv_check_init(loop, &rt->check);
  uv_idle_init(loop, &rt->idle);
  uv_timer_init(loop, &rt->timer);
  rt->check.data = rt->idle.data = rt->timer.data = rt;
  uv_check_start(&rt->check, loom__on_check);
  uv_unref((uv_handle_t *)&rt->check);
  if (!loom__tls_home) loom__tls_home = rt;
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
  loom__stack_pool_destroy(&rt->stacks);
  loom__timer_free(rt);
  free(rt->slots);
  loom__handles_free(rt);
  loom__overflow_thread_fini(rt->altstack);
  if (loom__tls_home == rt) loom__tls_home = NULL;
  void (*cb)(void *) = rt->shutdown_cb;
  void *data = rt->shutdown_data;
  free(rt);
  if (cb) cb(data);
}

static void close_one(loom_t *rt, uv_handle_t *h) {
  rt->open_handles++;
  uv_close(h, on_closed);
}

void loom__maybe_close(loom_t *rt) {
  if (!rt->shutdown_requested || rt->nalive || rt->open_handles) return;
  loom__reap_unconsumed(rt);
  close_one(rt, (uv_handle_t *)&rt->check);
  close_one(rt, (uv_handle_t *)&rt->idle);
  close_one(rt, (uv_handle_t *)&rt->timer);
  if (rt->has_sigint) close_one(rt, (uv_handle_t *)&rt->sigint);
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

/* SIGINT under loom_run. The handler itself only counts: the first SIGINT
 * wakes the loop through an async handle (uv_async_send is async-signal-safe)
 * and the loop cancels the main task; the second acts in the handler, so it
 * works even when a task spins without ever suspending. One loom_run at a
 * time owns SIGINT (other threads' runtimes leave it alone). */
static _Atomic(loom_t *) sigint_owner;
static struct sigaction sigint_previous;

static void on_sigint_signal(int signum) {
  loom_t *rt = atomic_load(&sigint_owner);
  if (!rt) return;
  if (rt->sigints++ == 0) {
    uv_async_send(&rt->sigint);
    return;
  }
  static const char msg[] = "loom: second SIGINT, aborting\n";
  if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) { /* dying anyway */ }
  signal(signum, SIG_DFL);
  raise(signum);
}

static void on_sigint_async(uv_async_t *h) {
  loom_t *rt = h->data;
  if (rt->main) loom__cancel(rt->main);
}

static void sigint_take(loom_t *rt) {
  loom_t *none = NULL;
  if (!atomic_compare_exchange_strong(&sigint_owner, &none, rt)) return;
  if (uv_async_init(rt->loop, &rt->sigint, on_sigint_async) != 0) {
    atomic_store(&sigint_owner, NULL);
    return;
  }
  rt->sigint.data = rt;
  rt->has_sigint = 1;
  uv_unref((uv_handle_t *)&rt->sigint);
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_sigint_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, &sigint_previous);
}

static void sigint_give_back(loom_t *rt) {
  if (atomic_load(&sigint_owner) != rt) return;
  sigaction(SIGINT, &sigint_previous, NULL);
  atomic_store(&sigint_owner, NULL);
}

int loom_run(loom_fn main, void *arg) {
  if (!main) return UV_EINVAL;
  if (loom__tls_rt) return LOOM_EBUSY; /* uv_run is not reentrant */
  uv_loop_t loop;
  int rc = uv_loop_init(&loop);
  if (rc) return rc;
  loom_t *rt;
  rc = loom_init(&rt, &loop, NULL);
  if (rc) {
    uv_loop_close(&loop);
    return rc;
  }
  loom_task_opts_t opts = {"main", 0};
  rc = loom__spawn(rt, NULL, main, arg, &opts, 1);
  if (rc == 0) sigint_take(rt);
  int status = rc;
  for (int stuck = 0; rc == 0; stuck++) {
    uv_run(&loop, UV_RUN_DEFAULT);
    if (rt->nalive == 0) break;
    /* Nothing can wake the tasks that are left: no handle, no request,
     * nothing ready. Cancel them once; if even that cannot end them (a
     * shielded wait on each other), give up on them. */
    if (stuck == 0) {
      fprintf(stderr, "loom: deadlock: %zu task(s) blocked with nothing left "
                      "to wake them; cancelling them\n", rt->nalive);
      rt->closing = 1;
      loom__cancel_all(rt);
      continue;
    }
    fprintf(stderr, "loom: %zu task(s) cannot end; abandoning them\n",
            rt->nalive);
    rt->nalive = 0;
    rc = LOOM_EDEADLK;
  }
  if (rc == 0) status = rt->main_status;
  else status = rc;
  sigint_give_back(rt);
  rt->shutdown_requested = 1;
  rt->closing = 1;
  loom__maybe_close(rt);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0)
    fprintf(stderr, "loom: the loop still has handles open at exit\n");
  return status;
}
