/* Queues (asyncio.Queue, LifoQueue, PriorityQueue) with Python 3.13's
 * shutdown.
 *
 * Items are void pointers in one buffer: a ring for FIFO, a stack for LIFO,
 * a binary heap ordered by (cmp, put order) for PRIORITY. A bounded queue
 * of up to PREALLOC items gets its whole buffer at init and never grows; a
 * larger or unbounded one doubles its buffer when full (never past
 * maxsize).
 *
 * Fairness without lost wake-ups: when a put wakes a waiting getter, one
 * item is *reserved* for it (get_reserved), so a newcomer calling get before
 * the woken getter runs cannot take it; likewise a get that frees a slot
 * reserves it for the woken putter (put_reserved). A woken waiter that is
 * interrupted before it runs gives its reservation back and wakes the next
 * waiter in its place: no item is lost or delivered twice, and a put that
 * returned 0 has always put its item.
 *
 * Misuse answers with a code, never undefined behaviour: a NULL queue or
 * item pointer, or a queue used after destroy, is UV_EINVAL; destroying a
 * queue tasks are waiting on is LOOM_EBUSY. Any maxsize is accepted: only
 * the first PREALLOC slots of a bounded queue are allocated at init, the
 * rest on demand, so a maxsize too large to allocate is a limit, not an
 * allocation.
 */
#include <stdlib.h>
#include <string.h>

#include "sync/internal.h"

struct loom__qslot_s {
  void *item;
  uint64_t seq; /* PRIORITY: put order, the tie-breaker */
};
typedef struct loom__qslot_s slot_t;

/* q->shutdown. DESTROYED: loom_queue_destroy ran; every call but init and
 * destroy fails with UV_EINVAL. */
enum { OPEN = 0, DRAINING = 1, IMMEDIATE = 2, DESTROYED = 3 };

/* A bounded queue allocates up to this many slots at init (16 KiB), so
 * that its puts cannot fail for memory; a larger one grows beyond it. */
enum { PREALLOC = 1024 };

/* ---- the buffer ------------------------------------------------------------ */

/* PRIORITY keeps a binary heap in the slot array itself rather than using
 * util/heap.h: that heap is intrusive (a node embedded in each element) and
 * an item here is the caller's bare pointer, so it would need a node
 * allocated per put; the array needs none and stays one buffer for every
 * kind. */

static int before(const loom__queue_t *q, const slot_t *a, const slot_t *b) {
  int c = q->cmp(a->item, b->item);
  return c < 0 || (c == 0 && a->seq < b->seq);
}

static void heap_up(loom__queue_t *q, size_t i) {
  slot_t s = q->buf[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!before(q, &s, &q->buf[p])) break;
    q->buf[i] = q->buf[p];
    i = p;
  }
  q->buf[i] = s;
}

static void heap_down(loom__queue_t *q, size_t i) {
  slot_t s = q->buf[i];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const slot_t *best = &s;
    if (l < q->size && before(q, &q->buf[l], best)) m = l, best = &q->buf[l];
    if (r < q->size && before(q, &q->buf[r], best)) m = r;
    if (m == i) break;
    q->buf[i] = q->buf[m];
    i = m;
  }
  q->buf[i] = s;
}

static int grow(loom__queue_t *q) {
  if (q->cap > SIZE_MAX / 2 / sizeof(slot_t)) return UV_ENOMEM;
  size_t cap = q->cap ? q->cap * 2 : 16;
  /* Never past maxsize: size < maxsize whenever a push needs room. */
  if (q->maxsize && cap > q->maxsize) cap = q->maxsize;
  slot_t *b = malloc(cap * sizeof(*b));
  if (!b) return UV_ENOMEM;
  /* Unroll the ring so that it starts at 0. */
  for (size_t i = 0; i < q->size; i++) b[i] = q->buf[(q->head + i) % q->cap];
  free(q->buf);
  q->buf = b;
  q->cap = cap;
  q->head = 0;
  return 0;
}

static int push(loom__queue_t *q, void *item) {
  if (q->size == q->cap) {
    int rc = grow(q);
    if (rc) return rc;
  }
  slot_t s = {.item = item, .seq = q->seq++};
  switch (q->kind) {
  case LOOM_QUEUE_FIFO: {
    size_t i = q->head + q->size; /* no %: a 64-bit division is slow */
    if (i >= q->cap) i -= q->cap;
    q->buf[i] = s;
    q->size++;
    break;
  }
  case LOOM_QUEUE_LIFO: q->buf[q->size++] = s; break;
  default:
    q->buf[q->size] = s;
    heap_up(q, q->size++);
    break;
  }
  q->unfinished++;
  return 0;
}

