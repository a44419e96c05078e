/* Child processes: loom_process_* on libuv's uv_spawn.
 *
 * A process object holds the uv_process_t libuv watches the child through,
 * the tokens of the pipe streams made for its stdio (ordinary loom streams,
 * stream.c), the child's exit once seen, and the tasks waiting for it:
 *
 *   loom_process_t (obj: list, handle, refs)
 *     h: uv_process_t ... libuv reaps the child and calls on_exit
 *     pipes[3]: stream tokens (stale once the user closed one)
 *     hook: on the owner's hook list (cancelled / returned with it open)
 *     kill_timer: LOOM_PROCESS_TERMINATE's SIGKILL, armed after SIGTERM
 *     waiters: tasks in loom_process_wait
 *
 * The one rule that keeps zombies away: the uv_process_t is closed only
 * once the child has exited (libuv stops watching a closed handle, and a
 * child nobody waits for stays a zombie). So the object lives until both
 * the exit was seen and the user closed it (or the owner returned, or
 * shutdown closed it), whichever comes last; then uv_close, and the close
 * callback frees it unless a call is still in progress (obj.h refs).
 *
 *   spawn ──> RUNNING ──exit──> EXITED ──close──> uv_close ──> freed
 *                │                                  ^
 *                └──close (policy: kill...)──> LINGERING ──exit──┘
 *
 * Signals are sent only while the child has not been reaped: after that
 * its pid may be another process's.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "loom/process.h"

struct loom_process_s {
  uv_process_t h;           /* h.data: this object */
  loom__obj_t obj;          /* list, handle, refs (obj.h) */
  loom_stream_t *pipes[3];  /* tokens; NULL where not a pipe */
  loom__hook_t hook;        /* on the owner's hooks while `hooked` */
  loom_task_t *owner;       /* the spawning task, while hooked */
  loom__timer_t kill_timer; /* TERMINATE: SIGKILL when due */
  loom__wq_t waiters;       /* tasks in loom_process_wait */
  uint64_t kill_after_ms;   /* TERMINATE's delay */
  int pid;                  /* kept: h.pid is libuv's */
  int status;               /* returncode once exited */
  int policy;               /* LOOM_PROCESS_KILL ... */
  unsigned flags;           /* LOOM_PROCESS_GROUP ... */
  uint8_t exited;           /* on_exit ran: reaped */
  uint8_t closed;           /* closed by the user, owner or shutdown */
  uint8_t hooked;           /* hook is on owner's list */
  uint8_t timer_armed;      /* kill_timer is in the heap */
  uint8_t policy_applied;   /* the policy has acted */
  uint8_t handle_closing;   /* uv_close called on h */
};

static loom_process_t *pget(loom_process_t *h) {
  return loom__handle_get(NULL, h, LOOM__H_PROCESS);
}

static void on_handle_closed(uv_handle_t *h) {
  loom_process_t *p = h->data;
  loom__obj_closed(&p->obj);
}

static void close_handle(loom_process_t *p) {
  if (p->handle_closing) return;
  p->handle_closing = 1;
  uv_close((uv_handle_t *)&p->h, on_handle_closed);
}

static void disarm(loom_process_t *p) {
  if (!p->timer_armed) return;
  p->timer_armed = 0;
  loom__timer_remove(p->obj.rt, &p->kill_timer);
}

/* Only while the child has not been reaped: after that its pid (or group
 * id) may belong to someone else. */
static int deliver(loom_process_t *p, int signum) {
  if (p->exited) return UV_ESRCH;
  return uv_kill(p->flags & LOOM_PROCESS_GROUP ? -p->pid : p->pid, signum);
}

static void on_kill_timer(loom__timer_t *tm) {
  loom_process_t *p = loom__container_of(tm, loom_process_t, kill_timer);
  p->timer_armed = 0;
  deliver(p, SIGKILL);
}

/* The owner was cancelled, returned with p open, or p was closed. */
static void apply_policy(loom_process_t *p) {
  if (p->exited || p->policy_applied) return;
  switch (p->policy) {
  case LOOM_PROCESS_KILL:
    p->policy_applied = 1;
    deliver(p, SIGKILL);
    break;
  case LOOM_PROCESS_TERMINATE:
    p->policy_applied = 1;
    deliver(p, SIGTERM);
    p->kill_timer.fire = on_kill_timer;
    loom__timer_add(p->obj.rt, &p->kill_timer,
                    uv_now(p->obj.rt->loop) + p->kill_after_ms);
    p->timer_armed = 1;
    break;
  default: break; /* LEAVE */
  }
}

