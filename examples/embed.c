/* embed: loom inside a callback-style libuv program that owns its loop.
 *
 * No asyncio program to port here: this is the C counterpart of running
 * asyncio tasks on a loop someone else drives. The host below is an ordinary
 * libuv program: it creates a uv_loop_t, starts a repeating timer, and calls
 * uv_run(). loom is attached to that loop with loom_init(); from then on the
 * host's plain callbacks can start tasks with loom_spawn_on(), and the tasks
 * write straight-line code (loom_sleep) while the host's timer keeps ticking.
 *
 *   tick 1 (1 s)      spawn job 1: sleeps 50 ms, finishes before tick 2
 *   tick 2 (2 s)      spawn job 2: likewise
 *   tick 3 (3 s)      spawn job 3: would sleep 10 s
 *   tick 4 (4 s)      loom_shutdown(): job 3's sleep returns UV_ECANCELED,
 *                     the task ends, loom closes its handles and calls back
 *   shutdown callback the host closes its timer; uv_run() returns because no
 *                     handle is left, and uv_loop_close() returns 0
 *
 * The host cannot join a task (joining suspends, and a callback cannot), so
 * the jobs are detached and report through their argument: each job_t is
 * filled in by its task and read by the host once loom has shut down, when
 * no task can touch it any more.
 */
#include <stdio.h>

#include <loom.h>

/* Long next to the jobs' 50 ms, so that even a loaded machine (or valgrind)
 * prints every job's end before the next tick. */
#define TICK_MS 1000
#define NJOBS 3

/* One job: set up by the host, filled in by its task. */
typedef struct {
  int id;            /* 1, 2, 3 */
  uint64_t sleep_ms; /* how long the task sleeps */
  int started;       /* out: the task ran */
  int status;        /* out: the task's status, as it returned it */
  uint64_t slept_ms; /* out: loop time the sleep took */
} job_t;

/* The host program's state: its loop, its timer, and loom. */
typedef struct {
  uv_loop_t loop;
  uv_timer_t ticker; /* repeats every TICK_MS */
  int ticks;
  loom_t *rt; /* NULL once loom has shut down */
  job_t jobs[NJOBS];
} host_t;

/* ---- the task: straight-line code ---------------------------------------- */

static int job_task(void *arg) {
  job_t *job = arg;
  job->started = 1;
  printf("job %d: started, sleeping %llu ms\n", job->id,
         (unsigned long long)job->sleep_ms);
  uint64_t t0 = loom_now();
  int rc = loom_sleep(job->sleep_ms);
  job->slept_ms = loom_now() - t0;
  if (rc < 0)
    printf("job %d: sleep interrupted: %s\n", job->id, loom_strerror(rc));
  else
    printf("job %d: done after %llu ms\n", job->id, (unsigned long long)job->slept_ms);
  job->status = rc;
  return rc; /* a detached task that ends cancelled is not logged */
}

/* ---- the host: plain libuv callbacks ---------------------------------------- */

static void on_ticker_closed(uv_handle_t *h) {
  (void)h;
  printf("host: timer closed\n");
}

/* Called by loom once every task has ended and its handles are closed; the
 * runtime is freed by now. */
static void on_loom_shut_down(void *data) {
  host_t *host = data;
  host->rt = NULL;
  printf("host: loom has shut down\n");
  for (int i = 0; i < NJOBS; i++) {
    const job_t *job = &host->jobs[i];
    printf("host: job %d: %s\n", job->id,
           !job->started      ? "never ran"
           : job->status == 0 ? "ok"
                              : loom_strerror(job->status));
  }
  /* The host's last handle: once it is closed, uv_run() returns. */
  uv_close((uv_handle_t *)&host->ticker, on_ticker_closed);
}

static void spawn_job(host_t *host, job_t *job) {
  char name[LOOM_TASK_NAME_MAX + 1];
  snprintf(name, sizeof(name), "job-%d", job->id);
  loom_task_opts_t opts = {.name = name};
  printf("host: tick %d, spawning job %d\n", host->ticks, job->id);
  /* NULL handle: detached. The task starts later, in loom's scheduler pass
   * of this loop iteration, never inside loom_spawn_on(). */
  int rc = loom_spawn_on_ex(host->rt, NULL, job_task, job, &opts);
  if (rc < 0) fprintf(stderr, "host: spawn job %d: %s\n", job->id, loom_strerror(rc));
}

static void on_tick(uv_timer_t *h) {
  host_t *host = h->data;
  host->ticks++;
  if (host->ticks <= NJOBS) {
    spawn_job(host, &host->jobs[host->ticks - 1]);
    return;
  }
  printf("host: tick %d, shutting loom down\n", host->ticks);
  uv_timer_stop(h);
  /* Returns at once: job 3 is cancelled now, and the callback runs once it
   * has ended and loom's handles are closed. The loop must keep running. */
  int rc = loom_shutdown(host->rt, on_loom_shut_down, host);
  if (rc < 0) {
    fprintf(stderr, "host: loom_shutdown: %s\n", loom_strerror(rc));
    uv_close((uv_handle_t *)h, on_ticker_closed);
  }
}

int main(void) {
  static host_t host = {.jobs = {{.id = 1, .sleep_ms = 50},
                                 {.id = 2, .sleep_ms = 50},
                                 {.id = 3, .sleep_ms = 10000}}};
  int rc = uv_loop_init(&host.loop);
  if (rc < 0) {
    fprintf(stderr, "host: uv_loop_init: %s\n", loom_strerror(rc));
    return 1;
  }
  rc = loom_init(&host.rt, &host.loop, NULL);
  if (rc < 0) {
    fprintf(stderr, "host: loom_init: %s\n", loom_strerror(rc));
    uv_loop_close(&host.loop);
    return 1;
  }
  printf("host: loom attached to the loop\n");

  uv_timer_init(&host.loop, &host.ticker); /* cannot fail on a live loop */
  host.ticker.data = &host;
  rc = uv_timer_start(&host.ticker, on_tick, TICK_MS, TICK_MS);
  if (rc < 0) {
    fprintf(stderr, "host: uv_timer_start: %s\n", loom_strerror(rc));
    return 1;
  }

  rc = uv_run(&host.loop, UV_RUN_DEFAULT);
  printf("host: uv_run returned %d\n", rc);
  /* 0 means no handle is left open: not the host's, not loom's. */
  rc = uv_loop_close(&host.loop);
  printf("host: uv_loop_close returned %d%s%s\n", rc, rc ? ": " : "",
         rc ? loom_strerror(rc) : "");
  return rc == 0 ? 0 : 1;
}
