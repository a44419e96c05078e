/* Debug mode (like PYTHONASYNCIODEBUG): reports on stderr what makes a
 * loom program stall, while it runs.
 *
 *  - A task that runs longer than slow_task_ms without suspending is named,
 *    with a backtrace taken while it runs, and again with the whole time
 *    once it suspends.
 *  - A lock held across a suspension for longer than lock_hold_ms is named
 *    with its holder while still held, and when it is released.
 *  - Tasks never joined nor detached are reported at the runtime's end with
 *    the place that spawned them.
 *  - The runtime's invariants (ready queue, parked tasks, canaries, handle
 *    table) are checked at the end of scheduler passes.
 *
 * Off, it costs the hot paths no call and no clock read: the switch count
 * it reads is the stats' (rt->stats.switches, one add per switch, which a
 * lone task's yield adds too), a lock acquisition tests rt->debug_mode, a
 * release compares the lock's state word it reads anyway. Everything else
 * hangs off paths that are slow already.
 *
 * How a slow task is caught. A watchdog thread per runtime in debug mode
 * samples rt->stats.switches every few milliseconds. When the count has not
 * moved for slow_task_ms, one activation of a task (or the loop's wait for
 * I/O) has lasted that long: the watchdog sends the loop's thread
 * LOOM__DEBUG_SIGNAL. Its handler runs on the loop's thread, so it can read
 * rt->current safely; if a task is running and the count is still the one
 * the watchdog saw, it records the task's id and name and backtrace()
 * into memory allocated beforehand (backtrace was called once at enable,
 * so it loads libgcc's unwinder then, not in the handler), and moves the
 * tick. A task in the middle of a dump may be on another task's stack (the
 * dump's probe: backtrace.c): then it is named without frames, never with
 * the probed task's. The watchdog prints the report (symbolized with dladdr, on its own
 * thread: a task stuck for good is still reported). The moved tick sends
 * the task's next switch through the scheduler's slow path (sched.c,
 * pass_ran_long, then tick.c's loom__tick_want), which prints how long
 * the task ran in all.
 *
 * A starved machine. The times measured leave out the loop thread's waits
 * for a CPU (runq_wait: Linux's schedstat): the kernel counts a wait once
 * it ends, so the handler, which runs when the thread has its CPU, has the
 * last word on a slow task, and confirms a lock's long hold too.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <execinfo.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "internal.h"
#include "loom/debug.h"

/* A realtime signal nothing in loom or libuv uses. */
#define LOOM__DEBUG_SIGNAL (SIGRTMAX - 3)
#define FRAMES 48
#define NAME_CAP (LOOM_TASK_NAME_MAX + 1)
/* The invariant sweep runs at most this often (it visits every task). */
#define SWEEP_EVERY_MS 50

/* A report being written. The one in loom__debug_mode_s, under its mutex:
 * reports are also written from tasks' stacks (a lock's release, a slow
 * task's switch), which may be 16 KiB in all. */
typedef struct {
  char buf[8192];
  size_t n;
} out_t;

typedef struct {
  const void *lock; /* NULL: free slot */
  uint64_t since_ns, switches, id;
  uint64_t wait0;  /* the loop thread's run-queue wait at the last sample
                      before the acquisition (seen_wait) */
  uint64_t due_at; /* when the watchdog found it due, pending a probe */
  int reported;
  char holder[NAME_CAP];
  char name[NAME_CAP]; /* loom_debug_name's, or "" */
} held_t;