static __attribute__((noinline)) void *pop_heap(loom__queue_t *q) {
  void *item = q->buf[0].item;
  q->buf[0] = q->buf[--q->size];
  if (q->size) heap_down(q, 0);
  return item;
}

static inline void *pop(loom__queue_t *q) {
  void *item;
  switch (q->kind) {
  case LOOM_QUEUE_FIFO:
    item = q->buf[q->head].item;
    if (++q->head == q->cap) q->head = 0;
    q->size--;
    break;
  case LOOM_QUEUE_LIFO: item = q->buf[--q->size].item; break;
  default: item = pop_heap(q); break;
  }
  return item;
}

/* ---- waking ------------------------------------------------------------------ */

/* Items a newcomer may take / slots a newcomer may fill right now. */
static size_t takeable(const loom__queue_t *q) {
  /* After an immediate shutdown, reservations can outnumber items. */
  return q->size > q->get_reserved ? q->size - q->get_reserved : 0;
}
static int room(const loom__queue_t *q) {
  return !q->maxsize || q->size + q->put_reserved < q->maxsize;
}

/* Hands unreserved items to waiting getters, free slots to waiting putters. */
static void dispatch(loom__queue_t *q) {
  while (!loom__wq_empty(&q->getters) && takeable(q) > 0) {
    loom__wq_wake_one(&q->getters, 0);
    q->get_reserved++;
  }
  /* Shut down, and every item left is promised: no other getter gets one. */
  if (q->shutdown && takeable(q) == 0) loom__wq_wake_all(&q->getters, LOOM_ESHUTDOWN);
  while (!loom__wq_empty(&q->putters) && q->shutdown == OPEN && room(q)) {
    loom__wq_wake_one(&q->putters, 0);
    q->put_reserved++;
  }
}

/* The waiting half of put (out == NULL) and get (out != NULL).
 *
 * One function for both, which the public calls reach by a tail call: a
 * task resumed here returns through the same return addresses as the task
 * that switched to it, except for the last one, into the caller. A return
 * the CPU mispredicts after a stack switch costs as much as the switch
 * itself (docs/benchmarks.md, "Why a strict hand-off costs two
 * mispredicted returns"), and a producer and a consumer parked in two
 * different functions would mispredict two returns per hand-off, not
 * one. */
static __attribute__((noinline)) int wait_turn(loom__queue_t *q, loom_task_t *self,
                                               void *item, void **out) {
  loom__wnode_t n;
  int rc;
  /* A getter finding the queue shut down with nothing left for it (what is
   * left is promised) fails at once. */
  if (out && q->shutdown && takeable(q) == 0)
    return q->shutdown == DESTROYED ? UV_EINVAL : LOOM_ESHUTDOWN;
  loom__wait_on(&n.w, out ? LOOM__W_QUEUE_GET : LOOM__W_QUEUE_PUT, q);
  rc = loom__wq_wait(out ? &q->getters : &q->putters, &n, self, 0);
  if (rc) return rc; /* interrupted or shut down while queued */
  if (out) {
    q->get_reserved--;                       /* our item */
    if (q->size == 0) return LOOM_ESHUTDOWN; /* emptied by an immediate shutdown */
    if ((rc = loom__check(self)) != 0) {
      dispatch(q); /* the item goes to the next getter */
      return rc;
    }
    *out = pop(q);
  } else {
    q->put_reserved--; /* our slot */
    if ((rc = loom__check(self)) != 0 || (q->shutdown && (rc = LOOM_ESHUTDOWN))) {
      dispatch(q); /* the slot goes to the next putter */
      return rc;
    }
    rc = push(q, item);
  }
  dispatch(q);
  return rc;
}

/* ---- public API -------------------------------------------------------------- */

int loom_queue_init(loom_queue_t *queue, size_t maxsize, int kind, loom_cmp_fn cmp) {
  if (!queue) return UV_EINVAL;
  loom__queue_t *q = loom__sync_of(queue);
  *q = (loom__queue_t){.shutdown = OPEN};
  if (kind < LOOM_QUEUE_FIFO || kind > LOOM_QUEUE_PRIORITY ||
      (kind == LOOM_QUEUE_PRIORITY && !cmp)) {
    q->shutdown = DESTROYED; /* unusable, as if never initialised */
    return UV_EINVAL;
  }
  q->kind = kind;
  q->cmp = cmp;
  q->maxsize = maxsize;
  if (maxsize) {
    size_t cap = maxsize < PREALLOC ? maxsize : PREALLOC;
    q->buf = malloc(cap * sizeof(slot_t));
    if (!q->buf) {
      q->shutdown = DESTROYED;
      return UV_ENOMEM;
    }
    q->cap = cap;
  }
  return 0;
}

