/* sleep_sort: many concurrent tasks. Each number gets a task that sleeps
 * value * 10 ms and then appends the value to the output, so the numbers
 * come out sorted.
 *
 * Sleep sort is not one of the reference programs; it is the folk demo of
 * every async library, built from the two steps of
 * the tutorial "asyncio first steps": create_task for each job,
 * then await them all (this example keeps to the core API, so main joins
 * the tasks one by one instead of gathering them, which waits just as long):
 *
 *     async def sleeper(v, out):
 *         await asyncio.sleep(v * 0.01)
 *         out.append(v)
 *
 *     async def main(values):
 *         out = []
 *         tasks = [asyncio.create_task(sleeper(v, out)) for v in values]
 *         for t in tasks:
 *             await t
 *         print(out)
 *
 * In loom every task has its own stack, yet a sleeping task costs only the
 * pages its stack has touched, so `sleep_sort --many 10000` runs ten thousand
 * tasks at once (each sleeps at most 990 ms, so all of them finish in about
 * a second, not in an hour and a half). `--many 1000000` works too, at about
 * 8 KiB of memory per task.
 *
 * Sleep sort is exact in loom, not just "usually right": the sleepers all
 * start in the same scheduler round, during which the loop time (cached once
 * per loop iteration) does not move, so their deadlines are ordered exactly
 * as their values, and the timers wake them in deadline order.
 *
 * Usage:
 *     sleep_sort                  sort a built-in list of 20 numbers
 *     sleep_sort 5 3 9 1          sort the numbers given (0..1000)
 *     sleep_sort --many COUNT     sort COUNT pseudo-random numbers (0..99)
 *                                 with COUNT concurrent tasks
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <loom.h>

#define MAX_VALUE 1000u /* 10 s of sleep: enough for a demonstration */

/* Shared by every sleeper: the output in wake-up order. */
typedef struct {
  unsigned *out; /* room for every value */
  size_t nout;   /* values appended so far */
} sorted_t;

/* One sleeper's argument. */
typedef struct {
  unsigned value;   /* sleep value * 10 ms, then append value */
  sorted_t *sorted; /* where to append it */
} sleeper_arg_t;

/* What main needs to know: the input, and whether to list the numbers. */
typedef struct {
  unsigned *values;
  size_t n;
  int verbose; /* 1: print the lists; 0 (--many): print a summary */
} sort_arg_t;

static int sleeper(void *p) {
  sleeper_arg_t *a = p;
  int rc = loom_sleep((uint64_t)a->value * 10u);
  if (rc < 0) return rc; /* cancelled: the value is not appended */
  a->sorted->out[a->sorted->nout++] = a->value;
  return 0;
}

static void print_list(const char *label, const unsigned *v, size_t n) {
  printf("%s", label);
  for (size_t i = 0; i < n; i++) printf(" %u", v[i]);
  printf("\n");
}

