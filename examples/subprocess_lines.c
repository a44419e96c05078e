/* subprocess_lines: run a program and print its output line by line as it
 * arrives, stdout and stderr at once, with a timeout that kills it.
 *
 * Ports the subprocess example ("Async I/O patterns", "running a
 * subprocess asynchronously"):
 *
 *     async def run_cmd(cmd):
 *         proc = await asyncio.create_subprocess_exec(
 *             *cmd, stdout=asyncio.subprocess.PIPE,
 *             stderr=asyncio.subprocess.PIPE)
 *
 *         async def read_stream(stream, name):
 *             while True:
 *                 line = await stream.readline()
 *                 if not line:
 *                     break
 *                 print(f"[{name}] {line.decode().rstrip()}")
 *
 *         await asyncio.gather(read_stream(proc.stdout, "stdout"),
 *                              read_stream(proc.stderr, "stderr"))
 *         await proc.wait()
 *         return proc.returncode
 *
 * and adds the timeout the article pairs it with (asyncio.wait_for): a
 * command that runs too long is killed.
 *
 * Usage: subprocess_lines [-t MS] [COMMAND [ARG...]]   (default timeout
 * 5000 ms; without a command, a small shell script that writes to both
 * streams). Output for the default:
 *
 *     [stdout] hello from the child
 *     [stderr] a warning
 *     [stdout] done
 *     returncode 0
 *
 * and for `subprocess_lines -t 500 sh -c 'echo started && exec sleep 30'`:
 *
 *     [stdout] started
 *     timed out after 500 ms: killed
 *     returncode -9
 *
 * loom_process_spawn with LOOM_STDIO_PIPE gives the parent each pipe as a
 * loom stream, so loom_read_line is readline. The two readers are tasks
 * gathered inside a timeout scope: when it expires, the gather cancels
 * them, and the program kills the child and waits for it (a timeout leaves
 * the child running; cancelling the task that spawned it, or closing the
 * process, would have killed it too). Exit status: 0 if the command ran
 * (whatever its returncode), 1 on a timeout, 127 if it could not start.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <loom.h>

typedef struct {
  loom_stream_t *s;
  const char *name;
} reader_t;

static int read_stream(void *p) {
  reader_t *r = p;
  char line[4096];
  ssize_t n;
  while ((n = loom_read_line(r->s, line, sizeof line)) > 0) {
    line[strcspn(line, "\r\n")] = 0; /* rstrip */
    printf("[%s] %s\n", r->name, line);
    fflush(stdout);
  }
  /* 0 at EOF; UV_ENOBUFS for a line longer than the buffer. */
  return n < 0 ? (int)n : 0;
}

typedef struct {
  char **cmd;
  uint64_t timeout_ms;
  int exit_code;
} args_t;

static int run_cmd(void *p) {
  args_t *a = p;
  loom_process_opts_t opts = {.stdio = {{.kind = LOOM_STDIO_INHERIT},
                                        {.kind = LOOM_STDIO_PIPE},
                                        {.kind = LOOM_STDIO_PIPE}}};
  loom_process_t *proc;
  int rc = loom_process_spawn(&proc, a->cmd, &opts);
  if (rc < 0) {
    fprintf(stderr, "cannot run %s: %s\n", a->cmd[0], loom_strerror(rc));
    a->exit_code = 127;
    return 0;
  }
  reader_t out = {loom_process_stream(proc, 1), "stdout"};
  reader_t err = {loom_process_stream(proc, 2), "stderr"};
  int returncode = 0;

  loom_scope_t timeout;
  loom_timeout_enter(&timeout, a->timeout_ms);
  loom_task_t *readers[2];
  int statuses[2];
  loom_spawn(&readers[0], read_stream, &out);
  loom_spawn(&readers[1], read_stream, &err);
  rc = loom_gather(readers, 2, statuses, 0);
  if (rc == 0) rc = loom_process_wait(proc, &returncode);
  if (loom_scope_exit(&timeout) == UV_ETIMEDOUT) {
    printf("timed out after %llu ms: killed\n", (unsigned long long)a->timeout_ms);
    loom_process_kill(proc);
    rc = loom_process_wait(proc, &returncode);
    a->exit_code = 1;
  }
  if (rc == 0) printf("returncode %d\n", returncode);
  loom_process_close(proc);
  return rc;
}

int main(int argc, char **argv) {
  static char *demo[] = {"/bin/sh", "-c",
                         "echo 'hello from the child'; sleep 0.3;"
                         " echo 'a warning' >&2; sleep 0.3; echo done",
                         NULL};
  args_t a = {.cmd = demo, .timeout_ms = 5000};
  int i = 1;
  if (i + 1 < argc && strcmp(argv[i], "-t") == 0) {
    a.timeout_ms = strtoull(argv[i + 1], NULL, 10);
    i += 2;
  }
  if (i < argc) a.cmd = argv + i;
  int rc = loom_run(run_cmd, &a);
  if (rc < 0 && a.exit_code == 0) {
    fprintf(stderr, "subprocess_lines: %s\n", loom_strerror(rc));
    return 1;
  }
  return a.exit_code;
}
