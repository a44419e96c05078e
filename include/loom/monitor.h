/* The monitor: a live console on a Unix socket, in the spirit of Python's
 * aiomonitor. A program that starts it (or runs under loom_run with the
 * environment variable LOOM_MONITOR=PATH) answers line commands on PATH:
 *
 *   ps         every task: id, state, name, what it waits on
 *   tree       the tasks as a tree of their owners (groups, gathers)
 *   stack ID   one task with the backtrace of its suspended stack
 *   cancel ID  cancels task ID
 *   stats      the runtime's counters (loom_stats_get)
 *   json       the whole dump as JSON
 *   help       the list of commands
 *   quit       closes the connection
 *
 * Each command is one line; its reply is text lines. An unknown command or
 * a bad argument gets one line starting with "error: ". The connection
 * stays open for the next command until the client sends `quit` or closes
 * its side; a client that goes away mid-command disturbs nothing. Any
 * number of clients may be connected at once. Use the loom-monitor tool
 * (tools/loom-monitor.c) or `socat - UNIX-CONNECT:PATH`; docs/monitor.md.
 *
 * The monitor runs as tasks of the runtime it watches, named
 * "loom-monitor" (the listener) and "loom-monitor-client" (one per
 * connection): a stuck runtime, one whose tasks never suspend, cannot
 * answer (use SIGQUIT's dump or gdb then). It ends with the runtime: its
 * tasks are cancelled at shutdown like any other, and the socket file is
 * removed.
 *
 * Anyone who can connect to the socket can cancel tasks: the socket is
 * created with the process's umask; put it in a directory only its users
 * can reach.
 */
#ifndef LOOM_MONITOR_H
#define LOOM_MONITOR_H

#include "core.h"
#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Starts the monitor of runtime `rt` (NULL: the calling task's) on a new
 * Unix socket at `path`. Called from a task of rt, the socket is listening
 * when it returns; called from host code on the runtime's thread (an
 * embedder, before or between tasks), the listener starts with the next
 * scheduler pass and a failure to listen is reported on stderr.
 *
 * A socket file left at `path` by a process that is gone (nothing accepts
 * on it) is replaced; anything else there is left alone. Errors:
 * UV_EINVAL (NULL path, no runtime, or called from another thread than
 * rt's), UV_ENAMETOOLONG (longer than a Unix
 * socket address holds), UV_EADDRINUSE (a live socket or another file is
 * at path), UV_EALREADY (rt already has a monitor), LOOM_ECLOSED (rt is
 * shutting down), UV_ENOMEM, or the error of bind/listen. */
LOOM_EXTERN int loom_monitor_start(loom_t *rt, const char *path);

/* Stops rt's monitor (NULL: the calling task's runtime): removes the
 * socket file at once, then closes the listener and every client
 * connection (their tasks end at the next scheduler pass). UV_ENOENT if rt
 * has no monitor, UV_EINVAL without a runtime or from another thread than
 * rt's. A new monitor may be started right after. */
LOOM_EXTERN int loom_monitor_stop(loom_t *rt);

#ifdef __cplusplus
}
#endif

#endif /* LOOM_MONITOR_H */