struct loom__debug_mode_s {
  loom_t *rt;
  uint64_t slow_ns, lock_ns;
  int report_unjoined;
  pthread_t loop_thread;
  pthread_t watchdog;
  pid_t pid; /* a forked child has no watchdog to stop */
  uint64_t period_ns;
  int sched_fd; /* the loop thread's schedstat, or -1 (runq_wait) */
  /* Under mu: the watchdog's state, the lock table, the reports. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  uint64_t seen, seen_at; /* the count last sampled, and when it changed */
  uint64_t seen_wait;     /* the loop thread's run-queue wait then (ns) */
  uint64_t last_sample;   /* when the watchdog last looked */
  int signalled;          /* the signal went for `seen` */
  held_t *held;
  size_t nheld, held_cap; /* live entries; slots (a power of two, or 0) */
  /* From the watchdog to the handler. */
  _Atomic uint64_t sig_count;
  _Atomic uint64_t sig_since; /* when that count was first seen (ns) */
  _Atomic uint64_t sig_wait0; /* the run-queue wait then (seen_wait) */
  /* From the handler: the task had not run slow_task_ms, only waited for
   * a CPU (runq_wait); the watchdog may ask again later. */
  _Atomic int declined;
  /* From the handler, at every signal: when it ran and the run-queue
   * wait then (exact: the thread had its CPU). A seqlock: probe_seq is
   * odd while they are written. The watchdog confirms a lock's report
   * with a reading taken after the report fell due (scan_locks). */
  _Atomic uint64_t probe_seq, probe_at, probe_wait;
  int runq_known; /* sched_fd open, or the test hook set at enable */
  /* From the handler: 0 empty, 1 taken (not yet printed), 2 printed. The
   * handler writes the snapshot only while it is 0, then sets 1. */
  _Atomic int snap_state;
  uint64_t snap_count, snap_id, snap_since;
  int snap_n;
  void *snap_pcs[FRAMES];
  void *snap_ipc;   /* the pc the signal interrupted */
  int snap_probing; /* the task was dumping: on another task's stack */
  char snap_name[NAME_CAP];
  uint64_t last_sweep; /* loop time (ms) */
  out_t out;           /* under mu */
};

/* ---- reports ------------------------------------------------------------ */

__attribute__((format(printf, 2, 3))) static void out(out_t *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (o->n < sizeof(o->buf)) {
    int k = vsnprintf(o->buf + o->n, sizeof(o->buf) - o->n, fmt, ap);
    if (k > 0) o->n += (size_t)k;
    if (o->n >= sizeof(o->buf)) o->n = sizeof(o->buf) - 1; /* cut short */
  }
  va_end(ap);
}

/* One write, so that reports from the watchdog and the loop's thread do
 * not interleave. */
static void flush_out(out_t *o) {
  size_t off = 0;
  while (off < o->n) {
    ssize_t w = write(STDERR_FILENO, o->buf + off, o->n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += (size_t)w;
  }
  o->n = 0;
}

/* "fn+0x1f (object)", or "0x... (object+0x1234)" for code without an
 * exported symbol (addr2line -e object 0x1234 names it). */
static void symbolize(out_t *o, void *pc) {
  char buf[256];
  out(o, "%s", loom__symbolize(pc, buf, sizeof(buf)));
}

static uint64_t now_ns(void) { return uv_hrtime(); }

/* The loop thread's count of task activations (stats.switches, plus a
 * lone task's yields), read by the watchdog: a plain aligned word, written
 * only by the loop's thread, read relaxed. */
static inline uint64_t switches_of(loom_t *rt) {
  return __atomic_load_n(&rt->stats.switches, __ATOMIC_RELAXED);
}

static uint64_t ms(uint64_t ns) { return ns / 1000000; }

/* The coarse monotonic clock (a few ms of resolution, no system call, a
 * few ns): enough for lock holds measured against 100 ms, and taken at
 * every lock operation in debug mode. */
static uint64_t coarse_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t (*loom__debug_runq_hook)(void);

/* How long the loop's thread has waited on a run queue so far (ns): ready
 * to run, with no CPU to run on. On a starved machine (other threads busy
 * on its CPU, or a low priority) the loop's thread may be off the CPU for
 * longer than a threshold in the middle of a 1 ms activation; that time is
 * the machine's doing, not the task's, and is taken off what the watchdog
 * measures. Time blocked in a system call is not run-queue wait: a task
 * blocked in one is still reported. Linux's /proc/<pid>/task/<tid>/schedstat
 * gives it (its second field; a kernel with schedstats or sched_info). 0
 * without it, and the watchdog then measures wall-clock time alone. Read
 * (a pread of a file kept open) by the watchdog when an interval starts
 * and when a report is due, and by the probe signal's handler: never on
 * the loop's own paths. */
static uint64_t runq_wait(struct loom__debug_mode_s *d) {
  uint64_t (*hook)(void) = __atomic_load_n(&loom__debug_runq_hook, __ATOMIC_ACQUIRE);
  if (hook) return hook();
  if (d->sched_fd < 0) return 0;
  /* Parsed by hand: the signal handler calls it (pread is
   * async-signal-safe, sscanf is not). */
  char buf[96];
  ssize_t n = pread(d->sched_fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return 0;
  buf[n] = 0;
  const char *p = buf;
  while (*p >= '0' && *p <= '9') p++; /* time on a CPU */
  if (*p++ != ' ') return 0;
  uint64_t wait = 0;
  while (*p >= '0' && *p <= '9') wait = wait * 10 + (uint64_t)(*p++ - '0');
  return wait;
}

static int open_schedstat(void) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/task/%ld/schedstat",
           (long)syscall(SYS_gettid));
  return open(path, O_RDONLY | O_CLOEXEC);
}

