/* The runtime's timers: one binary min-heap of deadlines, ordered by
 * (deadline, insertion sequence), driven by a single uv_timer_t armed for the
 * earliest deadline. A sleeping task costs one heap slot instead of a libuv
 * handle that would need closing; a million sleepers cost 8 MB of heap.
 */
#include <stdlib.h>
#include <time.h>

#include "internal.h"

static int before(const loom__timer_t *a, const loom__timer_t *b) {
  return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
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
