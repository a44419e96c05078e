/* loom processes: child programs run from loom tasks, with their standard
 * streams as loom streams (asyncio.create_subprocess_exec, Trio's
 * run_process). See docs/process.md.
 *
 * A process object owns one child from loom_process_spawn until it has
 * exited and been reaped. Whatever happens to the object or to the task
 * that spawned it, loom reaps the child: it watches it until its exit is
 * seen (a pidfd, or SIGCHLD where there is none), so a child never stays a
 * zombie, not when the object is closed
 * while the child runs, not when its task is cancelled or returns, not when
 * the runtime shuts down.
 *
 * Cancellation. The task that spawns a process owns it. When the owner is
 * cancelled (outside a shield), when it returns with the process still
 * open, and when the process is closed while the child runs, the
 * process's policy (loom_process_opts_t.on_cancel) is applied:
 *   LOOM_PROCESS_KILL (the default, as Trio): SIGKILL at once;
 *   LOOM_PROCESS_TERMINATE: SIGTERM, then SIGKILL kill_after_ms later;
 *   LOOM_PROCESS_LEAVE (asyncio's): the child runs on; it is still
 *   reaped when it exits.
 * Killing is the default because a cancelled owner can no longer read the
 * child's output nor wait for it: a child left running holds its pipes,
 * its CPU and whatever it was changing with nobody to watch it. A timeout
 * scope does not apply the policy: a wait that times out returns
 * UV_ETIMEDOUT and the child runs on, to be signalled and waited for again.
 *
 * At runtime shutdown, processes still open are closed (the policy
 * applies) and the runtime waits for every child to exit; children still
 * running after the shutdown grace period (loom_config_t) are killed with
 * SIGKILL. So loom_run returns only once every child it started has been
 * reaped.
 *
 * Handles are checked tokens like streams: a call on a closed process
 * returns UV_EBADF, never touches freed memory; NULL gives UV_EINVAL.
 */
#ifndef LOOM_PROCESS_H
#define LOOM_PROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "export.h"
#include "net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_process_s loom_process_t; /* opaque, heap */

/* What a child's standard stream (stdin, stdout, stderr) is connected to. */
enum {
  LOOM_STDIO_INHERIT = 0, /* the parent's own fd of that number (default) */
  LOOM_STDIO_PIPE,        /* a pipe: a loom stream in the parent
                             (loom_process_stream) */
  LOOM_STDIO_DEVNULL,     /* /dev/null */
  LOOM_STDIO_FD           /* the parent's open descriptor `fd` */
};

typedef struct {
  int kind; /* LOOM_STDIO_* */
  int fd;   /* LOOM_STDIO_FD: the descriptor; otherwise unused */
} loom_stdio_t;

/* Cancellation policies (see above). */
enum { LOOM_PROCESS_KILL = 0, LOOM_PROCESS_TERMINATE, LOOM_PROCESS_LEAVE };

/* Flags. LOOM_PROCESS_GROUP: the child leads a process group of its own
 * (setpgid, in the parent's session), and every signal loom sends it
 * (loom_process_signal, kill, the policy) goes to the whole group, so the
 * children of a shell die with it. LOOM_PROCESS_DETACHED: the child runs
 * in a new session (setsid), without a controlling terminal: Ctrl-C at the
 * terminal does not reach it; a session leader leads a group too. Neither
 * lets a child outlive the runtime (see above): a daemon daemonizes
 * itself. */
#define LOOM_PROCESS_GROUP 1u
#define LOOM_PROCESS_DETACHED 2u

/* Default delay between SIGTERM and SIGKILL for LOOM_PROCESS_TERMINATE. */
#define LOOM_PROCESS_KILL_AFTER_MS 5000u

typedef struct {
  const char *file;       /* the program; NULL: argv[0]. Without a '/',
                            looked up in PATH (of env, if given) */
  char *const *env;       /* "NAME=value" strings, NULL-terminated; NULL:
                            the parent's environment */
  const char *cwd;        /* NULL: the parent's */
  loom_stdio_t stdio[3];  /* stdin, stdout, stderr; zero: inherit */
  unsigned flags;         /* LOOM_PROCESS_GROUP, LOOM_PROCESS_DETACHED */
  int on_cancel;          /* LOOM_PROCESS_KILL (0), _TERMINATE, _LEAVE */
  uint64_t kill_after_ms; /* _TERMINATE: 0 = LOOM_PROCESS_KILL_AFTER_MS */
} loom_process_opts_t;

