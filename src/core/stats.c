/* Runtime statistics (loom_stats_get).
 *
 * Counters kept on the hot paths are plain increments of fields of the
 * runtime (rt->stats) that the code there touches anyway: a switch, a
 * scheduler pass, a fired timer, bytes moved by a stream. Spawns are not
 * counted but derived (task ids are drawn in spawn order), and the peak of
 * live tasks is taken when a task ends, not at every spawn. What
 * can be counted when asked is counted when asked: open handles by kind
 * (a walk of the handle table), armed timers, stacks in the pool.
 */
#include "internal.h"
#include "loom/debug.h"

/* Upper bounds (us) of the lateness buckets but the last (debug.h). */
static const uint64_t late_bounds[LOOM_STAT_LATE_BUCKETS - 1] = {
    100, 1000, 2000, 5000, 10000, 50000, 100000};

void loom__stats_late(loom_t *rt, uint64_t late_ns) {
  uint64_t us = late_ns / 1000;
  if (us > rt->stats.late_max_us) rt->stats.late_max_us = us;
  int b = 0;
  while (b < LOOM_STAT_LATE_BUCKETS - 1 && us >= late_bounds[b]) b++;
  rt->stats.late_hist[b]++;
}

const char *loom_stat_kind_name(int kind) {
  static const char *const names[LOOM_STAT_KINDS] = {
      "stream", "listener", "server",  "udp",  "group", "task",
      "signal", "fd",       "process", "file", "dir",   "timer"};
  return kind >= 0 && kind < LOOM_STAT_KINDS ? names[kind] : "?";
}

/* LOOM__H_* to LOOM_STAT_*. */
static int stat_kind(uint32_t h) {
  switch (h) {
  case LOOM__H_STREAM: return LOOM_STAT_STREAM;
  case LOOM__H_LISTENER: return LOOM_STAT_LISTENER;
  case LOOM__H_SERVER: return LOOM_STAT_SERVER;
  case LOOM__H_UDP: return LOOM_STAT_UDP;
  case LOOM__H_GROUP: return LOOM_STAT_GROUP;
  case LOOM__H_TASK: return LOOM_STAT_TASK;
  case LOOM__H_SIGNAL: return LOOM_STAT_SIGNAL;
  case LOOM__H_FD: return LOOM_STAT_FD;
  case LOOM__H_PROCESS: return LOOM_STAT_PROCESS;
  case LOOM__H_FILE: return LOOM_STAT_FILE;
  case LOOM__H_DIR: return LOOM_STAT_DIR;
  default: return -1;
  }
}

int loom_stats_get(loom_t *rt, loom_stats_t *out) {
  if (!out) return UV_EINVAL;
  if (!rt) rt = loom__handle_rt();
  if (!rt) return LOOM_ENOTASK;
  *out = (loom_stats_t){0};
  const loom__stats_t *s = &rt->stats;
  out->tasks_live = rt->nalive;
  out->tasks_peak = s->peak > rt->nalive ? s->peak : rt->nalive;
  out->tasks_spawned = rt->next_id; /* every spawn takes the next id */
  out->switches = s->switches;
  out->passes = s->passes;
  out->timer_late_max_us = s->late_max_us;
  for (int i = 0; i < LOOM_STAT_LATE_BUCKETS; i++)
    out->timer_late_hist[i] = s->late_hist[i];
  size_t total, nfree;
  loom__stack_pool_totals(&rt->stacks, &total, &nfree);
  out->stacks_mapped = total;
  out->stacks_cached = nfree;
  out->bytes_read = s->bytes_read;
  out->bytes_written = s->bytes_written;
  for (uint32_t i = 0; i < rt->nhandles; i++) {
    const loom__hslot_t *h = &rt->handles[i];
    if (!h->obj) continue;
    /* A task's slot stays its own until it is freed: count only handles
     * still to be joined (live tasks have theirs counted in tasks_live). */
    if (h->kind == LOOM__H_TASK && ((const loom_task_t *)h->obj)->consumed) continue;
    int k = stat_kind(h->kind);
    if (k >= 0) out->handles_by_kind[k]++;
  }
  out->handles_by_kind[LOOM_STAT_TIMER] = (uint32_t)rt->timers.n;
  return 0;
}