static void unhook(loom_process_t *p) {
  if (!p->hooked) return;
  p->hooked = 0;
  loom__unhook(p->owner, &p->hook);
  p->owner = NULL;
}

/* Closes p as loom_process_close does, by the object. */
static void process_close(loom_process_t *p) {
  if (p->closed) return;
  p->closed = 1;
  loom__obj_unpublish(&p->obj);
  unhook(p);
  loom__wq_wake_all(&p->waiters, UV_EBADF);
  for (int i = 0; i < 3; i++) {
    loom_stream_t *s = p->pipes[i] ? loom__stream_get(p->pipes[i]) : NULL;
    if (s) loom__stream_close(s);
    p->pipes[i] = NULL;
  }
  apply_policy(p);
  if (p->exited) close_handle(p); /* else on_exit closes it */
}

static void on_exit_cb(uv_process_t *h, int64_t exit_status, int term_signal) {
  loom_process_t *p = h->data;
  p->exited = 1;
  p->status = term_signal ? -term_signal : (int)exit_status;
  disarm(p);
  loom__wq_wake_all(&p->waiters, 0);
  if (p->closed) close_handle(p);
}

/* The owner was cancelled or a scope of it expired: only its cancellation
 * (outside a shield) applies the policy. */
static void on_poked(loom__hook_t *hk) {
  loom_process_t *p = loom__container_of(hk, loom_process_t, hook);
  if (loom__check(p->owner) == UV_ECANCELED) apply_policy(p);
}

/* The owner returns with p open: p is closed with it. */
static void on_exiting(loom__hook_t *hk) {
  process_close(loom__container_of(hk, loom_process_t, hook));
}

/* Shutdown: force 0 closes (the policy applies) what was left open; force
 * 1, once the grace period is over, kills what still runs. */
static int io_close(loom__io_t *o, int force) {
  loom_process_t *p = loom__obj_of(o);
  if (!force) {
    int left_open = !p->closed;
    process_close(p);
    return left_open;
  }
  if (p->exited) return 0;
  disarm(p);
  /* Said here rather than counted: the runtime's report speaks of unsent
   * data, which a process has none of. */
  fprintf(stderr,
          "loom: shutdown killed process %d, still running after the grace "
          "period\n",
          p->pid);
  deliver(p, SIGKILL);
  return 0;
}

/* ---- spawning ---------------------------------------------------------- */

static int check_opts(const loom_process_opts_t *o) {
  if (o->flags & ~(LOOM_PROCESS_GROUP | LOOM_PROCESS_DETACHED)) return UV_EINVAL;
  if (o->on_cancel < LOOM_PROCESS_KILL || o->on_cancel > LOOM_PROCESS_LEAVE)
    return UV_EINVAL;
  for (int i = 0; i < 3; i++) {
    const loom_stdio_t *s = &o->stdio[i];
    switch (s->kind) {
    case LOOM_STDIO_INHERIT:
    case LOOM_STDIO_PIPE:
    case LOOM_STDIO_DEVNULL: break;
    case LOOM_STDIO_FD:
      if (s->fd < 0 || fcntl(s->fd, F_GETFD) == -1) return UV_EBADF;
      break;
    default: return UV_EINVAL;
    }
  }
  return 0;
}

/* Undoes a spawn that failed: the pipe streams (initialised, perhaps
 * opened) and the process handle (libuv initialised it, so it must be
 * closed; it was never started, so nothing is left to reap). */
static void spawn_failed(loom_process_t *p, loom_stream_t *streams[3], int spawned) {
  for (int i = 0; i < 3; i++)
    if (streams[i]) loom__stream_close_now(streams[i]);
  if (spawned) {
    p->closed = 1;
    p->exited = 1; /* nothing to reap */
    close_handle(p);
  } else {
    loom__obj_free(&p->obj);
  }
}

