/* Small helpers shared by the test programs.
 *
 * cmocka's asserts longjmp, which must not cross fiber stacks: tasks record
 * what they see in plain structs and the test asserts on the main stack once
 * loom_run has returned. */
#ifndef LOOM_TEST_HELPERS_H
#define LOOM_TEST_HELPERS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

#endif
