/* Child processes: loom_process_* on posix_spawn, reaped through a pidfd.
 *
 * Why not uv_spawn: libuv 1.44 starts a child with fork(), which copies the
 * parent's page tables and marks every writable page copy-on-write until
 * the child calls exec. A loom program maps a stack per task, so that
 * costs it more than most programs: 2x the time of posix_spawn with a
 * handful of tasks, 7x with 1,000 tasks asleep (docs/process.md). glibc's
 * posix_spawn clones with CLONE_VM | CLONE_VFORK, as Go does, and copies
 * nothing; it reports a failed exec as its return value, so a missing
 * program is still an error of the spawn call.
 *
 * A process object holds the exit watcher, the tokens of the pipe streams
 * made for its stdio (ordinary loom streams, stream.c), the child's exit
 * once seen, and the tasks waiting for it:
 *
 *   loom_process_t (obj: list, handle, refs)
 *     poll: uv_poll_t on a pidfd (Linux >= 5.3), readable once the
 *        child exits; or, where pidfd_open fails, a link on the list of
 *        the runtime's SIGCHLD watcher (chld_t). Either way reap() calls
 *        waitpid(pid): loom's own child, never waitpid(-1), which would
 *        take the host's children.
 *     pipes[3]: stream tokens (stale once the user closed one)
 *     hook: on the owner's hook list (cancelled / returned with it open)
 *     kill_timer: LOOM_PROCESS_TERMINATE's SIGKILL, armed after SIGTERM
 *     waiters: tasks in loom_process_wait
 *
 * The one rule that keeps zombies away: the watch ends only once the
 * child has been reaped. So the object lives until both the exit was
 * seen and the user closed it (or the owner returned, or shutdown closed
 * it), whichever comes last; then uv_close, and the close callback frees
 * it unless a call is still in progress (obj.h refs).
 *
 *   spawn ──> RUNNING ──exit──> EXITED ──close──> uv_close ──> freed
 *                │                                  ^
 *                └──close (policy: kill...)──> LINGERING ──exit──┘
 *
 * Signals are sent only while the child has not been reaped: after that
 * its pid may be another process's.
 */
#define _GNU_SOURCE /* posix_spawn_file_actions_addchdir_np, POSIX_SPAWN_SETSID */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/introspect.h"
#include "io.h"
#include "loom/process.h"

extern char **environ;

/* Tests set it to take the SIGCHLD path where pidfd_open works. */
extern int loom__process_no_pidfd;
int loom__process_no_pidfd;

struct loom_process_s {
  uv_poll_t poll;           /* on pidfd; poll.data: this object */
  loom__link_t link;        /* on chld's list */
  struct chld_s *chld;      /* watched through SIGCHLD: its watcher */
  loom__obj_t obj;          /* list, handle, refs (obj.h) */
  loom_stream_t *pipes[3];  /* tokens; NULL where not a pipe */
  loom__hook_t hook;        /* on the owner's hooks while `hooked` */
  loom_task_t *owner;       /* the spawning task, while hooked */
  loom__timer_t kill_timer; /* TERMINATE: SIGKILL when due */
  loom__wq_t waiters;       /* tasks in loom_process_wait */
  uint64_t kill_after_ms;   /* TERMINATE's delay */
  int pid;
  int pidfd;              /* -1: not watched through a pidfd */
  int status;             /* returncode once exited */
  int policy;             /* LOOM_PROCESS_KILL ... */
  unsigned flags;         /* LOOM_PROCESS_GROUP ... */
  uint8_t exited;         /* reap() reaped it */
  uint8_t closed;         /* closed by the user, owner or shutdown */
  uint8_t hooked;         /* hook is on owner's list */
  uint8_t timer_armed;    /* kill_timer is in the heap */
  uint8_t policy_applied; /* the policy has acted */
  uint8_t handle_closing; /* the watch is closed: p is freed once that
                           is done and no call holds p */
};

static loom_process_t *pget(loom_process_t *h) {
  return loom__handle_get(NULL, h, LOOM__H_PROCESS);
}

static void on_handle_closed(uv_handle_t *h) {
  loom_process_t *p = h->data;
  if (p->pidfd >= 0) close(p->pidfd); /* after the poll handle: libuv's rule */
  loom__obj_closed(&p->obj);
}

