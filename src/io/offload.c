/* Thread offload (include/loom/thread.h): jobs run on loom's own executors.
 *
 * An executor is a mutex, a condition variable, a FIFO of jobs and up to
 * `max` worker threads, started when a job finds no idle worker. A job is
 * allocated by the runtime that submits it and takes an inbox hold there,
 * so the runtime neither closes nor lets loom_run return while a job of
 * its own is queued or running. When the job has run, its worker posts the
 * job's completion message to that runtime's inbox and touches the job no
 * more; the runtime's thread then wakes the awaiting task (or resolves the
 * job's future), drops the hold and frees the job.
 *
 *   task                 executor (mutex)            worker thread
 *   submit: job ---->    [ queue ] --------------->  fn(arg)
 *   park on w                                        post(job->done)
 *   <--- wake(w) <------- runtime's inbox <-----------'
 *
 * An awaiting task that gives up (cancelled, timed out) takes a job that
 * is still queued out of the queue and frees it; a running job is left to
 * finish and only its result is dropped: job->w is cleared on the
 * runtime's thread, where the completion also runs, so the two never race.
 */
#include <stdlib.h>

#include "io/io.h"
#include "sync/future.h"

enum { QUEUED, RUNNING, FINISHED };
/* job->sync: the awaiting task may spin briefly for a short job instead of
 * parking (see spin_for). The worker swaps in SYNC_DONE when the job has
 * run; if the task was spinning it takes the result itself and nothing is
 * posted. */
enum { SYNC_NONE, SYNC_SPIN, SYNC_DONE };

/* How long an idle worker looks for the next job, and how long a task with
 * nothing else to run waits for a job's end, before either sleeps: a round
 * trip of short jobs then costs no thread wake-up (futex, eventfd and the
 * scheduler's latency: ~10-30 us each on a VM). Bounded, so a long job
 * costs one such spin in all, and the runtime's other work is delayed by at
 * most LOOM__SPIN_NS (the task spins only when no other task is ready). */
#ifndef LOOM__SPIN_NS
#define LOOM__SPIN_NS 20000u
#endif

typedef struct loom__job_s loom__job_t;

struct loom_executor_s {
  uv_mutex_t mu;
  uv_cond_t cv;           /* idle workers wait here */
  loom__list_t queue;     /* loom__job_t by link, oldest first */
  size_t max;             /* threads it may start */
  size_t nthreads;        /* started, not yet exited */
  size_t idle;            /* waiting on cv */
  size_t spinning;        /* looking for work before they wait */
  loom__spin_t spin;      /* whether workers spin (under mu) */
  _Atomic size_t nqueued; /* jobs on queue (written under mu, read
                             without it by spinning workers) */
  size_t busy;            /* running a job */
  size_t jobs;            /* submitted and not yet freed: each job keeps
                             ex alive (its waiter's interruption and its
                             end lock mu) until job_free */
  int closing;            /* no new jobs; workers exit when it is empty */
  int orphan;             /* freed by its owner: the last job_free joins
                             the workers and frees it */
  size_t started;         /* workers to join: nthreads when closing */
  uv_thread_t *threads;   /* [max], the first nthreads started */
};

/* The waiting task's side, in its frame. */
typedef struct {
  loom__waiter_t w;
  loom__job_t *job;
} job_wait_t;

struct loom__job_s {
  loom__link_t link; /* on ex->queue while QUEUED */
  loom__msg_t done;  /* completion, to rt's inbox */
  loom_executor_t *ex;
  loom_t *rt;        /* the submitting runtime (held) */
  loom__inbox_t *ib; /* its inbox (a reference) */
  loom_fn fn;
  void *arg;
  int status;       /* fn's return value once FINISHED */
  _Atomic int sync; /* SYNC_*: a task spinning for the result */
  int state;        /* QUEUED, RUNNING, FINISHED: under ex->mu */
  job_wait_t *wait; /* the awaiting task's, or NULL */
  loom_future_t *f; /* submit: resolved with status (a reference) */
};

