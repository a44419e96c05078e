/* write_read_lines: write a file, read it back, and go through a log file
 * line by line.
 *
 * Ports the aiofiles example ("asyncio in practice", "asynchronous file
 * I/O"):
 *
 *     async def aiofilesDemo():
 *         async with aiofiles.open("data.json", mode="w") as f:
 *             await f.write(json.dumps({"key": "value"}, ensure_ascii=False))
 *
 *         async with aiofiles.open("data.json", mode="r") as f:
 *             content = await f.read()
 *             data = json.loads(content)
 *             print(f"read: {data}")
 *
 *         async with aiofiles.open("large.log", mode="r") as f:
 *             async for line in f:
 *                 if "ERROR" in line:
 *                     print(line.strip())
 *
 * The files go to a new temporary directory, removed at the end; large.log
 * is written first (100,000 lines, one in 20,000 an ERROR), since the
 * tutorial assumes one exists. `async for line in f` is a loop over
 * loom_read_line on loom_file_stream_open's stream: the file is read ahead
 * in 64 KiB chunks on libuv's thread pool while lines are handed out one
 * at a time, so memory stays at one chunk and one line however long the
 * file. A JSON library is beside the point in C: the text is printed as it
 * was read. Output:
 *
 *     wrote data.json: 16 bytes
 *     read: {"key": "value"}
 *     large.log: 100000 lines, 5 with ERROR:
 *     2026-01-01 00:00:00 ERROR request 0 failed
 *     2026-01-01 05:33:20 ERROR request 20000 failed
 *     2026-01-01 11:06:40 ERROR request 40000 failed
 *     2026-01-01 16:40:00 ERROR request 60000 failed
 *     2026-01-01 22:13:20 ERROR request 80000 failed
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <loom.h>

#define NLINES 100000
#define EVERY 20000

static int write_json(const char *path) {
  loom_file_t *f;
  int rc = loom_file_open(&f, path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (rc) return rc;
  const char *json = "{\"key\": \"value\"}";
  ssize_t n = loom_file_write(f, json, strlen(json));
  loom_file_close(f);
  if (n < 0) return (int)n;
  printf("wrote data.json: %zd bytes\n", n);
  return 0;
}

static int read_json(const char *path) {
  loom_file_t *f;
  int rc = loom_file_open(&f, path, O_RDONLY, 0);
  if (rc) return rc;
  char content[256];
  ssize_t n = loom_file_read(f, content, sizeof(content) - 1);
  loom_file_close(f);
  if (n < 0) return (int)n;
  content[n] = '\0';
  printf("read: %s\n", content);
  return 0;
}

/* A log of NLINES lines, written in pieces through one open file. */
static int write_log(const char *path) {
  loom_file_t *f;
  int rc = loom_file_open(&f, path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (rc) return rc;
  char *chunk = malloc(1 << 16);
  if (!chunk) {
    loom_file_close(f);
    return UV_ENOMEM;
  }
  size_t len = 0;
  for (int i = 0; i < NLINES && rc == 0; i++) {
    int s = i; /* one second per line */
    len += (size_t)sprintf(chunk + len, "2026-01-01 %02d:%02d:%02d %s request %d %s\n",
                           s / 3600 % 24, s / 60 % 60, s % 60,
                           i % EVERY ? "INFO" : "ERROR", i, i % EVERY ? "ok" : "failed");
    if (len > (1 << 16) - 128 || i == NLINES - 1) {
      ssize_t n = loom_file_write(f, chunk, len);
      rc = n < 0 ? (int)n : 0;
      len = 0;
    }
  }
  free(chunk);
  int crc = loom_file_close(f);
  return rc ? rc : crc;
}

static int grep_errors(const char *path) {
  loom_stream_t *s;
  int rc = loom_file_stream_open(&s, path);
  if (rc) return rc;
  char line[256], found[8][256];
  int lines = 0, nfound = 0;
  ssize_t n;
  while ((n = loom_read_line(s, line, sizeof(line))) > 0) { /* async for line in f */
    lines++;
    if (strstr(line, "ERROR") && nfound < 8) {
      line[strcspn(line, "\r\n")] = '\0'; /* line.strip() */
      snprintf(found[nfound++], sizeof(found[0]), "%s", line);
    }
  }
  loom_close(s);
  if (n < 0) return (int)n;
  printf("large.log: %d lines, %d with ERROR:\n", lines, nfound);
  for (int i = 0; i < nfound; i++) printf("%s\n", found[i]);
  return 0;
}

static int amain(void *arg) {
  (void)arg;
  char dir[64], json[128], log[128];
  int rc = loom_fs_mkdtemp("/tmp/write_read_lines-XXXXXX", dir, sizeof(dir));
  if (rc < 0) return rc;
  snprintf(json, sizeof(json), "%s/data.json", dir);
  snprintf(log, sizeof(log), "%s/large.log", dir);
  rc = write_json(json);
  if (rc == 0) rc = read_json(json);
  if (rc == 0) rc = write_log(log);
  if (rc == 0) rc = grep_errors(log);
  loom_fs_unlink(json);
  loom_fs_unlink(log);
  loom_fs_rmdir(dir);
  return rc;
}

int main(void) {
  int rc = loom_run(amain, NULL);
  if (rc) {
    fprintf(stderr, "write_read_lines: %s\n", loom_strerror(rc));
    return 1;
  }
  return 0;
}
