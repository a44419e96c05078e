/* The handle table for tasks and loom's heap objects (handle.h): what is
 * off the fast path. Registering, looking up and freeing a slot are inline
 * in internal.h: a spawn and a join make one of each.
 */
#include <stdlib.h>

#include "internal.h"

int loom__handles_grow(loom_t *rt) {
  if (rt->handles_cap >= UINT32_MAX / 2) return UV_ENOMEM;
  uint32_t cap = rt->handles_cap ? rt->handles_cap * 2 : 64;
  loom__hslot_t *s = realloc(rt->handles, cap * sizeof(*s));
  if (!s) return UV_ENOMEM;
  rt->handles = s;
  rt->handles_cap = cap;
  return 0;
}

void loom__handle_drop(loom_t *rt, const void *h) {
  if (!rt) rt = loom__handle_rt();
  loom__hslot_t *s = loom__handle_slot(rt, h);
  if (s) loom__handle_free_slot(rt, (uint32_t)(s - rt->handles));
}

void loom__handles_free(loom_t *rt) {
  free(rt->handles);
  rt->handles = NULL;
  rt->nhandles = rt->handles_cap = rt->hfree = 0;
}
