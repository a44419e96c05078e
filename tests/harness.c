/* The shared test runner and its per-test checks (harness.h).
 *
 * harness_run copies the group and gives every test a setup function of the
 * runner's and a trampoline that runs the test, then checks what it left
 * behind. What loom tidies up for a careless program is seen where loom
 * does it, through the linker's --wrap (tests/CMakeLists.txt lists the
 * symbols):
 *   - uv_loop_init / uv_loop_close: loops opened and closed; a close that
 *     fails with UV_EBUSY names the handles still on the loop;
 *   - uv_walk: loom_run walks its loop only to close the handles a program
 *     left on it; each one is a leak of the running test;
 *   - loom__io_add / loom__io_remove: every I/O object's shutdown closer is
 *     replaced with a trampoline here, which counts the objects shutdown
 *     finds left open;
 *   - loom__reap_unconsumed: the tasks nobody joined nor detached.
 * The __real_ symbols of loom's internals are weak references, so a rename
 * in the core turns the check off (test-harness then fails) rather than
 * breaking the link. (A hook the core calls for each thing it tidies up
 * would replace the last three wraps and the uv_walk one, which blames any
 * other walk of loom_run's loop.)
 *
 * Under LOOM_FIBER_ONLY (the fiber test built alone, without libuv or the
 * core) only the runner and the assertions are compiled. */
#ifdef LOOM_FIBER_ONLY
#define _GNU_SOURCE /* strerrorname_np */
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#ifndef LOOM_FIBER_ONLY
#include <pthread.h>
#include <stdatomic.h>

#include "core/internal.h"
#include "loom.h"
#endif

/* ---- error codes by name -------------------------------------------------- */

const char *harness_code_str(long code, char *buf, size_t cap) {
  if (code >= 0) {
    snprintf(buf, cap, "%ld", code);
    return buf;
  }
#ifdef LOOM_FIBER_ONLY
  const char *name = code >= -4095 ? strerrorname_np((int)-code) : NULL;
  snprintf(buf, cap, "%s (%ld)", name ? name : "unknown", code);
#else
  snprintf(buf, cap, "%s (%ld)", loom_err_name((int)code), code);
#endif
  return buf;
}

void harness_assert_code(long got, long want, const char *expr, const char *file,
                         int line) {
  if (got == want) return;
  char g[64], w[64];
  print_error("%s: got %s, want %s\n", expr, harness_code_str(got, g, sizeof(g)),
              harness_code_str(want, w, sizeof(w)));
  _fail(file, line);
}

/* ---- what a test leaves behind -------------------------------------------- */

/* Problems found while the current test ran, printed when it ends (only
 * the runtime's checks find any: none under LOOM_FIBER_ONLY). Runtimes on
 * other threads report here too, under `lock`. */
static struct {
  char text[1024];
  size_t len;
  int count;
  int expect_leftovers;
} found;

#ifndef LOOM_FIBER_ONLY
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void leftover(const char *fmt, ...) {
  pthread_mutex_lock(&lock);
  found.count++;
  if (found.len + 2 < sizeof(found.text)) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(found.text + found.len, sizeof(found.text) - found.len, fmt, ap);
    va_end(ap);
    if (n > 0) {
      found.len += (size_t)n;
      if (found.len > sizeof(found.text) - 2) found.len = sizeof(found.text) - 2;
      found.text[found.len++] = '\n';
      found.text[found.len] = 0;
    }
  }
  pthread_mutex_unlock(&lock);
}
#endif

void harness_expect_leftovers(void) { found.expect_leftovers = 1; }

#ifndef LOOM_FIBER_ONLY

int __real_uv_loop_init(uv_loop_t *loop);
int __real_uv_loop_close(uv_loop_t *loop);
void __real_uv_walk(uv_loop_t *loop, uv_walk_cb cb, void *arg);
int __wrap_uv_loop_init(uv_loop_t *loop);
int __wrap_uv_loop_close(uv_loop_t *loop);
void __wrap_uv_walk(uv_loop_t *loop, uv_walk_cb cb, void *arg);

typedef int (*io_close_fn)(loom__io_t *o, int force);
void __real_loom__io_add(loom_t *rt, loom__io_t *o, const char *what, io_close_fn close)
    __attribute__((weak));
void __real_loom__io_remove(loom_t *rt, loom__io_t *o) __attribute__((weak));
void __real_loom__reap_unconsumed(loom_t *rt) __attribute__((weak));
void __wrap_loom__io_add(loom_t *rt, loom__io_t *o, const char *what, io_close_fn close);
void __wrap_loom__io_remove(loom_t *rt, loom__io_t *o);
void __wrap_loom__reap_unconsumed(loom_t *rt);

/* Loops initialised and not (successfully) closed, on any thread. */
static atomic_long open_loops;

int __wrap_uv_loop_init(uv_loop_t *loop) {
  int rc = __real_uv_loop_init(loop);
  if (rc == 0) atomic_fetch_add(&open_loops, 1);
  return rc;
}

static void name_handle(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    leftover("a libuv %s handle was left on the loop", uv_handle_type_name(h->type));
}

int __wrap_uv_loop_close(uv_loop_t *loop) {
  int rc = __real_uv_loop_close(loop);
  if (rc == 0)
    atomic_fetch_sub(&open_loops, 1);
  else if (rc == UV_EBUSY)
    __real_uv_walk(loop, name_handle, NULL);
  return rc;
}

void __wrap_uv_walk(uv_loop_t *loop, uv_walk_cb cb, void *arg) {
  __real_uv_walk(loop, name_handle, NULL);
  __real_uv_walk(loop, cb, arg);
}

