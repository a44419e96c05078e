/* Fiber switches, with the annotations sanitizers need.
 *
 * AddressSanitizer must be told before a switch which stack becomes active
 * (__sanitizer_start_switch_fiber) and, once on it, that the switch finished
 * (__sanitizer_finish_switch_fiber), or it reports false stack overflows and
 * loses track of fake stacks. The finish call also tells us the bounds of the
 * stack we came from: that is how a thread's own stack, whose bounds loom does
 * not know, gets described for the way back.
 *
 * ThreadSanitizer keeps a shadow state per fiber: each fiber is created
 * for it when it is made (__tsan_create_fiber), every switch is announced
 * (__tsan_switch_to_fiber, synchronising, since fibers of a thread hand
 * data to each other without locks), and a fiber that ends is destroyed
 * by whoever lands after its last switch (it cannot destroy itself while
 * running). A thread's own stack is the thread's fiber, learnt at its first
 * switch. TSan and ASan never build together, so the TSan fiber lives in
 * the slot ASan's fake stack uses.
 *
 * Valgrind is told about stacks where they are created (stack.c).
 *
 * A sanitizer report from inside a fiber shows the fiber's stack but not
 * which task it is: under AddressSanitizer (whose builds carry
 * UndefinedBehaviorSanitizer too) a death callback adds a line naming the
 * fiber that was running, with the name and id its owner gave it.
 */
#include "fiber.h"

#ifdef LOOM__ASAN
#include <sanitizer/common_interface_defs.h>
#include <unistd.h>
#endif
#ifdef LOOM__TSAN
#include <sanitizer/tsan_interface.h>
#endif

LOOM__TLS loom__fiber_t *loom__fiber_running;
#ifdef LOOM__ASAN
static LOOM__TLS loom__fiber_t *switching_from;
#endif
#ifdef LOOM__TSAN
static LOOM__TLS void *tsan_ended; /* a fiber's last switch: destroy it */
#endif

loom__fiber_t *loom__fiber_current(void) { return loom__fiber_running; }

#ifdef LOOM__ASAN
/* Runs after the sanitizer has printed its report, before the process
 * ends, on the thread that hit the error. Only write(2): the heap may be
 * what is broken. */
static void on_sanitizer_death(void) {
  const loom__fiber_t *f = loom__fiber_running;
  if (!f || (!f->id && !(f->name && f->name[0]))) return; /* not a task */
  char buf[160], num[24];
  size_t n = 0, k = sizeof(num);
  uint64_t v = f->id;
  num[--k] = 0;
  do num[--k] = (char)('0' + v % 10);
  while ((v /= 10) && k);
  int named = f->name && f->name[0];
  const char *parts[] = {"loom: the error happened in task ",
                         num + k,
                         " '",
                         named ? f->name : "task-",
                         named ? "" : num + k,
                         "'\n"};
  for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
    for (const char *p = parts[i]; *p && n + 1 < sizeof(buf); p++) buf[n++] = *p;
  ssize_t r = write(2, buf, n);
  (void)r;
}

__attribute__((constructor)) static void install_sanitizer_death(void) {
  __sanitizer_set_death_callback(on_sanitizer_death);
}
#endif

void loom__fiber_init(loom__fiber_t *f, void *lo, size_t size, void (*fn)(void *),
                      void *arg) {
  f->stack_lo = lo;
  f->stack_size = size;
  f->asan_fake = NULL;
#ifdef LOOM__TSAN
  f->asan_fake = __tsan_create_fiber(0);
#endif
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
#elif defined(LOOM__TSAN)
  (void)self;
  if (tsan_ended) {
    __tsan_destroy_fiber(tsan_ended);
    tsan_ended = NULL;
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
#elif defined(LOOM__TSAN)
static inline void do_switch(loom__fiber_t *from, loom__fiber_t *to, int last) {
  if (!from->asan_fake) from->asan_fake = __tsan_get_current_fiber(); /* a thread */
  if (last) {
    tsan_ended = from->asan_fake;
    from->asan_fake = NULL;
  }
  loom__fiber_running = to; /* whoever switches back to `from` sets it again */
  __tsan_switch_to_fiber(to->asan_fake, 0);
  loom__ctx_switch(&from->ctx, &to->ctx);
  switch_landed(from);
}
#endif

#if defined(LOOM__ASAN) || defined(LOOM__TSAN)
/* The sanitizers' switches are out of line (fiber.h inlines the plain one). */
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
