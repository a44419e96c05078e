/* A program outside the loom tree that uses the optional libraries,
 * libloom-tls (LOOM_CONSUMER_TLS) and libloom-http (LOOM_CONSUMER_HTTP), of
 * an installed loom. Each is driven far enough to cross from the module
 * into libloom's internals and back: a TLS handshake against a peer that
 * hangs up, an HTTP transfer to a port nobody listens on. */
#include <loom.h>
#include <stdio.h>
#ifdef LOOM_CONSUMER_TLS
#include <loom/tls.h>
#endif
#ifdef LOOM_CONSUMER_HTTP
#include <loom/http.h>
#endif

#ifdef LOOM_CONSUMER_TLS
/* Accepts one connection and closes it: the client's handshake fails. */
static int hang_up(void *arg) {
  loom_stream_t *s;
  int rc = loom_accept(arg, &s);
  if (rc == 0) loom_close(s);
  return rc;
}

static int try_tls(void) {
  loom_tls_ctx_t *ctx;
  loom_listener_t *l;
  loom_task_t *t;
  loom_stream_t *s = NULL;
  int rc = loom_tls_ctx_new(&ctx, 0, NULL);
  if (rc) return rc;
  rc = loom_tcp_listen(&l, "127.0.0.1", 0, 1);
  if (rc == 0) {
    rc = loom_spawn(&t, hang_up, l);
    if (rc == 0) {
      rc = loom_tls_connect(&s, "127.0.0.1", loom_listener_port(l), ctx, "localhost");
      loom_cancel(t); /* if the connect failed before the accept */
      loom_join(t, NULL);
    }
    loom_listener_close(l);
  }
  loom_tls_ctx_free(ctx);
  if (rc == 0) {
    loom_close(s);
    return -1; /* a handshake with nobody cannot succeed */
  }
  if (rc == UV_EINVAL || rc == UV_ENOMEM) return rc;
  printf("consumer-modules: tls handshake with a peer that hangs up: %s\n",
         loom_err_name(rc));
  return 0;
}
#endif

#ifdef LOOM_CONSUMER_HTTP
static int try_http(void) {
  loom_http_body_t body = {0};
  int rc = loom_http_get("http://127.0.0.1:1/", 1024, &body);
  if (rc == 0) return -1; /* nobody listens on port 1 */
  if (rc == UV_EINVAL || rc == UV_ENOMEM) return rc;
  printf("consumer-modules: http get from a closed port: %s\n", loom_err_name(rc));
  return 0;
}
#endif

static int main_task(void *arg) {
  (void)arg;
  int rc = 0;
#ifdef LOOM_CONSUMER_TLS
  if (rc == 0) rc = try_tls();
#endif
#ifdef LOOM_CONSUMER_HTTP
  if (rc == 0) rc = try_http();
#endif
  return rc;
}

int main(void) { return loom_run(main_task, NULL) == 0 ? 0 : 1; }
