/* The counting allocator every test program links (harness.h).
 *
 * Test programs are linked with -Wl,--wrap=malloc,--wrap=calloc,
 * --wrap=realloc,--wrap=free (tests/CMakeLists.txt): every call from the
 * test's own objects and from loom's static library lands in the __wrap_
 * functions below, which count live blocks and pass on to __real_malloc &c,
 * the C library's functions. Those are what AddressSanitizer and Valgrind
 * replace, so both still see every block, with the caller's stack. libuv is
 * a shared library, untouched by --wrap: its allocations reach the same
 * count through uv_replace_allocator, installed by harness_run before any
 * other libuv call.
 *
 * Memory the C library allocates for itself (stdio buffers, strdup inside
 * the library, getaddrinfo's lists) is neither counted nor seen here; a
 * test that frees such a block with free() would unbalance the count, and
 * must not (none does).
 *
 * The allocation-failure tests fail allocations through hooks (fail, watch)
 * instead of wrapping the allocator a second time. The count is atomic:
 * libuv's thread pool allocates and frees on its own threads. */
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <uv.h>

#include "harness.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

static atomic_long live;
/* Installed and removed on the main thread, between runs of the loop. */
static harness_alloc_hooks_t hooks;

long harness_alloc_live(void) { return atomic_load(&live); }

void harness_alloc_set_hooks(const harness_alloc_hooks_t *h) {
  hooks = h ? *h : (harness_alloc_hooks_t){.should_fail = NULL, .watch = NULL};
}

static int fails(int kind, int from_uv) {
  return hooks.should_fail && hooks.should_fail(kind, from_uv);
}

static void came(void *p, int from_uv) {
  atomic_fetch_add(&live, 1);
  if (hooks.watch) hooks.watch(NULL, p, from_uv);
}

static void *counted_malloc(size_t n, int from_uv) {
  if (fails(HARNESS_MALLOC, from_uv)) return NULL;
  void *p = __real_malloc(n);
  if (p) came(p, from_uv);
  return p;
}

static void *counted_calloc(size_t n, size_t size, int from_uv) {
  if (fails(HARNESS_CALLOC, from_uv)) return NULL;
  void *p = __real_calloc(n, size);
  if (p) came(p, from_uv);
  return p;
}

/* realloc(NULL, n) allocates a block, realloc(p, 0) may free one (and
 * return NULL); otherwise the count does not move. */
static void *counted_realloc(void *old, size_t n, int from_uv) {
  void *p = __real_realloc(old, n);
  if (!old && p) atomic_fetch_add(&live, 1);
  if (old && !p && n == 0) atomic_fetch_sub(&live, 1);
  if (hooks.watch && (p || n == 0)) hooks.watch(old, p, from_uv);
  return p;
}

static void counted_free(void *p, int from_uv) {
  if (!p) return;
  atomic_fetch_sub(&live, 1);
  if (hooks.watch) hooks.watch(p, NULL, from_uv);
  __real_free(p);
}

void *__wrap_malloc(size_t n) { return counted_malloc(n, 0); }
void *__wrap_calloc(size_t n, size_t size) { return counted_calloc(n, size, 0); }
void *__wrap_realloc(void *old, size_t n) {
  if (fails(HARNESS_REALLOC, 0)) return NULL;
  return counted_realloc(old, n, 0);
}
void __wrap_free(void *p) { counted_free(p, 0); }

/* libuv's side. Its reallocs are never failed (harness.h). */
static void *uv_malloc_hook(size_t n) { return counted_malloc(n, 1); }
static void *uv_calloc_hook(size_t n, size_t size) { return counted_calloc(n, size, 1); }
static void *uv_realloc_hook(void *p, size_t n) { return counted_realloc(p, n, 1); }
static void uv_free_hook(void *p) { counted_free(p, 1); }

/* Called by harness_run before anything else touches libuv. */
void harness__alloc_install(void) {
  uv_replace_allocator(uv_malloc_hook, uv_realloc_hook, uv_calloc_hook, uv_free_hook);
}