/* ---- slow tasks --------------------------------------------------------- */

/* The pc a signal interrupted, from the handler's context. */
static void *interrupted_pc(void *uc) {
#if defined(__x86_64__)
  return (void *)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
  return (void *)((ucontext_t *)uc)->uc_mcontext.pc;
#else
  (void)uc;
  return NULL;
#endif
}

static void on_probe(int sig, siginfo_t *si, void *uc) {
  (void)sig, (void)si;
  int saved = errno;
  /* Out of a pass (the loop waits for I/O: a lock's probe), the runtime
   * attached to the thread. */
  loom_t *rt = loom__handle_rt();
  struct loom__debug_mode_s *d = rt ? rt->debug_mode : NULL;
  loom_task_t *t = rt ? rt->current : NULL;
  uint64_t count = d ? atomic_load(&d->sig_count) : 0;
  /* The thread runs this handler: it has its CPU, so its run-queue wait
   * is counted up to now (the kernel adds a wait when the wait ends: the
   * watchdog's reading misses one under way). */
  uint64_t now = now_ns(), w = d && d->runq_known ? runq_wait(d) : 0;
  if (d) {
    atomic_fetch_add(&d->probe_seq, 1);
    atomic_store(&d->probe_at, now);
    atomic_store(&d->probe_wait, w);
    atomic_fetch_add(&d->probe_seq, 1);
  }
  if (d && t && switches_of(rt) == count && atomic_load(&d->snap_state) == 0) {
    /* What is left of the time since the count last moved is the
     * task's. */
    uint64_t since = atomic_load(&d->sig_since), w0 = atomic_load(&d->sig_wait0);
    uint64_t elapsed = now > since ? now - since : 0;
    uint64_t waited = w > w0 ? w - w0 : 0;
    if (waited > elapsed) waited = elapsed;
    if (elapsed - waited < d->slow_ns) {
      atomic_store(&d->declined, 1);
      errno = saved;
      return;
    }
    d->snap_count = count;
    d->snap_since = since + waited;
    d->snap_id = t->fiber.id;
    memcpy(d->snap_name, t->name, NAME_CAP);
    d->snap_name[NAME_CAP - 1] = 0;
    /* A dump run by t resumes the tasks it dumps, briefly, to have them
     * unwind their own stacks (sched.c, loom__probe_backtrace): rt->current
     * is still t, but the stack the signal interrupted is the probed
     * task's. Its frames are not t's: t is named, without them. */
    d->snap_probing = loom__fiber_current() != &t->fiber;
    d->snap_ipc = d->snap_probing ? NULL : interrupted_pc(uc);
    d->snap_n = d->snap_probing ? 0 : backtrace(d->snap_pcs, FRAMES);
    atomic_store(&d->snap_state, 1);
    /* The task's next switch then takes the scheduler's slow path, which
     * tells us it has suspended: the tick moves (pick sees it), and a pass
     * marked over (a task run from a libuv callback) is unmarked, so that
     * the switch goes on to pass_ran_long (sched.c) and loom__tick_want
     * (tick.c), which calls loom__debug_time_up. */
    rt->pass_ended = 0;
    atomic_fetch_add(&loom__tick, 1);
  }
  errno = saved;
}

static void snap_task(out_t *o, struct loom__debug_mode_s *d) {
  if (d->snap_name[0])
    out(o, "task %" PRIu64 " '%s'", d->snap_id, d->snap_name);
  else
    out(o, "task %" PRIu64 " 'task-%" PRIu64 "'", d->snap_id, d->snap_id);
}

/* Under d->mu, snap_state 1: prints the warning with the backtrace. The
 * frames before the interrupted one (the handler, the signal trampoline)
 * are left out. */
