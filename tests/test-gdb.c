/* The program tests/test-gdb.sh runs under gdb: it parks tasks in known
 * functions (a sleep, an event, a lock), leaves one finished and unjoined,
 * then calls gdb_stop_here(), where gdb's breakpoint stops it for
 * `loom tasks` and `loom bt`. Run on its own it just exits 0. */
#include <loom.h>
#include <stdio.h>

static loom_event_t event;
static loom_lock_t lock;

/* Where gdb stops. noinline, and a side effect, so the call stays. */
void gdb_stop_here(void);
__attribute__((noinline)) void gdb_stop_here(void) { __asm__ volatile("" ::: "memory"); }

__attribute__((noinline)) static int gdb_parked_in_sleep(void) {
  return loom_sleep(3600000);
}
static int sleeper(void *arg) {
  (void)arg;
  int rc = gdb_parked_in_sleep();
  __asm__ volatile("" ::: "memory"); /* not a tail call: keep the frame */
  return rc;
}

__attribute__((noinline)) static int gdb_parked_on_event(void) {
  return loom_event_wait(&event);
}
static int event_waiter(void *arg) {
  (void)arg;
  int rc = gdb_parked_on_event();
  __asm__ volatile("" ::: "memory");
  return rc;
}

__attribute__((noinline)) static int gdb_parked_on_lock(void) {
  int rc = loom_lock_acquire(&lock);
  if (rc == 0) loom_lock_release(&lock);
  return rc;
}
static int lock_waiter(void *arg) {
  (void)arg;
  int rc = gdb_parked_on_lock();
  __asm__ volatile("" ::: "memory");
  return rc;
}

static int quick(void *arg) {
  (void)arg;
  return 7;
}

static int main_task(void *arg) {
  (void)arg;
  loom_event_init(&event);
  loom_lock_init(&lock);
  loom_lock_acquire(&lock);
  loom_task_t *t[5];
  loom_task_opts_t o = {.name = "sleeper"};
  loom_spawn_ex(&t[0], sleeper, NULL, &o);
  o.name = "event-waiter";
  loom_spawn_ex(&t[1], event_waiter, NULL, &o);
  o.name = "lock-waiter";
  loom_spawn_ex(&t[2], lock_waiter, NULL, &o);
  o.name = "quick";
  loom_spawn_ex(&t[3], quick, NULL, &o);
  for (int i = 0; i < 3; i++) loom_yield();
  o.name = "unstarted"; /* ready, never run: no stack yet */
  loom_spawn_ex(&t[4], quick, NULL, &o);
  gdb_stop_here();
  loom_cancel(t[0]);
  loom_event_set(&event);
  loom_lock_release(&lock);
  int bad = 0;
  for (int i = 0; i < 5; i++) {
    int st = 0;
    if (loom_join(t[i], &st)) bad = 1;
  }
  printf("done\n");
  return bad;
}

int main(void) { return loom_run(main_task, NULL) ? 1 : 0; }