static int sort_main(void *p) {
  sort_arg_t *s = p;
  sorted_t sorted = {.out = calloc(s->n ? s->n : 1, sizeof(unsigned))};
  sleeper_arg_t *args = calloc(s->n ? s->n : 1, sizeof(*args));
  loom_task_t **tasks = calloc(s->n ? s->n : 1, sizeof(*tasks));
  if (!sorted.out || !args || !tasks) {
    free(sorted.out);
    free(args);
    free(tasks);
    fprintf(stderr, "sleep_sort: out of memory\n");
    return UV_ENOMEM;
  }
  if (s->verbose) print_list("unsorted:", s->values, s->n);

  uint64_t t0 = loom_now();
  size_t spawned = 0;
  int rc = 0;
  for (; spawned < s->n; spawned++) {
    args[spawned] = (sleeper_arg_t){.value = s->values[spawned], .sorted = &sorted};
    rc = loom_spawn(&tasks[spawned], sleeper, &args[spawned]);
    if (rc < 0) {
      fprintf(stderr, "sleep_sort: spawning task %zu: %s\n", spawned + 1,
              loom_strerror(rc));
      break;
    }
  }
  /* None of them has run yet: spawn only schedules. They all start once we
   * suspend in the first join. Join every task spawned, even after an error. */
  for (size_t i = 0; i < spawned; i++) {
    int status;
    int jrc = loom_join(tasks[i], &status);
    if (jrc == 0) jrc = status;
    if (jrc < 0 && rc == 0) {
      fprintf(stderr, "sleep_sort: task %zu: %s\n", i + 1, loom_strerror(jrc));
      rc = jrc;
    }
  }
  uint64_t elapsed = loom_now() - t0;

  if (rc == 0) {
    size_t inversions = 0;
    for (size_t i = 1; i < sorted.nout; i++)
      inversions += sorted.out[i - 1] > sorted.out[i];
    if (s->verbose) {
      print_list("sorted:  ", sorted.out, sorted.nout);
    } else {
      printf("%zu tasks sorted %zu numbers %s\n", spawned, sorted.nout,
             inversions ? "OUT OF ORDER" : "in order");
      printf("took %.1f s\n", (double)elapsed / 1000.0);
    }
    if (inversions || sorted.nout != s->n) rc = UV_EINVAL; /* cannot happen */
  }
  free(sorted.out);
  free(args);
  free(tasks);
  return rc;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out) {
  char *end;
  if (*s < '0' || *s > '9') return -1; /* no sign, no blanks */
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || *end || v > max) return -1;
  *out = v;
  return 0;
}

static int usage(void) {
  fprintf(stderr,
          "usage: sleep_sort [NUMBER...]   sort numbers 0..%u (default: a "
          "built-in list)\n"
          "       sleep_sort --many COUNT  sort COUNT random numbers with COUNT "
          "tasks\n",
          MAX_VALUE);
  return 2;
}

int main(int argc, char **argv) {
  static unsigned builtin[] = {42, 7,  93, 15, 61, 3,  78, 29, 50, 11,
                               86, 34, 0,  67, 22, 99, 5,  71, 18, 56};
  sort_arg_t s = {
      .values = builtin, .n = sizeof(builtin) / sizeof(builtin[0]), .verbose = 1};
  unsigned *owned = NULL;

  if (argc >= 2 && strcmp(argv[1], "--many") == 0) {
    unsigned long count;
    if (argc != 3 || parse_uint(argv[2], 10000000ul, &count) || count == 0)
      return usage();
    owned = malloc(count * sizeof(unsigned));
    if (!owned) {
      fprintf(stderr, "sleep_sort: out of memory\n");
      return 1;
    }
    /* A fixed-seed xorshift: the same numbers on every run. */
    uint32_t x = 2463534242u;
    for (unsigned long i = 0; i < count; i++) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      owned[i] = x % 100u;
    }
    s = (sort_arg_t){.values = owned, .n = count, .verbose = 0};
  } else if (argc >= 2) {
    owned = malloc((size_t)(argc - 1) * sizeof(unsigned));
    if (!owned) {
      fprintf(stderr, "sleep_sort: out of memory\n");
      return 1;
    }
    for (int i = 1; i < argc; i++) {
      unsigned long v;
      if (parse_uint(argv[i], MAX_VALUE, &v)) {
        fprintf(stderr, "sleep_sort: not a number in 0..%u: '%s'\n", MAX_VALUE, argv[i]);
        free(owned);
        return usage();
      }
      owned[i - 1] = (unsigned)v;
    }
    s = (sort_arg_t){.values = owned, .n = (size_t)(argc - 1), .verbose = 1};
  }

  int rc = loom_run(sort_main, &s);
  free(owned);
  if (rc < 0) {
    fprintf(stderr, "sleep_sort: %s\n", loom_strerror(rc));
    return 1;
  }
  return 0;
}