static void print_slow(struct loom__debug_mode_s *d, uint64_t now) {
  out_t *o = &d->out;
  out(o, "loom: debug: ");
  snap_task(o, d);
  out(o,
      " has been running for at least %" PRIu64
      " ms without suspending (slow_task_ms %" PRIu64 "); it is at:\n",
      ms(now - d->snap_since), ms(d->slow_ns));
  /* The frames before the interrupted one (the handler, the signal
   * trampoline) are left out; an unwinder that could not cross the signal
   * frame still gives the interrupted pc. */
  if (d->snap_probing)
    out(o, "    (in a dump, asking another task for its backtrace: no frames)\n");
  int first = 0;
  while (first < d->snap_n && d->snap_pcs[first] != d->snap_ipc) first++;
  int k = 0;
  if (first == d->snap_n) {
    first = d->snap_n;
    if (d->snap_ipc) {
      out(o, "    #%d ", k++);
      symbolize(o, d->snap_ipc);
      out(o, "\n");
    }
  }
  for (int i = first; i < d->snap_n; i++, k++) {
    out(o, "    #%d ", k);
    symbolize(o, d->snap_pcs[i]);
    out(o, "\n");
  }
  flush_out(o);
  atomic_store(&d->snap_state, 2);
}

void loom__debug_time_up(loom_t *rt) {
  struct loom__debug_mode_s *d = rt->debug_mode;
  /* Called at a switch (pick, from the suspending task or the pass's
   * loop): the task of the snapshot is not running any more. */
  if (!atomic_load(&d->snap_state)) return;
  uint64_t now = now_ns();
  pthread_mutex_lock(&d->mu);
  if (atomic_load(&d->snap_state) == 1) print_slow(d, now);
  out_t *o = &d->out;
  out(o, "loom: debug: ");
  snap_task(o, d);
  loom_task_t *t = rt->current;
  out(o, " %s after running at least %" PRIu64 " ms\n",
      t && t->fiber.id == d->snap_id && t->state == LOOM__DONE ? "ended" : "suspended",
      ms(now - d->snap_since));
  flush_out(o);
  atomic_store(&d->snap_state, 0);
  pthread_mutex_unlock(&d->mu);
}

/* ---- locks -------------------------------------------------------------- */

static size_t slot_of(const void *lock, size_t cap) {
  uint64_t h = (uint64_t)(uintptr_t)lock * 0x9e3779b97f4a7c15ull;
  return (size_t)(h >> 32) & (cap - 1);
}

/* Under mu. Open addressing with linear probing; removal shifts the run
 * back (no tombstones). */
static held_t *held_find(struct loom__debug_mode_s *d, const void *lock) {
  if (!d->held_cap) return NULL;
  for (size_t i = slot_of(lock, d->held_cap);; i = (i + 1) & (d->held_cap - 1)) {
    if (d->held[i].lock == lock) return &d->held[i];
    if (!d->held[i].lock) return NULL;
  }
}

static void held_remove(struct loom__debug_mode_s *d, held_t *h) {
  size_t cap = d->held_cap, i = (size_t)(h - d->held);
  h->lock = NULL;
  d->nheld--;
  for (size_t j = (i + 1) & (cap - 1); d->held[j].lock; j = (j + 1) & (cap - 1)) {
    size_t want = slot_of(d->held[j].lock, cap);
    /* Move j back to i if its home is not in (i, j]. */
    if ((j > i && (want <= i || want > j)) || (j < i && (want <= i && want > j))) {
      d->held[i] = d->held[j];
      d->held[j].lock = NULL;
      i = j;
    }
  }
}

static held_t *held_insert(struct loom__debug_mode_s *d, const void *lock) {
  if ((d->nheld + 1) * 2 > d->held_cap) {
    size_t cap = d->held_cap ? d->held_cap * 2 : 64;
    held_t *n = calloc(cap, sizeof(*n));
    if (!n) return NULL; /* not tracked: debug mode degrades, never fails */
    held_t *old = d->held;
    size_t ocap = d->held_cap;
    d->held = n;
    d->held_cap = cap;
    for (size_t i = 0; i < ocap; i++)
      if (old[i].lock) {
        size_t j = slot_of(old[i].lock, cap);
        while (n[j].lock) j = (j + 1) & (cap - 1);
        n[j] = old[i];
      }
    free(old);
  }
  size_t i = slot_of(lock, d->held_cap);
  while (d->held[i].lock && d->held[i].lock != lock) i = (i + 1) & (d->held_cap - 1);
  if (!d->held[i].lock) d->nheld++;
  d->held[i].lock = lock;
  return &d->held[i];
}

