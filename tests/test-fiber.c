/* The fiber layer on its own: context switches, stacks, guard pages, the
 * canary and the overflow report. No libuv here, so this test also runs
 * cross-compiled for aarch64 under qemu-user (see .ci/run). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "deep-recursion.h"
#include "harness.h"

#include "fiber/fiber.h"
#include "fiber/stack.h"

#ifdef LOOM_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#endif

static loom__fiber_t host;

/* ---- ping-pong: control goes back and forth, state survives ------------- */

typedef struct {
  loom__fiber_t f;
  long count;
  double acc;
} pong_t;

static void pong_main(void *arg) {
  pong_t *p = arg;
  loom__fiber_started();
  double local = 1.5; /* lives in a callee-saved or spilled register */
  for (;;) {
    p->count++;
    local *= 1.0000001;
    p->acc = local;
    loom__fiber_switch(&p->f, &host);
  }
}

static void test_ping_pong(void **state) {
  (void)state;
  loom__stack_pool_t pool;
  loom__stack_t st;
  loom__stack_pool_init(&pool);
  assert_loom_ok(loom__stack_get(&pool, 64 * 1024, &st));
  pong_t p = {0};
  loom__fiber_init(&p.f, st.lo, st.size, pong_main, &p);
  p.f.guard_lo = st.guard_lo;
  volatile double mine = 3.25; /* must survive the switches too */
  long r1 = 11, r2 = 22, r3 = 33;
  for (int i = 0; i < 10000; i++) {
    loom__fiber_switch(&host, &p.f);
    r1 += 1, r2 += 2, r3 += 3;
  }
  assert_int_equal(p.count, 10000);
  assert_true(p.acc > 1.5);
  assert_true(mine == 3.25);
  assert_int_equal(r1, 11 + 10000);
  assert_int_equal(r2, 22 + 20000);
  assert_int_equal(r3, 33 + 30000);
  assert_ptr_equal(loom__fiber_current(), &host);
  loom__stack_pool_destroy(&pool);
}

/* ---- many fibers in a ring -------------------------------------------- */

#define RING 64
static loom__fiber_t ring[RING];
static int visits[RING];

static void ring_main(void *arg) {
  int i = (int)(intptr_t)arg;
  loom__fiber_started();
  for (;;) {
    visits[i]++;
    char big[2048]; /* use some stack on each fiber */
    memset(big, i, sizeof(big));
    if (big[100] != (char)i) abort();
    loom__fiber_switch(&ring[i], i + 1 < RING ? &ring[i + 1] : &host);
  }
}

static void test_ring(void **state) {
  (void)state;
  loom__stack_pool_t pool;
  loom__stack_pool_init(&pool);
  loom__stack_t st[RING];
  for (int i = 0; i < RING; i++) {
    assert_loom_ok(loom__stack_get(&pool, 32 * 1024, &st[i]));
    loom__fiber_init(&ring[i], st[i].lo, st[i].size, ring_main, (void *)(intptr_t)i);
  }
  for (int lap = 0; lap < 100; lap++) loom__fiber_switch(&host, &ring[0]);
  for (int i = 0; i < RING; i++) assert_int_equal(visits[i], 100);
  loom__stack_pool_destroy(&pool);
}

/* ---- stack pool ----------------------------------------------------------- */

static void test_pool_reuse_and_rounding(void **state) {
  (void)state;
  loom__stack_pool_t pool;
  loom__stack_pool_init(&pool);
  loom__stack_t a, b, c;
  assert_loom_ok(loom__stack_get(&pool, 1, &a));
  assert_true(a.size >= 16 * 1024); /* LOOM_MIN_STACK_SIZE */
  assert_int_equal(a.size % pool.page, 0);
  assert_loom_ok(loom__stack_get(&pool, 100000, &b));
  assert_int_equal(b.size % pool.page, 0);
  assert_true(b.size >= 100000);
  loom__stack_put(&pool, &b);
  assert_loom_ok(loom__stack_get(&pool, 100000, &c));
  assert_ptr_equal(c.lo, b.lo); /* LIFO: the warm stack comes back */
  /* The stack is writable end to end. */
  memset(c.lo, 0xab, c.size);
  loom__stack_put(&pool, &a);
  loom__stack_put(&pool, &c);
  loom__stack_pool_destroy(&pool);
}

