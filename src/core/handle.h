/* Generation-checked handles for loom's heap objects (streams, listeners,
 * servers, UDP sockets, task groups).
 *
 * A public handle is not the object's address but a token, as task handles
 * are (task.c): (generation << 32) | (slot + 1). Closing or freeing an
 * object drops its slot and bumps the generation, so a handle used after
 * close, or closed twice, is recognised (the call returns UV_EBADF) instead
 * of touching freed memory. The table also lists every open object, which
 * is what lets shutdown close what a program left open (runtime.c).
 *
 *   handle:  | generation (32 bits) | slot + 1 (32 bits) |
 *   rt->handles[slot] = { obj, gen, kind, next_free }
 */
#ifndef LOOM_CORE_HANDLE_H
#define LOOM_CORE_HANDLE_H

#include <stdint.h>

typedef struct loom_s loom_t;

enum {
  LOOM__H_FREE = 0,
  LOOM__H_STREAM,
  LOOM__H_LISTENER,
  LOOM__H_SERVER,
  LOOM__H_UDP,
  LOOM__H_GROUP
};

typedef struct {
  void *obj;          /* NULL when free */
  uint32_t gen;       /* bumped when the slot is dropped */
  uint32_t next_free; /* free-list link (slot + 1, 0 = end) */
  uint8_t kind;       /* LOOM__H_* */
} loom__hslot_t;

/* Registers obj; *out receives its handle. UV_ENOMEM if the table cannot
 * grow (nothing is registered then). */
int loom__handle_new(loom_t *rt, int kind, void *obj, void **out);
/* The lookup, loom__handle_get(rt, h, kind), is inline in internal.h (every
 * stream read and write makes one): the object behind handle h if it is
 * live and of that kind, else NULL; rt NULL means the runtime running on
 * this thread (or attached by loom_init). */
/* Makes h (and every copy of it) stale. Harmless on a stale handle. */
void loom__handle_drop(loom_t *rt, const void *h);
/* Frees the table (runtime teardown). */
void loom__handles_free(loom_t *rt);

#endif