/* The real shutdown closer of each I/O object on a runtime's list. Objects
 * leave from loom__io_remove, which I/O code calls when it frees one (the
 * newest first: the order that finds them soonest). An entry whose object
 * was freed without it (loom_run dropping the objects of tasks it gave up
 * on) is replaced when its address comes back. */
typedef struct {
  loom__io_t *o;
  io_close_fn close;
} closer_t;
/* Not counted: the table outlives the test that grows it. */
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
static closer_t *closers;
static size_t ncloser, closer_cap;

static closer_t *closer_find(loom__io_t *o) {
  for (size_t i = ncloser; i-- > 0;)
    if (closers[i].o == o) return &closers[i];
  return NULL;
}

/* Shutdown calls this only for objects still on the list once every task
 * has ended; the real closer says whether the program had left it open. */
static int close_counted(loom__io_t *o, int force) {
  pthread_mutex_lock(&lock);
  closer_t *c = closer_find(o);
  io_close_fn close = c ? c->close : NULL;
  pthread_mutex_unlock(&lock);
  if (!close) return 0; /* cannot happen: every object came through add */
  const char *what = o->what;
  int r = close(o, force);
  if (r && !force) leftover("loom's shutdown closed a %s the program left open", what);
  return r;
}

void __wrap_loom__io_add(loom_t *rt, loom__io_t *o, const char *what, io_close_fn close) {
  pthread_mutex_lock(&lock);
  if (ncloser == closer_cap) {
    size_t cap = closer_cap ? 2 * closer_cap : 64;
    closer_t *n = __real_realloc(closers, cap * sizeof(*n));
    if (!n) { /* not watched, only not checked */
      pthread_mutex_unlock(&lock);
      __real_loom__io_add(rt, o, what, close);
      return;
    }
    closers = n;
    closer_cap = cap;
  }
  closer_t *stale = closer_find(o);
  if (stale) *stale = closers[--ncloser];
  closers[ncloser++] = (closer_t){.o = o, .close = close};
  pthread_mutex_unlock(&lock);
  __real_loom__io_add(rt, o, what, close_counted);
}

void __wrap_loom__io_remove(loom_t *rt, loom__io_t *o) {
  pthread_mutex_lock(&lock);
  closer_t *c = closer_find(o);
  if (c) *c = closers[--ncloser];
  pthread_mutex_unlock(&lock);
  __real_loom__io_remove(rt, o);
}

void __wrap_loom__reap_unconsumed(loom_t *rt) {
  for (uint32_t i = 0; i < rt->nhandles; i++) {
    loom_task_t *t = loom__handle_at(rt, i, LOOM__H_TASK);
    if (t && !t->consumed)
      leftover("task '%s' was never joined nor detached", t->name[0] ? t->name : "?");
  }
  __real_loom__reap_unconsumed(rt);
}

#endif /* !LOOM_FIBER_ONLY */

/* ---- the runner ------------------------------------------------------------- */

/* The test as the program declared it, and the state at its start. */
typedef struct {
  const struct CMUnitTest *test;
#ifndef LOOM_FIBER_ONLY
  long live;
  long loops;
  size_t ios;
  loom_t *home;
#endif
} record_t;

static record_t *current;

static void begin(record_t *r) {
  current = r;
  memset(&found, 0, sizeof(found));
#ifndef LOOM_FIBER_ONLY
  r->live = harness_alloc_live();
  r->loops = atomic_load(&open_loops);
  r->ios = ncloser;
  r->home = loom__tls_home;
#endif
}

static void check(const record_t *r) {
#ifndef LOOM_FIBER_ONLY
  if (found.expect_leftovers) memset(&found, 0, sizeof(found));
  long loops = atomic_load(&open_loops) - r->loops;
  if (loops > 0) leftover("%ld libuv loop(s) initialised and not closed", loops);
  if (loom__tls_home && loom__tls_home != r->home)
    leftover("a runtime is still attached to the thread (loom_init without "
             "loom_shutdown)");
  else if (ncloser > r->ios)
    leftover("%zu I/O object(s) still exist", ncloser - r->ios);
  long blocks = harness_alloc_live() - r->live;
  if (blocks != 0)
    leftover("%ld block(s) allocated and not freed (counting allocator)", blocks);
#else
  (void)r;
#endif
  if (!found.count) return;
  print_error("harness: %s left %d thing(s) behind:\n%s", r->test->name, found.count,
              found.text);
  memset(&found, 0, sizeof(found));
  _fail(__FILE__, __LINE__);
}

static int setup(void **state) {
  record_t *r = *state;
  begin(r);
  *state = (void *)r->test->initial_state;
  return r->test->setup_func ? r->test->setup_func(state) : 0;
}

static void trampoline(void **state) {
  record_t *r = current;
  r->test->test_func(state);
  check(r);
}

int harness_run(const struct CMUnitTest *tests, size_t n) {
#ifndef LOOM_FIBER_ONLY
  harness__alloc_install();
#endif
  struct CMUnitTest *run = calloc(n, sizeof(*run));
  record_t *recs = calloc(n, sizeof(*recs));
  if (!run || !recs) return 1;
  for (size_t i = 0; i < n; i++) {
    recs[i].test = &tests[i];
    run[i] = (struct CMUnitTest){
        .name = tests[i].name,
        .test_func = trampoline,
        .setup_func = setup,
        .teardown_func = tests[i].teardown_func,
        .initial_state = &recs[i],
    };
  }
  const char *filter = getenv("LOOM_TEST_FILTER");
  if (filter) cmocka_set_test_filter(filter);
  int rc = _cmocka_run_group_tests("tests", run, n, NULL, NULL);
  free(run);
  free(recs);
#ifndef LOOM_FIBER_ONLY
  __real_free(closers);
#endif
  return rc;
}