/* Once the child was reaped (or never started). */
static void close_handle(loom_process_t *p) {
  if (p->handle_closing) return;
  p->handle_closing = 1;
  if (p->pidfd >= 0)
    uv_close((uv_handle_t *)&p->poll, on_handle_closed);
  else
    loom__obj_closed(&p->obj); /* no handle of its own: may free p */
}

/* ---- SIGCHLD, where there is no pidfd ------------------------------------ */

/* One SIGCHLD watcher per runtime, shared by the children watched that
 * way: at each SIGCHLD it calls waitpid on each of them. (A uv_signal_t
 * per child would make libuv queue a message per child at every SIGCHLD,
 * and libuv drops messages once its pipe is full: a storm of children
 * would lose exits.) It lives while it has children, and is an io object
 * of the runtime so that shutdown waits for its close. It takes SIGCHLD
 * and gives it back the way loom_signal watchers do (signal.c): libuv
 * leaves SIG_DFL behind when its last watcher of a number stops, which
 * would drop a host's own SIGCHLD handler; the registry restores what was
 * there before, whichever of the watchers stops last. */
typedef struct chld_s {
  uv_signal_t sig;
  loom__io_t io;
  loom_t *rt;
  loom__list_t children; /* loom_process_t.link */
  int dispatching;       /* in on_sigchld: it must not close */
} chld_t;

static __thread chld_t *tl_chld; /* this thread's runtime's */

static void reap(loom_process_t *p);

static void chld_closed(uv_handle_t *h) {
  chld_t *c = loom__container_of((uv_signal_t *)h, chld_t, sig);
  loom__io_remove(c->rt, &c->io);
  free(c);
}

static void chld_maybe_close(chld_t *c) {
  if (!loom__list_empty(&c->children) || c->dispatching) return;
  if (tl_chld == c) tl_chld = NULL;
  loom__signal_give_back(&c->sig, SIGCHLD, chld_closed);
}

static void on_sigchld(uv_signal_t *h, int signum) {
  (void)signum;
  chld_t *c = loom__container_of(h, chld_t, sig);
  c->dispatching = 1;
  loom__link_t *pos, *tmp;
  loom__list_foreach_safe(pos, tmp, &c->children) {
    reap(loom__list_entry(pos, loom_process_t, link)); /* may free it */
  }
  c->dispatching = 0;
  chld_maybe_close(c);
}

/* Nothing to do: it closes itself once its last child is reaped, and
 * shutdown closes and kills those children as io objects of their own. */
static int chld_io_close(loom__io_t *o, int force) {
  (void)o;
  (void)force;
  return 0;
}

/* Puts p on the runtime's watcher, started first if need be. */
static int chld_watch(loom_process_t *p) {
  loom_t *rt = p->obj.rt;
  chld_t *c = tl_chld;
  if (!c || c->rt != rt) {
    c = calloc(1, sizeof(*c));
    if (!c) return UV_ENOMEM;
    int rc = uv_signal_init(rt->loop, &c->sig);
    if (rc) {
      free(c);
      return rc;
    }
    c->rt = rt;
    loom__list_init(&c->children);
    loom__io_add(rt, &c->io, "SIGCHLD watcher", chld_io_close);
    rc = loom__signal_take(&c->sig, on_sigchld, SIGCHLD);
    if (rc) {
      uv_close((uv_handle_t *)&c->sig, chld_closed);
      return rc;
    }
    tl_chld = c;
  }
  loom__list_push_back(&c->children, &p->link);
  p->chld = c;
  return 0;
}