int loom_queue_destroy(loom_queue_t *queue) {
  if (!queue) return UV_EINVAL;
  loom__queue_t *q = loom__sync_of(queue);
  if (!loom__wq_empty(&q->getters) || !loom__wq_empty(&q->putters) ||
      !loom__wq_empty(&q->joiners) || q->get_reserved || q->put_reserved)
    return LOOM_EBUSY;
  free(q->buf);
  q->buf = NULL;
  q->cap = q->size = q->head = q->unfinished = 0;
  q->shutdown = DESTROYED;
  return 0;
}

size_t loom_queue_size(const loom_queue_t *queue) {
  return queue ? loom__sync_of(queue)->size : 0;
}

int loom_queue_empty(const loom_queue_t *queue) {
  return queue && loom__sync_of(queue)->size == 0;
}

int loom_queue_full(const loom_queue_t *queue) {
  const loom__queue_t *q = queue ? loom__sync_of(queue) : NULL;
  return q && q->maxsize && q->size >= q->maxsize;
}

int loom_queue_try_put(loom_queue_t *queue, void *item) {
  if (!queue) return UV_EINVAL;
  loom__queue_t *q = loom__sync_of(queue);
  if (q->shutdown) return q->shutdown == DESTROYED ? UV_EINVAL : LOOM_ESHUTDOWN;
  if (!room(q) || !loom__wq_empty(&q->putters)) return UV_EAGAIN;
  int rc = push(q, item);
  if (rc == 0) dispatch(q);
  return rc;
}

int loom_queue_put(loom_queue_t *queue, void *item) {
  if (!queue) return UV_EINVAL;
  loom__queue_t *q = loom__sync_of(queue);
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  if (q->shutdown) return q->shutdown == DESTROYED ? UV_EINVAL : LOOM_ESHUTDOWN;
  if (!room(q) || !loom__wq_empty(&q->putters)) return wait_turn(q, self, item, NULL);
  rc = push(q, item);
  dispatch(q);
  return rc;
}

int loom_queue_try_get(loom_queue_t *queue, void **item) {
  if (!queue || !item) return UV_EINVAL;
  loom__queue_t *q = loom__sync_of(queue);
  if (takeable(q) == 0 || !loom__wq_empty(&q->getters)) {
    if (!q->shutdown || takeable(q) != 0) return UV_EAGAIN;
    return q->shutdown == DESTROYED ? UV_EINVAL : LOOM_ESHUTDOWN;
  }
  *item = pop(q);
  dispatch(q);
  return 0;
}

int loom_queue_get(loom_queue_t *queue, void **item) {
  if (!queue || !item) return UV_EINVAL;
  loom__queue_t *q = loom__sync_of(queue);
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  if (takeable(q) == 0 || !loom__wq_empty(&q->getters))
    return wait_turn(q, self, NULL, item);
  *item = pop(q);
  dispatch(q);
  return 0;
}

int loom_queue_task_done(loom_queue_t *queue) {
  loom__queue_t *q = queue ? loom__sync_of(queue) : NULL;
  if (!q || q->shutdown == DESTROYED || q->unfinished == 0) return UV_EINVAL;
  if (--q->unfinished == 0) loom__wq_wake_all(&q->joiners, 0);
  return 0;
}

int loom_queue_join(loom_queue_t *queue) {
  loom__queue_t *q = queue ? loom__sync_of(queue) : NULL;
  if (!q || q->shutdown == DESTROYED) return UV_EINVAL;
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc || q->unfinished == 0) return rc;
  loom__wnode_t n;
  loom__wait_on(&n.w, LOOM__W_QUEUE_JOIN, q);
  return loom__wq_wait(&q->joiners, &n, self, 0);
}

int loom_queue_shutdown(loom_queue_t *queue, int immediate) {
  loom__queue_t *q = queue ? loom__sync_of(queue) : NULL;
  if (!q || q->shutdown == DESTROYED) return UV_EINVAL;
  if (immediate) {
    q->shutdown = IMMEDIATE;
    /* Drained items count as done. */
    q->unfinished = q->unfinished > q->size ? q->unfinished - q->size : 0;
    q->size = q->head = 0;
    if (q->unfinished == 0) loom__wq_wake_all(&q->joiners, 0);
  } else if (q->shutdown == OPEN) {
    q->shutdown = DRAINING;
  }
  loom__wq_wake_all(&q->putters, LOOM_ESHUTDOWN);
  /* Getters still queued are those no item is left for. */
  loom__wq_wake_all(&q->getters, LOOM_ESHUTDOWN);
  return 0;
}
