/* Signal watchers: tasks waiting for POSIX signals (loom_signal_*).
 *
 * A watcher holds one libuv uv_signal_t per signal number it catches (a
 * `catch_t`, heap memory libuv points at until its close callback), counts
 * deliveries per number, and hands them to waiting tasks through a wait
 * queue: a delivery wakes the first waiter with the signal number as its
 * result, or stays counted until the next wait. The uv_signal_t handles are
 * referenced only while a task waits, so a watcher nobody waits on keeps
 * no loop alive (an embedder's, or loom_run's past its main task).
 *
 *   loom_signal_t (obj: list, handle, refs)
 *     catches ──> [catch_t SIGTERM: uv_signal_t] ──> [catch_t SIGINT] ...
 *     pending[signum]: deliveries not yet consumed
 *     waiters: tasks in loom_signal_wait, FIFO
 *
 * Taking a signal and giving it back. libuv installs its own handler when
 * the first uv_signal_t of a number starts, and sets SIG_DFL when the last
 * one stops, whatever was there before. That is how a raw SIGINT watcher
 * breaks loom_run: its handler (runtime.c) is replaced, then SIG_DFL makes
 * the next Ctrl-C kill the process with no clean-up; and how a watcher of
 * SIGPIPE would leave a later EPIPE write killing the process. So loom
 * records, process-wide, the disposition a signal had just before libuv took
 * it (`taken[]`) and, when stopping loom's catch leaves libuv's SIG_DFL
 * behind (no uv_signal_t of that number is left, loom's or raw), restores
 * it. The signal is blocked in the calling thread meanwhile, so a delivery
 * in between waits for the restored handler instead of meeting SIG_DFL.
 * A raw uv_signal_t still holding the number when loom gives it back keeps
 * it; once that one stops libuv sets SIG_DFL (documented in loom/signal.h).
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "loom/signal.h"

#ifdef NSIG
#define LOOM__NSIG NSIG
#else
#define LOOM__NSIG 65
#endif

typedef struct catch_s {
  uv_signal_t h;     /* h.data: the watcher */
  loom__link_t link; /* on the watcher's catches while started */
  int signum;        /* what it catches */
} catch_t;

struct loom_signal_s {
  loom__obj_t obj;              /* list, handle, refs (obj.h) */
  loom__list_t catches;         /* catch_t: started, not yet closing */
  int open;                     /* catch_t handles not yet closed */
  int referenced;               /* the handles are uv_ref'd (a task waits) */
  int closed;                   /* loom_signal_close or shutdown ran */
  loom__wq_t waiters;           /* tasks in loom_signal_wait */
  uint32_t pending[LOOM__NSIG]; /* deliveries not consumed, by number */
};

/* ---- taking a signal from the process and giving it back -------------- */

/* What a signal's disposition was before libuv took it, for the numbers
 * loom took; shared by every runtime of the process, as dispositions are. */
static pthread_mutex_t taken_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
  struct sigaction before; /* restored when libuv lets go */
  int saved;               /* `before` is set */
} taken[LOOM__NSIG];
/* libuv's handler, as seen once it was installed (its address is not
 * public): restoring it would leave a handler that drops every delivery. */
static void (*uv_handler)(int);

/* Starts h catching signum, and remembers what libuv replaces. Also the
 * dump signal's way (core/dump.c), so the two compose. */
int loom__signal_take(uv_signal_t *h, uv_signal_cb cb, int signum) {
  struct sigaction before, after;
  pthread_mutex_lock(&taken_mu);
  sigaction(signum, NULL, &before);
  int rc = uv_signal_start(h, cb, signum);
  if (rc == 0) {
    sigaction(signum, NULL, &after);
    uv_handler = after.sa_handler;
    /* Unchanged: libuv had it already (another watcher, or a raw one
     * whose predecessor loom never saw); what was saved then stands. */
    if (before.sa_handler != after.sa_handler) {
      taken[signum].before = before;
      taken[signum].saved = 1;
    }
  }
  pthread_mutex_unlock(&taken_mu);
  return rc;
}

static int take(catch_t *c, uv_signal_cb cb) {
  return loom__signal_take(&c->h, cb, c->signum);
}

static void on_catch_closed(uv_handle_t *h);

/* Stops h (closing it with close_cb, or only stopping it if close_cb is
 * NULL) and gives signum back if that was the last uv_signal_t of it. */
