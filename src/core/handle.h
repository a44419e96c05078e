/* Generation-checked handles for tasks and loom's heap objects (streams,
 * listeners, servers, UDP sockets, task groups, signal watchers, fd
 * watches, processes, open files and directories, HTTP responses).
 *
 * A public handle is not the object's address but a token:
 * (generation << 32) | (slot + 1). Freeing an object (joining a task,
 * closing a stream) drops its slot and bumps the generation, so a handle
 * used after that, or closed twice, is recognised (the call returns
 * LOOM_EBADTASK or UV_EBADF) instead of touching freed or reused memory.
 *
 *   handle:  | generation (32 bits) | slot + 1 (32 bits) |
 *   rt->handles[slot] = { obj, gen, kind, next_free }
 */
#ifndef LOOM_CORE_HANDLE_H
#define LOOM_CORE_HANDLE_H

#include <stdint.h>

#include "module-api.h"

typedef struct loom_s loom_t;

enum {
  LOOM__H_FREE = 0,
  LOOM__H_STREAM,
  LOOM__H_LISTENER,
  LOOM__H_SERVER,
  LOOM__H_UDP,
  LOOM__H_GROUP,
  LOOM__H_TASK,
  LOOM__H_SIGNAL,
  LOOM__H_FD,
  LOOM__H_PROCESS,
  LOOM__H_FILE,
  LOOM__H_DIR,
  LOOM__H_HTTP
};

/* 16 bytes: a spawn and a join each touch one, and a batch of a thousand
 * tasks keeps its slots in L1 beside the task records. */
typedef struct {
  void *obj;    /* NULL when free */
  uint32_t gen; /* bumped when the slot is dropped */
  union {
    uint32_t kind;      /* LOOM__H_*, while obj is set */
    uint32_t next_free; /* free-list link (slot + 1, 0 = end), while free */
  };
} loom__hslot_t;

/* Inline in internal.h, since every spawn, join, stream read and write
 * makes one:
 * - loom__handle_new(rt, kind, obj, &out) registers obj; out receives its
 *   handle, whose low half is slot + 1; returns 0, or UV_ENOMEM if the
 *   table cannot grow (nothing is registered then);
 * - loom__handle_get(rt, h, kind): the object behind handle h if it is live
 *   and of that kind, else NULL; rt NULL means the runtime running on this
 *   thread (or attached by loom_init);
 * - loom__handle_free_slot(rt, slot) frees a slot: its handles go stale;
 * - loom__handle_at(rt, slot, kind): the object in a slot if it is live and
 *   of that kind, else NULL (for walks over the table). */
/* The table is full: doubles it. UV_ENOMEM if it cannot. */
LOOM__MODULE_API int loom__handles_grow(loom_t *rt);
/* Makes h (and every copy of it) stale. Harmless on a stale handle. */
LOOM__MODULE_API void loom__handle_drop(loom_t *rt, const void *h);
/* Frees the table (runtime teardown). */
void loom__handles_free(loom_t *rt);

#endif
