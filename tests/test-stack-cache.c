/* The stack pool's warm cache: how many free stacks stay resident follows
 * recent demand (src/fiber/stack.c). Time is the pool's injectable clock, a
 * variable these tests advance by hand, so nothing sleeps; residency is
 * checked both through the pool's counters and, for the pages themselves,
 * with mincore(2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#include "core/internal.h"
#include "fiber/stack.h"

#define SEC ((int64_t)1000000000)
#define SIZE ((size_t)16 * 1024)
#define BURST 3000 /* well above the floor of 1,024 */
#define FLOOR 1024

static loom__stack_t stacks[BURST];

static loom__stack_stats_t stats(const loom__stack_pool_t *pool) {
  loom__stack_stats_t s;
  assert_int_equal(loom__stack_pool_stats(pool, SIZE, &s), 0);
  return s;
}

/* Whether the top page of a stack (the one a task touches) is resident. */
static int resident(const loom__stack_t *st, size_t page) {
  unsigned char v = 0;
  void *top = (char *)st->lo + st->size - page;
  assert_int_equal(mincore(top, page, &v), 0);
  return v & 1;
}

/* Takes n stacks, writes to the top page of each (as a task does), gives
 * them back in the order taken. */
static void burst(loom__stack_pool_t *pool, size_t n) {
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(loom__stack_get(pool, SIZE, &stacks[i]), 0);
    ((volatile char *)stacks[i].lo)[stacks[i].size - 1] = 1;
  }
  for (size_t i = 0; i < n; i++) loom__stack_put(pool, &stacks[i]);
}

/* Light demand: n tasks, one at a time, each touching its stack. */
static void one_at_a_time(loom__stack_pool_t *pool, int n) {
  loom__stack_t one;
  for (int i = 0; i < n; i++) {
    assert_int_equal(loom__stack_get(pool, SIZE, &one), 0);
    ((volatile char *)one.lo)[one.size - 1] = 1;
    loom__stack_put(pool, &one);
  }
}

/* A pool on a clock the test moves by hand, now, which starts at `start`;
 * a first burst of BURST stacks has been through it. */
typedef struct {
  int64_t now;
  loom__stack_pool_t pool;
} clocked_pool_t;

static void start_after_burst(clocked_pool_t *p, int64_t start) {
  p->now = start;
  loom__stack_pool_init(&p->pool);
  p->pool.clock = &p->now;
  burst(&p->pool, BURST);
}

/* A burst larger than the floor stays resident, the first time and when
 * repeated; its stacks do not fault again. */
static void test_burst_stays_warm(void **state) {
  (void)state;
  clocked_pool_t p;
  start_after_burst(&p, 5 * SEC);
  loom__stack_stats_t s = stats(&p.pool);
  assert_int_equal(s.total - s.free, 0);
  assert_int_equal(s.warm, BURST);
  assert_true(s.keep >= BURST);
  for (size_t i = 0; i < BURST; i++) assert_true(resident(&stacks[i], p.pool.page));
  for (int round = 0; round < 3; round++) {
    p.now += SEC / 2; /* bursts every half second keep the demand up */
    burst(&p.pool, BURST);
  }
  s = stats(&p.pool);
  assert_int_equal(s.warm, BURST);
  assert_true(s.keep >= BURST);
  loom__stack_pool_destroy(&p.pool);
}

/* Once the bursts stop, the warm count halves per quiet second down to the
 * floor, and the pages given back are the ones used least recently. */
static void test_shrinks_when_demand_falls(void **state) {
  (void)state;
  clocked_pool_t p;
  start_after_burst(&p, 5 * SEC);
  size_t last_keep = stats(&p.pool).keep;
  int shrank = 0;
  for (int sec = 1; sec <= 10; sec++) {
    p.now += SEC;
    one_at_a_time(&p.pool, 200); /* enough puts to finish trimming */
    loom__stack_stats_t s = stats(&p.pool);
    assert_true(s.keep <= last_keep); /* never grows without demand */
    assert_true(s.keep >= FLOOR);
    assert_true(s.warm <= s.keep);
    if (s.keep < last_keep) shrank = 1;
    last_keep = s.keep;
  }
  assert_true(shrank);
  loom__stack_stats_t s = stats(&p.pool);
  assert_int_equal(s.keep, FLOOR);
  assert_int_equal(s.warm, FLOOR);
  /* The first stacks put back lie at the bottom of the LIFO: given back. */
  assert_false(resident(&stacks[0], p.pool.page));
  assert_false(resident(&stacks[100], p.pool.page));
  /* A new burst finds its stacks, cold or not, and counts as demand again. */
  p.now += SEC;
  burst(&p.pool, BURST);
  s = stats(&p.pool);
  assert_int_equal(s.warm, BURST);
  loom__stack_pool_destroy(&p.pool);
}

/* A pool whose owner stops taking stacks gives them back at its idle
 * points, by the clock, without a put. */
static void test_idle_points_trim(void **state) {
  (void)state;
  int64_t now = 5 * SEC;
  loom__stack_pool_t pool;
  loom__stack_pool_init(&pool);
  pool.clock = &now;
  burst(&pool, BURST);
  loom__stack_pool_idle(&pool); /* within the window: nothing changes */
  assert_int_equal(stats(&pool).warm, BURST);
  size_t last_warm = BURST;
  for (int sec = 1; sec <= 10; sec++) {
    now += SEC;
    for (int i = 0; i < 20; i++) loom__stack_pool_idle(&pool);
    loom__stack_stats_t s = stats(&pool);
    assert_true(s.warm <= last_warm);
    assert_true(s.warm <= s.keep);
    last_warm = s.warm;
  }
  loom__stack_stats_t s = stats(&pool);
  assert_int_equal(s.keep, FLOOR);
  assert_int_equal(s.warm, FLOOR);
  assert_false(resident(&stacks[0], pool.page));
  assert_true(resident(&stacks[BURST - 1], pool.page));
  loom__stack_pool_destroy(&pool);
}

