/* The tick: a counter one helper thread increments every millisecond, so the
 * scheduler can tell at every task switch, by comparing one word, that its
 * pass has run long enough and I/O and timers are due (sched.c). Reading a
 * clock at every switch would do too, but costs 20 ns on a virtual machine,
 * as much as half a yield. The thread runs only while it is needed: the
 * first pass that outlives a tick of the coarse clock (CPU-bound tasks)
 * starts it, it parks itself after LOOM__TICK_IDLE_MS without such a pass,
 * and the last runtime that used it stops and joins it when it is freed.
 * Without it (before it starts, or if it cannot be created) a pass still
 * ends within a few rounds of a clock tick.
 *
 * It is the one piece of process-wide state besides the guard budget and
 * the signal handlers: one thread serves every runtime of the process, and
 * runtimes only read its counter.
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

#define LOOM__TICK_NS 1000000  /* the tick's period: 1 ms */
#define LOOM__TICK_IDLE_MS 100 /* parks after this long unwanted */

_Atomic uint32_t loom__tick;
static _Atomic uint32_t tick_wanted; /* loom__tick when last wanted */
static _Atomic int tick_parked;      /* the thread waits for a want */
static pthread_mutex_t tick_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tick_cv = PTHREAD_COND_INITIALIZER;
static pthread_once_t tick_once = PTHREAD_ONCE_INIT;
/* Under tick_mu: */
static pthread_t ticker;
static int ticker_running;      /* ticker is a thread to join */
static unsigned tick_gen;       /* a ticker ends when this moves */
static unsigned tick_users;     /* runtimes that have wanted it */
static unsigned tick_epoch = 1; /* moves at fork: users are reset */

static void *tick_main(void *arg) {
  unsigned gen = (unsigned)(uintptr_t)arg;
  struct timespec period = {.tv_sec = 0, .tv_nsec = LOOM__TICK_NS};
  pthread_mutex_lock(&tick_mu);
  while (tick_gen == gen) {
    uint32_t now = atomic_load_explicit(&loom__tick, memory_order_relaxed);
    if (now - atomic_load_explicit(&tick_wanted, memory_order_relaxed) >
        LOOM__TICK_IDLE_MS) {
      atomic_store(&tick_parked, 1);
      pthread_cond_wait(&tick_cv, &tick_mu);
      atomic_store(&tick_parked, 0);
      /* Wanted again: count from now, not from the old want. */
      atomic_store_explicit(&tick_wanted, now, memory_order_relaxed);
      continue;
    }
    pthread_mutex_unlock(&tick_mu);
    nanosleep(&period, NULL);
    atomic_fetch_add_explicit(&loom__tick, 1, memory_order_relaxed);
    pthread_mutex_lock(&tick_mu);
  }
  pthread_mutex_unlock(&tick_mu);
  return NULL;
}

/* fork() copies neither the thread nor, safely, a held mutex: the child
 * starts afresh, and runtimes it inherited register again if they need to. */
static void tick_prepare(void) { pthread_mutex_lock(&tick_mu); }
static void tick_parent(void) { pthread_mutex_unlock(&tick_mu); }
static void tick_child(void) {
  pthread_mutex_init(&tick_mu, NULL);
  pthread_cond_init(&tick_cv, NULL);
  ticker_running = 0;
  tick_users = 0;
  tick_epoch++;
  atomic_store(&tick_parked, 0);
}
static void tick_init_once(void) {
  pthread_atfork(tick_prepare, tick_parent, tick_child);
}

void loom__tick_want(loom_t *rt) {
  /* Called when a pass has run long (sched.c, pass_ran_long), out of line:
   * where debug mode reports a slow task that has just suspended, without
   * a test on the switch path. */
  if (LOOM__UNLIKELY(rt->debug_mode)) loom__debug_time_up(rt);
  atomic_store_explicit(&tick_wanted,
                        atomic_load_explicit(&loom__tick, memory_order_relaxed),
                        memory_order_relaxed);
  if (rt->tick_epoch == tick_epoch) {
    /* Registered: only a parked ticker needs telling. A wake missed in a
     * race with parking costs one more pass cut by the clock, which wants
     * the tick again. */
    if (atomic_load_explicit(&tick_parked, memory_order_relaxed)) {
      pthread_mutex_lock(&tick_mu);
      pthread_cond_broadcast(&tick_cv);
      pthread_mutex_unlock(&tick_mu);
    }
    return;
  }
  pthread_once(&tick_once, tick_init_once);
  pthread_mutex_lock(&tick_mu);
  rt->tick_epoch = tick_epoch;
  tick_users++;
  if (!ticker_running &&
      pthread_create(&ticker, NULL, tick_main, (void *)(uintptr_t)tick_gen) == 0)
    ticker_running = 1;
  pthread_cond_broadcast(&tick_cv);
  pthread_mutex_unlock(&tick_mu);
}

void loom__tick_release(loom_t *rt) {
  if (!rt->tick_epoch) return;
  pthread_t t;
  int join = 0;
  pthread_mutex_lock(&tick_mu);
  if (rt->tick_epoch == tick_epoch && --tick_users == 0 && ticker_running) {
    tick_gen++; /* the ticker ends, even if another is started before */
    ticker_running = 0;
    t = ticker;
    join = 1;
    pthread_cond_broadcast(&tick_cv);
  }
  rt->tick_epoch = 0;
  pthread_mutex_unlock(&tick_mu);
  if (join) pthread_join(t, NULL);
}
