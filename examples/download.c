/* download: stream a large response body to a file, chunk by chunk, in
 * flat memory.
 *
 *     download URL DEST [CA_FILE]
 *
 * Ports the streaming download of "Async I/O patterns" ("handling large
 * streamed data"):
 *
 *     async def stream_download(url: str, dest: str):
 *         async with aiohttp.ClientSession() as session:
 *             async with session.get(url) as resp:
 *                 async with aiofiles.open(dest, 'wb') as f:
 *                     async for chunk in resp.content.iter_chunked(1024 * 64):
 *                         await f.write(chunk)
 *
 * loom_http_open starts the transfer and returns once the body begins;
 * loom_http_read is resp.content.read: it suspends the task until bytes
 * come, and while the task does not read, loom pauses the transfer
 * (libcurl's CURL_WRITEFUNC_PAUSE) after LOOM_HTTP_BUFFER bytes, so memory
 * stays flat whatever the body's size. The file is written with stdio: a
 * local disk write of 64 KiB is short, where aiofiles hands it to a
 * thread. Prints what it saved:
 *
 *     200: 10485760 bytes in 160 chunks to /tmp/big.bin
 */
#include <loom.h>
#include <loom/http.h>
#include <stdio.h>

enum { CHUNK = 64 * 1024 };

typedef struct {
  const char *url, *dest, *ca;
} job_t;

static int stream_download(void *arg) {
  job_t *job = arg;
  static char chunk[CHUNK];
  CURL *easy = curl_easy_init();
  if (!easy) return UV_ENOMEM;
  char err[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(easy, CURLOPT_URL, job->url);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(easy, CURLOPT_FAILONERROR, 1L); /* raise_for_status */
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, err);
  if (job->ca) curl_easy_setopt(easy, CURLOPT_CAINFO, job->ca);

  loom_http_resp_t *resp;
  CURLcode code;
  int rc = loom_http_open(&resp, easy, &code);
  if (rc < 0) {
    fprintf(stderr, "download: %s: %s\n", job->url,
            err[0] ? err : curl_easy_strerror(code));
    curl_easy_cleanup(easy);
    return rc;
  }
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  FILE *f = fopen(job->dest, "wb");
  if (!f) {
    perror(job->dest);
    rc = UV_EIO;
  }
  size_t total = 0, chunks = 0;
  ssize_t n;
  while (f && (n = loom_http_read(resp, chunk, sizeof(chunk))) != 0) {
    if (n < 0) {
      fprintf(stderr, "download: %s: %s\n", job->url,
              err[0] ? err : curl_easy_strerror(loom_http_result(resp)));
      rc = (int)n;
      break;
    }
    if (fwrite(chunk, 1, (size_t)n, f) != (size_t)n) {
      perror(job->dest);
      rc = UV_EIO;
      break;
    }
    total += (size_t)n;
    chunks++;
  }
  if (f && fclose(f) != 0 && rc == 0) rc = UV_EIO;
  loom_http_close(resp);
  curl_easy_cleanup(easy);
  if (rc == 0)
    printf("%ld: %zu bytes in %zu chunks to %s\n", status, total, chunks, job->dest);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: %s URL DEST [CA_FILE]\n", argv[0]);
    return 2;
  }
  job_t job = {.url = argv[1], .dest = argv[2], .ca = argc > 3 ? argv[3] : NULL};
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = loom_run(stream_download, &job);
  curl_global_cleanup();
  return rc < 0 ? 1 : 0;
}
