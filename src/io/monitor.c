/* The monitor: line commands on a Unix socket (include/loom/monitor.h).
 *
 * It is built from loom's own parts: a task ("loom-monitor") accepts on a
 * Unix listener and spawns one task per connection ("loom-monitor-client")
 * into a task group it owns, so that cancelling the acceptor (stop, or the
 * runtime's shutdown) closes the listener and ends every connection before
 * the acceptor frees the monitor. Replies are built in memory and written
 * whole: the task list and the dump are taken between two switches, so a
 * reply describes one instant, and a client that has gone away costs a
 * failed write, nothing more.
 *
 * The monitors of all runtimes are on one list (a runtime's record has no
 * room for one, and loom_monitor_stop must find it), under a mutex since
 * runtimes live on several threads. An entry is on the list from start
 * until stop or the acceptor's end; while it is, the acceptor has not
 * ended, so its record may be cancelled.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../core/internal.h"
#include "../core/introspect.h"
#include "loom/debug.h"
#include "loom/monitor.h"

#define MONITOR_BACKLOG 16
#define MONITOR_LINE_MAX 256

typedef struct monitor_s {
  struct monitor_s *next; /* on `monitors`, while registered */
  loom_t *rt;
  loom_task_t *acceptor; /* its record, valid while registered */
  loom_listener_t *l;    /* listening (by start, or the acceptor) */
  int registered;
  int stopped; /* loom_monitor_stop removed the file */
  int bound;   /* the socket file is ours to remove */
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
} monitor_t;

static pthread_mutex_t monitors_mu = PTHREAD_MUTEX_INITIALIZER;
static monitor_t *monitors;

static monitor_t **find_locked(loom_t *rt) {
  monitor_t **p = &monitors;
  while (*p && (*p)->rt != rt) p = &(*p)->next;
  return p;
}

/* Takes m off the list if it is still there; 1 if it was. */
static int unregister(monitor_t *m) {
  pthread_mutex_lock(&monitors_mu);
  int was = m->registered;
  if (was) {
    monitor_t **p = &monitors;
    while (*p != m) p = &(*p)->next;
    *p = m->next;
    m->registered = 0;
  }
  pthread_mutex_unlock(&monitors_mu);
  return was;
}

/* ---- replies ---------------------------------------------------------------- */

typedef struct {
  char *p;
  size_t n, cap;
  int oom;
} obuf_t;

static int obuf_reserve(obuf_t *b, size_t more) {
  if (b->oom) return -1;
  if (b->n + more + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 1024;
  while (cap < b->n + more + 1) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) {
    b->oom = 1;
    return -1;
  }
  b->p = p;
  b->cap = cap;
  return 0;
}

static void obuf_add(obuf_t *b, const char *s, size_t n) {
  if (obuf_reserve(b, n)) return;
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

__attribute__((format(printf, 2, 3))) static void obuf_printf(obuf_t *b, const char *fmt,
                                                              ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || obuf_reserve(b, (size_t)n)) return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->n += (size_t)n;
}

/* Appends the dump of rt (id 0) or of one task: pieces straight into the
 * reply, written whole later (a dump to the socket's descriptor could be
 * cut short by its non-blocking writes). */
static void put_piece(void *ctx, const char *p, size_t n) { obuf_add(ctx, p, n); }

static int capture(obuf_t *b, loom_t *rt, uint64_t id, unsigned flags) {
  return loom__dump_to(rt, put_piece, b, id, flags);
}

/* ---- commands --------------------------------------------------------------- */

static const char *state_word(const loom_task_t *t, const loom_t *rt) {
  if (t == rt->current) return "running";
  switch (t->state) {
  case LOOM__READY: return "ready";
  case LOOM__RUNNING: return "running";
  case LOOM__PARKED: return "parked";
  case LOOM__DONE: return "finished";
  }
  return "?";
}

static int by_id(const void *a, const void *b) {
  uint64_t x = (*(loom_task_t *const *)a)->fiber.id;
  uint64_t y = (*(loom_task_t *const *)b)->fiber.id;
  return x < y ? -1 : x > y;
}

/* `ps`: one line per task, by id: the unfinished ones (rt->alive) and the
 * finished ones nobody has joined yet (still in the handle table). */
