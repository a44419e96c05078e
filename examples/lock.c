/* lock: a read-sleep-write update of shared state, first without a lock
 * (updates are lost), then inside a loom_lock_t (every update counts).
 *
 * Ports pitfall 3, "a synchronous lock in an async function"
 * (the tutorial "asyncio in practice", "common pitfalls"):
 *
 *     async def wrongLock():
 *         lock = threading.Lock()
 *         with lock:
 *             await asyncio.sleep(1)
 *
 *     async def rightLock():
 *         lock = asyncio.Lock()
 *         async with lock:
 *             await asyncio.sleep(1)
 *
 * Why a lock at all, when every task runs on one thread? Because a task
 * gives the thread up at each suspending call: here, five tasks deposit
 * into one balance by reading it, sleeping (a round trip to a database,
 * say), and writing back what they read plus their amount. While one
 * sleeps, the others read the same old balance, and the last write wins:
 * without a lock four deposits in five are lost.
 *
 * Why not a thread lock (threading.Lock; here a pthread_mutex_t)? It is
 * held across the sleep just as well, but the second task to want it
 * blocks the whole thread in pthread_mutex_lock: the loop stops, the
 * holder's sleep never ends, and it can never unlock. A deadlock.
 *
 * A loom_lock_t suspends only the task that waits for it, and the loop
 * runs on. loom_lock_acquire / loom_lock_release are `async with lock`
 * (C has no `with`: every path out after the acquire must release). The
 * lock is FIFO: a release hands it to the longest waiter, so the tasks take
 * turns. The price of correctness is that the critical sections, sleep
 * included, now run one after the other: keep them short. Output:
 *
 *     5 tasks each deposit 10 x 10 into a balance of 0: expect 500
 *     without a lock: balance 100 (40 of 50 deposits lost) after 0.1 s
 *     with a loom_lock_t: balance 500 (0 of 50 deposits lost) after 0.5 s
 *     turns with the lock: 0 1 2 3 4 0 1 2 3 4 ... (FIFO: yes)
 */
#include <stdio.h>

#include <loom.h>

#define NTASKS 5         /* depositing tasks */
#define NDEPOSITS 10     /* deposits per task */
#define AMOUNT 10        /* per deposit */
#define ROUND_TRIP_MS 10 /* between reading the balance and writing it */

/* The shared account, in main's frame. */
typedef struct {
  loom_lock_t lock;
  int use_lock; /* take the lock around each update? */
  long balance;
  int turns[NTASKS * NDEPOSITS]; /* which task made each deposit, in order */
  int nturns;
} account_t;

typedef struct {
  account_t *acct;
  int id;
} depositor_t;

static int depositor(void *p) {
  depositor_t *d = p;
  account_t *a = d->acct;
  for (int i = 0; i < NDEPOSITS; i++) {
    int rc;
    if (a->use_lock && (rc = loom_lock_acquire(&a->lock)) < 0)
      return rc; /* cancelled while waiting: the lock is not ours */
    /* The critical section: read, suspend, write. */
    long balance = a->balance;
    rc = loom_sleep(ROUND_TRIP_MS);
    if (rc == 0) {
      a->balance = balance + AMOUNT;
      a->turns[a->nturns++] = d->id;
    }
    if (a->use_lock) {
      int rrc = loom_lock_release(&a->lock); /* on every path */
      if (rrc < 0) return rrc;               /* UV_EPERM: not held, a bug */
    }
    if (rc < 0) return rc;
  }
  return 0;
}

/* Runs the NTASKS depositors on a fresh account; *ms gets the time taken. */
static int run(account_t *a, int use_lock, uint64_t *ms) {
  *a = (account_t){.use_lock = use_lock};
  loom_lock_init(&a->lock);
  depositor_t ds[NTASKS];
  int statuses[NTASKS] = {0};
  for (int i = 0; i < NTASKS; i++) ds[i] = (depositor_t){.acct = a, .id = i};

  uint64_t t0 = loom_now();
  int rc = loom_gather_map(depositor, ds, sizeof ds[0], NTASKS, statuses, 0);
  *ms = loom_now() - t0;
  if (rc < 0) {
    fprintf(stderr, "lock: %s\n", loom_strerror(rc));
    for (int i = 0; i < NTASKS; i++)
      if (statuses[i] < 0)
        fprintf(stderr, "lock: depositor %d: %s\n", i, loom_strerror(statuses[i]));
  }
  return rc;
}

static void report(const char *how, const account_t *a, uint64_t ms) {
  long expected = (long)NTASKS * NDEPOSITS * AMOUNT;
  printf("%s: balance %ld (%ld of %d deposits lost) after %.1f s\n", how, a->balance,
         (expected - a->balance) / AMOUNT, NTASKS * NDEPOSITS, (double)ms / 1000.0);
}

static int lock_main(void *arg) {
  (void)arg;
  account_t acct;
  uint64_t ms;

  printf("%d tasks each deposit %d x %d into a balance of 0: expect %d\n", NTASKS,
         NDEPOSITS, AMOUNT, NTASKS * NDEPOSITS * AMOUNT);

  int rc = run(&acct, 0, &ms);
  if (rc < 0) return rc;
  report("without a lock", &acct, ms);

  rc = run(&acct, 1, &ms);
  if (rc < 0) return rc;
  report("with a loom_lock_t", &acct, ms);

  /* FIFO hand-over: a task that releases and wants the lock again queues
   * behind the others, so the tasks take strict turns. */
  int fifo = acct.nturns == NTASKS * NDEPOSITS;
  for (int i = 0; fifo && i < acct.nturns; i++) fifo = acct.turns[i] == i % NTASKS;
  printf("turns with the lock:");
  for (int i = 0; i < 2 * NTASKS && i < acct.nturns; i++) printf(" %d", acct.turns[i]);
  printf(" ... (FIFO: %s)\n", fifo ? "yes" : "no");
  if (loom_lock_locked(&acct.lock)) {
    fprintf(stderr, "lock: the lock is still held\n");
    return UV_EPERM;
  }
  return 0;
}

int main(void) {
  int rc = loom_run(lock_main, NULL);
  if (rc < 0) {
    fprintf(stderr, "lock: %s\n", loom_strerror(rc));
    return 1;
  }
  return 0;
}
