/* The runtime's sources of time: its timers and the tick.
 *
 * Timers: one binary min-heap of deadlines, ordered by (deadline, insertion
 * sequence), driven by a single uv_timer_t armed for the earliest deadline.
 * A sleeping task costs one heap slot instead of a libuv handle that would
 * need closing; a million sleepers cost 8 MB of heap.
 *
 * The tick: a counter one helper thread increments every millisecond, so the
 * scheduler can tell at every task switch, by comparing one word, that its
 * pass has run long enough and I/O and timers are due (sched.c). Reading a
 * clock at every switch would do too, but costs 20 ns on a virtual machine,
 * as much as half a yield. The thread runs only while it is needed: the
 * first pass that outlives a tick of the coarse clock (CPU-bound tasks)
 * starts it, it parks itself after LOOM__TICK_IDLE_MS without such a pass,
 * and the last runtime that used it stops and joins it when it is freed.
 * Without it (before it starts, or if it cannot be created) a pass still
 * ends within a few rounds of a clock tick.
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

static int before(const loom__timer_t *a, const loom__timer_t *b) {
  return a->deadline < b->deadline ||
         (a->deadline == b->deadline && a->seq < b->seq);
}

static void place(loom_t *rt, size_t i, loom__timer_t *tm) {
  rt->heap[i] = tm;
  tm->index = i;
}

static void sift_up(loom_t *rt, size_t i) {
  loom__timer_t *tm = rt->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!before(tm, rt->heap[parent])) break;
    place(rt, i, rt->heap[parent]);
    i = parent;
  }
  place(rt, i, tm);
}

static void sift_down(loom_t *rt, size_t i) {
  loom__timer_t *tm = rt->heap[i];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const loom__timer_t *best = tm;
    if (l < rt->nheap && before(rt->heap[l], best)) m = l, best = rt->heap[l];
    if (r < rt->nheap && before(rt->heap[r], best)) m = r;
    if (m == i) break;
    place(rt, i, rt->heap[m]);
    i = m;
  }
  place(rt, i, tm);
}

static void on_timer(uv_timer_t *h);

static void arm(loom_t *rt) {
  if (rt->nheap == 0) {
    uv_timer_stop(&rt->timer);
    return;
  }
  uint64_t now = uv_now(rt->loop), d = rt->heap[0]->deadline;
  uv_timer_start(&rt->timer, on_timer, d > now ? d - now : 0, 0);
}

static void on_timer(uv_timer_t *h) {
  loom_t *rt = h->data;
  uint64_t now = uv_now(rt->loop);
  while (rt->nheap && rt->heap[0]->deadline <= now) {
    loom__timer_t *tm = rt->heap[0];
    loom__timer_remove(rt, tm); /* re-arms for the next deadline */
    tm->fire(tm);
  }
}

int loom__timer_add(loom_t *rt, loom__timer_t *tm, uint64_t deadline) {
  if (rt->nheap == rt->heap_cap) {
    size_t cap = rt->heap_cap ? rt->heap_cap * 2 : 64;
    loom__timer_t **h = realloc(rt->heap, cap * sizeof(*h));
    if (!h) return UV_ENOMEM;
    rt->heap = h;
    rt->heap_cap = cap;
  }
  tm->deadline = deadline;
  tm->seq = rt->timer_seq++;
  place(rt, rt->nheap++, tm);
  sift_up(rt, tm->index);
  if (rt->heap[0] == tm) arm(rt);
  return 0;
}

void loom__timer_remove(loom_t *rt, loom__timer_t *tm) {
  size_t i = tm->index;
  loom__assert(i < rt->nheap && rt->heap[i] == tm,
               "removing a timer that is not in the heap");
  tm->index = LOOM__TIMER_UNARMED;
  loom__timer_t *last = rt->heap[--rt->nheap];
  if (last != tm) {
    place(rt, i, last);
    sift_up(rt, i);
    sift_down(rt, last->index);
  }
  /* A new earliest deadline (or none): the uv timer must not keep the loop
   * alive, or fire late, for a deadline that is gone. */
  if (i == 0) arm(rt);
}

void loom__timer_free(loom_t *rt) {
  loom__tick_release(rt);
  free(rt->heap);
  rt->heap = NULL;
  rt->nheap = rt->heap_cap = 0;
}

void loom__timer_purge(loom_t *rt, const void *lo, const void *hi) {
  size_t kept = 0;
  for (size_t i = 0; i < rt->nheap; i++) {
    const char *p = (const char *)rt->heap[i];
    if (p < (const char *)lo || p >= (const char *)hi) rt->heap[kept++] = rt->heap[i];
  }
  if (kept == rt->nheap) return;
  rt->nheap = kept;
  for (size_t i = 0; i < kept; i++) rt->heap[i]->index = i;
  for (size_t i = kept / 2; i-- > 0;) sift_down(rt, i); /* heapify */
  arm(rt);
}

/* ---- the tick -------------------------------------------------------------- */

#define LOOM__TICK_NS 1000000   /* the tick's period: 1 ms */
#define LOOM__TICK_IDLE_MS 100  /* parks after this long unwanted */

_Atomic uint32_t loom__tick;
static _Atomic uint32_t tick_wanted;  /* loom__tick when last wanted */
static _Atomic int tick_parked;       /* the thread waits for a want */
static pthread_mutex_t tick_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tick_cv = PTHREAD_COND_INITIALIZER;
static pthread_once_t tick_once = PTHREAD_ONCE_INIT;
/* Under tick_mu: */
static pthread_t ticker;
static int ticker_running;            /* ticker is a thread to join */
static unsigned tick_gen;             /* a ticker ends when this moves */
static unsigned tick_users;           /* runtimes that have wanted it */
static unsigned tick_epoch = 1;       /* moves at fork: users are reset */

static void *tick_main(void *arg) {
  unsigned gen = (unsigned)(uintptr_t)arg;
  struct timespec period = {0, LOOM__TICK_NS};
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
      pthread_create(&ticker, NULL, tick_main,
                     (void *)(uintptr_t)tick_gen) == 0)
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
