/* Demand, for the caches that follow it (free stacks, free task records).
 *
 * A cache keeps free items for the next burst, but not forever: how many it
 * may keep is the high-water mark of items in use, taken per window of its
 * owner's clock and halved for every window in which demand stayed lower,
 * never below a floor. So a program that spawns bursts of 100,000 tasks keeps
 * 100,000 items and allocates none per task, and once the bursts stop the
 * excess goes back in a few seconds. The clock is read, never asked for:
 * the caller passes a coarse timestamp it keeps anyway.
 */
#ifndef LOOM_UTIL_DEMAND_H
#define LOOM_UTIL_DEMAND_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

typedef struct loom__demand_s {
  size_t keep;        /* free items allowed to stay */
  size_t peak;        /* most items in use during this window */
  int64_t window_end; /* the clock at which the window ends (0: not begun) */
} loom__demand_t;

static inline void loom__demand_used(loom__demand_t *d, size_t inuse) {
  if (inuse > d->peak) d->peak = inuse;
}

/* Starts a new window at `now`. The window that ended leaves as its keep its
 * demand or half the old keep, whichever is more; each further window that
 * passed unseen (no demand) halves that again. Never below what is in use
 * nor below `floor`. */
static inline void loom__demand_roll(loom__demand_t *d, int64_t now, size_t inuse,
                                     size_t floor, int64_t window) {
  int64_t quiet = d->window_end ? (now - d->window_end) / window : 0;
  size_t keep = d->peak > d->keep / 2 ? d->peak : d->keep / 2;
  keep = quiet >= (int64_t)(sizeof(size_t) * CHAR_BIT) ? 0 : keep >> quiet;
  if (keep < inuse) keep = inuse;
  d->keep = keep > floor ? keep : floor;
  d->peak = inuse;
  d->window_end = now + window;
}

/* At an item's return, with `kept` free items already kept: whether this one
 * may be kept too. The demand of the current window counts at once, so a
 * burst larger than the keep keeps its items from the first time they come
 * back. */
static inline int loom__demand_may_keep(loom__demand_t *d, int64_t now, size_t inuse,
                                        size_t kept, size_t floor, int64_t window) {
  if (now >= d->window_end) loom__demand_roll(d, now, inuse, floor, window);
  if (kept >= d->keep && d->peak > d->keep) d->keep = d->peak;
  return kept < d->keep;
}

/* At an idle point: the keep decays by the clock even without returns. */
static inline void loom__demand_idle(loom__demand_t *d, int64_t now, size_t inuse,
                                     size_t floor, int64_t window) {
  if (d->window_end && now >= d->window_end)
    loom__demand_roll(d, now, inuse, floor, window);
}

#endif
