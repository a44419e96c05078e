/* producer_consumer: two producers fill a bounded queue, three consumers
 * drain it; the bound makes the producers wait for the slower consumers.
 *
 * Ports the producer/consumer example
 * (the tutorial "asyncio in practice", "producer-consumer
 * pattern"):
 *
 *     async def producer(queue, producerId):
 *         for i in range(10):
 *             item = f"item-{producerId}-{i}"
 *             await queue.put(item)
 *             print(f"Producer{producerId} → {item}")
 *             await asyncio.sleep(random.uniform(0.1, 0.5))
 *         await queue.put(None)
 *
 *     async def consumer(queue, consumerId):
 *         while True:
 *             item = await queue.get()
 *             if item is None:
 *                 queue.task_done()
 *                 break
 *             print(f"Consumer{consumerId} ← {item}")
 *             await asyncio.sleep(random.uniform(0.2, 0.8))
 *             queue.task_done()
 *
 *     async def producerConsumerDemo():
 *         queue = asyncio.Queue(maxsize=5)
 *         producers = [asyncio.create_task(producer(queue, i)) for i in range(2)]
 *         consumers = [asyncio.create_task(consumer(queue, i)) for i in range(3)]
 *         await asyncio.gather(*producers)
 *         for _ in consumers:
 *             await queue.put(None)
 *         await asyncio.gather(*consumers)
 *         await queue.join()
 *
 * loom_queue_init(&q, 5, LOOM_QUEUE_FIFO, NULL) is asyncio.Queue(maxsize=5).
 * Items are void pointers, here to item records; NULL is the sentinel (None)
 * that tells a consumer to stop. loom_queue_put waits while the queue is
 * full, loom_queue_get while it is empty; every item got is marked done with
 * loom_queue_task_done, and loom_queue_join waits until every item put has
 * been marked done.
 *
 * Three departures from the original:
 * - Its producers each put a None too. A consumer that gets one stops while
 *   the other producer may still be producing, and the sentinels add up to
 *   five for three consumers: two stay in the queue, never marked done (25
 *   puts, 23 task_done calls), so its final queue.join() never returns. Here
 *   only main sends sentinels, one per consumer.
 * - main joins the queue before sending the sentinels rather than after the
 *   consumers have ended (when nothing is left to wait for): join returns
 *   once every real item has been processed.
 * - The random delays are ten times shorter, fixed (the same every run),
 *   and the consumers are slower relative to the producers (50-150 ms per
 *   item against 10-30 ms between puts), so that the queue does fill up
 *   and the producers do wait for room.
 *
 * The trace lines can interleave differently from one run to the next (when
 * timers fall due together), and so can the share of the items each
 * consumer got; the rest of the summary does not change. Output (trace
 * abridged):
 *
 *     producer 0 put item-0-0
 *     producer 1 put item-1-0
 *     consumer 0 got item-0-0
 *     consumer 1 got item-1-0
 *     ...                                   (40 trace lines in all)
 *     producers done after 0.4 s (0.2 s if the queue were unbounded)
 *     all 20 items processed after 0.7 s
 *     consumer 0 processed 6 items
 *     consumer 1 processed 7 items
 *     consumer 2 processed 7 items
 *     items consumed exactly once: 20 of 20
 *     each producer's items came out in the order they were put: yes
 *     queue size peaked at 5 (maxsize 5)
 *     total: 0.7 s (one consumer alone would take 2.0 s)
 */
#include <stdio.h>

#include <loom.h>

#define NPROD 2     /* producers */
#define NCONS 3     /* consumers */
#define NITEMS 10   /* items per producer */
#define QUEUE_MAX 5 /* the queue's bound */

/* One item: made by a producer, processed by a consumer. */
typedef struct {
  int producer, index; /* it is "item-<producer>-<index>" */
  uint64_t cost_ms;    /* how long processing it takes */
  int consumed;        /* how many times a consumer got it (must be 1) */
  int order;           /* its position among all the items got */
} item_t;

/* What the tasks share, in main's frame. */
typedef struct {
  loom_queue_t q;
  item_t items[NPROD][NITEMS];
  int ngot;    /* items got so far, by all consumers */
  size_t peak; /* the most items seen in the queue */
} shop_t;