/* ---- workers ------------------------------------------------------------ */

static void executor_destroy(loom_executor_t *ex) {
  uv_cond_destroy(&ex->cv);
  uv_mutex_destroy(&ex->mu);
  free(ex->threads);
  free(ex);
}

static void worker(void *p) {
  loom_executor_t *ex = p;
  uv_mutex_lock(&ex->mu);
  for (;;) {
    if (loom__list_empty(&ex->queue) && !ex->closing && loom__spin_try(&ex->spin)) {
      /* Look for work for a while before sleeping: not counted idle, so
       * nobody signals us, and we check the queue again under the lock. */
      ex->spinning++;
      uv_mutex_unlock(&ex->mu);
      uint64_t until = uv_hrtime() + LOOM__SPIN_NS;
      for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&ex->nqueued, memory_order_relaxed)) break;
        loom__cpu_relax();
        if (i % 64 == 0 && uv_hrtime() >= until) break;
      }
      uv_mutex_lock(&ex->mu);
      ex->spinning--;
      loom__spin_done(&ex->spin, !loom__list_empty(&ex->queue));
    }
    while (loom__list_empty(&ex->queue) && !ex->closing) {
      ex->idle++;
      uv_cond_wait(&ex->cv, &ex->mu);
      ex->idle--;
    }
    if (loom__list_empty(&ex->queue)) break; /* closing, nothing left */
    loom__job_t *job = loom__list_entry(ex->queue.head, loom__job_t, link);
    loom__list_remove(&ex->queue, &job->link);
    atomic_fetch_sub_explicit(&ex->nqueued, 1, memory_order_relaxed);
    /* A submitted job whose future was cancelled while it queued: drop. */
    int run = !(job->f && loom_future_done(job->f));
    job->state = RUNNING;
    ex->busy++;
    uv_mutex_unlock(&ex->mu);
    job->status = run ? job->fn(job->arg) : UV_ECANCELED;
    /* No longer busy before anyone can see the job's end: an executor
     * freed right after its last job was awaited is then idle, and joined
     * (its threads are done with everything but exiting). */
    uv_mutex_lock(&ex->mu);
    ex->busy--;
    uv_mutex_unlock(&ex->mu);
    /* A task spinning for it takes the result itself. Else the runtime,
     * which holds itself open for this message, gets it: the post cannot
     * be refused. Either way the job is no longer ours. */
    if (atomic_exchange(&job->sync, SYNC_DONE) != SYNC_SPIN) {
      int rc = loom__inbox_post(job->ib, &job->done);
      loom__assert(rc == 0, "an offload job's runtime closed under it");
    }
    uv_mutex_lock(&ex->mu);
  }
  --ex->nthreads;
  uv_mutex_unlock(&ex->mu);
}

/* Joins ex's workers, which are exiting or about to (closing, nothing
 * queued), and frees ex. */
static void executor_join_destroy(loom_executor_t *ex) {
  for (size_t i = 0; i < ex->started; i++) uv_thread_join(&ex->threads[i]);
  executor_destroy(ex);
}

static int executor_make(loom_executor_t **out, size_t threads) {
  loom_executor_t *ex = calloc(1, sizeof(*ex));
  if (!ex) return UV_ENOMEM;
  ex->threads = calloc(threads, sizeof(*ex->threads));
  if (!ex->threads) {
    free(ex);
    return UV_ENOMEM;
  }
  if (uv_mutex_init(&ex->mu)) {
    free(ex->threads);
    free(ex);
    return UV_ENOMEM;
  }
  if (uv_cond_init(&ex->cv)) {
    uv_mutex_destroy(&ex->mu);
    free(ex->threads);
    free(ex);
    return UV_ENOMEM;
  }
  ex->max = threads;
  *out = ex;
  return 0;
}

int loom_executor_new(loom_executor_t **out, size_t threads) {
  if (!out || threads == 0 || threads > LOOM_EXECUTOR_MAX_THREADS) return UV_EINVAL;
  return executor_make(out, threads);
}

