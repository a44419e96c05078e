/* hello: the asyncio hello world, in loom.
 *
 * Ports helloworld.py (the tutorial "asyncio first steps"):
 *
 *     async def main():
 *         print('Hello ...')
 *         await asyncio.sleep(1)
 *         print('... World!')
 *
 *     asyncio.run(main())
 *
 * loom_run() is asyncio.run(): it creates a libuv loop, runs `main` as the
 * first task, and returns main's status once every task has ended and the
 * loop is closed. loom_sleep() is `await asyncio.sleep()`: the task gives the
 * thread up for a second of loop time, and nothing blocks the loop meanwhile.
 * Output:
 *
 *     Hello ...
 *     ... World!
 */
#include <stdio.h>

#include <loom.h>

static int hello_main(void *arg) {
  (void)arg;
  printf("Hello ...\n");
  /* Suspending calls return a negative code when they fail (here: only
   * UV_ECANCELED, when Ctrl-C cancels the main task). */
  int rc = loom_sleep(1000);
  if (rc < 0) {
    fprintf(stderr, "hello: sleep: %s\n", loom_strerror(rc));
    return rc;
  }
  printf("... World!\n");
  return 0;
}

int main(void) {
  int rc = loom_run(hello_main, NULL);
  if (rc < 0) {
    fprintf(stderr, "hello: %s\n", loom_strerror(rc));
    return 1;
  }
  return 0;
}
