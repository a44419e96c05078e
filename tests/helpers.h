/* Small helpers shared by the test programs.
 *
 * cmocka's asserts longjmp, which must not cross fiber stacks: tasks record
 * what they see in plain structs and the test asserts on the main stack once
 * loom_run has returned. */
#ifndef LOOM_TEST_HELPERS_H
#define LOOM_TEST_HELPERS_H

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "harness.h"
#include "loom.h"

/* Wall-clock milliseconds, for tolerant timing checks. */
static inline uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Runs fn(arg) in a child process with stderr captured into out; returns the
 * child's wait status. */
static inline int run_in_child(void (*fn)(void *), void *arg, char *out, size_t cap) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    fn(arg);
    fflush(NULL);
    _exit(0);
  }
  close(fds[1]);
  size_t n = 0;
  ssize_t r;
  while (n + 1 < cap && (r = read(fds[0], out + n, cap - 1 - n)) > 0) n += (size_t)r;
  out[n] = 0;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

/* How many descriptors the process has open (the entries of /proc/self/fd,
 * the one opendir reads them through included), or -1: counted before and
 * after a test, to show that it left none open. */
static inline int open_fd_count(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  while (readdir(d)) n++;
  closedir(d);
  return n;
}

/* ---- what a task recorded ------------------------------------------------ */
/* A task records its calls' results in an array of longs, and the test, on
 * the main stack once loom_run has returned, states what each should be in
 * a table of rows of RC_ROW, checked by one call from index first on:
 *
 *   static const rc_want_t want[][RC_ROW] = {
 *       {RC_OK, RC_ERR(UV_ENOENT), RC_EQ(5), RC_TRUE}, // 0
 *       {RC_OK, RC_SKIP, RC_EQ(0)},                    // 4
 *   };
 *   assert_rcs(r.rc, 0, want);
 *
 * RC_OK and RC_ERR(code) check a loom result as assert_loom_ok and
 * assert_loom_err do, printing both codes by name; RC_EQ(n) a count or a
 * value, as assert_int_equal; RC_TRUE a flag, as assert_true; RC_SKIP, and
 * the places a short last row leaves empty, nothing. A failure names the
 * index at the table's check: "rc[12]: got ENOENT (-2), want 0". */
#define RC_ROW 4
typedef struct {
  enum { RC_WANT_SKIP, RC_WANT_CODE, RC_WANT_EQ, RC_WANT_TRUE } kind;
  long value;
} rc_want_t;
#define RC_SKIP \
  { RC_WANT_SKIP, 0 }
#define RC_OK \
  { RC_WANT_CODE, 0 }
#define RC_ERR(code) \
  { RC_WANT_CODE, (code) }
#define RC_EQ(n) \
  { RC_WANT_EQ, (n) }
#define RC_TRUE \
  { RC_WANT_TRUE, 0 }
#define assert_rcs(rc, first, want)                       \
  assert_rcs_at((rc), (first), (const rc_want_t *)(want), \
                sizeof(want) / sizeof(rc_want_t), __FILE__, __LINE__)

static inline void assert_rcs_at(const long *rc, size_t first, const rc_want_t *want,
                                 size_t n, const char *file, int line) {
  for (size_t i = 0; i < n; i++) {
    char name[32];
    long v = want[i].value;
    snprintf(name, sizeof(name), "rc[%zu]", first + i);
    switch (want[i].kind) {
    case RC_WANT_SKIP: break;
    case RC_WANT_CODE: harness_assert_code(rc[first + i], v, name, file, line); break;
    case RC_WANT_EQ:
      if (rc[first + i] != v) {
        print_error("%s: got %ld, want %ld\n", name, rc[first + i], v);
        _fail(file, line);
      }
      break;
    case RC_WANT_TRUE:
      if (!rc[first + i]) {
        print_error("%s: got 0, want true\n", name);
        _fail(file, line);
      }
      break;
    }
  }
}

/* ---- plain peers ------------------------------------------------------------------ */
/* A peer made of plain sockets lets a test ask the kernel what reached it,
 * or send before reading, without suspending and without loom's own
 * buffering on that side. */

/* A socketpair: *s is a loom stream on one end, *fd the plain other end
 * (the caller closes it). 0, or an error with nothing left open. */
static inline int stream_pair(loom_stream_t **s, int *fd) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return -errno;
  int rc = loom_stream_open_fd(s, sv[0]); /* libuv owns sv[0] now */
  if (rc) {
    close(sv[0]);
    close(sv[1]);
    return rc;
  }
  *fd = sv[1];
  return 0;
}

/* A plain blocking TCP socket connected to 127.0.0.1:port: the fd, or
 * -errno. rcvbuf > 0 sets a small receive buffer first, so that the
 * window is small from the start and a server's replies pile up in its
 * own queue rather than in the kernel's buffers. */
static inline int plain_connect(int port, int rcvbuf) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -errno;
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

/* What the kernel holds for the plain socket fd, without waiting: the
 * count read into buf, or -1 when nothing is there. */
static inline long peek_peer(int fd, char *buf, size_t cap) {
  ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
  return n < 0 ? -1 : (long)n;
}

#endif