/* Starts argv[0] (or opts->file) with arguments argv (NULL-terminated,
 * argv[0] included) and returns once the program runs: a program that
 * cannot be started is an error here, with nothing left to reap. Does not
 * suspend (posix_spawn returns after the exec), but is a checkpoint: a
 * cancelled task gets UV_ECANCELED and starts nothing. The child gets an
 * empty signal mask and signals 1-31 at their defaults. opts NULL: every stream
 * inherited, policy LOOM_PROCESS_KILL. Errors: UV_EINVAL (NULL p or argv,
 * empty argv, an unknown stdio kind, flag or policy), UV_EBADF (a
 * LOOM_STDIO_FD that is not an open descriptor), UV_ENOENT (no such
 * program), UV_EACCES, UV_ENOEXEC..., as execvp reports them, UV_ENOTDIR (cwd),
 * UV_ECANCELED, UV_ETIMEDOUT, LOOM_ENOTASK, UV_ENOMEM, UV_EAGAIN, UV_EMFILE,
 * UV_ENOSYS (cwd with glibc < 2.29). */
LOOM_EXTERN int loom_process_spawn(loom_process_t **p, char *const argv[],
                                   const loom_process_opts_t *opts);

/* The child's process id (> 0), also once it has exited. UV_EINVAL,
 * UV_EBADF. */
LOOM_EXTERN int loom_process_pid(loom_process_t *p);

/* The parent's end of the pipe for the child's fd 0, 1 or 2, a loom stream
 * (read_line, read_until, write...), or NULL if that stream is not a pipe,
 * was closed (loom_close on it: closing stdin sends the child EOF), or p
 * is not a live process. The process owns its pipes: loom_process_close and
 * loom_process_communicate close them. */
LOOM_EXTERN loom_stream_t *loom_process_stream(loom_process_t *p, int fd);

/* Waits for the child to exit. *status (may be NULL) receives asyncio's
 * returncode: the exit status (0-255) if it exited, -N if signal N ended
 * it. Returns at once once it has exited. Several tasks may wait. Errors:
 * UV_ECANCELED (and if the caller owns the process, the policy applies),
 * UV_ETIMEDOUT (the child runs on), UV_EBADF (closed, also while waiting),
 * UV_EINVAL, LOOM_ENOTASK. */
LOOM_EXTERN int loom_process_wait(loom_process_t *p, int *status);

/* As wait, without waiting: 0 and *status if the child has exited,
 * UV_EAGAIN while it runs. UV_EINVAL, UV_EBADF. */
LOOM_EXTERN int loom_process_poll(loom_process_t *p, int *status);

/* Sends signal signum to the child (to its group with LOOM_PROCESS_GROUP).
 * Never suspends. UV_ESRCH once the child has exited (its pid may belong
 * to another process by now: nothing is sent). UV_EINVAL for a bad signal
 * number, UV_EBADF. */
LOOM_EXTERN int loom_process_signal(loom_process_t *p, int signum);
/* loom_process_signal(p, SIGKILL). */
LOOM_EXTERN int loom_process_kill(loom_process_t *p);

/* What loom_process_communicate sends and collects. */
typedef struct {
  const void *input; /* written to stdin (which must be a pipe), then
                        stdin is closed; NULL: stdin, if a pipe, is just
                        closed */
  size_t input_len;
  size_t max_output; /* per stream; 0: no limit */
  char *out;         /* out: stdout up to EOF, NUL-terminated, malloc'd
                        (free it); NULL if stdout is not a pipe */
  size_t out_len;
  char *err; /* out: stderr, the same way */
  size_t err_len;
  int status; /* out: as loom_process_wait */
} loom_communicate_t;

/* asyncio's communicate: writes the input and reads stdout and stderr to
 * EOF, all at once (in tasks of its own, so a child that fills one pipe
 * while the parent writes another never deadlocks), then waits for the
 * child to exit. The pipes are closed once done. A write that fails
 * because the child stopped reading (UV_EPIPE) is not an error, as in
 * asyncio. On error nothing is returned in out/err (what was read is
 * dropped) and the child may be running still; errors: UV_EINVAL (NULL,
 * input without a stdin pipe), UV_ENOBUFS (more than max_output), as
 * loom_process_wait, and the pipes' read errors. */
LOOM_EXTERN int loom_process_communicate(loom_process_t *p, loom_communicate_t *c);

/* Closes the process: if the child still runs, its policy applies (KILL:
 * SIGKILL now); its pipes are closed (as loom_close); tasks waiting on it
 * wake with UV_EBADF. The child is reaped in the background when it exits.
 * Never suspends; the handle is consumed. UV_EINVAL, UV_EBADF. */
LOOM_EXTERN int loom_process_close(loom_process_t *p);

#ifdef __cplusplus
}
#endif

#endif /* LOOM_PROCESS_H */