static void test_guard_budget_then_canary(void **state) {
  (void)state;
  loom__stack_pool_t pool;
  loom__stack_pool_init(&pool);
  loom__stack_t g, u;
  assert_loom_ok(loom__stack_get(&pool, 64 * 1024, &g));
  assert_non_null(g.guard_lo); /* budget available: a guarded slab */
  /* Spend the budget: the next slab has canaries instead. */
  size_t used = loom__stack_guards_used();
  loom__stack_set_guard_budget(used);
  assert_loom_ok(loom__stack_get(&pool, 200 * 1024, &u));
  assert_null(u.guard_lo);
  loom__fiber_t f = {0};
  loom__fiber_init(&f, u.lo, u.size, ring_main, NULL);
  assert_true(loom__fiber_canary_ok(&f)); /* fresh memory reads as zeros */
  ((volatile char *)u.lo)[3] ^= 1;        /* what an overflow does */
  assert_false(loom__fiber_canary_ok(&f));
  loom__stack_set_guard_budget(0); /* back to the computed budget */
  assert_true(loom__stack_guard_budget() > 1000);
  loom__stack_pool_destroy(&pool);
  assert_int_equal(loom__stack_guards_used(), 0);
}

/* ---- overflow reports, in a child process --------------------------------- */

static void deep_main(void *arg) {
  (void)arg;
  loom__fiber_started();
  recurse_deep(0);
  abort(); /* unreachable: the guard page stops it */
}

/* Runs fn in a child with stderr captured; returns the wait status. */
static int run_child(void (*fn)(void), char *out, size_t cap) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    fn();
    _exit(0);
  }
  close(fds[1]);
  size_t n = 0;
  ssize_t r;
  while (n + 1 < cap && (r = read(fds[0], out + n, cap - 1 - n)) > 0) n += (size_t)r;
  out[n] = 0;
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  return status;
}

static void overflow_child(void) {
  void *alt;
  loom__overflow_thread_init(&alt);
  loom__stack_pool_t pool;
  loom__stack_pool_init(&pool);
  loom__stack_t st;
  if (loom__stack_get(&pool, 32 * 1024, &st) != 0 || !st.guard_lo) _exit(3);
  static loom__fiber_t f;
  loom__fiber_init(&f, st.lo, st.size, deep_main, NULL);
  f.guard_lo = st.guard_lo;
  f.guard_size = pool.page;
  f.name = "deep";
  loom__fiber_switch(&host, &f);
  _exit(4);
}

/* qemu-user spins forever on a guard-page fault in a forked child, so the
 * cross-build runs the overflow without fork instead (`test-fiber overflow`,
 * a CTest of its own whose output is matched) and skips the fork tests. */
#define SKIP_UNDER_QEMU()                    \
  do {                                       \
    if (getenv("LOOM_TEST_NO_FORK")) skip(); \
  } while (0)

static void test_overflow_guard_reported(void **state) {
  (void)state;
  SKIP_UNDER_QEMU();
  char out[4096];
  int status = run_child(overflow_child, out, sizeof(out));
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGSEGV);
  assert_non_null(
      strstr(out, "loom: stack overflow in task 'deep' (stack size 32768 bytes"));
}

static void canary_child(void) {
  loom__fiber_t f = {0};
  static uint64_t fake_stack[64];
  f.stack_lo = fake_stack;
  f.stack_size = sizeof(fake_stack);
  f.id = 42;
  fake_stack[1] = 0x7ffd1234; /* an overflow wrote a return address here */
  if (!loom__fiber_canary_ok(&f)) loom__fiber_overflow(&f, ", canary overwritten");
  _exit(5);
}

static void test_overflow_canary_reported(void **state) {
  (void)state;
  SKIP_UNDER_QEMU();
  char out[4096];
  int status = run_child(canary_child, out, sizeof(out));
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGABRT);
  assert_non_null(
      strstr(out, "task 'task-42' (stack size 512 bytes, canary overwritten"));
}

/* ---- a frame larger than the guard page --------------------------------- */

/* A function with a 40 KiB local array on a 16 KiB stack: without
 * -fstack-clash-protection nothing probes the frame page by page, so the
 * first access is 24 KiB and more below the stack, past a 4 KiB guard. The
 * array is written from its lowest byte up, as memset would, so the first
 * write is the lowest one. */