static void chld_drop(loom_process_t *p) {
  chld_t *c = p->chld;
  if (!c) return;
  p->chld = NULL;
  loom__list_remove(&c->children, &p->link);
  chld_maybe_close(c);
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
    uint64_t now = uv_now(p->obj.rt->loop);
    /* Saturating: a huge delay means never, not a wrap to at once. */
    loom__timer_add(
        p->obj.rt, &p->kill_timer,
        p->kill_after_ms > UINT64_MAX - now ? UINT64_MAX : now + p->kill_after_ms);
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

/* The child may have exited: reaps it if so. The watcher is stopped, not
 * closed: closing it is process_close's business (the zombie rule). */
static void reap(loom_process_t *p) {
  if (p->exited || p->pid <= 0) return; /* pid 0: being spawned */
  int st = 0;
  pid_t r;
  do r = waitpid(p->pid, &st, WNOHANG);
  while (r == -1 && errno == EINTR);
  if (r == 0) return; /* runs still: another child's SIGCHLD */
  p->exited = 1;
  if (r == p->pid)
    p->status = WIFSIGNALED(st) ? -WTERMSIG(st) : WIFEXITED(st) ? WEXITSTATUS(st) : 0;
  else
    p->status = 0; /* ECHILD: reaped by someone else (SIGCHLD set to
                      SIG_IGN): its status is lost */
  if (p->pidfd >= 0)
    uv_poll_stop(&p->poll); /* an exited child's pidfd stays readable */
  else
    chld_drop(p);
  disarm(p);
  loom__wq_wake_all(&p->waiters, 0);
  if (p->closed) close_handle(p);
}

static void on_pidfd(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  reap(h->data);
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
#ifndef POSIX_SPAWN_SETSID
  if (o->flags & LOOM_PROCESS_DETACHED) return UV_ENOSYS;
#endif
  return 0;
}

/* Whether exec could run `path`, asked in the parent (relative to dirfd,
 * the child's cwd): 0 or exec's error. posix_spawn itself reports a
 * failed exec too, but not where clone(CLONE_VFORK) is turned into a
 * fork (valgrind): there the child would just exit 127. */
static int check_exec(int dirfd, const char *path) {
  struct stat st;
  if (fstatat(dirfd, path, &st, 0) != 0) return -errno;
  if (!S_ISREG(st.st_mode)) return UV_EACCES; /* what execve says of a directory */
  if (faccessat(dirfd, path, X_OK, 0) != 0) return -errno;
  return 0;
}

/* The program to run: file itself if it has a '/', else the first
 * executable file of that name in the directories of PATH (the child's
 * own PATH if env is given, as execvp in the child would see it; without
 * one, "/bin:/usr/bin"). *path is file or a malloc'd string (*owned). */
static int resolve(const char *file, char *const *env, int dirfd, char **path,
                   int *owned) {
  *path = NULL;
  *owned = 0;
  if (!*file) return UV_ENOENT;
  if (strchr(file, '/')) {
    *path = (char *)file;
    return check_exec(dirfd, file);
  }
  const char *dirs = NULL;
  if (env) {
    for (char *const *e = env; *e; e++)
      if (strncmp(*e, "PATH=", 5) == 0) {
        dirs = *e + 5;
        break;
      }
  } else {
    dirs = getenv("PATH");
  }
  if (!dirs) dirs = "/bin:/usr/bin";
  size_t flen = strlen(file);
  char *buf = malloc(strlen(dirs) + flen + 2);
  if (!buf) return UV_ENOMEM;
  int rc = UV_ENOENT;
  for (const char *d = dirs;; d++) {
    const char *end = strchr(d, ':');
    size_t dlen = end ? (size_t)(end - d) : strlen(d);
    size_t k = 0;
    if (dlen) { /* an empty entry is the current directory */
      memcpy(buf, d, dlen);
      buf[dlen] = '/';
      k = dlen + 1;
    }
    memcpy(buf + k, file, flen + 1);
    int e = check_exec(dirfd, buf);
    if (e == 0) {
      *path = buf;
      *owned = 1;
      return 0;
    }
    if (e == UV_EACCES) rc = e; /* as execvp: reported if nothing else runs */
    if (!end) break;
    d = end;
  }
  free(buf);
  return rc;
}

/* What the child's fds 0-2 are made of, set up before the spawn. */
typedef struct {
  loom_stream_t *streams[3]; /* the parent's ends of the pipes */
  int temp[3];               /* descriptors of ours closed after the spawn;
                                -1: none */
} stdio_t;

/* Moves a descriptor of ours above 2 (close-on-exec) if it is one of 0-2,
 * so that no dup2 onto the child's 0-2 can overwrite another's source.
 * Returns the descriptor to use, or a negative error. */
static int above_stdio(int fd, int *temp) {
  if (fd > 2) return fd;
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (d < 0) return -errno;
  *temp = d;
  return d;
}

static int add_dup(posix_spawn_file_actions_t *fa, int from, int to) {
  return -posix_spawn_file_actions_adddup2(fa, from, to);
}

/* The file actions for fd i of the child, and for a pipe its parent end
 * as a loom stream. */
static int stdio_one(loom_t *rt, const loom_stdio_t *s, int i, stdio_t *io,
                     posix_spawn_file_actions_t *fa) {
  switch (s->kind) {
  case LOOM_STDIO_PIPE: {
    /* A socket pair as libuv makes, both ends close-on-exec: a spawn
     * running at the same time on another thread inherits neither. */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -errno;
    int rc = loom__stream_new(&io->streams[i], rt, UV_NAMED_PIPE, -1);
    if (rc == 0) rc = uv_pipe_open(&io->streams[i]->u.pipe, sv[0]);
    if (rc) {
      close(sv[0]);
      close(sv[1]);
      return rc;
    }
    io->temp[i] = sv[1];
    int fd = sv[1];
    if (fd <= 2) { /* 0-2 were closed in the parent */
      int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
      if (d < 0) return -errno;
      close(fd);
      io->temp[i] = fd = d;
    }
    return add_dup(fa, fd, i); /* dup2 clears close-on-exec */
  }
  case LOOM_STDIO_DEVNULL:
    return -posix_spawn_file_actions_addopen(fa, i, "/dev/null", i ? O_RDWR : O_RDONLY,
                                             0);
  default: { /* INHERIT, FD */
    int fd = s->kind == LOOM_STDIO_FD ? s->fd : i;
    if (fd == i) {
      /* Kept as is; a close-on-exec flag is cleared (dup2 onto itself,
       * glibc >= 2.29), as libuv does. Closed in the parent: closed in
       * the child. */
      int fl = fcntl(fd, F_GETFD);
      return fl != -1 && (fl & FD_CLOEXEC) ? add_dup(fa, fd, i) : 0;
    }
    fd = above_stdio(fd, &io->temp[i]);
    return fd < 0 ? fd : add_dup(fa, fd, i);
  }
  }
}

static int attr_setup(posix_spawnattr_t *at, unsigned flags) {
  /* As libuv's child does before exec: an empty signal mask, and the
   * default action for signals 1-31, so that what the parent ignores
   * (loom ignores SIGPIPE) is not ignored by the program. */
  sigset_t none, dfl;
  sigemptyset(&none);
  sigemptyset(&dfl);
  for (int n = 1; n < 32; n++)
    if (n != SIGKILL && n != SIGSTOP) sigaddset(&dfl, n);
  short fl = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  int e = posix_spawnattr_setsigmask(at, &none);
  if (!e) e = posix_spawnattr_setsigdefault(at, &dfl);
#ifdef POSIX_SPAWN_SETSID
  if (flags & LOOM_PROCESS_DETACHED)
    fl |= POSIX_SPAWN_SETSID; /* a session leader leads its group: no
                                 setpgid (it would fail with EPERM) */
  else
#endif
      if (flags & LOOM_PROCESS_GROUP) {
    fl |= POSIX_SPAWN_SETPGROUP;
    if (!e) e = posix_spawnattr_setpgroup(at, 0);
  }
  if (!e) e = posix_spawnattr_setflags(at, fl);
  return -e;
}

#ifdef __linux__
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#endif

/* Whether pidfd_open works here, asked once: where it does not (Linux <
 * 5.3, a seccomp filter, valgrind), the SIGCHLD watcher is started before
 * the child, so that no exit goes unseen. */
static int pidfd_usable(void) {
#ifdef __linux__
  static int known; /* 1 yes, -1 no, 0 not asked yet */
  if (loom__process_no_pidfd) return 0;
  int k = __atomic_load_n(&known, __ATOMIC_RELAXED);
  if (k == 0) {
    int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    k = fd >= 0 ? 1 : -1;
    if (fd >= 0) close(fd);
    __atomic_store_n(&known, k, __ATOMIC_RELAXED);
  }
  return k > 0;
#else
  return 0;
#endif
}

/* Watches the child through a pidfd. Sets *inited once p->poll must be
 * closed. An error before that: no pidfd (out of descriptors...). */
static int pidfd_watch(loom_process_t *p, int *inited) {
#ifdef __linux__
  int fd = (int)syscall(SYS_pidfd_open, p->pid, 0);
  if (fd < 0) return -errno;
  int rc = uv_poll_init(p->obj.rt->loop, &p->poll, fd);
  if (rc) {
    close(fd);
    return rc;
  }
  *inited = 1;
  p->pidfd = fd;
  p->poll.data = p;
  return uv_poll_start(&p->poll, UV_READABLE, on_pidfd);
#else
  (void)p;
  (void)inited;
  return UV_ENOSYS;
#endif
}

/* Starts the child: 0 and *pid, or the error of a child that did not
 * start (nothing to reap). */
static int start(loom_t *rt, char *const argv[], const loom_process_opts_t *o,
                 stdio_t *io, pid_t *pid) {
  int dirfd = AT_FDCWD;
  if (o->cwd) {
    dirfd = open(o->cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) return -errno;
  }
  char *path;
  int owned;
  int rc = resolve(o->file ? o->file : argv[0], o->env, dirfd, &path, &owned);
  if (dirfd >= 0) close(dirfd);
  if (rc) return rc;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  rc = -posix_spawn_file_actions_init(&fa);
  if (rc) goto out_path;
  rc = -posix_spawnattr_init(&at);
  if (rc) goto out_fa;
  for (int i = 0; i < 3 && rc == 0; i++) rc = stdio_one(rt, &o->stdio[i], i, io, &fa);
  if (rc == 0 && o->cwd) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 29)
    rc = -posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
#else
    rc = UV_ENOSYS;
#endif
  }
  if (rc == 0) rc = attr_setup(&at, o->flags);
  if (rc == 0) rc = -posix_spawn(pid, path, &fa, &at, argv, o->env ? o->env : environ);
  posix_spawnattr_destroy(&at);
