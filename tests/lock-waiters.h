/* A lock with a crowd of tasks waiting on it, for the tests of the reports
 * that list every task (a task dump, the monitor's ps).
 *
 * Every waiter's line names the holder. The report must find the holder in
 * its sorted tasks, not by a walk of every task per waiter (2000 waiters:
 * 4M steps that way; 10000: 100M). Header-only: each test program includes
 * it once. */
#ifndef LOOM_TEST_LOCK_WAITERS_H
#define LOOM_TEST_LOCK_WAITERS_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom.h"

#ifndef MANY_WAITERS
#define MANY_WAITERS 2000
#endif

typedef struct {
  loom_lock_t lock;
  loom_event_t release; /* set: the holder lets the lock go */
} lock_waiters_t;

static int lock_waiters_waiter(void *arg) {
  lock_waiters_t *lw = arg;
  int rc = loom_lock_acquire(&lw->lock);
  return rc ? rc : loom_lock_release(&lw->lock);
}

static int lock_waiters_holder(void *arg) {
  lock_waiters_t *lw = arg;
  int rc = loom_lock_acquire(&lw->lock);
  if (!rc) rc = loom_event_wait(&lw->release);
  return rc ? rc : loom_lock_release(&lw->lock);
}

/* What lock_waiters_report saw. */
typedef struct {
  uint64_t holder_id; /* the task every waiter's line must name */
  uint64_t report_us; /* how long the report took */
  /* How the crowd ended: the holder's join result or'ed with its status,
   * and the same or'ed over every waiter (0: each took the lock in turn). */
  int holder, waiters;
} lock_waiters_seen_t;

/* From a task: a task named "holder" takes the lock, MANY_WAITERS tasks
 * (on the smallest stacks, to keep the crowd cheap) queue on it, and once
 * all are parked report(arg) runs, timed; then the crowd is let go and
 * joined. 0, or UV_ENOMEM with nothing spawned and no report. */
static int lock_waiters_report(void (*report)(void *arg), void *arg,
                               lock_waiters_seen_t *seen) {
  lock_waiters_t lw;
  loom_lock_init(&lw.lock);
  loom_event_init(&lw.release);
  loom_task_t *h, **w = malloc(MANY_WAITERS * sizeof(*w));
  if (!w) return UV_ENOMEM;
  loom_task_opts_t ho = {.name = "holder"}, wo = {.stack_size = LOOM_MIN_STACK_SIZE};
  loom_spawn_ex(&h, lock_waiters_holder, &lw, &ho);
  loom_yield();
  seen->holder_id = loom_task_id(h);
  for (int i = 0; i < MANY_WAITERS; i++)
    loom_spawn_ex(&w[i], lock_waiters_waiter, &lw, &wo);
  loom_yield();
  uint64_t t0 = uv_hrtime();
  report(arg);
  seen->report_us = (uv_hrtime() - t0) / 1000;
  loom_event_set(&lw.release);
  int st = 0;
  seen->holder = loom_join(h, &st) | st;
  seen->waiters = 0;
  for (int i = 0; i < MANY_WAITERS; i++) seen->waiters |= loom_join(w[i], &st) | st;
  free(w);
  return 0;
}

/* How many times text says that the lock is held by the holder: one line a
 * waiter. */
static int lock_waiters_named(const char *text, uint64_t holder_id) {
  char want[64];
  snprintf(want, sizeof(want), " held by task %" PRIu64 " 'holder'\n", holder_id);
  int seen = 0;
  for (const char *p = text; (p = strstr(p, want)) != NULL; p++) seen++;
  return seen;
}

#endif