/* How long h has been held (ns), less the time the loop's thread waited
 * for a CPU since the watchdog's sample before it was taken (a little
 * more than since it was taken: lenient by the wait of up to a period).
 * *w: the run-queue wait, read on first use (UINT64_MAX: not yet). */
static uint64_t held_for(struct loom__debug_mode_s *d, const held_t *h, uint64_t now,
                         uint64_t *w) {
  uint64_t elapsed = now > h->since_ns ? now - h->since_ns : 0;
  if (elapsed < d->lock_ns) return elapsed; /* no report due: no read */
  if (*w == UINT64_MAX) *w = runq_wait(d);
  uint64_t waited = *w > h->wait0 ? *w - h->wait0 : 0;
  return waited < elapsed ? elapsed - waited : 0;
}

static void held_line(out_t *o, struct loom__debug_mode_s *d, const held_t *h,
                      uint64_t held, const char *what) {
  out(o, "loom: debug: lock ");
  if (h->name[0]) out(o, "'%s' ", h->name);
  out(o, "%p %s by task %" PRIu64 " '", h->lock, what, h->id);
  if (h->holder[0])
    out(o, "%s", h->holder);
  else
    out(o, "task-%" PRIu64, h->id);
  out(o, "' for %" PRIu64 " ms across a suspension (lock_hold_ms %" PRIu64 ")\n",
      ms(held), ms(d->lock_ns));
}

void loom__debug_lock_acquired(loom_t *rt, const void *lock, loom_task_t *t) {
  struct loom__debug_mode_s *d = rt->debug_mode;
  if (!d) return;
  uint64_t now = coarse_ns();
  const char *name = loom__debug_name_of(rt, lock);
  pthread_mutex_lock(&d->mu);
  held_t *h = held_insert(d, lock);
  if (h) {
    h->since_ns = now;
    h->switches = switches_of(rt);
    h->wait0 = d->seen_wait; /* no read here: acquisitions are many */
    h->due_at = 0;
    h->id = t->fiber.id;
    h->reported = 0;
    /* Copied (the watchdog prints them; the task and the name may be gone
     * by then), raw: "" prints as task-<id>. */
    memcpy(h->holder, t->name, NAME_CAP);
    h->holder[NAME_CAP - 1] = 0;
    if (name) {
      strncpy(h->name, name, NAME_CAP - 1);
      h->name[NAME_CAP - 1] = 0;
    } else {
      h->name[0] = 0;
    }
  }
  pthread_mutex_unlock(&d->mu);
}

void loom__debug_lock_released(const void *lock) {
  loom_t *rt = loom__tls_rt;
  struct loom__debug_mode_s *d = rt ? rt->debug_mode : NULL;
  if (!d) return;
  uint64_t now = coarse_ns();
  pthread_mutex_lock(&d->mu);
  held_t *h = held_find(d, lock);
  if (h) {
    out_t *o = &d->out;
    uint64_t w = UINT64_MAX, held = held_for(d, h, now, &w);
    if (h->reported)
      held_line(o, d, h, held, "released: it was held");
    else if (held >= d->lock_ns && switches_of(rt) != h->switches)
      held_line(o, d, h, held, "was held");
    flush_out(o);
    held_remove(d, h);
  }
  pthread_mutex_unlock(&d->mu);
}

/* Watchdog, under mu: locks held too long across a suspension. The
 * holder was running when it took the lock; if the switch count has moved
 * since, it has been switched out with the lock held. */
/* The handler's last reading (0 if none yet, or being written). */
static int probe_read(struct loom__debug_mode_s *d, uint64_t *at, uint64_t *wait) {
  uint64_t s0 = atomic_load(&d->probe_seq);
  *at = atomic_load(&d->probe_at);
  *wait = atomic_load(&d->probe_wait);
  return !(s0 & 1) && s0 && atomic_load(&d->probe_seq) == s0;
}

/* The watchdog cannot see a wait for a CPU under way: a lock it finds
 * held too long is reported once a reading of the handler's, taken after
 * that, confirms it (the signal is sent then); if that reading finds the
 * hold short, it is looked at afresh. */
