/* Stack-overflow reports.
 *
 * A fiber that runs off the bottom of its stack hits the guard zone below it
 * (stack.h: large enough that a big frame lands in it too).
 * The SIGSEGV handler runs on an alternate signal stack (the faulting stack is
 * unusable), checks whether the fault address lies in the guard page of the
 * fiber running on this thread, and if so writes one line naming the task and
 * its stack size (the size the fiber reports: nominal_size, the usable size
 * its owner gave it, else stack_size). It then restores the default action
 * and returns, so the faulting instruction runs again and the process dies of
 * SIGSEGV as any crash would (core dump included). A fault that is not a
 * guard hit goes to the handler that was installed before loom's, or to the
 * default action.
 *
 * Stacks without a guard (past the guard budget, see stack.h) carry a canary
 * that the scheduler checks at every switch; loom__fiber_overflow reports
 * those.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fiber.h"

#define LOOM__ALTSTACK_SIZE (64 * 1024)

static struct sigaction previous;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;

#define LOOM__REPORT_NAME_MAX 64 /* bytes of the name a report shows */

/* The decimal digits of v, written at the end of num[cap] (cap >= 2);
 * returns where they start. Signal-safe. */
static const char *decimal(char *num, size_t cap, uint64_t v) {
  size_t i = cap - 1;
  num[i] = 0;
  do { num[--i] = (char)('0' + v % 10); } while ((v /= 10) && i > 0);
  return num + i;
}

/* Writes the report to stderr; a failed write leaves nothing else to do. */
static void say(const char *buf, size_t n) {
  ssize_t r = write(STDERR_FILENO, buf, n);
  (void)r;
}

/* Formats the report into buf without malloc or stdio (signal-safe). The
 * name is the user's: it is cut short and its control bytes shown as '?', so
 * the report stays one line that says the size and what to do. */
static size_t format_report(char *buf, size_t cap, const loom__fiber_t *f,
                            const char *how) {
  size_t n = 0;
#define PUT(s)                                   \
  do {                                           \
    const char *p_ = (s);                        \
    while (*p_ && n + 1 < cap) buf[n++] = *p_++; \
  } while (0)
  char num[24];
  PUT("loom: stack overflow in task '");
  if (f->name && f->name[0]) {
    for (size_t k = 0; f->name[k] && k < LOOM__REPORT_NAME_MAX && n + 1 < cap; k++) {
      unsigned char ch = (unsigned char)f->name[k];
      buf[n++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
  } else {
    PUT("task-");
    PUT(decimal(num, sizeof(num), f->id));
  }
  PUT("' (stack size ");
  PUT(decimal(num, sizeof(num), f->nominal_size ? f->nominal_size : f->stack_size));
  PUT(" bytes");
  PUT(how);
  PUT("); raise it with loom_task_opts_t.stack_size\n");
#undef PUT
  return n;
}

void loom__fiber_overflow(const loom__fiber_t *f, const char *how) {
  char buf[256];
  size_t n = format_report(buf, sizeof(buf), f, how);
  say(buf, n);
  abort();
}

static void on_segv(int sig, siginfo_t *info, void *uctx) {
  const loom__fiber_t *f = loom__fiber_current();
  uintptr_t addr = (uintptr_t)info->si_addr;
  if (f && f->guard_lo && addr >= (uintptr_t)f->guard_lo &&
      addr < (uintptr_t)f->stack_lo) {
    char buf[256];
    size_t n = format_report(buf, sizeof(buf), f, ", guard page hit");
    say(buf, n);
    signal(SIGSEGV, SIG_DFL); /* the retried access kills the process */
    return;
  }
  /* Not ours: hand over to whoever was there before. */
  if (previous.sa_flags & SA_SIGINFO) {
    if (previous.sa_sigaction) {
      previous.sa_sigaction(sig, info, uctx);
      return;
    }
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN &&
             previous.sa_handler != NULL) {
    previous.sa_handler(sig);
    return;
  }
  signal(SIGSEGV, SIG_DFL);
}

/* (Re)installs the handler unless it is in place: a test framework or the
 * host may have replaced it since the last runtime started. */
static void install(void) {
  struct sigaction cur;
  pthread_mutex_lock(&install_lock);
  if (sigaction(SIGSEGV, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
      cur.sa_sigaction == on_segv) {
    pthread_mutex_unlock(&install_lock);
    return;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &previous);
  pthread_mutex_unlock(&install_lock);
}

int loom__overflow_thread_init(void **altstack) {
  stack_t cur;
  *altstack = NULL;
  install();
  if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
    return 0; /* the thread has one already (ASan installs its own) */
  stack_t ss;
  ss.ss_sp = malloc(LOOM__ALTSTACK_SIZE);
  if (!ss.ss_sp) return -ENOMEM;
  ss.ss_size = LOOM__ALTSTACK_SIZE;
  ss.ss_flags = 0;
  if (sigaltstack(&ss, NULL) != 0) {
    free(ss.ss_sp);
    return -errno;
  }
  *altstack = ss.ss_sp;
  return 0;
}

void loom__overflow_thread_fini(void *altstack) {
  if (!altstack) return;
  stack_t ss;
  memset(&ss, 0, sizeof(ss));
  ss.ss_flags = SS_DISABLE;
  sigaltstack(&ss, NULL);
  free(altstack);
}
