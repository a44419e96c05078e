/* https_get: fetch a URL over TLS with the certificate verified, and print
 * the status and the headers, then how much body came.
 *
 *     https_get URL [CA_FILE]
 *
 * aiohttp's
 *
 *     async with aiohttp.ClientSession() as session:
 *         async with session.get(url) as resp:
 *             print(resp.status, resp.headers)
 *             body = await resp.read()
 *
 * on libcurl driven by loom (loom/http.h): the task sets up an easy handle,
 * loom_http_perform suspends it until the transfer is done, and the other
 * tasks (none here) would run meanwhile. Verification is libcurl's default
 * and stays on: the peer's certificate must chain to the system's CA store,
 * or to CA_FILE when given (the test points this at a local nginx with a
 * test CA), and name the host. A failure says why, from libcurl's error
 * buffer, and the program exits with status 1. */
#include <loom.h>
#include <loom/http.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  const char *url, *ca;
  int status; /* the program's exit status */
} job_t;

static size_t count_body(char *data, size_t size, size_t n, void *userdata) {
  (void)data;
  *(size_t *)userdata += size * n;
  return size * n;
}

static int fetch(void *arg) {
  job_t *job = arg;
  CURL *easy = curl_easy_init();
  if (!easy) return UV_ENOMEM;
  char err[CURL_ERROR_SIZE] = "";
  size_t body = 0;
  curl_easy_setopt(easy, CURLOPT_URL, job->url);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, err);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, count_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &body);
  /* HTTP/2 when the server offers it (ALPN), else HTTP/1.1. */
  curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  if (job->ca) curl_easy_setopt(easy, CURLOPT_CAINFO, job->ca);

  CURLcode code;
  int rc = loom_http_perform(easy, &code);
  if (rc < 0) {
    printf("GET %s failed: %s (%s)\n", job->url, err[0] ? err : curl_easy_strerror(code),
           loom_err_name(rc));
    curl_easy_cleanup(easy);
    job->status = 1;
    return 0;
  }
  long status = 0, version = 0, verify = -1;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &version);
  curl_easy_getinfo(easy, CURLINFO_SSL_VERIFYRESULT, &verify);
  printf("%s %ld\n", version == CURL_HTTP_VERSION_2_0 ? "HTTP/2" : "HTTP/1.1", status);
  /* The headers of the last response, in the order they came. */
  struct curl_header *h = NULL;
  while ((h = curl_easy_nextheader(easy, CURLH_HEADER, -1, h)))
    printf("%s: %s\n", h->name, h->value);
  printf("%zu bytes of body; certificate %s\n", body,
         verify == 0 ? "verified" : "NOT verified");
  curl_easy_cleanup(easy);
  job->status = status >= 200 && status < 300 ? 0 : 1;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s URL [CA_FILE]\n", argv[0]);
    return 2;
  }
  job_t job = {.url = argv[1], .ca = argc > 2 ? argv[2] : NULL};
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = loom_run(fetch, &job);
  curl_global_cleanup();
  if (rc < 0) {
    fprintf(stderr, "https_get: %s\n", loom_strerror(rc));
    return 1;
  }
  return job.status;
}