/* Stops ex's workers. No job left (none queued, running, or ended with
 * its end not yet handled by its runtime): joins them, which takes no
 * longer than their wake-up, and frees ex. Else the workers finish the
 * jobs, and the last job's job_free, on its runtime's thread and so before
 * that runtime ends (a job holds it open), joins them and frees ex: never
 * a worker after the runtime has returned, and never before a job's
 * awaiting task is done with ex. */
static void executor_shutdown(loom_executor_t *ex) {
  uv_mutex_lock(&ex->mu);
  ex->closing = 1;
  ex->started = ex->nthreads; /* no worker starts once closing */
  uv_cond_broadcast(&ex->cv);
  int now = ex->jobs == 0;
  if (!now) ex->orphan = 1;
  uv_mutex_unlock(&ex->mu);
  if (now) executor_join_destroy(ex);
}

void loom_executor_free(loom_executor_t *ex) {
  if (ex) executor_shutdown(ex);
}

void loom__offload_close(loom_t *rt) {
  if (!rt->offload) return;
  executor_shutdown(rt->offload); /* no job of rt is left: idle */
  rt->offload = NULL;
}

/* ---- jobs -------------------------------------------------------------- */

static void job_free(loom__job_t *job) {
  loom_executor_t *ex = job->ex;
  uv_mutex_lock(&ex->mu);
  int last = --ex->jobs == 0 && ex->orphan;
  uv_mutex_unlock(&ex->mu);
  loom__inbox_unhold(job->rt);
  loom__inbox_release(job->ib);
  if (job->f) loom_future_release(job->f);
  free(job);
  if (last) executor_join_destroy(ex);
}

/* On the submitting runtime's thread, once the job has run. */
static void on_job_done(loom__msg_t *m, int status) {
  loom__job_t *job = loom__container_of(m, loom__job_t, done);
  (void)status; /* always 0: the hold keeps the runtime open */
  job->state = FINISHED;
  if (job->f) loom__future_resolve(job->f, job->status, NULL);
  if (job->wait) {
    loom__wake(&job->wait->w, 0); /* the task reads the status, frees it */
    return;
  }
  job_free(job);
}

static int default_executor(loom_t *rt, loom_executor_t **out) {
  if (!rt->offload) {
    size_t n = LOOM_OFFLOAD_THREADS;
    const char *env = getenv("LOOM_OFFLOAD_THREADS");
    if (env && *env) {
      char *end;
      unsigned long v = strtoul(env, &end, 10);
      if (!*end && v >= 1 && v <= LOOM_EXECUTOR_MAX_THREADS) n = v;
    }
    int rc = executor_make(&rt->offload, n);
    if (rc) return rc;
  }
  *out = rt->offload;
  return 0;
}

/* Queues a job on ex (NULL: rt's default), starting a worker if none is
 * idle. */
static int job_submit(loom_t *rt, loom_executor_t *ex, loom_fn fn, void *arg,
                      loom_future_t *f, loom__job_t **out) {
  if (!fn) return UV_EINVAL;
  if (rt->open_handles) return LOOM_ECLOSED;
  int rc;
  if (!ex && (rc = default_executor(rt, &ex))) return rc;
  loom__job_t *job = calloc(1, sizeof(*job));
  if (!job) return UV_ENOMEM;
  rc = loom__inbox_get(rt, &job->ib);
  if (rc) {
    free(job);
    return rc;
  }
  job->ex = ex;
  job->rt = rt;
  job->fn = fn;
  job->arg = arg;
  job->done.run = on_job_done;
  job->f = f; /* before a worker can see the job */
  uv_mutex_lock(&ex->mu);
  if (ex->closing) {
    rc = LOOM_ECLOSED;
  } else if (ex->idle + ex->spinning <= ex->nqueued && ex->nthreads < ex->max) {
    /* One more worker; if none can start and none exists, fail. */
    rc = uv_thread_create(&ex->threads[ex->nthreads], worker, ex);
    if (rc == 0)
      ex->nthreads++;
    else if (ex->nthreads > 0)
      rc = 0;
  }
  if (rc == 0) {
    ex->jobs++;
    job->state = QUEUED;
    loom__list_push_back(&ex->queue, &job->link);
    atomic_fetch_add_explicit(&ex->nqueued, 1, memory_order_relaxed);
    if (ex->idle && ex->nqueued > ex->spinning) uv_cond_signal(&ex->cv);
  }
  uv_mutex_unlock(&ex->mu);
  if (rc) {
    loom__inbox_release(job->ib);
    free(job);
    return rc;
  }
  loom__inbox_hold(rt);
  loom__inbox_expect_soon(rt, LOOM__SPIN_NS);
  *out = job;
  return 0;
}

