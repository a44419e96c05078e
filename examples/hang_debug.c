/* hang_debug: a program that hangs on purpose, and how to see why.
 *
 * Two transfers each take two locks, in opposite orders: "transfer-a"
 * holds 'accounts' and wants 'ledger', "transfer-b" holds 'ledger' and
 * wants 'accounts'. Neither can go on: a classic lock-order deadlock. The
 * loop itself is fine (the main task waits with a timeout, so the program
 * does not end), but the work is stuck, and nothing is printed.
 *
 * Send it SIGQUIT (Ctrl-\ in its terminal, or kill -QUIT PID) and loom
 * writes a task dump to stderr, as Go does for goroutines, and the program
 * runs on:
 *
 *   task 2 'transfer-a' parked for 3012 ms: lock 'ledger' (0x55...) held by task 3 'transfer-b'
 *       entry transfer (hang_debug)
 *       spawned at hang_main+0x9c (hang_debug)
 *       #0 loom__suspend+0x74 (libloom.so.0.2)
 *       #1 loom__lock_acquire+0xb8 (libloom.so.0.2)
 *       #2 take+0x1c (hang_debug)
 *       #3 transfer+0x4b (hang_debug)
 *       ...
 *
 * which says which task waits on which lock, which task holds it, for how
 * long, and where in the code. The names come from loom_debug_name;
 * without them the dump shows the locks' addresses. Ctrl-C (SIGINT) ends
 * the program: the main task is cancelled, and its joins cancel the
 * transfers.
 *
 * See docs/debugging.md.
 */
#include <stdio.h>
#include <unistd.h>

#include "loom.h"

static loom_lock_t accounts, ledger;

typedef struct {
  loom_lock_t *first, *second;
  const char *first_name, *second_name;
  loom_event_t *holding; /* set once `first` is held */
  loom_event_t *other;   /* the other transfer holds its first lock */
} transfer_t;

/* Out of line so that each step has a frame of its own in the dump. */
__attribute__((noinline)) static int take(loom_lock_t *l) {
  int rc = loom_lock_acquire(l);
  return rc < 0 ? rc : 0;
}

__attribute__((noinline)) static int transfer(void *arg) {
  transfer_t *t = arg;
  int rc = take(t->first);
  if (rc) return rc;
  printf("%s holds '%s'\n", loom_task_name(loom_current()), t->first_name);
  loom_event_set(t->holding);
  /* Wait until the other one holds its first lock too: then both are
   * surely stuck, whatever the order they ran in. */
  rc = loom_event_wait(t->other);
  if (rc == 0) rc = take(t->second);
  if (rc == 0) loom_lock_release(t->second);
  loom_lock_release(t->first);
  return rc;
}

static int hang_main(void *arg) {
  (void)arg;
  loom_lock_init(&accounts);
  loom_lock_init(&ledger);
  loom_debug_name(&accounts, "accounts");
  loom_debug_name(&ledger, "ledger");
  loom_event_t a_holds, b_holds;
  loom_event_init(&a_holds);
  loom_event_init(&b_holds);
  transfer_t ta = {&accounts, &ledger, "accounts", "ledger", &a_holds, &b_holds};
  transfer_t tb = {&ledger, &accounts, "ledger", "accounts", &b_holds, &a_holds};
  loom_task_t *a, *b;
  loom_task_opts_t oa = {.name = "transfer-a"}, ob = {.name = "transfer-b"};
  if (loom_spawn_ex(&a, transfer, &ta, &oa) || loom_spawn_ex(&b, transfer, &tb, &ob))
    return 1;
  loom_event_wait(&a_holds);
  loom_event_wait(&b_holds);
  printf("stuck (pid %ld): send SIGQUIT (Ctrl-\\) for a task dump, SIGINT to end\n",
         (long)getpid());
  fflush(stdout);
  /* A timeout keeps the loop alive (a program where every task waits on
   * another with nothing else pending is ended by loom_run as deadlocked),
   * and bounds the demonstration to ten minutes. */
  loom_scope_t s;
  loom_timeout_enter(&s, 600000);
  int sa = 0, sb = 0;
  loom_join(a, &sa);
  loom_join(b, &sb);
  int fired = loom_scope_exit(&s) == UV_ETIMEDOUT;
  printf("transfers ended: %s, %s%s\n", loom_err_name(sa), loom_err_name(sb),
         fired ? " (timed out)" : "");
  return 0;
}

int main(void) {
  int rc = loom_run(hang_main, NULL);
  return rc == 0 || rc == UV_ECANCELED ? 0 : 1;
}
