/* read_files: several files read at once, and their sizes printed.
 *
 * Ports the aiofiles example ("async I/O patterns", "asynchronous file
 * I/O"):
 *
 *     async def read_file(path: Path):
 *         async with aiofiles.open(path, mode='r', encoding='utf-8') as f:
 *             contents = await f.read()
 *         return path.name, len(contents)
 *
 *     async def main():
 *         files = [Path("example1.txt"), Path("example2.txt"),
 *                  Path("example3.txt")]
 *         results = await asyncio.gather(*[read_file(p) for p in files])
 *         for name, size in results:
 *             print(f"{name}: {size} bytes")
 *
 * Each read is a task; loom_gather_map waits for all of them and keeps the
 * results in argument order. loom_fs_read_file does what `async with
 * aiofiles.open(...) as f: await f.read()` does: open, read to the end,
 * close, on libuv's thread pool, while the loop runs the other tasks.
 *
 *     read_files FILE...   read the files named
 *     read_files           make example1.txt .. example3.txt in a new
 *                          temporary directory, read them, remove them
 *
 * Output without arguments:
 *
 *     example1.txt: 13 bytes
 *     example2.txt: 2600 bytes
 *     example3.txt: 1000000 bytes
 *
 * (Python's len() counts characters; these files are ASCII, so characters
 * and bytes agree.) A file that cannot be read is reported with the error,
 * and the program exits with status 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <loom.h>

typedef struct {
  const char *path; /* in */
  size_t size;      /* out */
  int err;          /* out: 0 or the error */
} read_arg_t;

static int read_one(void *p) {
  read_arg_t *a = p;
  char *data;
  a->err = loom_fs_read_file(a->path, &data, &a->size, SIZE_MAX);
  if (a->err == 0) free(data);
  return a->err;
}

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

typedef struct {
  int argc;
  char **argv;
  int status;
} main_arg_t;

/* The three files the tutorial reads, made for the demonstration. */
static int make_examples(char *dir, size_t cap, char paths[3][300]) {
  int rc = loom_fs_mkdtemp("/tmp/read_files-XXXXXX", dir, cap);
  if (rc < 0) return rc;
  static const size_t sizes[3] = {13, 2600, 1000000};
  for (int i = 0; i < 3; i++) {
    char *text = malloc(sizes[i]);
    if (!text) return UV_ENOMEM;
    for (size_t k = 0; k < sizes[i]; k++)
      text[k] = (k + 1) % 26 ? 'a' + (char)(k % 26) : '\n';
    snprintf(paths[i], sizeof(paths[i]), "%s/example%d.txt", dir, i + 1);
    rc = loom_fs_write_file(paths[i], text, sizes[i], 0644);
    free(text);
    if (rc) return rc;
  }
  return 0;
}

static int amain(void *p) {
  main_arg_t *m = p;
  char dir[256] = "", paths[3][300];
  const char *own[3];
  int n = m->argc - 1;
  const char **files = (const char **)m->argv + 1;
  if (n == 0) {
    int rc = make_examples(dir, sizeof(dir), paths);
    if (rc) {
      fprintf(stderr, "read_files: cannot make the example files: %s\n",
              loom_strerror(rc));
      return rc;
    }
    for (int i = 0; i < 3; i++) own[i] = paths[i];
    files = own;
    n = 3;
  }
  read_arg_t *args = calloc((size_t)n, sizeof(*args));
  if (!args) return UV_ENOMEM;
  for (int i = 0; i < n; i++) args[i].path = files[i];
  /* asyncio.gather(*tasks): one task per file, all at once. A failure
   * does not stop the others (no LOOM_FAIL_FAST). */
  loom_gather_map(read_one, args, sizeof(args[0]), (size_t)n, NULL, 0);
  for (int i = 0; i < n; i++) {
    if (args[i].err) {
      printf("%s: %s\n", base_name(args[i].path), loom_strerror(args[i].err));
      m->status = 1;
    } else {
      printf("%s: %zu bytes\n", base_name(args[i].path), args[i].size);
    }
  }
  free(args);
  if (dir[0]) {
    for (int i = 0; i < 3; i++) loom_fs_unlink(paths[i]);
    loom_fs_rmdir(dir);
  }
  return 0;
}

int main(int argc, char **argv) {
  main_arg_t m = {.argc = argc, .argv = argv};
  int rc = loom_run(amain, &m);
  if (rc) {
    fprintf(stderr, "read_files: %s\n", loom_strerror(rc));
    return 1;
  }
  return m.status;
}
