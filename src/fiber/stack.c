/* Stack slabs and the per-runtime stack pool (see stack.h).
 *
 * Free stacks of a size are kept in an array used as a LIFO stack, outside
 * the stacks themselves: handing a stack out touches none of its memory (a
 * list node inside each free stack cost a cache miss per spawn). The array
 * has room for every stack of its size from the moment the slab is mapped,
 * so giving a stack back never allocates. Stacks are reused LIFO: the most
 * recently freed stack is the one whose top pages are still resident and in
 * cache. The slabs and the size classes, few and touched only when a slab
 * is mapped or a pool destroyed, are on intrusive lists (util/list.h).
 * How many free stacks of a size stay resident follows demand: the high-water
 * mark of stacks of that size in use, taken per window of LOOM__WINDOW_NS of
 * the pool's clock and halved for every window in which demand stayed lower
 * (never below LOOM__WARM). A program that spawns bursts of 100,000 tasks
 * keeps 100,000 stacks warm and pays no page fault per task; once the
 * bursts stop, the excess is given back with MADV_DONTNEED a few stacks per
 * put (least recently used first), so neither a burst nor the shrinking
 * after it costs a long pause. A runtime that stops spawning gives them back
 * at its idle points instead (loom__stack_pool_idle, once per scheduler pass
 * that leaves nothing ready). The clock is read, never asked for: the pool
 * looks at a coarse timestamp its owner keeps (the scheduler's pass clock),
 * so the fiber layer needs no timer and no libuv, and a test can drive time.
 */
#include "stack.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../util/demand.h"
#include "../util/list.h"
#include "fiber.h"

#ifdef LOOM_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#endif

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
/* A fiber that never ran to completion leaves its frames' redzones poisoned
 * in ASan's shadow memory; clear them whenever a stack changes hands, or the
 * next user of the memory trips over them. */
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define LOOM__WARM 1024 /* free stacks per size always kept resident */
/* Demand is measured per window of a second; the warm count halves per
 * window of lower demand (so 100,000 warm stacks fall to LOOM__WARM in about
 * 7 s of quiet). */
#define LOOM__WINDOW_NS ((int64_t)1000000000)
/* Trimming is spread over puts: at most this many stacks given back, and
 * this many free-list entries looked at, per put. */
#define LOOM__TRIM_STEP 32
#define LOOM__TRIM_SCAN 256
/* At an idle point (loom__stack_pool_idle: the scheduler has nothing to
 * run and the loop is about to wait) a bigger step: ~0.5 ms of madvise. */
#define LOOM__TRIM_IDLE_STEP 256
#define LOOM__SLAB_BYTES (8u << 20) /* target slab size */

typedef struct loom__slab_s {
  loom__link_t link; /* on pool->slabs */
  void *base;
  size_t len;
  size_t guards;    /* guard pages in this slab, returned to the budget */
  unsigned *vg_ids; /* Valgrind stack ids, NULL when not under Valgrind */
  size_t nstacks;
} loom__slab_t;

typedef struct loom__stack_class_s {
  loom__link_t link; /* on pool->classes */
  size_t size;
  struct free_ent *free; /* free stacks, most recently freed last */
  size_t nfree, cap;     /* entries used and allocated */
  size_t total;          /* stacks of this size; cap >= total */
  size_t nwarm;          /* free stacks whose pages are resident */
  loom__demand_t d;      /* keep: free stacks allowed to stay resident;
                            peak: most in use during this window */
  size_t cold_below;     /* free[0 .. cold_below) are all cold */
  size_t reserved;       /* free stacks promised to loom__stack_take */
} loom__stack_class_t;

/* A free stack: its lowest byte (page-aligned) with two flags in the low
 * bits, 8 bytes. With a million stacks, the array is 8 MB rather than the
 * 24 MB of a pointer pair and a flag (it counts in the memory per task). */