out_fa:
  posix_spawn_file_actions_destroy(&fa);
out_path:
  if (owned) free(path);
  return rc;
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
  p->pidfd = -1;
  p->policy = o->on_cancel;
  p->flags = o->flags;
  p->kill_after_ms = o->kill_after_ms ? o->kill_after_ms : LOOM_PROCESS_KILL_AFTER_MS;

  /* The pipes after p: they come before it on the runtime's list, so
   * shutdown closes p (which closes them) first. */
  stdio_t io = {.streams = {NULL, NULL, NULL}, .temp = {-1, -1, -1}};
  pid_t pid = -1;
  int use_pidfd = pidfd_usable();
  if (!use_pidfd) {
    rc = chld_watch(p);
    if (rc) {
      loom__obj_free(&p->obj);
      return rc;
    }
  }
  rc = start(rt, argv, o, &io, &pid);
  for (int i = 0; i < 3; i++)
    if (io.temp[i] >= 0) close(io.temp[i]); /* the child has its own */
  int inited = 0;
  if (rc == 0) {
    p->pid = pid;
    if (use_pidfd) {
      rc = pidfd_watch(p, &inited);
      if (rc && !inited) {
        /* No pidfd for this one: SIGCHLD, and a look now, as its exit
         * may have come before the watcher. */
        rc = chld_watch(p);
        if (rc == 0) reap(p);
      }
    }
    if (rc) {
      /* Nothing would see its exit: killed and reaped here, at once. */
      kill(pid, SIGKILL);
      while (waitpid(pid, NULL, 0) == -1 && errno == EINTR) {}
    }
  }
  if (rc) {
    chld_drop(p);
    for (int i = 0; i < 3; i++)
      if (io.streams[i]) loom__stream_close_now(io.streams[i]);
    p->closed = p->exited = 1; /* nothing to reap */
    if (inited)
      close_handle(p);
    else
      loom__obj_free(&p->obj);
    return rc;
  }
  for (int i = 0; i < 3 && rc == 0; i++)
    if (io.streams[i]) rc = loom__stream_publish(io.streams[i], &p->pipes[i]);
  if (rc == 0) rc = loom__obj_publish(&p->obj, LOOM__H_PROCESS);
  if (rc) {
    /* The child runs: kill it, close the pipes; it is reaped later. */
    for (int i = 0; i < 3; i++) {
      if (io.streams[i]) loom__stream_close_now(io.streams[i]);
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