static void cmd_ps(obuf_t *b, loom_t *rt) {
  size_t cap = rt->nalive + 16, n = 0;
  loom_task_t **all = malloc(cap * sizeof(*all));
  if (!all) {
    obuf_printf(b, "error: out of memory\n");
    return;
  }
  loom__link_t *l;
  loom__list_foreach(l, &rt->alive) {
    if (n == cap) break;
    all[n++] = loom__list_entry(l, loom_task_t, alive_link);
  }
  for (uint32_t i = 0; i < rt->nhandles; i++) {
    loom_task_t *t = loom__handle_at(rt, i, LOOM__H_TASK);
    if (!t || t->state != LOOM__DONE) continue;
    if (n == cap) {
      loom_task_t **more = realloc(all, 2 * cap * sizeof(*all));
      if (!more) break;
      all = more;
      cap *= 2;
    }
    all[n++] = t;
  }
  qsort(all, n, sizeof(*all), by_id);
  obuf_printf(b, "%8s  %-9s %-24s %9s  %s\n", "ID", "STATE", "NAME", "FOR", "WAITING ON");
  uint32_t now = (uint32_t)uv_now(rt->loop);
  for (size_t i = 0; i < n; i++) {
    loom_task_t *t = all[i];
    char why[160] = "", waited[24] = "";
    if (t->state == LOOM__PARKED && t != rt->current && t->wait) {
      /* all is sorted: a lock's holder is looked up there (10k waiters
       * on one lock would otherwise walk every task each) */
      loom__wait_describe_in(t, all, n, why, sizeof(why));
      /* since: the low 32 bits of the loop time the wait began */
      snprintf(waited, sizeof(waited), "%" PRIu32 " ms", now - t->wait->since);
    }
    char line[320];
    char name[LOOM_TASK_NAME_MAX + 8];
    snprintf(name, sizeof(name), "%s%s", loom__task_name(t), t->system ? " [loom]" : "");
    int len = snprintf(line, sizeof(line), "%8" PRIu64 "  %-9s %-24s %9s  %s%s",
                       t->fiber.id, state_word(t, rt), name, waited, why,
                       t->cancelled ? " (cancelled)" : "");
    if (len < 0) continue;
    if ((size_t)len >= sizeof(line)) len = (int)sizeof(line) - 1;
    while (len > 0 && line[len - 1] == ' ') len--; /* no trailing blanks */
    line[len++] = '\n';
    obuf_add(b, line, (size_t)len);
  }
  obuf_printf(b, "%zu task%s\n", n, n == 1 ? "" : "s");
  free(all);
}

static int parse_id(const char *arg, uint64_t *id) {
  if (!arg || !*arg) return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(arg, &end, 10);
  if (errno || *end || *arg == '-' || v == 0) return -1;
  *id = v;
  return 0;
}

static void cmd_stats(obuf_t *b, loom_t *rt) {
  loom_stats_t s;
  int rc = loom_stats_get(rt, &s);
  if (rc) {
    obuf_printf(b, "error: stats: %s\n", loom_strerror(rc));
    return;
  }
  static const char *late[LOOM_STAT_LATE_BUCKETS] = {
      "<0.1ms", "<1ms", "<2ms", "<5ms", "<10ms", "<50ms", "<100ms", ">=100ms"};
  obuf_printf(b, "tasks        %" PRIu64 " live, %" PRIu64 " peak, %" PRIu64 " spawned\n",
              s.tasks_live, s.tasks_peak, s.tasks_spawned);
  obuf_printf(b, "scheduler    %" PRIu64 " switches, %" PRIu64 " passes\n", s.switches,
              s.passes);
  obuf_printf(b, "timer late   max %" PRIu64 " us;", s.timer_late_max_us);
  for (int i = 0; i < LOOM_STAT_LATE_BUCKETS; i++)
    obuf_printf(b, " %s %" PRIu64, late[i], s.timer_late_hist[i]);
  obuf_printf(b, "\nstacks       %" PRIu64 " mapped, %" PRIu64 " cached\n",
              s.stacks_mapped, s.stacks_cached);
  obuf_printf(b, "bytes        %" PRIu64 " read, %" PRIu64 " written\n", s.bytes_read,
              s.bytes_written);
  obuf_printf(b, "handles     ");
  for (int k = 0; k < LOOM_STAT_KINDS; k++)
    obuf_printf(b, " %s %" PRIu32, loom_stat_kind_name(k), s.handles_by_kind[k]);
  obuf_printf(b, "\n");
}

static const char help_text[] =
    "commands:\n"
    "  ps          list the tasks: id, state, name, what each waits on\n"
    "  tree        the tasks as a tree of their owners\n"
    "  stack ID    task ID and the backtrace of its stack\n"
    "  cancel ID   cancel task ID\n"
    "  stats       the runtime's counters\n"
    "  json        the whole dump as JSON\n"
    "  help        this list\n"
    "  quit        close the connection\n";

