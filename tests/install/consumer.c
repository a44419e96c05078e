/* A program outside the loom tree, built against an installed loom. */
#include <loom.h>
#include <stdio.h>

static int child(void *arg) {
  (void)arg;
  return loom_sleep(1);
}

static int main_task(void *arg) {
  (void)arg;
  loom_task_t *t;
  int status = -1, rc = loom_spawn(&t, child, NULL);
  if (rc == 0) rc = loom_join(t, &status);
  printf("consumer: loom %s, join %d, status %d\n", loom_version_string(), rc, status);
  return rc ? rc : status;
}

int main(void) { return loom_run(main_task, NULL) == 0 ? 0 : 1; }