void loom__signal_give_back(uv_signal_t *h, int signum, uv_close_cb close_cb) {
  sigset_t one, old;
  sigemptyset(&one);
  sigaddset(&one, signum);
  pthread_mutex_lock(&taken_mu);
  pthread_sigmask(SIG_BLOCK, &one, &old);
  if (close_cb)
    uv_close((uv_handle_t *)h, close_cb); /* stops it at once */
  else
    uv_signal_stop(h);
  struct sigaction now;
  sigaction(signum, NULL, &now);
  if (now.sa_handler == SIG_DFL && taken[signum].saved) {
    taken[signum].saved = 0;
    if (taken[signum].before.sa_handler != uv_handler)
      sigaction(signum, &taken[signum].before, NULL);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_mutex_unlock(&taken_mu);
}

/* Stops c (closing its handle) and gives the signal back if that was the
 * last uv_signal_t of its number. */
static void give_back(catch_t *c) {
  loom__signal_give_back(&c->h, c->signum, on_catch_closed);
}

/* ---- the watcher ------------------------------------------------------ */

static loom_signal_t *sget(loom_signal_t *h) {
  return loom__handle_get(NULL, h, LOOM__H_SIGNAL);
}

static void on_catch_closed(uv_handle_t *h) {
  catch_t *c = loom__container_of((uv_signal_t *)h, catch_t, h);
  loom_signal_t *s = h->data;
  free(c);
  if (--s->open == 0 && s->closed) loom__obj_closed(&s->obj);
}

/* The lowest number with a delivery pending, consumed; 0 if none. */
static int take_pending(loom_signal_t *s) {
  loom__link_t *l;
  int best = 0;
  loom__list_foreach(l, &s->catches) {
    catch_t *c = loom__list_entry(l, catch_t, link);
    if (s->pending[c->signum] && (!best || c->signum < best)) best = c->signum;
  }
  if (best) s->pending[best]--;
  return best;
}

static void set_referenced(loom_signal_t *s, int on) {
  if (s->referenced == on) return;
  s->referenced = on;
  loom__link_t *l;
  loom__list_foreach(l, &s->catches) {
    catch_t *c = loom__list_entry(l, catch_t, link);
    if (on)
      uv_ref((uv_handle_t *)&c->h);
    else
      uv_unref((uv_handle_t *)&c->h);
  }
}

static void on_signal(uv_signal_t *h, int signum) {
  loom_signal_t *s = h->data;
  if (signum <= 0 || signum >= LOOM__NSIG) return;
  if (s->pending[signum] < UINT32_MAX) s->pending[signum]++;
  while (!loom__wq_empty(&s->waiters)) {
    int sig = take_pending(s);
    if (!sig) break;
    loom__wq_wake_one(&s->waiters, sig);
  }
}

/* Numbers a watcher may catch: not the ones that cannot be caught, nor the
 * faults (a handler that returns re-runs the faulting instruction; loom's
 * stack-overflow report owns SIGSEGV). */
static int catchable(int signum) {
  if (signum <= 0 || signum >= LOOM__NSIG) return 0;
  switch (signum) {
  case SIGKILL:
  case SIGSTOP:
  case SIGSEGV:
  case SIGBUS:
  case SIGILL:
  case SIGFPE: return 0;
  default: return 1;
  }
}

static int add_catch(loom_signal_t *s, int signum) {
  loom__link_t *l;
  loom__list_foreach(l, &s->catches) {
    if (loom__list_entry(l, catch_t, link)->signum == signum) return 0;
  }
  catch_t *c = calloc(1, sizeof(*c));
  if (!c) return UV_ENOMEM;
  int rc = uv_signal_init(s->obj.rt->loop, &c->h);
  if (rc) {
    free(c);
    return rc;
  }
  c->h.data = s;
  c->signum = signum;
  s->open++;
  rc = take(c, on_signal);
  if (rc) {
    uv_close((uv_handle_t *)&c->h, on_catch_closed);
    return rc;
  }
  if (!s->referenced) uv_unref((uv_handle_t *)&c->h);
  loom__list_push_back(&s->catches, &c->link);
  return 0;
}

static void sig_close(loom_signal_t *s) {
  loom__obj_unpublish(&s->obj);
  if (s->closed) return;
  s->closed = 1;
  loom__wq_wake_all(&s->waiters, UV_EBADF);
  while (!loom__list_empty(&s->catches)) {
    catch_t *c = loom__list_entry(loom__list_pop_front(&s->catches), catch_t, link);
    give_back(c);
  }
  if (s->open == 0) loom__obj_closed(&s->obj);
}

static int io_close(loom__io_t *o, int force) {
  loom_signal_t *s = loom__obj_of(o);
  (void)force;
  if (s->closed) return 0;
  sig_close(s);
  return 1;
}

int loom_signal_open(loom_signal_t **out, int signum) {
  if (!out) return UV_EINVAL;
  *out = NULL;
  if (!catchable(signum)) return UV_EINVAL;
  loom_t *rt = loom_runtime();
  if (!rt) return LOOM_ENOTASK;
  loom_signal_t *s = calloc(1, sizeof(*s));
  int rc = s ? loom__obj_setup(&s->obj, s, rt, "signal watcher", io_close, NULL,
                               UV_UNKNOWN_HANDLE, -1)
             : UV_ENOMEM;
  if (rc) return rc;
  rc = add_catch(s, signum);
  if (rc == 0) rc = loom__obj_publish(&s->obj, LOOM__H_SIGNAL);
  if (rc) {
    sig_close(s);
    return rc;
  }
  *out = s->obj.token;
  return 0;
}

int loom_signal_add(loom_signal_t *h, int signum) {
  if (!h) return UV_EINVAL;
  loom_signal_t *s = sget(h);
  if (!s) return UV_EBADF;
  if (!catchable(signum)) return UV_EINVAL;
  return add_catch(s, signum);
}

int loom_signal_pending(loom_signal_t *h, int signum) {
  if (!h) return UV_EINVAL;
  loom_signal_t *s = sget(h);
  if (!s) return UV_EBADF;
  if (signum <= 0 || signum >= LOOM__NSIG) return UV_EINVAL;
  return s->pending[signum] > INT32_MAX ? INT32_MAX : (int)s->pending[signum];
}

int loom_signal_wait(loom_signal_t *h) {
  if (!h) return UV_EINVAL;
  loom_signal_t *s = sget(h);
  if (!s) return UV_EBADF;
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  int sig = take_pending(s);
  if (sig) return sig;
  loom__wnode_t n;
  memset(&n, 0, sizeof(n));
  set_referenced(s, 1);
  loom__obj_ref(&s->obj); /* a close while we wait must not free s */
  loom__wait_on(&n.w, LOOM__W_SIGNAL, s);
  rc = loom__wq_wait(&s->waiters, &n, self, 0);
  if (loom__wq_empty(&s->waiters)) set_referenced(s, 0);
  loom__obj_unref(&s->obj);
  return rc;
}

typedef struct {
  loom_signal_t *sig; /* the watcher's handle */
  loom_signal_fn fn;
  void *arg;
} handler_t;

static int handler_main(void *p) {
  handler_t hd = *(handler_t *)p;
  free(p);
  for (;;) {
    int sig = loom_signal_wait(hd.sig);
    if (sig == UV_EBADF) return 0; /* the watcher was closed */
    if (sig < 0) return sig;
    int rc = hd.fn(sig, hd.arg);
    if (rc) return rc;
  }
}

int loom_signal_handle(loom_signal_t *h, loom_task_t **task, loom_signal_fn fn,
                       void *arg) {
  if (task) *task = NULL;
  if (!h || !fn) return UV_EINVAL;
  if (!loom__self()) return LOOM_ENOTASK;
  if (!sget(h)) return UV_EBADF;
  handler_t *hd = malloc(sizeof(*hd));
  if (!hd) return UV_ENOMEM;
  *hd = (handler_t){.sig = h, .fn = fn, .arg = arg};
  loom_task_opts_t opts = {.name = "signal handler"};
  int rc = loom_spawn_ex(task, handler_main, hd, &opts);
  if (rc) free(hd);
  return rc;
}

int loom_signal_close(loom_signal_t *h) {
  if (!h) return UV_EINVAL;
  loom_signal_t *s = sget(h);
  if (!s) return UV_EBADF;
  sig_close(s);
  return 0;
}

/* Whether a watcher of rt catches signum (the dump signal then stays
 * quiet: the program has taken the signal over). */
int loom__signal_watched(loom_t *rt, int signum) {
  for (uint32_t i = 0; i < rt->nhandles; i++) {
    loom_signal_t *s = loom__handle_at(rt, i, LOOM__H_SIGNAL);
    if (!s || s->closed) continue;
    loom__link_t *l;
    loom__list_foreach(l, &s->catches) {
      if (loom__list_entry(l, catch_t, link)->signum == signum) return 1;
    }
  }
  return 0;
}

/* The numbers watcher w (a loom_signal_t, for a dump) catches, as
 * "SIGTERM, SIGINT", into buf. */
void loom__signal_describe(const void *w, char *buf, size_t n) {
  static const struct {
    int num;
    const char *name;
  } names[] = {{SIGHUP, "SIGHUP"},    {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"},
               {SIGUSR1, "SIGUSR1"},  {SIGUSR2, "SIGUSR2"}, {SIGTERM, "SIGTERM"},
               {SIGCHLD, "SIGCHLD"},  {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"},
               {SIGWINCH, "SIGWINCH"}};
  const loom_signal_t *s = w;
  size_t len = 0;
  buf[0] = 0;
  loom__link_t *l;
  loom__list_foreach(l, &s->catches) {
    int num = loom__list_entry(l, catch_t, link)->signum;
    const char *name = NULL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
      if (names[i].num == num) name = names[i].name;
    int k = name ? snprintf(buf + len, n - len, "%s%s", len ? ", " : "", name)
                 : snprintf(buf + len, n - len, "%s%d", len ? ", " : "", num);
    if (k < 0 || (size_t)k >= n - len) break;
    len += (size_t)k;
  }
}
