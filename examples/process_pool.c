/* process_pool: CPU-bound work spread over a pool of worker processes,
 * the results gathered, while the loop stays free.
 *
 * Ports the process-pool example ("asyncio first steps",
 * run_in_executor with a ProcessPoolExecutor):
 *
 *     def func1():
 *         print("func1() started")
 *         s = sum(i for i in range(10 ** 7))
 *         print("func1() finished")
 *         return s
 *
 *     def func2():
 *         print("func2() started")
 *         s = sum(i * i for i in range(10 ** 7))
 *         print("func2() finished")
 *         return s
 *
 *     async def main():
 *         loop = asyncio.get_running_loop()
 *         with concurrent.futures.ProcessPoolExecutor() as pool:
 *             task1 = loop.run_in_executor(pool, func1)
 *             task2 = loop.run_in_executor(pool, func2)
 *             result1 = await task1
 *             result2 = await task2
 *             print('result:', result1, result2)
 *
 * Output (func2's sum needs more than 64 bits):
 *
 *     func1() started
 *     func2() started
 *     func1() finished
 *     func2() finished
 *     result: 49999995000000 333333283333335000000
 *
 * With `-j 1` (ProcessPoolExecutor(max_workers=1)) func2 starts only once
 * func1 has finished. Usage: process_pool [-j WORKERS] (default: the
 * number of CPUs).
 *
 * The pool: each worker is a task owning one child process, this same
 * program run with --worker, which reads a job per line on stdin ("sum N",
 * "sumsq N") and answers with the result on a line of stdout, until EOF.
 * The worker tasks take jobs from a loom queue, so a free process takes
 * the next job; once the queue is shut down and empty, each closes its
 * child's stdin and waits for it to exit. The children run in parallel on
 * as many CPUs; the parent only waits for lines, and a task group gathers
 * the workers (a failing worker cancels the others, whose children the
 * default policy kills).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <loom.h>

typedef unsigned __int128 u128;

/* ---- the worker process ------------------------------------------------- */

static u128 cpu_bound(const char *op, unsigned long long n) {
  u128 s = 0;
  if (strcmp(op, "sum") == 0)
    for (unsigned long long i = 0; i < n; i++) s += i;
  else
    for (unsigned long long i = 0; i < n; i++) s += (u128)i * i;
  return s;
}

static char *u128_str(u128 v, char *buf, size_t cap) {
  char *p = buf + cap - 1;
  *p = 0;
  do {
    *--p = (char)('0' + (int)(v % 10));
    v /= 10;
  } while (v && p > buf);
  return p;
}

static int worker_process(void) {
  char line[256], op[16], num[64];
  unsigned long long n;
  while (fgets(line, sizeof line, stdin)) {
    if (sscanf(line, "%15s %llu", op, &n) != 2) return 2;
    printf("%s\n", u128_str(cpu_bound(op, n), num, sizeof num));
    fflush(stdout);
  }
  return 0;
}

/* ---- the pool ----------------------------------------------------------- */

typedef struct {
  const char *name; /* what the reference prints */
  const char *op;   /* "sum" or "sumsq" */
  unsigned long long n;
  char result[64]; /* out */
} job_t;

typedef struct {
  char *exe; /* this program */
  loom_queue_t jobs;
} pool_t;

/* One worker: a child process, fed jobs from the queue. */
static int worker(void *p) {
  pool_t *pool = p;
  char *argv[] = {pool->exe, "--worker", NULL};
  loom_process_opts_t opts = {.stdio = {{.kind = LOOM_STDIO_PIPE},
                                        {.kind = LOOM_STDIO_PIPE},
                                        {.kind = LOOM_STDIO_INHERIT}}};
  loom_process_t *proc;
  int rc = loom_process_spawn(&proc, argv, &opts);
  if (rc < 0) return rc;
  loom_stream_t *in = loom_process_stream(proc, 0), *out = loom_process_stream(proc, 1);
  void *item;
  while (rc == 0 && (rc = loom_queue_get(&pool->jobs, &item)) == 0) {
    job_t *job = item;
    printf("%s() started\n", job->name);
    char line[128];
    int len = snprintf(line, sizeof line, "%s %llu\n", job->op, job->n);
    rc = loom_write(in, line, (size_t)len);
    ssize_t got = rc ? rc : loom_read_line(out, job->result, sizeof job->result);
    if (got <= 0) {
      rc = got < 0 ? (int)got : UV_EOF; /* the worker died */
      break;
    }
    job->result[strcspn(job->result, "\n")] = 0;
    printf("%s() finished\n", job->name);
  }
  if (rc == LOOM_ESHUTDOWN) rc = 0; /* no job left */
  int status = 0;
  if (rc == 0) {
    loom_close(in); /* EOF: the worker exits */
    rc = loom_process_wait(proc, &status);
    if (rc == 0 && status != 0) {
      fprintf(stderr, "process_pool: a worker ended with returncode %d\n", status);
      rc = UV_EIO;
    }
  }
  loom_process_close(proc); /* kills it if something went wrong */
  return rc;
}

typedef struct {
  unsigned workers;
  pool_t pool;
} main_args_t;

static int pool_main(void *p) {
  main_args_t *a = p;
  job_t jobs[] = {
      {.name = "func1", .op = "sum", .n = 10000000},
      {.name = "func2", .op = "sumsq", .n = 10000000},
  };
  size_t njobs = sizeof jobs / sizeof jobs[0];
  loom_queue_init(&a->pool.jobs, 0, LOOM_QUEUE_FIFO, NULL);
  for (size_t i = 0; i < njobs; i++) loom_queue_put(&a->pool.jobs, &jobs[i]);
  loom_queue_shutdown(&a->pool.jobs, 0); /* workers end once it is empty */

  loom_group_t *g;
  loom_group_open(&g);
  for (unsigned i = 0; i < a->workers; i++) loom_group_spawn(g, NULL, worker, &a->pool);
  int rc = loom_group_wait(g);
  loom_queue_destroy(&a->pool.jobs);
  if (rc < 0) {
    fprintf(stderr, "process_pool: %s\n", loom_strerror(rc));
    return rc;
  }
  printf("result: %s %s\n", jobs[0].result, jobs[1].result);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--worker") == 0) return worker_process();
  main_args_t a = {.workers = uv_available_parallelism()};
  if (argc == 3 && strcmp(argv[1], "-j") == 0) {
    a.workers = (unsigned)strtoul(argv[2], NULL, 10);
  } else if (argc != 1) {
    fprintf(stderr, "usage: process_pool [-j WORKERS]\n");
    return 2;
  }
  if (a.workers == 0) a.workers = 1;
  /* The path of this program, as the kernel knows it (also under a
   * wrapper such as valgrind, which reports the program's own path). */
  char exe[4096];
  size_t len = sizeof exe;
  if (uv_exepath(exe, &len) != 0) {
    fprintf(stderr, "process_pool: cannot find this program's path\n");
    return 1;
  }
  a.pool.exe = exe;
  return loom_run(pool_main, &a) == 0 ? 0 : 1;
}