/* A producer's or a consumer's argument. */
typedef struct {
  shop_t *shop;
  int id;
  int count; /* out: items put / processed */
} worker_t;

/* random.uniform(lo, hi), but the same every run: a hash of `seed` (the
 * "lowbias32" integer hash) spread over [lo, hi] milliseconds. */
static uint64_t fixed_random_ms(uint32_t seed, uint64_t lo, uint64_t hi) {
  seed ^= seed >> 16;
  seed *= 0x7feb352du;
  seed ^= seed >> 15;
  seed *= 0x846ca68bu;
  seed ^= seed >> 16;
  return lo + seed % (hi - lo + 1);
}

/* How long processing item-<p>-<i> takes. */
static uint64_t item_cost_ms(int p, int i) {
  return fixed_random_ms(1000u * (unsigned)p + (unsigned)i, 50, 150);
}

/* How long producer p pauses after putting its item i. */
static uint64_t producer_pause_ms(int p, int i) {
  return fixed_random_ms(5000u + 1000u * (unsigned)p + (unsigned)i, 10, 30);
}

static int producer(void *p) {
  worker_t *w = p;
  shop_t *s = w->shop;
  for (int i = 0; i < NITEMS; i++) {
    item_t *it = &s->items[w->id][i];
    *it = (item_t){
        .producer = w->id, .index = i, .cost_ms = item_cost_ms(w->id, i), .order = -1};
    /* Waits while the queue is full: this is where a fast producer is held
     * back. Once put returns 0 the item is in the queue. */
    int rc = loom_queue_put(&s->q, it);
    if (rc < 0) return rc; /* cancelled */
    w->count++;
    printf("producer %d put item-%d-%d\n", w->id, w->id, i);
    size_t size = loom_queue_size(&s->q);
    if (size > s->peak) s->peak = size;
    rc = loom_sleep(producer_pause_ms(w->id, i));
    if (rc < 0) return rc;
  }
  return 0;
}

static int consumer(void *p) {
  worker_t *w = p;
  shop_t *s = w->shop;
  for (;;) {
    void *got;
    int rc = loom_queue_get(&s->q, &got);
    if (rc < 0) return rc; /* cancelled */
    item_t *it = got;
    if (!it) /* the sentinel: no more items will come */
      return loom_queue_task_done(&s->q);
    it->consumed++;
    it->order = s->ngot++;
    printf("consumer %d got item-%d-%d\n", w->id, it->producer, it->index);
    rc = loom_sleep(it->cost_ms); /* "processing" */
    /* Done with the item, processed or interrupted: a join must not wait
     * for it forever (Python would put task_done in a finally clause). */
    int drc = loom_queue_task_done(&s->q);
    if (rc < 0) return rc;
    if (drc < 0) return drc; /* more task_done calls than puts: a bug */
    w->count++;
  }
}

/* Joins one task; reports its failure and keeps the first in *first. */
static void join_worker(loom_task_t *t, const char *what, int id, int *first) {
  int status;
  int rc = loom_join(t, &status);
  if (rc < 0 || status < 0) {
    fprintf(stderr, "producer_consumer: %s %d: %s\n", what, id,
            loom_strerror(rc < 0 ? rc : status));
    if (*first == 0) *first = rc < 0 ? rc : status;
  }
}