struct free_ent {
  uintptr_t v;
};
#define ENT_COLD ((uintptr_t)1)    /* pages given back with MADV_DONTNEED */
#define ENT_GUARDED ((uintptr_t)2) /* a guard zone of pool->guard below */

static inline void *ent_lo(struct free_ent e) { return (void *)(e.v & ~(uintptr_t)3); }
static inline int ent_cold(struct free_ent e) { return (e.v & ENT_COLD) != 0; }

#define LOOM__MAP_COUNT_PATH "/proc/sys/vm/max_map_count"
#define LOOM__MAP_COUNT_DEFAULT 65530L /* Linux's default vm.max_map_count */

static atomic_size_t guards_used;
static atomic_size_t guard_budget;
static atomic_int overflow_to_canary_said;
static _Atomic(const char *) map_count_path;

long loom__stack_parse_map_count(const char *buf, size_t n) {
  long v = 0;
  size_t i = 0;
  for (; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) {
    int d = buf[i] - '0';
    if (v > (LONG_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  if (i == 0 || i == n || buf[i] != '\n' || v <= 0) return -1;
  return v;
}

/* Reads vm.max_map_count; -1 if it cannot be read. With read(2) into a
 * buffer of our own, not stdio: a sysctl file answers a read at a non-zero
 * offset with end of file, so a FILE that could not allocate its buffer
 * (and reads one byte at a time) sees "6" for 65530. */
static long read_map_count(void) {
  const char *path = atomic_load(&map_count_path);
  int fd = open(path ? path : LOOM__MAP_COUNT_PATH, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[32];
  size_t n = 0;
  while (n < sizeof(buf)) {
    ssize_t r = read(fd, buf + n, sizeof(buf) - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
  }
  close(fd);
  return loom__stack_parse_map_count(buf, n);
}

size_t loom__stack_guard_budget(void) {
  size_t b = atomic_load(&guard_budget);
  if (b) return b;
  long max = read_map_count();
  /* Each guarded stack costs two mappings (guard + stack); keep half of the
   * process's mappings for everything else. A failed read is not cached:
   * the default stands in until a later slab reads the real limit. */
  if (max < 0) return (size_t)(LOOM__MAP_COUNT_DEFAULT / 4);
  b = (size_t)(max / 4);
  if (b) atomic_store(&guard_budget, b);
  return b;
}

void loom__stack_set_guard_budget(size_t n) { atomic_store(&guard_budget, n); }
void loom__stack_set_map_count_path(const char *path) {
  atomic_store(&map_count_path, path);
}
size_t loom__stack_guards_used(void) { return atomic_load(&guards_used); }

/* Reserves n guards from the budget; returns 0 if they cannot be had. */
static int take_guards(size_t n) {
  size_t budget = loom__stack_guard_budget();
  size_t used = atomic_load(&guards_used);
  do {
    if (used + n > budget) return 0;
  } while (!atomic_compare_exchange_weak(&guards_used, &used, used + n));
  return 1;
}

void loom__stack_pool_init(loom__stack_pool_t *pool) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  *pool = (loom__stack_pool_t){
      .page = page,
      .guard = (LOOM__GUARD_BYTES + page - 1) & ~(page - 1),
      .dead = (LOOM__DEAD_BYTES + page - 1) & ~(page - 1),
  }; /* the lists start empty (zero) */
#ifdef LOOM_HAVE_VALGRIND
  pool->valgrind = RUNNING_ON_VALGRIND != 0;
#endif
}

/* The size class of a request: page-rounded, at least LOOM__STACK_MIN.
 * 0 if the request is beyond LOOM__STACK_MAX (checked before any arithmetic,
 * so nothing wraps). */
static size_t class_size(const loom__stack_pool_t *pool, size_t size) {
  if (size > LOOM__STACK_MAX) return 0;
  if (size < LOOM__STACK_MIN) size = LOOM__STACK_MIN;
  return (size + pool->page - 1) & ~(pool->page - 1);
}

void loom__stack_pool_destroy(loom__stack_pool_t *pool) {
  loom__link_t *l;
  while ((l = loom__list_pop_front(&pool->slabs))) {
    loom__slab_t *s = loom__list_entry(l, loom__slab_t, link);
#ifdef LOOM_HAVE_VALGRIND
    if (s->vg_ids)
      for (size_t i = 0; i < s->nstacks; i++) VALGRIND_STACK_DEREGISTER(s->vg_ids[i]);
#endif
    free(s->vg_ids);
    UNPOISON(s->base, s->len);
    munmap(s->base, s->len);
    atomic_fetch_sub(&guards_used, s->guards);
    free(s);
  }
  pool->last = NULL;
  while ((l = loom__list_pop_front(&pool->classes))) {
    loom__stack_class_t *c = loom__list_entry(l, loom__stack_class_t, link);
    free(c->free);
    free(c);
  }
}

static loom__stack_class_t *find_class_slow(loom__stack_pool_t *pool, size_t size);

/* Most programs use one stack size: the class last used is tried first. */
static inline loom__stack_class_t *find_class(loom__stack_pool_t *pool, size_t size) {
  loom__stack_class_t *c = pool->last;
  if (c && c->size == size) return c;
  c = find_class_slow(pool, size);
  if (c) pool->last = c;
  return c;
}

static loom__stack_class_t *find_class_slow(loom__stack_pool_t *pool, size_t size) {
  loom__link_t *l;
  loom__list_foreach(l, &pool->classes) {
    loom__stack_class_t *c = loom__list_entry(l, loom__stack_class_t, link);
    if (c->size == size) return c;
  }
  loom__stack_class_t *c = calloc(1, sizeof(*c));
  if (!c) return NULL;
  c->size = size;
  c->d.keep = LOOM__WARM;
  loom__list_push_front(&pool->classes, &c->link);
  return c;
}

static void push_free(loom__stack_class_t *c, void *lo, void *guard_lo, int cold) {
  /* room reserved at grow */
  c->free[c->nfree++] = (struct free_ent){
      .v = (uintptr_t)lo | (guard_lo ? ENT_GUARDED : 0) | (cold ? ENT_COLD : 0)};
  if (!cold) c->nwarm++;
}

#if defined(__linux__) && defined(SYS_process_madvise) && defined(MADV_POPULATE_READ)
/* Faults in, in a few system calls, what a slab's stacks are about to take
 * a page fault each for: `len` bytes at `first` + i * `stride` for n
 * stacks, with `advice`. Returns 1 if done, 0 if refused (then the faults
 * stay).
 *
 * - MADV_POPULATE_READ on the canaries of an unguarded slab. A canary is
 *   read at every switch away from its task, and the first read of a page
 *   never touched maps the kernel's zero page through a page fault (~0.9 us
 *   in a VM): a million fresh stacks spent about a second on it. Populated:
 *   ~0.4 us a page, and no memory (the zero page is shared, not counted as
 *   resident).
 *
 * PIDFD_SELF (Linux 6.15) names the calling process without a file
 * descriptor. */
#define LOOM__PIDFD_SELF (-10000)
static atomic_int populate_refused;

static int populate(char *first, size_t n, size_t stride, size_t len, int advice) {
#ifdef LOOM_HAVE_VALGRIND
  if (RUNNING_ON_VALGRIND) return 0; /* an unknown system call to it */
#endif
  struct iovec v[64];
  for (size_t i = 0; i < n;) {
    if (atomic_load(&populate_refused)) return 0;
    size_t k = 0;
    for (; k < 64 && i < n; k++, i++)
      v[k] = (struct iovec){.iov_base = first + i * stride, .iov_len = len};
    if (syscall(SYS_process_madvise, LOOM__PIDFD_SELF, v, k, advice, 0) < 0) {
      atomic_store(&populate_refused, 1);
      return 0;
    }
  }
  return 1;
}
#else
static int populate(char *first, size_t n, size_t stride, size_t len, int advice) {
  (void)first, (void)n, (void)stride, (void)len, (void)advice;
  return 0;
}
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 0
#endif
#endif

/* Maps a new slab of stacks of class c and puts them on its free list.
 *
 * A guarded slab is mapped PROT_NONE and its stacks opened up one by one:
 * the guard zones are never writable, so even under strict overcommit they
 * are not charged as memory. If the kernel refuses a stack's mprotect (out of
 * mappings after all), that stack and the ones above it become canary
 * stacks, their guard zones dead zones, in one last mprotect that merges with
 * the stack below it (no new mapping). */
static int grow(loom__stack_pool_t *pool, loom__stack_class_t *c) {
  size_t page = pool->page;
  /* The stack count of a slab ignores the zones: they are address space
   * only, and a slab of the same count costs the same system calls. */
  size_t n = LOOM__SLAB_BYTES / (c->size + page);
  if (n < 1) n = 1;
  if (c->total + n > c->cap) { /* geometric: a million stacks, few copies */
    size_t cap = c->cap * 2 > c->total + n ? c->cap * 2 : c->total + n;
    struct free_ent *ents = realloc(c->free, cap * sizeof(*ents));
    if (!ents) return -ENOMEM;
    c->free = ents;
    c->cap = cap;
  }
  int guarded = take_guards(n);
  if (!guarded && atomic_exchange(&overflow_to_canary_said, 1) == 0)
    fprintf(stderr,
            "loom: guard-page budget spent (%zu stacks guarded); further "
            "stacks are protected by a canary checked at every switch\n",
            loom__stack_guard_budget());
  size_t zone = guarded ? pool->guard : pool->dead;
  size_t stride = zone + c->size;
  size_t len = n * stride;
  loom__slab_t *slab = calloc(1, sizeof(*slab));
  if (!slab) goto fail_guards;
#ifdef LOOM_HAVE_VALGRIND
  /* Stacks Valgrind does not know make it report every access to them:
   * without the ids there is no slab. */
  if (RUNNING_ON_VALGRIND && !(slab->vg_ids = calloc(n, sizeof(unsigned))))
    goto fail_slab;
#endif
  void *base = mmap(NULL, len, guarded ? PROT_NONE : PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) goto fail_slab;
  size_t nguarded = 0;
  if (guarded) {
    while (nguarded < n && mprotect((char *)base + nguarded * stride + zone, c->size,
                                    PROT_READ | PROT_WRITE) == 0)
      nguarded++;
    if (nguarded < n) {
      atomic_fetch_sub(&guards_used, n - nguarded); /* back to the budget */
      size_t off = nguarded * stride;
      if (mprotect((char *)base + off, len - off, PROT_READ | PROT_WRITE) != 0) {
        /* Not even that: keep the stacks that were opened, if any. */
        if (nguarded == 0) {
          munmap(base, len);
          guarded = 0; /* the guards went back to the budget above */
          goto fail_slab;
        }
        munmap((char *)base + off, len - off);
        len = off;
        n = nguarded;
      }
    }
  }
  UNPOISON(base, len);
#ifdef MADV_NOHUGEPAGE
  /* A huge page would commit 2 MiB where a task touches 4 KiB. */
  madvise(base, len, MADV_NOHUGEPAGE);
#endif
  slab->base = base;
  slab->len = len;
  slab->nstacks = n;
  slab->guards = nguarded;
  /* Unguarded stacks: their canaries. (Not their top pages: a stack may
   * be mapped for a reservation and never used, and would cost a page.) */
  if (nguarded < n)
    populate((char *)base + nguarded * stride + zone, n - nguarded, stride,
             LOOM__CANARY_BYTES, MADV_POPULATE_READ);
  /* Push in reverse so stacks are handed out in address order. */
  for (size_t i = n; i-- > 0;) {
    char *zone_lo = (char *)base + i * stride;
    char *s = zone_lo + zone;
#ifdef LOOM_HAVE_VALGRIND
    if (slab->vg_ids) slab->vg_ids[i] = VALGRIND_STACK_REGISTER(s, s + c->size);
#endif
    push_free(c, s, i < nguarded ? zone_lo : NULL, 1); /* not resident */
  }
  loom__list_push_front(&pool->slabs, &slab->link);
  c->total += n;
  return 0;
fail_slab:
#ifdef LOOM_HAVE_VALGRIND
  free(slab->vg_ids);
#endif
  free(slab);
fail_guards:
  if (guarded) atomic_fetch_sub(&guards_used, n);
  return -ENOMEM;
}

#ifdef LOOM_HAVE_VALGRIND
/* Memcheck marked the frames of the stack's last task dead when they
 * returned; the next fiber's first frame is written at the top from outside
 * it (loom__ctx_make). Below that, frames are pushed, and memcheck makes
 * them addressable itself. Only the top page: marking the whole stack cost
 * memcheck a shadow map per stack, and 10,000 stacks ran out of its
 * mappings. Out of line: the client requests need a stack frame of their
 * own, which every hand-out would otherwise set up. */
__attribute__((noinline, cold)) static void vg_handed_out(const loom__stack_pool_t *pool,
                                                          const loom__stack_t *s) {
  VALGRIND_MAKE_MEM_UNDEFINED((char *)s->lo + s->size - pool->page, pool->page);
  if (!s->guard_lo) VALGRIND_MAKE_MEM_DEFINED(s->lo, LOOM__CANARY_BYTES); /* zeros */
}
#endif

/* Takes the most recently freed stack of c. */
static inline void pop(loom__stack_pool_t *pool, loom__stack_class_t *c,
                       loom__stack_t *out) {
  const struct free_ent e = c->free[--c->nfree];
  if (!ent_cold(e)) c->nwarm--;
  if (c->nfree < c->cold_below) c->cold_below = c->nfree;
  loom__demand_used(&c->d, c->total - c->nfree);
  *out = (loom__stack_t){
      .lo = ent_lo(e),
      .size = c->size,
      .guard_lo = (e.v & ENT_GUARDED) ? (char *)ent_lo(e) - pool->guard : NULL,
      .guard_size = (e.v & ENT_GUARDED) ? pool->guard : 0,
  };
#ifdef LOOM_HAVE_VALGRIND
  if (pool->valgrind) vg_handed_out(pool, out); /* ~40 instructions even outside it */
#endif
}

/* The class of `size` with a free stack beyond its reservations, mapping a
 * slab if need be; NULL with *rc set if there is none. */
static loom__stack_class_t *class_with_room(loom__stack_pool_t *pool, size_t size,
                                            int *rc) {
  size = class_size(pool, size);
  *rc = -EINVAL;
  if (size == 0) return NULL;
  *rc = -ENOMEM;
  loom__stack_class_t *c = find_class(pool, size);
  if (!c) return NULL;
  if (c->nfree <= c->reserved && (*rc = grow(pool, c)) != 0) return NULL;
  *rc = 0;
  return c;
}

int loom__stack_get(loom__stack_pool_t *pool, size_t size, loom__stack_t *out) {
  int rc;
  loom__stack_class_t *c = class_with_room(pool, size, &rc);
  if (c) pop(pool, c, out);
  return rc;
}

int loom__stack_reserve(loom__stack_pool_t *pool, size_t size) {
  int rc;
  loom__stack_class_t *c = class_with_room(pool, size, &rc);
  if (c) c->reserved++;
  return rc;
}

/* The class of a reservation of `size`: it exists, since the reservation
 * made it. A take or an unreserve without one is a bug of the caller's,
 * which would wrap the count and leave every later reservation mapping a
 * slab: stopped here instead. */
static loom__stack_class_t *reserved_class(loom__stack_pool_t *pool, size_t size) {
  loom__stack_class_t *c = find_class(pool, class_size(pool, size));
  if (!c || !c->reserved) {
    fprintf(stderr, "loom: stack pool: no reservation of %zu bytes to take\n", size);
    abort();
  }
  c->reserved--;
  return c;
}

void loom__stack_take(loom__stack_pool_t *pool, size_t size, loom__stack_t *out) {
  pop(pool, reserved_class(pool, size), out);
}

void loom__stack_unreserve(loom__stack_pool_t *pool, size_t size) {
  (void)reserved_class(pool, size);
}

/* Gives back resident free stacks beyond c->keep, oldest first (from the
 * bottom of the LIFO), at most `step` of them and `scan` entries looked at
 * per call. */
static void trim_some(loom__stack_class_t *c, size_t step, size_t scan) {
  size_t i = c->cold_below, given = 0;
  size_t end = c->nfree - i > scan ? i + scan : c->nfree;
  for (; i < end && c->nwarm > c->d.keep && given < step; i++) {
    struct free_ent *e = &c->free[i];
    if (ent_cold(*e)) continue;
    madvise(ent_lo(*e), c->size, MADV_DONTNEED);
    e->v |= ENT_COLD;
    c->nwarm--;
    given++;
  }
  c->cold_below = i;
}

static void trim(loom__stack_class_t *c) {
  trim_some(c, LOOM__TRIM_STEP, LOOM__TRIM_SCAN);
}

void loom__stack_pool_idle(loom__stack_pool_t *pool) {
  int64_t now = pool->clock ? *pool->clock : 0;
  loom__link_t *l;
  loom__list_foreach(l, &pool->classes) {
    loom__stack_class_t *c = loom__list_entry(l, loom__stack_class_t, link);
    loom__demand_idle(&c->d, now, c->total - c->nfree, LOOM__WARM, LOOM__WINDOW_NS);
    if (c->nwarm > c->d.keep)
      trim_some(c, LOOM__TRIM_IDLE_STEP, 4 * LOOM__TRIM_IDLE_STEP);
  }
}

void loom__stack_put(loom__stack_pool_t *pool, const loom__stack_t *s) {
  loom__stack_class_t *c = find_class(pool, s->size);
  if (!c) return; /* cannot happen: the class was made at get */
  UNPOISON(s->lo, s->size);
  int64_t now = pool->clock ? *pool->clock : 0;
  (void)loom__demand_may_keep(&c->d, now, c->total - c->nfree, c->nwarm, LOOM__WARM,
                              LOOM__WINDOW_NS);
  /* This stack is the warmest there is and the next take's: it stays
   * resident, and if that makes one too many, the oldest warm one goes.
   * (Given back itself, two tasks passing a stack along would each pay a
   * madvise and a page fault while 1,024 idle stacks stayed resident.) */
  push_free(c, s->lo, s->guard_lo, 0);
  if (c->nwarm > c->d.keep) trim(c);
}

void loom__stack_pool_totals(const loom__stack_pool_t *pool, size_t *total,
                             size_t *nfree) {
  *total = *nfree = 0;
  loom__link_t *l;
  loom__list_foreach(l, &pool->classes) {
    const loom__stack_class_t *c = loom__list_entry(l, loom__stack_class_t, link);
    *total += c->total;
    *nfree += c->nfree;
  }
}

int loom__stack_pool_stats(const loom__stack_pool_t *pool, size_t size,
                           loom__stack_stats_t *out) {
  size = class_size(pool, size);
  if (size == 0) return -EINVAL;
  loom__link_t *l;
  loom__list_foreach(l, &pool->classes) {
    const loom__stack_class_t *c = loom__list_entry(l, loom__stack_class_t, link);
    if (c->size != size) continue;
    *out = (loom__stack_stats_t){
        .total = c->total,
        .free = c->nfree,
        .warm = c->nwarm,
        .keep = c->d.keep,
        .peak = c->d.peak,
        .reserved = c->reserved,
    };
    return 0;
  }
  *out = (loom__stack_stats_t){.keep = LOOM__WARM};
  return 0;
}
