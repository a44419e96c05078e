/* loom HTTP client: libcurl's multi interface driven by loom, so that a task
 * performs a transfer with any of libcurl's options (HTTP/1.1, HTTP/2,
 * HTTPS, redirects, proxies, compression...) and suspends until it is done,
 * while thousands of other tasks do the same on the one thread. See
 * docs/http.md.
 *
 * Optional: built when libcurl is found (CMake option LOOM_WITH_CURL), as
 * the library libloom-http (pkg-config loom-http, CMake loom::http), and
 * included on its own, not by <loom.h>:
 *
 *   #include <loom.h>
 *   #include <loom/http.h>      (includes <curl/curl.h>)
 *
 * The easy handles are the caller's, configured with curl_easy_setopt as
 * usual; loom adds them to the runtime's one multi handle (created at the
 * first transfer, cleaned up when the runtime ends) and removes them when
 * the call is over. While loom drives a handle it owns the handle's
 * CURLOPT_PRIVATE (restored afterwards), and, for loom_http_open and
 * loom_http_fetch, its CURLOPT_WRITEFUNCTION and CURLOPT_WRITEDATA (set
 * back to libcurl's defaults afterwards, fwrite to stdout: a handle reused
 * with loom_http_perform needs its own write callback, as with
 * curl_easy_perform).
 *
 * Errors: every function returns 0 (or a count) or a negative loom code.
 * A failed transfer's CURLcode maps to the closest code (loom_http_err):
 * a timeout (CURLOPT_TIMEOUT_MS) is UV_ETIMEDOUT, a refused connection
 * UV_ECONNREFUSED, an unknown host UV_EAI_NONAME, a body over a cap
 * UV_ENOBUFS, and a failure with no such code (a certificate that does not
 * verify, a protocol error) LOOM_EHTTP, loom's own code for "libcurl
 * failed"; the CURLcode itself is handed back alongside
 * (curl_easy_strerror names it; CURLOPT_ERRORBUFFER gives the detail). Like every suspending call, these return UV_ECANCELED when the
 * task is cancelled and UV_ETIMEDOUT when a timeout scope expires: the
 * transfer is then aborted (its connection closed) and the multi handle
 * goes on serving the other transfers.
 */
#ifndef LOOM_HTTP_H
#define LOOM_HTTP_H

#include <curl/curl.h>
#include <sys/types.h>

#include "core.h"
#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- performing a transfer ---------------------------------------------- */

/* Performs the transfer `easy` is set up for (curl_easy_perform's
 * behaviour: the body goes to the handle's own write callback), suspending
 * until it ends. Returns 0 if libcurl reports success, whatever the HTTP
 * status (CURLOPT_FAILONERROR makes 4xx/5xx failures), else the mapped
 * error. *code (may be NULL) receives libcurl's result, or
 * CURLE_ABORTED_BY_CALLBACK if loom ended the transfer (cancellation, a
 * timeout scope) or never started it. The handle's callbacks run on the
 * loop, outside any task: they must not suspend.
 * Errors also: UV_EINVAL (NULL easy), UV_EBUSY (the handle is being
 * performed already), LOOM_ENOTASK, UV_ENOMEM. */
LOOM_EXTERN int loom_http_perform(CURL *easy, CURLcode *code);

/* The loom code for a CURLcode (0 for CURLE_OK). */
LOOM_EXTERN int loom_http_err(CURLcode code);

/* The calling task's runtime's multi handle (created if need be), for
 * multi options such as CURLMOPT_MAX_TOTAL_CONNECTIONS or
 * CURLMOPT_MAX_HOST_CONNECTIONS; NULL outside a task or without memory.
 * Do not change its socket and timer callbacks, add handles to it or clean
 * it up: loom does. */
LOOM_EXTERN CURLM *loom_http_multi(void);

/* ---- streaming a response body ------------------------------------------ */

typedef struct loom_http_resp_s loom_http_resp_t; /* opaque handle */

