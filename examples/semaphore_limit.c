/* semaphore_limit: twenty requests, at most five in flight at a time.
 *
 * Ports the rate-limiting example
 * (the tutorial "asyncio in practice", "rate limiting with a
 * Semaphore"; the same pattern is in "Async I/O patterns", "limiting
 * concurrency (Semaphore)"), with requests of 0.1 s instead of 1 s:
 *
 *     async def rateLimitedRequests():
 *         semaphore = asyncio.Semaphore(5)
 *
 *         async def fetch(url):
 *             async with semaphore:
 *                 print(f"request: {url}")
 *                 await asyncio.sleep(1)
 *                 return f"response_{url}"
 *
 *         tasks = [fetch(f"url_{i}") for i in range(20)]
 *         results = await asyncio.gather(*tasks)
 *         print(f"{len(results)} requests done (at most 5 at a time)")
 *
 * All twenty tasks start at once (loom_gather_map), but each must take one
 * of the semaphore's five permits before its request, and gives it back
 * after: loom_sem_acquire / loom_sem_release are `async with semaphore`.
 * Waiters get the permits in FIFO order, so the requests run in four waves
 * of five, in the order they were asked for: 0.4 s in all, against 2.0 s
 * one at a time.
 *
 * C has no `async with`, so every path out of the request after a
 * successful acquire must release. The semaphore is a bounded one
 * (asyncio.BoundedSemaphore): a release without a matching acquire, which
 * would silently raise the limit to six, fails with UV_EOVERFLOW instead.
 * Each request counts the requests in flight as it starts and ends, so
 * main can show that the limit held. Output:
 *
 *     request: url_0 (started at 0.0 s)
 *     ...                                   (url_1 to url_4 likewise)
 *     request: url_5 (started at 0.1 s)
 *     ...
 *     request: url_19 (started at 0.3 s)
 *     20 requests done (at most 5 at a time)
 *     results, in order: response_url_0 ... response_url_19
 *     peak concurrency: 5
 *     permits free at the end: 5
 *     total: 0.4 s (all at once would take 0.1 s, one at a time 2.0 s)
 */
#include <stdio.h>
#include <string.h>

#include <loom.h>

#define NREQ 20        /* requests */
#define LIMIT 5        /* at most this many in flight */
#define REQUEST_MS 100 /* how long one request takes */

/* What the requests share: the semaphore and the in-flight counts. */
typedef struct {
  loom_sem_t sem;
  int in_flight; /* requests holding a permit now */
  int peak;      /* the most there ever were */
  uint64_t t0;   /* loop time when main started (ms) */
} limiter_t;

/* One request: set up by main, filled in by its task. */
typedef struct {
  limiter_t *lim;
  int id;
  char response[32]; /* out: "response_url_<id>" */
} request_t;

static int fetch(void *p) {
  request_t *r = p;
  limiter_t *lim = r->lim;
  /* Waits (FIFO) until one of the five permits is free. */
  int rc = loom_sem_acquire(&lim->sem);
  if (rc < 0) return rc; /* cancelled while waiting: no permit to give back */

  /* From here on the permit is ours, and every path gives it back. */
  if (++lim->in_flight > lim->peak) lim->peak = lim->in_flight;
  printf("request: url_%d (started at %.1f s)\n", r->id,
         (double)(loom_now() - lim->t0) / 1000.0);
  rc = loom_sleep(REQUEST_MS); /* the request itself */
  if (rc == 0) snprintf(r->response, sizeof r->response, "response_url_%d", r->id);
  lim->in_flight--;
  int rrc = loom_sem_release(&lim->sem);
  return rc < 0 ? rc : rrc; /* rrc < 0 would be a release too many: a bug */
}

static int semaphore_limit_main(void *arg) {
  (void)arg;
  limiter_t lim = {.t0 = loom_now()};
  loom_sem_init_bounded(&lim.sem, LIMIT);
  request_t reqs[NREQ];
  int statuses[NREQ] = {0};
  for (int i = 0; i < NREQ; i++) reqs[i] = (request_t){.lim = &lim, .id = i};

  /* asyncio.gather(*tasks): every request is a task, all awaited (and, if
   * we are cancelled, all cancelled and awaited) before this returns. */
  int rc = loom_gather_map(fetch, reqs, sizeof reqs[0], NREQ, statuses, 0);
  if (rc < 0) {
    fprintf(stderr, "semaphore_limit: %s\n", loom_strerror(rc));
    for (int i = 0; i < NREQ; i++)
      if (statuses[i] < 0)
        fprintf(stderr, "semaphore_limit: url_%d: %s\n", i, loom_strerror(statuses[i]));
    return rc;
  }

  int ok = 0;
  for (int i = 0; i < NREQ; i++) {
    char want[32];
    snprintf(want, sizeof want, "response_url_%d", i);
    ok += strcmp(reqs[i].response, want) == 0;
  }
  printf("%d requests done (at most %d at a time)\n", ok, LIMIT);
  printf("results, in order: %s ... %s\n", reqs[0].response, reqs[NREQ - 1].response);
  printf("peak concurrency: %d\n", lim.peak);
  printf("permits free at the end: %u\n", loom_sem_value(&lim.sem));
  printf("total: %.1f s (all at once would take %.1f s, one at a time %.1f s)\n",
         (double)(loom_now() - lim.t0) / 1000.0, REQUEST_MS / 1000.0,
         NREQ * REQUEST_MS / 1000.0);
  return 0;
}

int main(void) {
  int rc = loom_run(semaphore_limit_main, NULL);
  if (rc < 0) {
    fprintf(stderr, "semaphore_limit: %s\n", loom_strerror(rc));
    return 1;
  }
  return 0;
}