/* Runs one command line; 1 if the connection is to be closed. */
static int run_command(obuf_t *b, loom_t *rt, char *line) {
  char *save = NULL;
  char *cmd = strtok_r(line, " \t", &save);
  char *arg = strtok_r(NULL, " \t", &save);
  char *extra = strtok_r(NULL, " \t", &save);
  if (!cmd) return 0;
  int takes_id = !strcmp(cmd, "stack") || !strcmp(cmd, "cancel");
  uint64_t id = 0;
  if (takes_id) {
    if (parse_id(arg, &id) || extra) {
      obuf_printf(b, "error: usage: %s ID (a task id from ps)\n", cmd);
      return 0;
    }
  } else if (arg) {
    obuf_printf(b, "error: %s takes no argument\n", cmd);
    return 0;
  }
  if (!strcmp(cmd, "ps")) {
    cmd_ps(b, rt);
  } else if (!strcmp(cmd, "tree")) {
    int rc = capture(b, rt, 0, LOOM_DUMP_NO_STACKS);
    if (rc) obuf_printf(b, "error: dump: %s\n", loom_strerror(rc));
  } else if (!strcmp(cmd, "json")) {
    int rc = capture(b, rt, 0, LOOM_DUMP_JSON);
    if (rc) obuf_printf(b, "error: dump: %s\n", loom_strerror(rc));
  } else if (!strcmp(cmd, "stack")) {
    int rc = capture(b, rt, id, 0);
    if (rc == UV_ENOENT)
      obuf_printf(b, "error: no task %" PRIu64 "\n", id);
    else if (rc)
      obuf_printf(b, "error: dump: %s\n", loom_strerror(rc));
  } else if (!strcmp(cmd, "cancel")) {
    int rc = loom_cancel_id(rt, id);
    if (rc == UV_ENOENT || rc == LOOM_EBADTASK)
      obuf_printf(b, "error: no task %" PRIu64 "\n", id);
    else if (rc)
      obuf_printf(b, "error: cancel: %s\n", loom_strerror(rc));
    else
      obuf_printf(b, "cancelled task %" PRIu64 "\n", id);
  } else if (!strcmp(cmd, "stats")) {
    cmd_stats(b, rt);
  } else if (!strcmp(cmd, "help")) {
    obuf_add(b, help_text, sizeof(help_text) - 1);
  } else if (!strcmp(cmd, "quit")) {
    return 1;
  } else {
    obuf_printf(b, "error: unknown command '%.40s' (help lists the commands)\n", cmd);
  }
  return 0;
}

/* ---- tasks ------------------------------------------------------------------ */

/* One connection: a command per line until `quit`, EOF or an error. */
static int client_task(void *arg) {
  loom_stream_t *s = arg;
  loom_t *rt = loom_runtime();
  loom__task_mark_system(loom__self()); /* dumps tell the monitor's own apart */
  char line[MONITOR_LINE_MAX];
  obuf_t b = {0};
  for (;;) {
    ssize_t n = loom_read_line(s, line, sizeof(line));
    if (n == UV_ENOBUFS) {
      /* A line longer than any command: say so, and hang up rather than
       * read on in the middle of it. */
      static const char msg[] = "error: line too long\n";
      loom_write(s, msg, sizeof(msg) - 1);
      break;
    }
    if (n <= 0) break; /* EOF, a reset, cancellation */
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    b.n = 0;
    b.oom = 0;
    int quit = run_command(&b, rt, line);
    if (b.oom) {
      static const char msg[] = "error: out of memory\n";
      if (loom_write(s, msg, sizeof(msg) - 1)) break;
    } else if (b.n && loom_write(s, b.p, b.n)) {
      break; /* the client went away */
    }
    if (quit) break;
  }
  free(b.p);
  loom_close(s);
  return 0; /* never a failure: the group would cancel the other clients */
}

static int acceptor_task(void *arg) {
  monitor_t *m = arg;
  int rc = 0;
  if (m->stopped) {
    rc = UV_ECANCELED; /* stopped before it ran: never bind */
  } else if (!m->l) {
    rc = loom_unix_listen(&m->l, m->path, MONITOR_BACKLOG);
    if (rc)
      fprintf(stderr, "loom: monitor: cannot listen on %s: %s\n", m->path,
              loom_strerror(rc));
    else
      m->bound = 1;
  }
  loom_group_t *g = NULL;
  if (!rc) rc = loom_group_open(&g);
  while (!rc) {
    loom_stream_t *s;
    rc = loom_accept(m->l, &s);
    if (rc == UV_EMFILE || rc == UV_ENFILE || rc == UV_ENOMEM || rc == UV_ECONNABORTED) {
      rc = loom_sleep(100); /* out of descriptors: try again later */
      continue;
    }
    if (rc) break;
    loom_task_opts_t o = {.name = "loom-monitor-client"};
    if (loom_group_spawn_ex(g, NULL, client_task, s, &o)) loom_abort(s);
  }
  if (m->l) loom_listener_close(m->l);
  if (g) {
    loom_group_cancel(g);
    loom_group_wait(g);
  }
  unregister(m);
  if (m->bound && !m->stopped) unlink(m->path);
  free(m);
  return 0;
}