#define BIG_FRAME (40 * 1024)
static volatile unsigned char big_sink;

static __attribute__((noinline)) void big_frame(unsigned char pattern) {
  volatile unsigned char arr[BIG_FRAME];
  for (size_t i = 0; i < sizeof(arr); i++) arr[i] = pattern;
  big_sink = arr[BIG_FRAME / 2];
}

static loom__fiber_t big_fiber;

static void big_main(void *arg) {
  loom__fiber_started();
  big_frame((unsigned char)(uintptr_t)arg);
  loom__fiber_switch(&big_fiber, &host); /* never resumed */
  abort();
}

/* The overflowing fiber runs on the highest of three 16 KiB stacks taken in
 * a row (handed out in address order), so its neighbours are mapped memory
 * that a missed overflow would silently overwrite. */
static void big_frame_child(void) {
  void *alt;
  loom__overflow_thread_init(&alt);
  loom__stack_pool_t pool;
  loom__stack_pool_init(&pool);
  loom__stack_t st[3];
  for (int i = 0; i < 3; i++)
    if (loom__stack_get(&pool, 16 * 1024, &st[i]) != 0 || !st[i].guard_lo) _exit(3);
  loom__fiber_init(&big_fiber, st[2].lo, st[2].size, big_main, (void *)(uintptr_t)0x77);
  big_fiber.guard_lo = st[2].guard_lo;
  big_fiber.guard_size = st[2].guard_size;
  big_fiber.name = "big";
  loom__fiber_switch(&host, &big_fiber);
  _exit(4); /* the overflow went unnoticed */
}

/* With pages above 16 KiB the stack is a page and the frame fits in it. */
#define SKIP_UNLESS_SMALL_PAGES()                  \
  do {                                             \
    if (sysconf(_SC_PAGESIZE) > 16 * 1024) skip(); \
  } while (0)

static void test_overflow_big_frame_hits_guard(void **state) {
  (void)state;
  SKIP_UNDER_QEMU();
  SKIP_UNLESS_SMALL_PAGES();
  char out[4096];
  int status = run_child(big_frame_child, out, sizeof(out));
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGSEGV);
  assert_non_null(strstr(
      out, "loom: stack overflow in task 'big' (stack size 16384 bytes, guard page hit"));
}

/* Past the guard budget a stack has no guard, but the same frame must land
 * in address space no other stack uses (and trip the canary), not in the
 * stacks below. Runs in-process: nothing faults. */
static void test_big_frame_unguarded_spares_neighbours(void **state) {
  (void)state;
  SKIP_UNLESS_SMALL_PAGES();
  loom__stack_pool_t pool;
  loom__stack_pool_init(&pool);
  /* Spent: not one slab more fits (0 would mean "recompute"). */
  loom__stack_set_guard_budget(loom__stack_guards_used() + 1);
  loom__stack_t st[3];
  for (int i = 0; i < 3; i++) {
    assert_loom_ok(loom__stack_get(&pool, 16 * 1024, &st[i]));
    assert_null(st[i].guard_lo);
    assert_int_equal(st[i].guard_size, 0);
  }
  assert_true((char *)st[1].lo > (char *)st[0].lo);
  assert_true((char *)st[2].lo > (char *)st[1].lo);
  memset(st[0].lo, 0x5a, st[0].size);
  memset(st[1].lo, 0x5a, st[1].size);
  loom__fiber_init(&big_fiber, st[2].lo, st[2].size, big_main, (void *)(uintptr_t)0x77);
  big_fiber.name = "big";
  loom__fiber_switch(&host, &big_fiber);
  assert_int_equal(big_sink, 0x77);
#ifdef LOOM_HAVE_VALGRIND
  /* Memcheck marked the popped frame, canary included, inaccessible. */
  VALGRIND_MAKE_MEM_DEFINED(st[2].lo, LOOM__CANARY_BYTES);
#endif
  assert_false(loom__fiber_canary_ok(&big_fiber)); /* seen at the switch */
  size_t spoiled = 0;
  for (int i = 0; i < 2; i++)
    for (size_t k = 0; k < st[i].size; k++)
      spoiled += ((unsigned char *)st[i].lo)[k] != 0x5a;
  assert_int_equal(spoiled, 0);
  loom__stack_set_guard_budget(0);
  loom__stack_pool_destroy(&pool);
}

