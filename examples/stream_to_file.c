/* stream_to_file: a download written to a file chunk by chunk, as it
 * arrives, in constant memory.
 *
 * Ports the streaming download ("async I/O patterns", "streaming large
 * data"):
 *
 *     async def stream_download(url: str, dest: str):
 *         async with aiohttp.ClientSession() as session:
 *             async with session.get(url) as resp:
 *                 async with aiofiles.open(dest, 'wb') as f:
 *                     async for chunk in resp.content.iter_chunked(1024 * 64):
 *                         await f.write(chunk)
 *
 * The HTTP client is loom's TCP client and a plain HTTP/1.0 GET (no TLS in
 * loom: http:// only). Each chunk of up to 64 KiB that loom_read returns
 * is written with loom_file_write before the next is read: while the file
 * write runs on libuv's thread pool, the socket is not read, so a slow
 * disk slows the download down (TCP backpressure) instead of piling data
 * up in memory. One 64 KiB buffer is all the program holds.
 *
 *     stream_to_file URL [DEST]   download URL to DEST (default: a file
 *                                 in a new temporary directory, removed
 *                                 at the end)
 *     stream_to_file --selftest   download 32 MiB from a server started
 *                                 in this process on 127.0.0.1, a port
 *                                 the kernel picks, and check the file
 *
 * Output of --selftest:
 *
 *     GET http://127.0.0.1:PORT/32MiB.bin
 *     200 OK, 33554432 bytes
 *     wrote 33554432 bytes in N chunks of at most 65536
 *     file checked: 33554432 bytes, contents match
 *     memory stayed flat: yes (one 64 KiB chunk, at most N KiB read ahead)
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <loom.h>

#include "common/url.h"

#define CHUNK (64 * 1024)
#define SELFTEST_SIZE (32u << 20)

/* The self-test's body: a pattern the check can recompute. */
static char pattern(uint64_t i) { return (char)((i * 131 + (i >> 16)) & 0xff); }

/* ---- the self-test's server -------------------------------------------------- */

static int serve_one(void *arg) {
  loom_listener_t *l = arg;
  loom_stream_t *c;
  int rc = loom_accept(l, &c);
  if (rc) return rc;
  char req[1024];
  ssize_t n = loom_read_until(c, "\r\n\r\n", 4, req, sizeof(req));
  if (n > 0) {
    char head[128];
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.0 200 OK\r\nContent-Length: %u\r\n"
                      "Content-Type: application/octet-stream\r\n\r\n",
                      SELFTEST_SIZE);
    rc = loom_write(c, head, (size_t)hn);
    char *body = malloc(CHUNK);
    for (uint64_t at = 0; rc == 0 && body && at < SELFTEST_SIZE; at += CHUNK) {
      for (uint64_t k = 0; k < CHUNK; k++) body[k] = pattern(at + k);
      rc = loom_write(c, body, CHUNK); /* waits while the client is behind */
    }
    free(body);
  }
  loom_close(c);
  return rc;
}

/* ---- the download ---------------------------------------------------------- */

typedef struct {
  uint64_t bytes, chunks;
  size_t most_buffered; /* the most the stream held beyond our chunk */
  int status;
} result_t;