static void scan_locks(struct loom__debug_mode_s *d, uint64_t now) {
  uint64_t sw = switches_of(d->rt), w = UINT64_MAX;
  out_t *o = &d->out;
  int ask = 0;
  for (size_t i = 0; i < d->held_cap; i++) {
    held_t *h = &d->held[i];
    if (!h->lock || h->reported || sw == h->switches) continue;
    uint64_t held = held_for(d, h, now, &w);
    if (held < d->lock_ns) {
      h->due_at = 0;
      continue;
    }
    if (d->runq_known) {
      uint64_t at, pw;
      if (!h->due_at) h->due_at = now;
      if (!probe_read(d, &at, &pw) || at < h->due_at) {
        ask = 1;
        continue;
      }
      uint64_t elapsed = at > h->since_ns ? at - h->since_ns : 0;
      uint64_t waited = pw > h->wait0 ? pw - h->wait0 : 0;
      held = waited < elapsed ? elapsed - waited : 0;
      if (held < d->lock_ns) {
        h->due_at = 0;
        continue;
      }
    }
    h->reported = 1;
    held_line(o, d, h, held, "still held");
    if (o->n > sizeof(o->buf) / 2) flush_out(o);
  }
  flush_out(o);
  if (ask) pthread_kill(d->loop_thread, LOOM__DEBUG_SIGNAL);
}

/* ---- the watchdog ------------------------------------------------------- */

static void *watchdog_main(void *arg) {
  struct loom__debug_mode_s *d = arg;
  loom_t *rt = d->rt;
  pthread_mutex_lock(&d->mu);
  while (!d->stop) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t at = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec +
                  d->period_ns;
    ts.tv_sec = (time_t)(at / 1000000000ull);
    ts.tv_nsec = (long)(at % 1000000000ull);
    pthread_cond_timedwait(&d->cv, &d->mu, &ts);
    if (d->stop) break;
    uint64_t now = now_ns();
    uint64_t c = switches_of(rt);
    /* The watchdog itself did not run for half a threshold (the process
     * was stopped, or starved of CPU on a loaded machine): it cannot vouch
     * that the loop's thread ran meanwhile, so the count starts afresh.
     * Never less than two periods: a small threshold would see a gap at
     * every sample and never report. */
    uint64_t late = d->slow_ns / 2 > 2 * d->period_ns ? d->slow_ns / 2 : 2 * d->period_ns;
    int gap = now - d->last_sample > late;
    d->last_sample = now;
    if (c != d->seen || gap) {
      d->seen = c;
      d->seen_at = now;
      d->seen_wait = runq_wait(d);
      d->signalled = 0;
    } else if (!d->signalled && now - d->seen_at >= d->slow_ns &&
               atomic_load(&d->snap_state) == 0) {
      /* One activation (or the loop's wait for I/O: the handler then
       * finds no task running) has lasted slow_task_ms of wall-clock
       * time; less the time the loop's thread waited for a CPU, it may
       * not have yet. The report's times leave that wait out too. */
      uint64_t w = runq_wait(d), elapsed = now - d->seen_at;
      uint64_t waited = w > d->seen_wait ? w - d->seen_wait : 0;
      if (waited > elapsed) waited = elapsed;
      if (elapsed - waited >= d->slow_ns) {
        /* The handler has the last word: a wait under way is not in w. */
        d->signalled = 1;
        atomic_store(&d->declined, 0);
        atomic_store(&d->sig_since, d->seen_at);
        atomic_store(&d->sig_wait0, d->seen_wait);
        atomic_store(&d->sig_count, c);
        pthread_kill(d->loop_thread, LOOM__DEBUG_SIGNAL);
      }
    } else if (d->signalled && atomic_exchange(&d->declined, 0)) {
      d->signalled = 0; /* the thread had waited for a CPU: ask again later */
    }
    if (atomic_load(&d->snap_state) == 1) print_slow(d, now);
    if (d->nheld) scan_locks(d, coarse_ns());
  }
  pthread_mutex_unlock(&d->mu);
  return NULL;
}

static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static int handler_ok;

static void install_handler(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_probe;
  /* The alternate stack: a task may have little stack left. */
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  handler_ok = sigaction(LOOM__DEBUG_SIGNAL, &sa, NULL) == 0;
}

/* ---- the invariant sweep ------------------------------------------------ */

__attribute__((noreturn, cold)) static void check_failed(const char *what,
                                                         loom_task_t *t) {
  fprintf(stderr, "loom: internal check failed (debug mode): %s", what);
  if (t) fprintf(stderr, " (task %" PRIu64 " '%s')", t->fiber.id, loom__task_name(t));
  fprintf(stderr, "\n");
  fflush(stderr);
  abort();
}

