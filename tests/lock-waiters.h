/* A lock with a crowd of tasks waiting on it, for the tests of the reports
 * that list every task (a task dump, the monitor's ps).
 *
 * Every waiter's line names the holder. The report must find the holder in
 * its sorted tasks, not by a walk of every task per waiter: with 2000
 * waiters that walk is 4M steps, with 10000 100M, which a test of this size
 * shows as a report that takes seconds. Header-only: each test program
 * includes it once. */
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
  loom_task_t *holder, **waiters;
  uint64_t holder_id;
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

/* From a task: a task named "holder" takes the lock, then MANY_WAITERS
 * tasks (on the smallest stacks, to keep the crowd cheap) queue on it; all
 * are parked when this returns. 0, or UV_ENOMEM with nothing spawned. *lw
 * must stay where it is until lock_waiters_end. */
static int lock_waiters_start(lock_waiters_t *lw) {
  loom_lock_init(&lw->lock);
  loom_event_init(&lw->release);
  lw->waiters = malloc(MANY_WAITERS * sizeof(*lw->waiters));
  if (!lw->waiters) return UV_ENOMEM;
  loom_task_opts_t ho = {.name = "holder"}, wo = {.stack_size = LOOM_MIN_STACK_SIZE};
  loom_spawn_ex(&lw->holder, lock_waiters_holder, lw, &ho);
  loom_yield();
  lw->holder_id = loom_task_id(lw->holder);
  for (int i = 0; i < MANY_WAITERS; i++)
    loom_spawn_ex(&lw->waiters[i], lock_waiters_waiter, lw, &wo);
  loom_yield();
  return 0;
}

/* How the crowd ended: the holder's join result or'ed with its status,
 * and the same or'ed over every waiter (0: each took the lock in turn). */
typedef struct {
  int holder, waiters;
} lock_waiters_rc_t;

/* Lets the crowd go and joins it. */
static lock_waiters_rc_t lock_waiters_end(lock_waiters_t *lw) {
  lock_waiters_rc_t rc = {0, 0};
  loom_event_set(&lw->release);
  int st = 0;
  rc.holder = loom_join(lw->holder, &st) | st;
  for (int i = 0; i < MANY_WAITERS; i++)
    rc.waiters |= loom_join(lw->waiters[i], &st) | st;
  free(lw->waiters);
  lw->waiters = NULL;
  return rc;
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