/* GET url, body to dest, chunk by chunk. */
static int stream_download(const char *url, const char *dest, result_t *res) {
  url_t u;
  int rc = parse_url(url, &u);
  if (rc) return rc;
  loom_stream_t *s;
  rc = loom_tcp_connect(&s, u.host, u.port);
  if (rc) return rc;
  char req[1400];
  int rn = snprintf(req, sizeof(req),
                    "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n", u.path,
                    u.host);
  rc = loom_write(s, req, (size_t)rn);
  char head[8192];
  ssize_t hn = rc ? rc : loom_read_until(s, "\r\n\r\n", 4, head, sizeof(head));
  if (hn < 0) {
    loom_close(s);
    return (int)hn;
  }
  int major, minor;
  char reason[64] = "";
  if (sscanf(head, "HTTP/%d.%d %d %63[^\r\n]", &major, &minor, &res->status, reason) <
      3) {
    loom_close(s);
    return UV_EPROTO;
  }
  long long length = -1;
  for (char *h = strstr(head, "\r\n"); h && h[2] != '\r'; h = strstr(h + 2, "\r\n"))
    if (strncasecmp(h + 2, "Content-Length:", 15) == 0) length = atoll(h + 17);
  printf("%d %s, ", res->status, reason);
  if (length >= 0)
    printf("%lld bytes\n", length);
  else
    printf("length unknown\n");
  if (res->status != 200) {
    loom_close(s);
    return 0;
  }
  loom_file_t *f;
  rc = loom_file_open(&f, dest, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (rc) {
    loom_close(s);
    return rc;
  }
  char *chunk = malloc(CHUNK);
  if (!chunk) rc = UV_ENOMEM;
  /* async for chunk in resp.content.iter_chunked(64 KiB): await f.write */
  while (rc == 0) {
    ssize_t n = loom_read(s, chunk, CHUNK);
    if (n <= 0) {
      rc = (int)n; /* 0: the end */
      break;
    }
    ssize_t w = loom_file_write(f, chunk, (size_t)n);
    /* What arrived while the file write ran, waiting to be read. */
    size_t held = loom_stream_buffered(s);
    if (held > res->most_buffered) res->most_buffered = held;
    if (w < 0) rc = (int)w;
    res->bytes += (uint64_t)n;
    res->chunks++;
  }
  free(chunk);
  int crc = loom_file_close(f);
  loom_close(s);
  if (rc == 0) rc = crc;
  if (rc == 0 && length >= 0 && res->bytes != (uint64_t)length) rc = UV_EPROTO;
  return rc;
}

/* Reads the file back and compares it with the self-test's pattern. */
static int check_file(const char *path, uint64_t *size) {
  loom_file_t *f;
  int rc = loom_file_open(&f, path, O_RDONLY, 0);
  if (rc) return rc;
  char *buf = malloc(CHUNK);
  uint64_t at = 0;
  int same = 1;
  ssize_t n;
  while (buf && (n = loom_file_read(f, buf, CHUNK)) > 0) {
    for (ssize_t k = 0; k < n; k++) same &= buf[k] == pattern(at + (uint64_t)k);
    at += (uint64_t)n;
  }
  free(buf);
  loom_file_close(f);
  *size = at;
  return same ? 0 : UV_EPROTO;
}

typedef struct {
  int argc;
  char **argv;
} args_t;

static int amain(void *p) {
  args_t *a = p;
  int selftest = strcmp(a->argv[1], "--selftest") == 0;
  char url[256], tmpdir[64] = "", dest[256];
  loom_listener_t *l = NULL;
  loom_task_t *server = NULL;
  int rc;
  if (selftest) {
    rc = loom_tcp_listen(&l, "127.0.0.1", 0, 16);
    if (rc) return rc;
    loom_spawn(&server, serve_one, l);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/32MiB.bin", loom_listener_port(l));
  } else {
    snprintf(url, sizeof(url), "%s", a->argv[1]);
  }
  if (a->argc > 2) {
    snprintf(dest, sizeof(dest), "%s", a->argv[2]);
  } else {
    rc = loom_fs_mkdtemp("/tmp/stream_to_file-XXXXXX", tmpdir, sizeof(tmpdir));
    if (rc < 0) return rc;
    snprintf(dest, sizeof(dest), "%s/download.bin", tmpdir);
  }
  printf("GET %s\n", selftest ? "http://127.0.0.1:PORT/32MiB.bin" : url);
  result_t res = {0};
  rc = stream_download(url, dest, &res);
  if (rc == 0 && res.status == 200)
    printf("wrote %llu bytes in %s chunks of at most %d\n", (unsigned long long)res.bytes,
           selftest ? "N" : "some", CHUNK);
  if (server) {
    int st;
    loom_join(server, &st);
    loom_listener_close(l);
    if (rc == 0) rc = st;
  }
  if (rc == 0 && selftest) {
    uint64_t size = 0;
    rc = check_file(dest, &size);
    printf("file checked: %llu bytes, contents %s\n", (unsigned long long)size,
           rc ? "differ" : "match");
    /* The whole download would be 32 MiB in memory. What is held is our
     * chunk and what the stream read ahead, up to its limit (64 KiB,
     * loom_stream_set_limit) plus one read. (Counted rather than measured
     * as resident memory, which sanitizers and Valgrind inflate.) */
    printf("memory stayed flat: %s (one %d KiB chunk, at most %zu KiB read ahead)\n",
           res.most_buffered <= LOOM_STREAM_LIMIT + 64 * 1024 ? "yes" : "no",
           CHUNK / 1024, (res.most_buffered + 1023) / 1024);
  }
  if (tmpdir[0]) {
    loom_fs_unlink(dest);
    loom_fs_rmdir(tmpdir);
  }
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: stream_to_file URL [DEST]\n"
                    "       stream_to_file --selftest\n");
    return 2;
  }
  args_t a = {.argc = argc, .argv = argv};
  int rc = loom_run(amain, &a);
  if (rc) {
    fprintf(stderr, "stream_to_file: %s\n", loom_strerror(rc));
    return 1;
  }
  return 0;
}
