/* Fiber switches, with the annotations sanitizers need.
 *
 * AddressSanitizer must be told before a switch which stack becomes active
 * (__sanitizer_start_switch_fiber) and, once on it, that the switch finished
 * (__sanitizer_finish_switch_fiber), or it reports false stack overflows and
 * loses track of fake stacks. The finish call also tells us the bounds of the
 * stack we came from: that is how a thread's own stack, whose bounds loom does
 * not know, gets described for the way back.
 *
 * Valgrind is told about stacks where they are created (stack.c).
 */
#include "fiber.h"

#ifdef LOOM__ASAN
#include <sanitizer/common_interface_defs.h>
#endif

LOOM__TLS loom__fiber_t *loom__fiber_running;
#ifdef LOOM__ASAN
static LOOM__TLS loom__fiber_t *switching_from;
#endif

loom__fiber_t *loom__fiber_current(void) { return loom__fiber_running; }

void loom__fiber_init(loom__fiber_t *f, void *lo, size_t size, void (*fn)(void *),
                      void *arg) {
  f->stack_lo = lo;
  f->stack_size = size;
  f->asan_fake = NULL;
  loom__ctx_make(&f->ctx, lo, size, fn, arg);
}

/* Runs on the destination stack right after a switch. */
static inline void switch_landed(loom__fiber_t *self) {
#ifdef LOOM__ASAN
  const void *lo;
  size_t size;
  __sanitizer_finish_switch_fiber(self ? self->asan_fake : NULL, &lo, &size);
  if (switching_from && switching_from->stack_size == 0) {
    /* Learn a thread stack's bounds, for switching back to it. */
    switching_from->stack_lo = (void *)lo;
    switching_from->stack_size = size;
  }
#else
  (void)self;
#endif
}

void loom__fiber_started(void) { switch_landed(loom__fiber_running); }

#ifdef LOOM__ASAN
static inline void do_switch(loom__fiber_t *from, loom__fiber_t *to, int last) {
  switching_from = from;
  loom__fiber_running = to; /* whoever switches back to `from` sets it again */
  __sanitizer_start_switch_fiber(last ? NULL : &from->asan_fake, to->stack_lo,
                                 to->stack_size);
  loom__ctx_switch(&from->ctx, &to->ctx);
  switch_landed(from);
}

void loom__fiber_switch(loom__fiber_t *from, loom__fiber_t *to) {
  do_switch(from, to, 0);
}

void loom__fiber_switch_last(loom__fiber_t *from, loom__fiber_t *to) {
  do_switch(from, to, 1);
  __builtin_unreachable();
}
#else
void loom__fiber_switch_last(loom__fiber_t *from, loom__fiber_t *to) {
  loom__fiber_switch(from, to);
  __builtin_unreachable();
}
#endif