int loom_process_spawn(loom_process_t **out, char *const argv[],
                       const loom_process_opts_t *opts) {
  if (!out) return UV_EINVAL;
  *out = NULL;
  if (!argv || !argv[0]) return UV_EINVAL;
  static const loom_process_opts_t defaults = {.on_cancel = LOOM_PROCESS_KILL};
  const loom_process_opts_t *o = opts ? opts : &defaults;
  int rc = check_opts(o);
  if (rc) return rc;
  loom_task_t *self = loom__self();
  rc = loom__check(self);
  if (rc) return rc;
  loom_t *rt = self->rt;

  loom_process_t *p = calloc(1, sizeof(*p));
  if (!p) return UV_ENOMEM;
  loom__obj_setup(&p->obj, p, rt, "process", io_close, NULL, UV_UNKNOWN_HANDLE, -1);
  p->h.data = p;
  p->policy = o->on_cancel;
  p->flags = o->flags;
  p->kill_after_ms = o->kill_after_ms ? o->kill_after_ms : LOOM_PROCESS_KILL_AFTER_MS;

  /* The pipes first: made after p, they come before it on the runtime's
   * list, so shutdown closes p (which closes them) first. */
  loom_stream_t *streams[3] = {NULL, NULL, NULL};
  uv_stdio_container_t stdio[3];
  for (int i = 0; i < 3; i++) {
    const loom_stdio_t *s = &o->stdio[i];
    switch (s->kind) {
    case LOOM_STDIO_PIPE:
      rc = loom__stream_new(&streams[i], rt, UV_NAMED_PIPE, -1);
      if (rc) {
        spawn_failed(p, streams, 0);
        return rc;
      }
      stdio[i].flags = (uv_stdio_flags)(UV_CREATE_PIPE |
                                        (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE));
      stdio[i].data.stream = &streams[i]->u.stream;
      break;
    case LOOM_STDIO_DEVNULL:
      stdio[i].flags = UV_IGNORE; /* libuv opens /dev/null for 0-2 */
      break;
    case LOOM_STDIO_FD:
      stdio[i].flags = UV_INHERIT_FD;
      stdio[i].data.fd = s->fd;
      break;
    default:
      stdio[i].flags = UV_INHERIT_FD;
      stdio[i].data.fd = i;
      break;
    }
  }
  uv_process_options_t uo = {
      .exit_cb = on_exit_cb,
      .file = o->file ? o->file : argv[0],
      .args = (char **)argv,
      .env = (char **)o->env,
      .cwd = o->cwd,
      .flags = o->flags ? UV_PROCESS_DETACHED : 0,
      .stdio_count = 3,
      .stdio = stdio,
  };
  rc = uv_spawn(rt->loop, &p->h, &uo);
  if (rc) {
    spawn_failed(p, streams, 1);
    return rc;
  }
  p->pid = p->h.pid;
  for (int i = 0; i < 3 && rc == 0; i++)
    if (streams[i]) rc = loom__stream_publish(streams[i], &p->pipes[i]);
  if (rc == 0) rc = loom__obj_publish(&p->obj, LOOM__H_PROCESS);
  if (rc) {
    /* The child runs: kill it, close the pipes; it is reaped later. */
    for (int i = 0; i < 3; i++) {
      if (streams[i]) loom__stream_close_now(streams[i]);
      p->pipes[i] = NULL;
    }
    p->policy = LOOM_PROCESS_KILL;
    process_close(p);
    return rc;
  }
  p->owner = self;
  p->hook.poked = on_poked;
  p->hook.exiting = on_exiting;
  loom__hook(self, &p->hook);
  p->hooked = 1;
  *out = p->obj.token;
  return 0;
}

/* ---- the rest ----------------------------------------------------------- */

int loom_process_pid(loom_process_t *h) {
  if (!h) return UV_EINVAL;
  loom_process_t *p = pget(h);
  return p ? p->pid : UV_EBADF;
}

loom_stream_t *loom_process_stream(loom_process_t *h, int fd) {
  loom_process_t *p = h ? pget(h) : NULL;
  if (!p || fd < 0 || fd > 2 || !p->pipes[fd]) return NULL;
  return loom__stream_get(p->pipes[fd]) ? p->pipes[fd] : NULL;
}

int loom_process_poll(loom_process_t *h, int *status) {
  if (!h) return UV_EINVAL;
  loom_process_t *p = pget(h);
  if (!p) return UV_EBADF;
  if (!p->exited) return UV_EAGAIN;
  if (status) *status = p->status;
  return 0;
}

/* The caller's wait ended with rc: a cancelled owner applies the policy. */
static int after_wait(loom_process_t *p, loom_task_t *self, int rc) {
  if (rc == UV_ECANCELED && p->hooked && p->owner == self) apply_policy(p);
  return rc;
}

