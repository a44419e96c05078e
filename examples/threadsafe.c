/* threadsafe: a plain thread (not a loom task) hands work to a runtime and
 * waits for the result.
 *
 * Ports asyncio's thread-safe entry points (the tutorial "asyncio in
 * practice", Q3: "each thread needs its own event loop; schedule across
 * threads with asyncio.run_coroutine_threadsafe()"):
 *
 *     def worker(loop):
 *         loop.call_soon_threadsafe(print, "hello from the loop's thread")
 *         future = asyncio.run_coroutine_threadsafe(fetch("item-42"), loop)
 *         print("worker got", future.result())
 *
 *     async def main():
 *         loop = asyncio.get_running_loop()
 *         await loop.run_in_executor(None, worker, loop)
 *
 * loom_remote_open gives a loom_remote_t: a reference to the runtime that
 * another thread may keep and use, even after the runtime has ended (calls
 * then fail with LOOM_ECLOSED instead of crashing). loom_remote_call(r, fn,
 * arg) runs fn on the runtime's thread (call_soon_threadsafe);
 * loom_remote_spawn(r, fn, arg, &future) starts a task there and gives a
 * future of its status, which the thread waits for with loom_future_wait
 * (run_coroutine_threadsafe + concurrent.futures.Future.result). Here the
 * thread is a raw uv_thread (a pthread), and the main task waits for it
 * through a future the thread resolves. Output:
 *
 *     main: runtime on the main thread; starting a plain thread
 *     loop thread: hello, called from the plain thread
 *     fetch: fetching item-42 in a task (0.5 s)
 *     thread: the task returned 0 with "data for item-42" after 0.5 s
 *     main: the thread is done
 *     thread: after the runtime ended: LOOM_ECLOSED (runtime is shutting down)
 */
#include <stdio.h>
#include <string.h>

#include <loom.h>

typedef struct {
  loom_remote_t *rt;       /* the runtime, for the thread */
  loom_future_t *done;     /* resolved by the thread when it is done */
  uv_sem_t ended;          /* posted by main() once loom_run has returned */
  char item[16], data[32]; /* the fetch's argument and result */
  uv_thread_t thread;
  int started;
} shared_t;

static void hello(loom_t *rt, void *arg) {
  (void)arg;
  if (rt) printf("loop thread: hello, called from the plain thread\n");
}

static int fetch(void *p) {
  shared_t *s = p;
  printf("fetch: fetching %s in a task (0.5 s)\n", s->item);
  int rc = loom_sleep(500);
  if (rc) return rc;
  snprintf(s->data, sizeof(s->data), "data for %s", s->item);
  return 0;
}

static void thread_main(void *p) {
  shared_t *s = p;
  int rc = loom_remote_call(s->rt, hello, NULL);
  loom_future_t *f = NULL;
  uint64_t t0 = uv_hrtime();
  strcpy(s->item, "item-42");
  if (rc == 0) rc = loom_remote_spawn(s->rt, fetch, s, &f);
  if (rc == 0) {
    rc = loom_future_wait(f, -1, NULL); /* the task's status */
    printf("thread: the task returned %d with \"%s\" after %.1f s\n", rc, s->data,
           (double)(uv_hrtime() - t0) / 1e9);
    loom_future_release(f);
  }
  loom_future_set(s->done, NULL); /* main may finish now */

  /* The runtime ends; the reference stays valid and answers plainly. */
  uv_sem_wait(&s->ended);
  rc = loom_remote_spawn(s->rt, fetch, s, &f);
  printf("thread: after the runtime ended: %s (%s)\n", loom_err_name(rc),
         loom_strerror(rc));
  loom_remote_close(s->rt);
}

static int main_task(void *arg) {
  shared_t *s = arg;
  printf("main: runtime on the main thread; starting a plain thread\n");
  int rc = loom_remote_open(NULL, &s->rt);
  if (rc) return rc;
  rc = loom_future_new(&s->done);
  if (rc) return rc;
  rc = uv_thread_create(&s->thread, thread_main, s);
  if (rc) {
    loom_remote_close(s->rt);
    return rc;
  }
  s->started = 1;
  rc = loom_future_await(s->done, NULL);
  if (rc == 0) printf("main: the thread is done\n");
  return rc;
}

int main(void) {
  static shared_t s;
  uv_sem_init(&s.ended, 0);
  int rc = loom_run(main_task, &s);
  if (s.started) {
    uv_sem_post(&s.ended);
    uv_thread_join(&s.thread);
  }
  if (s.done) loom_future_release(s.done);
  uv_sem_destroy(&s.ended);
  if (rc) fprintf(stderr, "threadsafe: %s\n", loom_strerror(rc));
  return rc == 0 ? 0 : 1;
}