/* Starts the transfer `easy` is set up for and suspends until the body
 * begins (the first bytes of it have arrived: the status and headers are
 * known, curl_easy_getinfo(CURLINFO_RESPONSE_CODE) and curl_easy_header
 * tell them) or the transfer has ended (an empty body). A transfer that
 * fails before any body fails the open; one that fails after some of it
 * opens, and the reads give that body, then the error. The body is then
 * read with loom_http_read, like a stream: loom holds at most
 * LOOM_HTTP_BUFFER bytes of it (more only if libcurl hands over a bigger
 * piece at once) and pauses the transfer (CURL_WRITEFUNC_PAUSE) while the
 * task does not read, so a body of any size costs flat memory. Close the
 * response with loom_http_close. On error nothing is left open; *code as
 * in loom_http_perform. Errors: those of loom_http_perform. */
LOOM_EXTERN int loom_http_open(loom_http_resp_t **resp, CURL *easy, CURLcode *code);

/* How much of the body loom buffers before it pauses the transfer. */
#define LOOM_HTTP_BUFFER (64u * 1024u)

/* Reads up to n bytes of the body into buf: returns how many (> 0), 0 at
 * the end of a body received in full, or a negative code: the transfer's
 * failure (mapped; loom_http_result gives the CURLcode), UV_ECANCELED /
 * UV_ETIMEDOUT (the transfer stays as it was: a read interrupted by a
 * timeout scope can be retried), UV_EBUSY (another task is reading),
 * UV_EBADF (a closed response), UV_EINVAL, LOOM_ENOTASK. Suspends only
 * when nothing is buffered. */
LOOM_EXTERN ssize_t loom_http_read(loom_http_resp_t *resp, void *buf, size_t n);

/* libcurl's result for the transfer: CURLE_OK while it runs or once it has
 * succeeded, else the failure (CURLE_BAD_FUNCTION_ARGUMENT for a closed
 * response). */
LOOM_EXTERN CURLcode loom_http_result(loom_http_resp_t *resp);

/* The easy handle the response reads from (NULL for a closed response). */
LOOM_EXTERN CURL *loom_http_easy(loom_http_resp_t *resp);

/* Ends the transfer (aborting it if the body was not read to the end),
 * removes the easy handle from the multi handle and frees the response;
 * the easy handle stays the caller's. Does not suspend. A response left
 * open when the runtime ends is closed then, and reported. Returns 0,
 * UV_EINVAL for NULL, UV_EBUSY while another task is blocked reading it
 * (cancel that task first), or UV_EBADF for a response already closed:
 * the handle is checked, as a stream's is, so using it after the close is
 * an error code, never a use of freed memory. */
LOOM_EXTERN int loom_http_close(loom_http_resp_t *resp);

/* ---- a whole body into memory ------------------------------------------- */

typedef struct {
  char *data;    /* the body, NUL-terminated (not counted in len);
                    malloc'd: free() it. NULL on failure. */
  size_t len;    /* its length in bytes */
  long status;   /* the HTTP status of the last response (0: none) */
  CURLcode code; /* libcurl's result, as in loom_http_perform */
} loom_http_body_t;

/* GET url into memory, following redirects (up to 10), with certificate
 * verification on. A body over `max` bytes fails the transfer with
 * UV_ENOBUFS, whether the server announces its size or not. out->status is
 * set whatever the HTTP status is (a 404 returns 0 with status 404).
 * Errors: those of loom_http_perform, UV_EINVAL (NULL url or out). */
LOOM_EXTERN int loom_http_get(const char *url, size_t max, loom_http_body_t *out);

/* loom_http_get for a handle the caller has set up (URL, options): the body
 * goes to memory, at most `max` bytes, instead of the write callback. */
LOOM_EXTERN int loom_http_fetch(CURL *easy, size_t max, loom_http_body_t *out);

#ifdef __cplusplus
}
#endif

#endif /* LOOM_HTTP_H */
