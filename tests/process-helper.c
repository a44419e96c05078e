/* A child program for test-process: small behaviours a test needs from a
 * child, without a shell's own processes in the way.
 *
 *   process-helper exit N          exits with status N
 *   process-helper sleep MS        sleeps, then exits 0
 *   process-helper ignore-term     ignores SIGTERM, says "ready", sleeps
 *   process-helper cat             copies stdin to stdout
 *   process-helper flood N M       writes N bytes to stdout and N to stderr
 *                                  in alternating 64 KiB chunks while a
 *                                  thread reads stdin; exits 0 iff stdin
 *                                  gave exactly M bytes
 *   process-helper env NAME        prints NAME's value and the cwd
 *   process-helper lines K MS      prints "line i" K times, MS ms apart
 *                                  ("err i" on stderr after each)
 *   process-helper fds             prints the descriptors above 2 it
 *                                  was born with, one a line
 */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {}
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void *drain_stdin(void *arg) {
  static char buf[65536];
  long long *count = arg;
  ssize_t n;
  while ((n = read(0, buf, sizeof buf)) > 0) *count += n;
  return NULL;
}

static int flood(long long n, long long m) {
  long long got = 0;
  pthread_t t;
  if (pthread_create(&t, NULL, drain_stdin, &got) != 0) return 3;
  static char chunk[65536];
  memset(chunk, 'x', sizeof chunk);
  for (long long left = n; left > 0;) {
    size_t k = left < (long long)sizeof chunk ? (size_t)left : sizeof chunk;
    if (write_all(1, chunk, k) || write_all(2, chunk, k)) return 4;
    left -= (long long)k;
  }
  pthread_join(t, NULL);
  return got == m ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *cmd = argv[1];
  if (!strcmp(cmd, "exit") && argc > 2) return atoi(argv[2]);
  if (!strcmp(cmd, "sleep") && argc > 2) {
    sleep_ms(atol(argv[2]));
    return 0;
  }
  if (!strcmp(cmd, "ignore-term")) {
    signal(SIGTERM, SIG_IGN);
    printf("ready\n");
    fflush(stdout);
    for (;;) pause();
  }
  if (!strcmp(cmd, "cat")) {
    char buf[65536];
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0)
      if (write_all(1, buf, (size_t)n)) return 1;
    return 0;
  }
  if (!strcmp(cmd, "flood") && argc > 3) return flood(atoll(argv[2]), atoll(argv[3]));
  if (!strcmp(cmd, "env") && argc > 2) {
    const char *v = getenv(argv[2]);
    char cwd[4096];
    printf("%s %s\n", v ? v : "(unset)", getcwd(cwd, sizeof cwd) ? cwd : "?");
    return 0;
  }
  if (!strcmp(cmd, "fds")) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return 1;
    struct dirent *e;
    while ((e = readdir(d))) {
      int fd = atoi(e->d_name);
      if (e->d_name[0] != '.' && fd > 2 && fd != dirfd(d)) printf("%d\n", fd);
    }
    closedir(d);
    return 0;
  }
  if (!strcmp(cmd, "lines") && argc > 3) {
    int k = atoi(argv[2]);
    long ms = atol(argv[3]);
    for (int i = 1; i <= k; i++) {
      printf("line %d\n", i);
      fflush(stdout);
      fprintf(stderr, "err %d\n", i);
      if (i < k) sleep_ms(ms);
    }
    return 0;
  }
  return 2;
}