/* A long quiet spell decays in one step (no overflow of the shift), and a
 * pool without a clock keeps what demand it saw. */
static void test_long_quiet_and_no_clock(void **state) {
  (void)state;
  clocked_pool_t p;
  start_after_burst(&p, 1);
  p.now += 1000 * SEC;
  one_at_a_time(&p.pool, 200);
  loom__stack_stats_t s = stats(&p.pool);
  assert_int_equal(s.keep, FLOOR);
  assert_int_equal(s.warm, FLOOR);
  loom__stack_pool_destroy(&p.pool);

  loom__stack_pool_t pool;
  loom__stack_pool_init(&pool); /* clock NULL: time stands still */
  burst(&pool, BURST);
  one_at_a_time(&pool, 200);
  s = stats(&pool);
  assert_int_equal(s.warm, BURST);
  loom__stack_pool_destroy(&pool);
}

/* Through the runtime: repeated bursts of tasks keep their stacks and
 * records warm. A task holds a stack from its first switch-in to its end,
 * so the bursts' tasks wait once (a yield): every one of them is bound at
 * the same time. */
static struct {
  size_t warm_after_second, total, peak, records_free;
  int failed;
} rt_seen;

static int noop(void *arg) {
  (void)arg;
  return 0;
}

static int yield_once(void *arg) {
  (void)arg;
  return loom_yield();
}

static void run_bursts(loom_fn fn) {
  static loom_task_t *h[BURST];
  for (int round = 0; round < 2; round++) {
    for (size_t i = 0; i < BURST; i++)
      if (loom_spawn(&h[i], fn, NULL)) rt_seen.failed = 1;
    for (size_t i = 0; i < BURST; i++)
      if (loom_join(h[i], NULL)) rt_seen.failed = 1;
  }
  loom_t *rt = loom_runtime();
  loom__stack_stats_t s;
  if (loom__stack_pool_stats(&rt->stacks, rt->stack_size, &s)) rt_seen.failed = 1;
  rt_seen.warm_after_second = s.warm;
  rt_seen.total = s.total;
  rt_seen.peak = s.peak;
  rt_seen.records_free = rt->records.nfree;
}

static int burst_main(void *arg) {
  run_bursts(arg);
  return 0;
}

static void test_runtime_bursts_stay_warm(void **state) {
  (void)state;
  memset(&rt_seen, 0, sizeof rt_seen);
  assert_int_equal(loom_run(burst_main, (void *)yield_once), 0);
  assert_false(rt_seen.failed);
  /* Everything but the main task's stack is free and warm, and every
   * record but main's is kept for the next burst. */
  assert_true(rt_seen.peak >= BURST);
  assert_true(rt_seen.warm_after_second >= BURST);
  assert_true(rt_seen.records_free >= BURST);
}

/* Tasks that end before the next one starts pass one stack along: a burst
 * of them maps no stack per task. */
static void test_runtime_burst_shares_stacks(void **state) {
  (void)state;
  memset(&rt_seen, 0, sizeof rt_seen);
  assert_int_equal(loom_run(burst_main, (void *)noop), 0);
  assert_false(rt_seen.failed);
  assert_true(rt_seen.peak <= 3); /* main, the one ending, the next */
  assert_true(rt_seen.records_free >= BURST);
}

/* The record cache follows demand as the stack pool does: a burst's records
 * are kept for the next burst, and quiet seconds give them back at idle
 * points, down to the floor. */
static void test_records_follow_demand(void **state) {
  (void)state;
  int64_t now = SEC;
  loom__records_t r;
  loom__records_init(&r, &now);
  static loom_task_t *t[BURST];
  for (int round = 0; round < 2; round++) {
    for (size_t i = 0; i < BURST; i++) assert_non_null(t[i] = loom__record_new(&r));
    assert_int_equal(r.live, BURST);
    for (size_t i = 0; i < BURST; i++) loom__record_free(&r, t[i]);
    assert_int_equal(r.nfree, BURST); /* all kept: the burst is the demand */
    now += SEC / 2;
  }
  /* The second burst took the first one's records, most recent first, and
   * each new record names the one LOOM__AHEAD takes later. */
  loom_task_t *top = r.free[r.nfree - 1], *later = r.free[r.nfree - 1 - LOOM__AHEAD];
  loom_task_t *got = loom__record_new(&r);
  assert_ptr_equal(got, top);
  assert_ptr_equal(got->ahead, later);
  loom__record_free(&r, got);
  /* Quiet: the keep halves per second, and idle points give back a step
   * at a time. */
  for (int i = 0; i < 10; i++) {
    now += SEC;
    for (int k = 0; k < 20; k++) loom__records_idle(&r);
  }
  assert_int_equal(r.nfree, FLOOR);
  assert_int_equal(r.live, 0);
  loom__records_destroy(&r);
  assert_int_equal(r.nfree, 0);
  assert_null(r.free);
  assert_int_equal(r.cap, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_burst_stays_warm),
      cmocka_unit_test(test_shrinks_when_demand_falls),
      cmocka_unit_test(test_idle_points_trim),
      cmocka_unit_test(test_long_quiet_and_no_clock),
      cmocka_unit_test(test_runtime_bursts_stay_warm),
      cmocka_unit_test(test_runtime_burst_shares_stacks),
      cmocka_unit_test(test_records_follow_demand),
  };
  return HARNESS_RUN(tests);
}