#define CHECK(cond, what, t)                \
  do {                                      \
    if (!(cond)) check_failed((what), (t)); \
  } while (0)

/* What the hot paths' loom__assert checks in debug builds, seen from the
 * outside between passes: every unfinished task is ready (and queued) or
 * parked on a waiter that names it, nothing runs, every task's handle
 * slot points back at it, no unguarded stack's canary is overwritten. */
static void sweep(loom_t *rt) {
  size_t alive = 0, ready = 0, queued = 0;
  for (loom__link_t *l = rt->alive.head; l; l = l->next) {
    loom_task_t *t = loom__container_of(l, loom_task_t, alive_link);
    CHECK(++alive <= rt->nalive, "more tasks on the alive list than counted", t);
    CHECK(t->rt == rt, "a task on the alive list of another runtime", t);
    CHECK(t->state == LOOM__READY || t->state == LOOM__PARKED,
          "a task neither ready nor parked between passes", t);
    if (t->state == LOOM__PARKED)
      CHECK(t->wait && t->wait->task == t, "a parked task without its waiter", t);
    else
      ready++;
    CHECK(t->slot < rt->nhandles && rt->handles[t->slot].obj == t,
          "a task's handle slot does not point back at it", t);
    /* A task not started yet has no stack, so no canary, to check. */
    CHECK(!loom__task_has_stack(t) || loom__fiber_canary_ok(&t->fiber),
          "a parked task's stack canary is overwritten", t);
  }
  CHECK(alive == rt->nalive, "fewer tasks on the alive list than counted", NULL);
  for (loom_task_t *t = rt->round_head; t; t = t->next_ready) {
    CHECK(t->state == LOOM__READY, "a task in the round that is not ready", t);
    CHECK(++queued <= ready, "the ready queues hold more tasks than are ready", t);
  }
  for (loom_task_t *t = rt->ready_head; t; t = t->next_ready) {
    CHECK(t->state == LOOM__READY, "a task in the ready queue that is not ready", t);
    CHECK(++queued <= ready, "the ready queues hold more tasks than are ready", t);
  }
  CHECK(queued == ready, "a ready task missing from the ready queues", NULL);
}

void loom__debug_pass_end(loom_t *rt) {
  struct loom__debug_mode_s *d = rt->debug_mode;
  uint64_t now = uv_now(rt->loop); /* cached: no clock read per pass */
  if (now - d->last_sweep < SWEEP_EVERY_MS) return;
  d->last_sweep = now;
  sweep(rt);
}

/* ---- unjoined tasks ----------------------------------------------------- */

void loom__debug_unjoined(loom_t *rt, loom_task_t *t) {
  struct loom__debug_mode_s *d = rt->debug_mode;
  if (!d->report_unjoined) return;
  pthread_mutex_lock(&d->mu);
  out_t *o = &d->out;
  out(o, "loom: debug: task %" PRIu64 " '%s' (status %d) was spawned at ", t->fiber.id,
      loom__task_name(t), t->status);
  if (t->spawn_pc)
    symbolize(o, t->spawn_pc);
  else
    out(o, "(unknown: spawned by loom itself)");
  Dl_info info;
  void *fn = (void *)(uintptr_t)t->fn;
  if (dladdr(fn, &info) && info.dli_sname && info.dli_saddr == fn)
    out(o, ", running %s\n", info.dli_sname);
  else
    out(o, ", running %p\n", fn);
  flush_out(o);
  pthread_mutex_unlock(&d->mu);
}

/* ---- public API ----------------------------------------------------------- */

static uint64_t env_ms(const char *name, uint64_t dflt) {
  const char *v = getenv(name);
  if (!v || !*v) return dflt;
  char *end;
  unsigned long long n = strtoull(v, &end, 10);
  return *end || !n ? dflt : (uint64_t)n;
}

/* The watchdog's period for thresholds in ms: eight samples per threshold,
 * at most every 10 ms (a report's "at least N ms" is short of the truth by
 * up to a period), not more often than every 2 ms. */
static uint64_t sample_period(uint64_t slow, uint64_t hold) {
  uint64_t least = slow < hold ? slow : hold;
  uint64_t p = least * 1000000 / 8;
  if (p > 10000000) p = 10000000;
  if (p < 2000000) p = 2000000;
  return p;
}