/* A socket file at path that nobody accepts on is a leftover of a process
 * that is gone: removed. 0 if path is free now, else UV_EADDRINUSE. */
static int clear_path(const char *path) {
  struct stat st;
  if (lstat(path, &st)) return errno == ENOENT ? 0 : uv_translate_sys_error(errno);
  if (!S_ISSOCK(st.st_mode)) return UV_EADDRINUSE;
  /* Non-blocking: a live listener with a full backlog answers EAGAIN
   * instead of holding up the thread. */
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return uv_translate_sys_error(errno);
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  memcpy(sun.sun_path, path, strlen(path) + 1);
  int live = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 ||
             errno != ECONNREFUSED;
  close(fd);
  if (live) return UV_EADDRINUSE;
  return unlink(path) && errno != ENOENT ? uv_translate_sys_error(errno) : 0;
}

/* ---- public API ------------------------------------------------------------- */

int loom_monitor_start(loom_t *rt, const char *path) {
  loom_task_t *self = loom__self();
  if (!rt) rt = self ? self->rt : NULL;
  /* Only from the runtime's own thread: the monitor's tasks are spawned
   * and cancelled there. */
  if (!rt || !path || !*path || !loom__on_own_thread(rt)) return UV_EINVAL;
  monitor_t *m = NULL;
  if (strlen(path) >= sizeof(m->path)) return UV_ENAMETOOLONG;
  if (rt->closing) return LOOM_ECLOSED;
  pthread_mutex_lock(&monitors_mu);
  int busy = *find_locked(rt) != NULL;
  pthread_mutex_unlock(&monitors_mu);
  if (busy) return UV_EALREADY;
  int rc = clear_path(path);
  if (rc) return rc;
  m = calloc(1, sizeof(*m));
  if (!m) return UV_ENOMEM;
  m->rt = rt;
  memcpy(m->path, path, strlen(path) + 1);
  /* In a task of rt, listen now: the caller learns of a failure, and may
   * connect as soon as this returns. */
  if (self && self->rt == rt) {
    rc = loom_unix_listen(&m->l, path, MONITOR_BACKLOG);
    if (rc) {
      free(m);
      return rc;
    }
    m->bound = 1;
  }
  loom_task_t *h;
  loom_task_opts_t o = {.name = "loom-monitor"};
  rc = loom_spawn_on_ex(rt, &h, acceptor_task, m, &o);
  if (rc) {
    if (m->l) loom_listener_close(m->l);
    if (m->bound) unlink(path);
    free(m);
    return rc;
  }
  /* Detached, but its record is kept for loom_monitor_stop's cancel. */
  loom_task_t *t = loom__task_of(rt, h);
  loom__task_mark_system(t);
  t->consumed = t->detached = 1;
  loom__task_handle_renew(t);
  m->acceptor = t;
  pthread_mutex_lock(&monitors_mu);
  m->registered = 1;
  m->next = monitors;
  monitors = m;
  pthread_mutex_unlock(&monitors_mu);
  return 0;
}

int loom_monitor_stop(loom_t *rt) {
  loom_task_t *self = loom__self();
  if (!rt) rt = self ? self->rt : NULL;
  if (!rt || !loom__on_own_thread(rt)) return UV_EINVAL;
  pthread_mutex_lock(&monitors_mu);
  monitor_t **p = find_locked(rt), *m = *p;
  if (m) {
    *p = m->next;
    m->registered = 0;
  }
  pthread_mutex_unlock(&monitors_mu);
  if (!m) return UV_ENOENT;
  /* The file goes now, so that a new monitor may bind the same path at
   * once; the listener and connections close as the acceptor ends. */
  m->stopped = 1;
  if (m->bound) unlink(m->path);
  loom__cancel(m->acceptor);
  return 0;
}

/* loom_run's LOOM_MONITOR=path (core/runtime.c), after main is spawned:
 * main keeps id 1. */
void loom__monitor_from_env(loom_t *rt);
void loom__monitor_from_env(loom_t *rt) {
  const char *path = getenv("LOOM_MONITOR");
  if (!path || !*path) return;
  int rc = loom_monitor_start(rt, path);
  if (rc)
    fprintf(stderr, "loom: LOOM_MONITOR=%s: cannot start the monitor: %s\n", path,
            loom_strerror(rc));
}
