/* task_group: start tasks into a group, and wait for the whole group.
 *
 * Ports the TaskGroup example (the tutorial "asyncio in practice",
 * "TaskGroup (Python 3.11+)"):
 *
 *     async def taskGroupDemo():
 *         async def fetch(itemId):
 *             await asyncio.sleep(0.5)
 *             return f"item_{itemId}"
 *
 *         async with asyncio.TaskGroup() as tg:
 *             tasks = [tg.create_task(fetch(i)) for i in range(5)]
 *
 *         results = [t.result() for t in tasks]
 *         print(f"all results: {results}")
 *
 * loom_group_open() is entering `async with asyncio.TaskGroup() as tg`,
 * loom_group_spawn() is tg.create_task(), and loom_group_wait() is leaving
 * the block: it waits for every child, then frees the group. As in asyncio,
 * the first child that fails cancels all the others and wait returns its
 * error; and if we are cancelled while waiting (Ctrl-C), the children are
 * cancelled and awaited before wait returns UV_ECANCELED. So no child
 * outlives the group.
 *
 * The children are spawned without handles (NULL): the group reclaims them,
 * and each reports its result through its argument. (Pass a handle pointer
 * to keep a child's handle, and loom_join it after the wait for its own
 * status.) Output:
 *
 *     fetching 5 items in a task group
 *     all results: [item_0, item_1, item_2, item_3, item_4]
 *     total: 0.5 s (one after the other would take 2.5 s)
 */
#include <stdio.h>

#include <loom.h>

#define NITEMS 5
#define FETCH_MS 500

/* One fetch: set up by main, filled in by its task. */
typedef struct {
  int id;
  char result[16]; /* out: "item_<id>" */
} fetch_arg_t;

static int fetch(void *p) {
  fetch_arg_t *a = p;
  int rc = loom_sleep(FETCH_MS);
  if (rc < 0) return rc; /* cancelled: by Ctrl-C, or a sibling's failure */
  snprintf(a->result, sizeof a->result, "item_%d", a->id);
  return 0;
}

static int task_group_main(void *arg) {
  (void)arg;
  fetch_arg_t args[NITEMS];
  uint64_t t0 = loom_now();

  loom_group_t *g;
  int rc = loom_group_open(&g);
  if (rc < 0) {
    fprintf(stderr, "task_group: open: %s\n", loom_strerror(rc));
    return rc;
  }
  printf("fetching %d items in a task group\n", NITEMS);
  for (int i = 0; i < NITEMS; i++) {
    args[i] = (fetch_arg_t){.id = i};
    rc = loom_group_spawn(g, NULL, fetch, &args[i]);
    if (rc < 0) {
      /* Stop the children already started; the wait below still awaits
       * them (and frees the group). */
      fprintf(stderr, "task_group: spawn %d: %s\n", i, loom_strerror(rc));
      loom_group_cancel(g);
      break;
    }
  }
  /* Always wait, even after an error: it is what frees the group, and a
   * task that returns with a group open is reported. */
  int wrc = loom_group_wait(g);
  if (rc < 0) return rc;
  if (wrc < 0) {
    fprintf(stderr, "task_group: %s\n", loom_strerror(wrc));
    return wrc;
  }

  printf("all results: [");
  for (int i = 0; i < NITEMS; i++) printf("%s%s", i ? ", " : "", args[i].result);
  printf("]\n");
  printf("total: %.1f s (one after the other would take %.1f s)\n",
         (double)(loom_now() - t0) / 1000.0, NITEMS * FETCH_MS / 1000.0);
  return 0;
}

int main(void) {
  int rc = loom_run(task_group_main, NULL);
  if (rc < 0) {
    fprintf(stderr, "task_group: %s\n", loom_strerror(rc));
    return 1;
  }
  return 0;
}
