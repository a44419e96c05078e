/* The handle table for loom's heap objects (handle.h); the lookup is inline
 * in internal.h. */
#include <stdlib.h>

#include "internal.h"

int loom__handle_new(loom_t *rt, int kind, void *obj, void **out) {
  uint32_t i;
  if (rt->hfree) {
    i = rt->hfree - 1;
    rt->hfree = rt->handles[i].next_free;
  } else {
    if (rt->nhandles == rt->handles_cap) {
      if (rt->handles_cap >= UINT32_MAX / 2) return UV_ENOMEM;
      uint32_t cap = rt->handles_cap ? rt->handles_cap * 2 : 64;
      loom__hslot_t *s = realloc(rt->handles, cap * sizeof(*s));
      if (!s) return UV_ENOMEM;
      rt->handles = s;
      rt->handles_cap = cap;
    }
    i = rt->nhandles++;
    rt->handles[i].gen = 1;
  }
  rt->handles[i].obj = obj;
  rt->handles[i].kind = (uint8_t)kind;
  *out = (void *)(uintptr_t)(((uint64_t)rt->handles[i].gen << 32) | (i + 1u));
  return 0;
}

void loom__handle_drop(loom_t *rt, const void *h) {
  if (!rt) rt = loom__handle_rt();
  loom__hslot_t *s = loom__handle_slot(rt, h);
  if (!s) return;
  s->obj = NULL;
  s->kind = LOOM__H_FREE;
  s->gen++;
  s->next_free = rt->hfree;
  rt->hfree = (uint32_t)(s - rt->handles) + 1;
}

void loom__handles_free(loom_t *rt) {
  free(rt->handles);
  rt->handles = NULL;
  rt->nhandles = rt->handles_cap = rt->hfree = 0;
}