/* The awaiting task gave up: a queued job leaves the queue and is freed
 * (it never runs); a running one finishes and on_job_done frees it. */
static void on_wait_interrupted(loom__waiter_t *w) {
  job_wait_t *jw = loom__container_of(w, job_wait_t, w);
  loom__job_t *job = jw->job;
  job->wait = NULL;
  uv_mutex_lock(&job->ex->mu);
  int queued = job->state == QUEUED;
  if (queued) {
    loom__list_remove(&job->ex->queue, &job->link);
    atomic_fetch_sub_explicit(&job->ex->nqueued, 1, memory_order_relaxed);
  }
  uv_mutex_unlock(&job->ex->mu);
  if (queued) job_free(job);
}

/* With no other task ready, waits up to LOOM__SPIN_NS for the job to end
 * (a no-op job's round trip, then, wakes no thread). 1 if it has ended
 * (its result is the caller's, and no message comes), 0 if it has not
 * (the worker will post as usual). */
static int spin_for(loom_t *rt, loom__job_t *job) {
  loom__spin_t *spin = &rt->inbox->spin;
  if (rt->ready_head || rt->round_head || !loom__spin_try(spin)) return 0;
  atomic_store(&job->sync, SYNC_SPIN);
  uint64_t until = uv_hrtime() + LOOM__SPIN_NS;
  for (unsigned i = 1;; i++) {
    if (atomic_load_explicit(&job->sync, memory_order_acquire) == SYNC_DONE) {
      loom__spin_done(spin, 1);
      return 1;
    }
    loom__cpu_relax();
    if (i % 64 == 0 && uv_hrtime() >= until) break;
  }
  int expected = SYNC_SPIN;
  int done = !atomic_compare_exchange_strong(&job->sync, &expected, SYNC_NONE);
  loom__spin_done(spin, done);
  return done;
}

int loom_executor_run(loom_executor_t *ex, loom_fn fn, void *arg, int *status) {
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  loom__job_t *job;
  rc = job_submit(self->rt, ex, fn, arg, NULL, &job);
  if (rc) return rc;
  if (spin_for(self->rt, job)) {
    if (status) *status = job->status;
    job_free(job);
    return 0;
  }
  job_wait_t jw = {.w = {.task = self, .cancel = on_wait_interrupted}, .job = job};
  job->wait = &jw;
  loom__wait_on(&jw.w, LOOM__W_THREAD, ex);
  rc = loom__park(&jw.w);
  if (rc) return rc; /* the job is freed, or will be when it ends */
  if (status) *status = job->status;
  job_free(job);
  return 0;
}

int loom_to_thread(loom_fn fn, void *arg, int *status) {
  return loom_executor_run(NULL, fn, arg, status);
}

int loom_executor_submit(loom_executor_t *ex, loom_fn fn, void *arg,
                         loom_future_t **out) {
  if (!out) return UV_EINVAL;
  loom_t *rt = loom__handle_rt();
  if (!rt) return LOOM_ENOTASK;
  loom_future_t *f;
  int rc = loom_future_new(&f);
  if (rc) return rc;
  loom__job_t *job;
  rc = job_submit(rt, ex, fn, arg, loom_future_retain(f), &job);
  if (rc) {
    loom_future_release(f); /* the job's reference */
    loom_future_release(f);
    return rc;
  }
  *out = f;
  return 0;
}