/* ---- hostile sizes ------------------------------------------------------- */

static void test_stack_size_limits(void **state) {
  (void)state;
  loom__stack_pool_t pool;
  loom__stack_pool_init(&pool);
  const size_t huge[] = {SIZE_MAX,         SIZE_MAX - 1, SIZE_MAX - pool.page + 1,
                         SIZE_MAX / 2 + 1, SIZE_MAX / 2, (size_t)1 << 41};
  for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
    loom__stack_t st = {
        .lo = (void *)1, .size = 7, .guard_lo = (void *)1, .guard_size = 7};
    assert_loom_err(loom__stack_get(&pool, huge[i], &st), -EINVAL);
    /* Nothing handed out, nothing filled in. */
    assert_ptr_equal(st.lo, (void *)1);
    assert_int_equal(st.size, 7);
    assert_loom_err(loom__stack_reserve(&pool, huge[i]), -EINVAL);
  }
  assert_true(loom__list_empty(&pool.classes)); /* no size class was made for them */
  /* Tiny requests get the minimum, and say so. */
  loom__stack_t a;
  assert_loom_ok(loom__stack_get(&pool, 1, &a));
  assert_int_equal(a.size, pool.page > 16 * 1024 ? pool.page : 16 * 1024);
  loom__stack_put(&pool, &a);
  /* A reservation takes the warmest stack, the one just given back. */
  assert_loom_ok(loom__stack_reserve(&pool, 0));
  loom__stack_t b;
  loom__stack_take(&pool, 0, &b);
  assert_ptr_equal(b.lo, a.lo);
  assert_int_equal(b.size, a.size);
  loom__stack_put(&pool, &b);
  loom__stack_pool_destroy(&pool);
}

/* Reserved stacks are promised: a get leaves them alone (mapping more if it
 * must), a take always finds one, and a reservation given up frees it. */
static void test_stack_reservations(void **state) {
  (void)state;
  loom__stack_pool_t pool;
  loom__stack_pool_init(&pool);
  loom__stack_t a;
  assert_loom_ok(loom__stack_get(&pool, 1, &a));
  loom__stack_stats_t s0;
  assert_loom_ok(loom__stack_pool_stats(&pool, 1, &s0));
  size_t n = s0.free; /* the rest of the first slab */
  for (size_t i = 0; i < n; i++) assert_loom_ok(loom__stack_reserve(&pool, 1));
  loom__stack_stats_t s1;
  assert_loom_ok(loom__stack_pool_stats(&pool, 1, &s1));
  assert_int_equal(s1.total, s0.total); /* promised, not mapped */
  assert_int_equal(s1.reserved, n);
  loom__stack_t b;
  assert_loom_ok(loom__stack_get(&pool, 1, &b)); /* needs a new slab */
  assert_loom_ok(loom__stack_pool_stats(&pool, 1, &s1));
  assert_true(s1.total > s0.total);
  assert_true(s1.free >= n);
  /* Every reservation is kept: n takes, each a distinct stack. */
  loom__stack_t *taken = calloc(n, sizeof(*taken));
  assert_non_null(taken);
  for (size_t i = 0; i < n; i++) {
    loom__stack_take(&pool, 1, &taken[i]);
    assert_ptr_not_equal(taken[i].lo, a.lo);
    assert_ptr_not_equal(taken[i].lo, b.lo);
    if (i) assert_ptr_not_equal(taken[i].lo, taken[i - 1].lo);
  }
  assert_loom_ok(loom__stack_pool_stats(&pool, 1, &s1));
  assert_int_equal(s1.reserved, 0);
  for (size_t i = 0; i < n; i++) loom__stack_put(&pool, &taken[i]);
  free(taken);
  /* Given up: the stack is anyone's again. */
  assert_loom_ok(loom__stack_reserve(&pool, 1));
  loom__stack_unreserve(&pool, 1);
  assert_loom_ok(loom__stack_pool_stats(&pool, 1, &s1));
  assert_int_equal(s1.reserved, 0);
  loom__stack_put(&pool, &a);
  loom__stack_put(&pool, &b);
  loom__stack_pool_destroy(&pool);
}