static int producer_consumer_main(void *arg) {
  (void)arg;
  uint64_t t0 = loom_now();
  shop_t shop = {0};
  worker_t workers[NPROD + NCONS]; /* the producers, then the consumers */
  loom_task_t *tasks[NPROD + NCONS];
  int n = 0, rc;

  rc = loom_queue_init(&shop.q, QUEUE_MAX, LOOM_QUEUE_FIFO, NULL);
  if (rc < 0) {
    fprintf(stderr, "producer_consumer: queue: %s\n", loom_strerror(rc));
    return rc;
  }

  for (; n < NPROD + NCONS; n++) {
    int is_prod = n < NPROD;
    workers[n] = (worker_t){.shop = &shop, .id = is_prod ? n : n - NPROD};
    rc = loom_spawn(&tasks[n], is_prod ? producer : consumer, &workers[n]);
    if (rc < 0) {
      fprintf(stderr, "producer_consumer: spawn %s %d: %s\n",
              is_prod ? "producer" : "consumer", workers[n].id, loom_strerror(rc));
      /* Without all its partners a task could wait forever in put or get:
       * stop the ones already started (they are joined below). */
      for (int i = 0; i < n; i++) loom_cancel(tasks[i]);
      break;
    }
  }
  int nprod = n < NPROD ? n : NPROD; /* producers spawned */

  /* await asyncio.gather(*producers). If we are cancelled (Ctrl-C) while
   * joining, loom_join cancels the producer and still waits for it. */
  for (int i = 0; i < nprod; i++) join_worker(tasks[i], "producer", i, &rc);
  uint64_t producers_ms = loom_now() - t0;

  /* await queue.join(): every item put has been processed. */
  if (rc == 0 && (rc = loom_queue_join(&shop.q)) < 0)
    fprintf(stderr, "producer_consumer: join the queue: %s\n", loom_strerror(rc));
  uint64_t processed_ms = loom_now() - t0;

  /* One sentinel per consumer: each consumer stops at the first it gets. */
  for (int i = 0; rc == 0 && i < NCONS; i++)
    if ((rc = loom_queue_put(&shop.q, NULL)) < 0)
      fprintf(stderr, "producer_consumer: put a sentinel: %s\n", loom_strerror(rc));
  /* After a failure the consumers may never get their sentinels: stop them
   * rather than wait for them forever. */
  if (rc < 0)
    for (int i = NPROD; i < n; i++) loom_cancel(tasks[i]);
  for (int i = NPROD; i < n; i++) join_worker(tasks[i], "consumer", i - NPROD, &rc);

  /* No task uses the queue any more, so destroy cannot find it busy. */
  int drc = loom_queue_destroy(&shop.q);
  if (drc < 0) {
    fprintf(stderr, "producer_consumer: destroy the queue: %s\n", loom_strerror(drc));
    if (rc == 0) rc = drc;
  }
  if (rc < 0) return rc;

  /* Were the queue unbounded, the producers would never wait in put: they
   * would be done after their pauses alone. */
  uint64_t pauses_ms = 0;
  for (int p = 0; p < NPROD; p++) {
    uint64_t sum = 0;
    for (int i = 0; i < NITEMS; i++) sum += producer_pause_ms(p, i);
    if (sum > pauses_ms) pauses_ms = sum;
  }
  printf("producers done after %.1f s (%.1f s if the queue were unbounded)\n",
         (double)producers_ms / 1000.0, (double)pauses_ms / 1000.0);
  printf("all %d items processed after %.1f s\n", NPROD * NITEMS,
         (double)processed_ms / 1000.0);
  for (int i = 0; i < NCONS; i++)
    printf("consumer %d processed %d items\n", i, workers[NPROD + i].count);

  /* The checks that matter, whatever the interleaving: no item lost or
   * processed twice, and FIFO order kept for each producer's items. */
  int once = 0, in_order = 1;
  uint64_t work_ms = 0;
  for (int p = 0; p < NPROD; p++)
    for (int i = 0; i < NITEMS; i++) {
      const item_t *it = &shop.items[p][i];
      once += it->consumed == 1;
      if (i > 0 && it->order < shop.items[p][i - 1].order) in_order = 0;
      work_ms += it->cost_ms;
    }
  printf("items consumed exactly once: %d of %d\n", once, NPROD * NITEMS);
  printf("each producer's items came out in the order they were put: %s\n",
         in_order ? "yes" : "no");
  printf("queue size peaked at %zu (maxsize %d)\n", shop.peak, QUEUE_MAX);
  printf("total: %.1f s (one consumer alone would take %.1f s)\n",
         (double)(loom_now() - t0) / 1000.0, (double)work_ms / 1000.0);
  return 0;
}

int main(void) {
  int rc = loom_run(producer_consumer_main, NULL);
  if (rc < 0) {
    fprintf(stderr, "producer_consumer: %s\n", loom_strerror(rc));
    return 1;
  }
  return 0;
}
