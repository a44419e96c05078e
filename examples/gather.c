/* gather: three fetches run at once, and their results come back in the
 * order they were asked for, whatever order they finish in.
 *
 * Ports the asyncio.gather example
 * (the tutorial "asyncio in practice", "asyncio.gather"), with
 * delays of 1.5 s, 1.0 s and 0.5 s instead of 1, 2 and 1.5 s, so that the
 * fetches finish in the reverse of the order they were asked for:
 *
 *     async def fetch(url, delay):
 *         await asyncio.sleep(delay)
 *         return f"Response from {url}"
 *
 *     async def gatherDemo():
 *         results = await asyncio.gather(
 *             fetch("api.example.com/users", 1.5),
 *             fetch("api.example.com/posts", 1.0),
 *             fetch("api.example.com/comments", 0.5),
 *         )
 *         print(f"all results: {results}")
 *
 * loom_gather_map(fn, args, sizeof args[0], n, statuses, flags) is
 * asyncio.gather(*[fn(x) for x in args]): it spawns fn(&args[i]) for every
 * element of the array, waits for all of them, consumes their handles and
 * stores task i's status in statuses[i]. A task's result is what it writes
 * into its own element, so the results are in argument order by
 * construction. (With tasks you spawned yourself, loom_gather(tasks, n,
 * statuses, flags) does the same.) Output:
 *
 *     fetching api.example.com/users (1.5 s)
 *     fetching api.example.com/posts (1.0 s)
 *     fetching api.example.com/comments (0.5 s)
 *     got api.example.com/comments after 0.5 s
 *     got api.example.com/posts after 1.0 s
 *     got api.example.com/users after 1.5 s
 *     all results, in argument order:
 *       Response from api.example.com/users
 *       Response from api.example.com/posts
 *       Response from api.example.com/comments
 *     total: 1.5 s (one after the other would take 3.0 s)
 *
 * The total is the slowest fetch, not the sum: all three sleep at once.
 */
#include <stdio.h>

#include <loom.h>

#define NFETCH 3

/* One fetch: set up by main, filled in by its task. */
typedef struct {
  const char *url;
  uint64_t delay_ms;    /* how long the "request" takes */
  uint64_t t0;          /* loop time when main started (ms) */
  char response[64];    /* out: the result */
  uint64_t finished_ms; /* out: when the fetch finished, ms after t0 */
} fetch_arg_t;

static int fetch(void *p) {
  fetch_arg_t *a = p;
  printf("fetching %s (%.1f s)\n", a->url, (double)a->delay_ms / 1000.0);
  int rc = loom_sleep(a->delay_ms);
  if (rc < 0) return rc; /* cancelled (Ctrl-C): no response */
  a->finished_ms = loom_now() - a->t0;
  snprintf(a->response, sizeof a->response, "Response from %s", a->url);
  printf("got %s after %.1f s\n", a->url, (double)a->finished_ms / 1000.0);
  return 0;
}

static int gather_main(void *arg) {
  (void)arg;
  uint64_t t0 = loom_now();
  fetch_arg_t args[NFETCH] = {
      {"api.example.com/users", 1500, t0, "", 0},
      {"api.example.com/posts", 1000, t0, "", 0},
      {"api.example.com/comments", 500, t0, "", 0},
  };
  int statuses[NFETCH] = {0};

  /* No flags: like asyncio.gather, a failure does not stop the others (pass
   * LOOM_FAIL_FAST to cancel them at the first failure). Nothing outlives
   * the call: if we are cancelled while it waits, it cancels the fetches and
   * awaits them before returning UV_ECANCELED. */
  int rc = loom_gather_map(fetch, args, sizeof args[0], NFETCH, statuses, 0);
  if (rc < 0) {
    /* rc is the first failure in completion order; each task's own status
     * is in statuses[]. */
    fprintf(stderr, "gather: %s\n", loom_strerror(rc));
    for (int i = 0; i < NFETCH; i++)
      if (statuses[i] < 0)
        fprintf(stderr, "gather: %s: %s\n", args[i].url, loom_strerror(statuses[i]));
    return rc;
  }

  printf("all results, in argument order:\n");
  uint64_t sum = 0;
  for (int i = 0; i < NFETCH; i++) {
    printf("  %s\n", args[i].response);
    sum += args[i].delay_ms;
  }
  printf("total: %.1f s (one after the other would take %.1f s)\n",
         (double)(loom_now() - t0) / 1000.0, (double)sum / 1000.0);
  return 0;
}

int main(void) {
  int rc = loom_run(gather_main, NULL);
  if (rc < 0) {
    fprintf(stderr, "gather: %s\n", loom_strerror(rc));
    return 1;
  }
  return 0;
}