/* The report prints the size the fiber says it has, whatever was asked for
 * (the core passes the real usable size), and keeps to one line whatever the
 * name holds. */
static void report_child(void) {
  loom__fiber_t f = {0};
  static uint64_t fake_stack[2048];
  f.stack_lo = fake_stack;
  f.stack_size = sizeof(fake_stack);
  f.nominal_size = 15000;
  f.name = "evil\nname\033[2J";
  fake_stack[0] = 1;
  if (!loom__fiber_canary_ok(&f)) loom__fiber_overflow(&f, ", canary overwritten");
  _exit(5);
}

static void test_overflow_report_size_and_name(void **state) {
  (void)state;
  SKIP_UNDER_QEMU();
  char out[4096];
  int status = run_child(report_child, out, sizeof(out));
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGABRT);
  assert_non_null(strstr(out, "loom: stack overflow in task 'evil?name?[2J' (stack size "
                              "15000 bytes, canary overwritten"));
  size_t len = strlen(out);
  assert_true(len > 0);
  assert_ptr_equal(strchr(out, '\n'), out + len - 1); /* one line only */
}

/* ---- the guard budget ---------------------------------------------------- */

static void test_map_count_parse(void **state) {
  (void)state;
  assert_int_equal(loom__stack_parse_map_count("65530\n", 6), 65530);
  assert_int_equal(loom__stack_parse_map_count("2147483647\n", 11), 2147483647L);
  /* What a read of one byte at a time gets from a sysctl file: the first
   * digit, then end of file. It must not count as 6 mappings. */
  assert_int_equal(loom__stack_parse_map_count("6", 1), -1);
  assert_int_equal(loom__stack_parse_map_count("", 0), -1);
  assert_int_equal(loom__stack_parse_map_count("\n", 1), -1);
  assert_int_equal(loom__stack_parse_map_count("-5\n", 3), -1);
  assert_int_equal(loom__stack_parse_map_count("12x\n", 4), -1);
  assert_int_equal(loom__stack_parse_map_count("99999999999999999999999\n", 24), -1);
  assert_int_equal(loom__stack_parse_map_count("0\n", 2), -1);
}

static void test_budget_read_failure_not_cached(void **state) {
  (void)state;
  char path[] = "/tmp/loom-test-map-count-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  /* Unreadable: the default (65530 mappings), not cached. */
  loom__stack_set_map_count_path("/nonexistent/max_map_count");
  loom__stack_set_guard_budget(0);
  assert_int_equal(loom__stack_guard_budget(), 65530 / 4);
  /* A short read: the default again, not cached either. */
  loom__stack_set_map_count_path(path);
  assert_int_equal(write(fd, "6", 1), 1);
  assert_int_equal(loom__stack_guard_budget(), 65530 / 4);
  /* Readable now: the next call reads it and keeps it. */
  assert_int_equal(pwrite(fd, "400000\n", 7, 0), 7);
  assert_int_equal(loom__stack_guard_budget(), 100000);
  assert_int_equal(pwrite(fd, "800000\n", 7, 0), 7);
  assert_int_equal(loom__stack_guard_budget(), 100000); /* cached */
  close(fd);
  unlink(path);
  loom__stack_set_map_count_path(NULL);
  loom__stack_set_guard_budget(0);
  assert_true(loom__stack_guard_budget() > 1000);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "overflow") == 0) overflow_child();
  if (argc > 1 && strcmp(argv[1], "overflow-frame") == 0) big_frame_child();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ping_pong),
      cmocka_unit_test(test_ring),
      cmocka_unit_test(test_pool_reuse_and_rounding),
      cmocka_unit_test(test_guard_budget_then_canary),
      cmocka_unit_test(test_overflow_guard_reported),
      cmocka_unit_test(test_overflow_canary_reported),
      cmocka_unit_test(test_overflow_big_frame_hits_guard),
      cmocka_unit_test(test_big_frame_unguarded_spares_neighbours),
      cmocka_unit_test(test_stack_size_limits),
      cmocka_unit_test(test_stack_reservations),
      cmocka_unit_test(test_overflow_report_size_and_name),
      cmocka_unit_test(test_map_count_parse),
      cmocka_unit_test(test_budget_read_failure_not_cached),
  };
  return HARNESS_RUN(tests);
}
