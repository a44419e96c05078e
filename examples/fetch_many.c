/* fetch_many: fetch N URLs concurrently, at most LIMIT at a time, and
 * print (url, status) for each, in the order given.
 *
 *     fetch_many [-l LIMIT] [-r REPEAT] URL...
 *
 * Ports the aiohttp program of "Async I/O patterns", "limiting
 * concurrency (Semaphore)":
 *
 *     semaphore = asyncio.Semaphore(3)  # allow up to 3 concurrent tasks
 *
 *     async def limited_fetch(session, url):
 *         async with semaphore:
 *             async with session.get(url) as resp:
 *                 return url, resp.status
 *
 *     async def main(urls):
 *         async with aiohttp.ClientSession() as session:
 *             tasks = [limited_fetch(session, u) for u in urls]
 *             results = await asyncio.gather(*tasks)
 *             print(results)
 *
 *     urls = ["https://codesparklab.com/json/example.json"] * 10
 *
 * on libcurl driven by loom: each URL is a task (loom_gather_map is
 * asyncio.gather), the semaphore is a loom_sem_t, and the session is the
 * runtime's one libcurl multi handle, whose connection cache the tasks
 * share as aiohttp's session pool is shared. loom_http_get follows
 * redirects and verifies certificates; the body is read into memory (a
 * cap of 1 MiB) and dropped. The list prints as Python prints it:
 *
 *     [('http://127.0.0.1:8080/a', 200), ('http://127.0.0.1:8080/b', 404)]
 *
 * A URL that fails prints its error instead of a status, e.g.
 * ('http://127.0.0.1:1/', 'ECONNREFUSED'), and the exit status is 1. */
#include <loom.h>
#include <loom/http.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
  loom_sem_t *sem;
  const char *url;
  long status; /* out: the HTTP status */
  int rc;      /* out: 0 or the error */
  int *in_flight, *peak;
} fetch_t;

static int limited_fetch(void *arg) {
  fetch_t *f = arg;
  int rc = loom_sem_acquire(f->sem); /* async with semaphore: */
  if (rc < 0) return f->rc = rc;
  if (++*f->in_flight > *f->peak) *f->peak = *f->in_flight;
  loom_http_body_t body;
  f->rc = loom_http_get(f->url, 1 << 20, &body);
  f->status = body.status;
  free(body.data);
  --*f->in_flight;
  loom_sem_release(f->sem);
  return 0;
}

typedef struct {
  char **urls;
  int nurls, repeat, limit;
} args_t;

static int fetch_many_main(void *arg) {
  args_t *a = arg;
  size_t n = (size_t)a->nurls * (size_t)a->repeat;
  loom_sem_t sem;
  loom_sem_init(&sem, (unsigned)a->limit);
  int in_flight = 0, peak = 0;
  fetch_t *jobs = calloc(n, sizeof(*jobs));
  int *statuses = calloc(n, sizeof(*statuses));
  if (!jobs || !statuses) {
    free(jobs);
    free(statuses);
    return UV_ENOMEM;
  }
  for (size_t i = 0; i < n; i++)
    jobs[i] = (fetch_t){.sem = &sem,
                        .url = a->urls[i % (size_t)a->nurls],
                        .in_flight = &in_flight,
                        .peak = &peak};
  int rc = loom_gather_map(limited_fetch, jobs, sizeof(*jobs), n, statuses, 0);
  int failed = 0;
  if (rc == 0) {
    printf("[");
    for (size_t i = 0; i < n; i++) {
      printf("%s('%s', ", i ? ", " : "", jobs[i].url);
      if (jobs[i].rc == 0) {
        printf("%ld)", jobs[i].status);
      } else {
        printf("'%s')", loom_err_name(jobs[i].rc));
        failed = 1;
      }
    }
    printf("]\n");
    fprintf(stderr, "fetch_many: %zu URLs, at most %d at a time\n", n, peak);
  }
  free(jobs);
  free(statuses);
  return rc < 0 ? rc : failed;
}

int main(int argc, char **argv) {
  args_t a = {.repeat = 1, .limit = 3};
  int i = 1;
  for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
    if (argv[i][1] == 'l')
      a.limit = atoi(argv[i + 1]);
    else if (argv[i][1] == 'r')
      a.repeat = atoi(argv[i + 1]);
    else
      break;
  }
  if (i >= argc || argv[i][0] == '-' || a.limit < 1 || a.repeat < 1) {
    fprintf(stderr, "usage: %s [-l LIMIT] [-r REPEAT] URL...\n", argv[0]);
    return 2;
  }
  a.urls = argv + i;
  a.nurls = argc - i;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = loom_run(fetch_many_main, &a);
  curl_global_cleanup();
  if (rc < 0) {
    fprintf(stderr, "fetch_many: %s\n", loom_strerror(rc));
    return 1;
  }
  return rc;
}