int loom_debug_enable(loom_t *rt, const loom_debug_opts_t *opts) {
  if (!rt) rt = loom__handle_rt();
  /* The signal goes to the runtime's thread: the caller's. */
  if (!rt || !loom__on_own_thread(rt)) return UV_EINVAL;
  uint64_t slow = opts && opts->slow_task_ms ? opts->slow_task_ms : 100;
  uint64_t hold = opts && opts->lock_hold_ms ? opts->lock_hold_ms : 100;
  int unjoined = opts ? opts->report_unjoined != 0 : 1;
  if (slow > UINT64_MAX / 1000000 || hold > UINT64_MAX / 1000000) return UV_EINVAL;
  struct loom__debug_mode_s *d = rt->debug_mode;
  if (d) { /* on already: new thresholds */
    pthread_mutex_lock(&d->mu);
    d->slow_ns = slow * 1000000;
    d->lock_ns = hold * 1000000;
    d->report_unjoined = unjoined;
    d->period_ns = sample_period(slow, hold);
    pthread_cond_signal(&d->cv); /* sample at the new pace now */
    pthread_mutex_unlock(&d->mu);
    return 0;
  }
  pthread_once(&handler_once, install_handler);
  if (!handler_ok) return UV_EINVAL;
  /* Loads the unwinder now: the first backtrace() allocates. */
  void *warm[2];
  (void)backtrace(warm, 2);
  d = calloc(1, sizeof(*d));
  if (!d) return UV_ENOMEM;
  d->rt = rt;
  d->slow_ns = slow * 1000000;
  d->lock_ns = hold * 1000000;
  d->report_unjoined = unjoined;
  d->period_ns = sample_period(slow, hold);
  d->loop_thread = pthread_self();
  d->pid = getpid();
  d->sched_fd = open_schedstat(); /* the loop's thread is this one */
  d->runq_known = d->sched_fd >= 0 || loom__debug_runq_hook;
  d->seen = switches_of(rt);
  d->seen_at = d->last_sample = now_ns();
  d->seen_wait = runq_wait(d);
  pthread_mutex_init(&d->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&d->cv, &ca);
  pthread_condattr_destroy(&ca);
  /* The watchdog needs no signal: it leaves them to the loop's thread. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&d->watchdog, NULL, watchdog_main, d);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc) {
    if (d->sched_fd >= 0) close(d->sched_fd);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
    return UV_EAGAIN;
  }
  rt->debug_mode = d;
  return 0;
}

int loom_debug_disable(loom_t *rt) {
  if (!rt) rt = loom__handle_rt();
  if (!rt || !loom__on_own_thread(rt)) return UV_EINVAL;
  struct loom__debug_mode_s *d = rt->debug_mode;
  if (!d) return 0;
  /* The handler (on this thread) finds debug mode off from here on. */
  rt->debug_mode = NULL;
  atomic_signal_fence(memory_order_seq_cst);
  if (d->pid == getpid()) {
    pthread_mutex_lock(&d->mu);
    d->stop = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->watchdog, NULL);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
  }
  if (d->sched_fd >= 0) close(d->sched_fd);
  free(d->held);
  free(d);
  return 0;
}

int loom_debug_enabled(loom_t *rt) {
  if (!rt) rt = loom__handle_rt();
  return rt && rt->debug_mode ? 1 : 0;
}

void loom__debug_mode_init(loom_t *rt) {
  const char *v = getenv("LOOM_DEBUG");
  if (!v || !*v || strcmp(v, "0") == 0) return;
  loom_debug_opts_t opts = {
      .slow_task_ms = env_ms("LOOM_DEBUG_SLOW_MS", 0),
      .lock_hold_ms = env_ms("LOOM_DEBUG_LOCK_MS", 0),
      .report_unjoined = 1,
  };
  if (loom_debug_enable(rt, &opts))
    fprintf(stderr, "loom: LOOM_DEBUG is set but debug mode could not start\n");
}

void loom__debug_mode_fini(loom_t *rt) {
  if (!rt->debug_mode) return;
  /* Called from the loop's thread after the home runtime may already be
   * detached: disable checks the thread, so undo it directly. */
  loom_t *home = loom__tls_home;
  if (!loom__on_own_thread(rt)) loom__tls_home = rt;
  loom_debug_disable(rt);
  loom__tls_home = home;
}