int loom_process_wait(loom_process_t *h, int *status) {
  if (!h) return UV_EINVAL;
  loom_process_t *p = pget(h);
  if (!p) return UV_EBADF;
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return self ? after_wait(p, self, rc) : rc;
  if (!p->exited) {
    loom__wnode_t n;
    memset(&n, 0, sizeof(n));
    loom__obj_ref(&p->obj); /* a close while we wait must not free p */
    loom__wait_on(&n.w, LOOM__W_PROCESS, p);
    rc = loom__wq_wait(&p->waiters, &n, self, 0);
    if (rc == 0 && !p->exited) rc = UV_EBADF;
    if (rc) rc = after_wait(p, self, rc);
    loom__obj_unref(&p->obj); /* may free p */
    if (rc) return rc;
  }
  if (status) *status = p->status;
  return 0;
}

int loom_process_signal(loom_process_t *h, int signum) {
  if (!h) return UV_EINVAL;
  loom_process_t *p = pget(h);
  if (!p) return UV_EBADF;
  if (signum < 0 || signum >= NSIG) return UV_EINVAL;
  return deliver(p, signum);
}

int loom_process_kill(loom_process_t *h) { return loom_process_signal(h, SIGKILL); }

int loom_process_close(loom_process_t *h) {
  if (!h) return UV_EINVAL;
  loom_process_t *p = pget(h);
  if (!p) return UV_EBADF;
  process_close(p);
  return 0;
}

/* ---- communicate --------------------------------------------------------- */

/* One of communicate's jobs, each a task of its own. */
typedef struct {
  loom_stream_t *s;  /* the pipe */
  const void *input; /* writer: what to write */
  size_t n;
  size_t max; /* reader: the cap */
  char *data; /* reader: what was read */
  size_t len;
} job_t;

static int writer(void *arg) {
  job_t *j = arg;
  int rc = j->n ? loom_write(j->s, j->input, j->n) : 0;
  if (rc == 0) rc = loom_drain(j->s);
  loom_close(j->s);
  /* The child stopped reading: its business, as in asyncio. */
  return rc == UV_EPIPE || rc == UV_ECONNRESET ? 0 : rc;
}

static int reader(void *arg) {
  job_t *j = arg;
  int rc = loom_read_all(j->s, &j->data, &j->len, j->max);
  if (rc == 0) loom_close(j->s);
  return rc;
}

int loom_process_communicate(loom_process_t *h, loom_communicate_t *c) {
  if (!h || !c) return UV_EINVAL;
  c->out = c->err = NULL;
  c->out_len = c->err_len = 0;
  loom_process_t *p = pget(h);
  if (!p) return UV_EBADF;
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return self ? after_wait(p, self, rc) : rc;
  loom_stream_t *in = loom_process_stream(h, 0);
  if (c->input && c->input_len && !in) return UV_EINVAL;
  job_t jobs[3];
  memset(jobs, 0, sizeof(jobs));
  loom_task_t *tasks[3];
  int statuses[3] = {0, 0, 0};
  size_t nt = 0;
  size_t max = c->max_output ? c->max_output : SIZE_MAX;
  for (int i = 0; i < 3; i++) {
    loom_stream_t *s = loom_process_stream(h, i);
    if (!s) continue;
    jobs[i] = (job_t){
        .s = s, .input = c->input, .n = c->input ? c->input_len : 0, .max = max};
    loom_task_opts_t topts = {.name = i ? "communicate reader" : "communicate writer"};
    rc = loom_spawn_ex(&tasks[nt], i ? reader : writer, &jobs[i], &topts);
    if (rc) break;
    nt++;
  }
  loom__obj_ref(&p->obj);
  if (rc) {
    /* Cancel what started; gather still awaits it. */
    for (size_t k = 0; k < nt; k++) loom_cancel(tasks[k]);
    loom_gather(tasks, nt, statuses, 0);
  } else {
    rc = loom_gather(tasks, nt, statuses, LOOM_FAIL_FAST);
    if (rc == 0) rc = loom_process_wait(h, &c->status);
  }
  if (rc) rc = after_wait(p, self, rc);
  loom__obj_unref(&p->obj); /* may free p */
  if (rc) {
    free(jobs[1].data);
    free(jobs[2].data);
    return rc;
  }
  c->out = jobs[1].data;
  c->out_len = jobs[1].len;
  c->err = jobs[2].data;
  c->err_len = jobs[2].len;
  return 0;
}
