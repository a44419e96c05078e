/* TLS streams (loom/tls.h) against loom itself and the real tools:
 * `openssl s_server` and `openssl s_client` started by the tests (on a
 * free port, killed at the end), and `curl --cacert`. The certificates are
 * made by tests/tls-certs.sh with the openssl tool in a temporary
 * directory: a CA, a server certificate for localhost and 127.0.0.1, one
 * for other.test (SNI, the wrong host), an expired one, a client
 * certificate, and a self-signed one (an unknown CA). Without the openssl
 * (or curl) tool the tests that need it report SKIPPED with the reason.
 *
 * Tasks record what they see; the asserts run on the main stack once
 * loom_run has returned (helpers.h). */
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "helpers.h"
#include "loom.h"
#include "loom/process.h"
#include "loom/tls.h"
#include "remove-tree.h"
#include "tls-byte-exchange.h"

static char certdir[256];
static int have_certs;

static const char *cert(const char *name) {
  static char buf[8][320];
  static int i;
  char *b = buf[i++ % 8];
  snprintf(b, sizeof(buf[0]), "%s/%s", certdir, name);
  return b;
}

static int have_tool(const char *tool) {
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
  return system(cmd) == 0;
}

static int need_certs(void) {
  if (!have_certs) print_message("SKIPPED: the openssl tool is missing (certificates)\n");
  return have_certs;
}

static int setup_certs(void **state) {
  (void)state;
  const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(certdir, sizeof(certdir), "%s/loom-tls-XXXXXX", tmp);
  if (!mkdtemp(certdir)) return -1;
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "sh %s %s", TLS_CERTS_SH, certdir);
  have_certs = system(cmd) == 0;
  return 0;
}

static int teardown_certs(void **state) {
  (void)state;
  return remove_tree(certdir);
}

/* ---- contexts ---------------------------------------------------------------- */

static loom_tls_ctx_t *server_ctx(const char *name, const loom_tls_opts_t *extra) {
  loom_tls_opts_t o = extra ? *extra : (loom_tls_opts_t){0};
  char c[64], k[64];
  snprintf(c, sizeof(c), "%s.pem", name);
  snprintf(k, sizeof(k), "%s.key", name);
  o.cert_file = cert(c);
  o.key_file = cert(k);
  loom_tls_ctx_t *ctx = NULL;
  int rc = loom_tls_ctx_new(&ctx, 1, &o);
  if (rc)
    fprintf(stderr, "server ctx: %s: %s\n", loom_strerror(rc), loom_tls_last_error(NULL));
  return ctx;
}

static loom_tls_ctx_t *client_ctx(const loom_tls_opts_t *extra) {
  loom_tls_opts_t o = extra ? *extra : (loom_tls_opts_t){0};
  if (!o.ca_file) o.ca_file = cert("ca.pem");
  loom_tls_ctx_t *ctx = NULL;
  int rc = loom_tls_ctx_new(&ctx, 0, &o);
  if (rc)
    fprintf(stderr, "client ctx: %s: %s\n", loom_strerror(rc), loom_tls_last_error(NULL));
  return ctx;
}

/* The start of most tests: skipped without the certificates, then fn run
 * as the main task with r, and its result checked. */
static void run_tls(int (*fn)(void *), void *r) {
  if (!need_certs()) skip();
  assert_loom_ok(loom_run(fn, r));
}

/* ---- the set-up most tests share --------------------------------------------- */

/* A server context, a client context and a TLS server on a free port of
 * 127.0.0.1: fill in the inputs, call setup_start, and setup_end at the
 * end, whatever happened (it closes the server, giving its handlers a
 * second, then frees the contexts). */
typedef struct {
  const char *cert;      /* the server's certificate: "server" when NULL */
  loom_tls_opts_t so;    /* the server context's options (certificate filled in) */
  loom_tls_opts_t co;    /* the client context's (the test CA filled in) */
  int system_store;      /* the client trusts the system store, not the test CA */
  int no_client;         /* no client context: a tool is the client */
  loom_handler_fn serve; /* served with TLS by setup_start, when set */
  void *arg;
  /* out */
  loom_tls_ctx_t *sctx, *cctx;
  loom_server_t *srv; /* NULL when not serving */
  int port;
  int rc_serve;
} setup_t;

/* Makes the contexts and, with t->serve set, starts the server: 0, or -1
 * if a context could not be made, or loom_tls_serve's error. */
static int setup_start(setup_t *t) {
  t->sctx = server_ctx(t->cert ? t->cert : "server", &t->so);
  if (t->system_store)
    loom_tls_ctx_new(&t->cctx, 0, &t->co);
  else if (!t->no_client)
    t->cctx = client_ctx(&t->co);
  if (!t->sctx || (!t->no_client && !t->cctx)) return -1;
  if (!t->serve) return 0;
  t->rc_serve = loom_tls_serve(&t->srv, "127.0.0.1", 0, t->sctx, t->serve, t->arg, NULL);
  if (t->rc_serve) {
    t->srv = NULL;
    return t->rc_serve;
  }
  t->port = loom_server_port(t->srv);
  return 0;
}

static void setup_end(setup_t *t) {
  if (t->srv) loom_server_close(t->srv, 1000);
  t->srv = NULL;
  loom_tls_ctx_free(t->sctx);
  loom_tls_ctx_free(t->cctx);
}

/* ---- an echo server ---------------------------------------------------------- */

typedef struct {
  int handled;  /* handlers that ran (after a handshake) */
  int lines;    /* lines echoed */
  char sni[64]; /* the last client's SNI */
  char alpn[32];
  int reused;
} echo_stats_t;

static int echo_handler(loom_stream_t *s, void *arg) {
  echo_stats_t *st = arg;
  st->handled++;
  const char *n = loom_tls_server_name(s);
  snprintf(st->sni, sizeof(st->sni), "%s", n ? n : "");
  const char *a = loom_tls_alpn(s);
  snprintf(st->alpn, sizeof(st->alpn), "%s", a ? a : "");
  st->reused += loom_tls_session_reused(s);
  char buf[64 * 1024];
  ssize_t n2;
  while ((n2 = loom_read(s, buf, sizeof(buf))) > 0) {
    if (loom_write(s, buf, (size_t)n2) != 0) break;
    st->lines++;
  }
  loom_close(s);
  return 0;
}

/* ---- loom client against loom server ----------------------------------------- */

typedef struct {
  int rc_ctx, rc_serve, rc_connect, rc_line, rc_exact, rc_until, rc_shut, rc_all;
  char line[64], until[64], version[16], alpn[32];
  int big_ok;
  char *all;
  size_t all_len;
  echo_stats_t st;
} loop_t;

#define BIG (1u << 20)

static int main_loopback(void *arg) {
  loop_t *r = arg;
  setup_t t = {.so = {.alpn = "http/1.1,h2"},
               .co = {.alpn = "h2,http/1.1"},
               .serve = echo_handler,
               .arg = &r->st};
  int rc = setup_start(&t);
  r->rc_ctx = t.sctx && t.cctx ? 0 : -1;
  r->rc_serve = t.rc_serve;
  loom_stream_t *s;
  if (rc == 0) r->rc_connect = loom_tls_connect(&s, "127.0.0.1", t.port, t.cctx, NULL);
  if (rc == 0 && r->rc_connect == 0) {
    snprintf(r->version, sizeof(r->version), "%s", loom_tls_version(s));
    snprintf(r->alpn, sizeof(r->alpn), "%s", loom_tls_alpn(s) ? loom_tls_alpn(s) : "");
    loom_write(s, "hello\n", 6);
    r->rc_line = (int)loom_read_line(s, r->line, sizeof(r->line));
    loom_write(s, "a;b;", 4);
    r->rc_until = (int)loom_read_until(s, ";", 1, r->until, sizeof(r->until));
    /* 1 MiB each way: the echo reads while this task writes, so both
     * queues and both windows fill; a writer task and this reader. */
    char *big = malloc(BIG), *back = malloc(BIG);
    for (size_t i = 0; i < BIG; i++) big[i] = (char)(i * 7 + 3);
    loom_write(s, big, BIG);
    r->rc_exact = loom_read_exactly(s, back, 2, NULL); /* "b;" then big */
    r->rc_exact = r->rc_exact ? r->rc_exact : loom_read_exactly(s, back, BIG, NULL);
    r->big_ok = r->rc_exact == 0 && memcmp(big, back, BIG) == 0;
    loom_write(s, "tail", 4);
    r->rc_shut = loom_shutdown_write(s);
    r->rc_all = loom_read_all(s, &r->all, &r->all_len, 1024);
    free(big);
    free(back);
    loom_close(s);
  }
  setup_end(&t);
  return 0;
}

static void test_loopback(void **state) {
  (void)state;
  loop_t r = {0};
  run_tls(main_loopback, &r);
  assert_loom_ok(r.rc_ctx);
  assert_loom_ok(r.rc_serve);
  assert_loom_ok(r.rc_connect);
  assert_string_equal(r.version, "TLSv1.3");
  assert_string_equal(r.alpn, "http/1.1"); /* the server's preference */
  assert_string_equal(r.st.alpn, "http/1.1");
  assert_int_equal(r.rc_line, 6);
  assert_string_equal(r.line, "hello\n");
  assert_int_equal(r.rc_until, 2);
  assert_string_equal(r.until, "a;");
  assert_loom_ok(r.rc_exact);
  assert_true(r.big_ok);
  assert_loom_ok(r.rc_shut);
  assert_loom_ok(r.rc_all);
  assert_int_equal(r.all_len, 4);
  assert_string_equal(r.all, "tail");
  free(r.all);
  assert_int_equal(r.st.handled, 1);
}

/* A TLS connection to the server on port (verifying name, or 127.0.0.1
 * when NULL) that sends a line and reads it back: 0, the connect's error,
 * or -2 if the echo did not come. *reused (when set): whether it resumed a
 * session. */
static int one_round(loom_tls_ctx_t *cctx, int port, const char *name, int *reused) {
  loom_stream_t *s;
  int rc = loom_tls_connect(&s, "127.0.0.1", port, cctx, name);
  if (rc) return rc;
  char line[16];
  loom_write(s, "x\n", 2);
  /* Reading takes in the session tickets that TLS 1.3 sends after the
   * handshake. */
  if (loom_read_line(s, line, sizeof(line)) != 2) rc = -2;
  if (reused) *reused = loom_tls_session_reused(s);
  loom_close(s);
  return rc;
}

/* ---- verification failures ------------------------------------------------------ */

typedef struct {
  const char *server;   /* certificate the server uses */
  const char *hostname; /* the client's server_hostname (NULL: 127.0.0.1) */
  int system_store;     /* the client trusts the system store, not the test CA */
  int verify_none;
  int rc;
  char err[256];
  int handled;
} vcase_t;

static int main_verify(void *arg) {
  vcase_t *v = arg;
  echo_stats_t st = {0};
  setup_t t = {.cert = v->server,
               .co = {.verify = v->verify_none ? LOOM_TLS_VERIFY_NONE : 0},
               .system_store = v->system_store,
               .serve = echo_handler,
               .arg = &st};
  if (setup_start(&t)) {
    v->rc = -1;
    setup_end(&t);
    return 0;
  }
  v->rc = one_round(t.cctx, t.port, v->hostname, NULL);
  /* (a failed connect is the last call: its error) */
  snprintf(v->err, sizeof(v->err), "%s", loom_tls_last_error(NULL));
  setup_end(&t);
  v->handled = st.handled;
  return 0;
}

/* Runs the case (skipped without the certificates) and checks its result
 * and, when msg is set, that the error says it. */
static void verify_case(vcase_t *v, int want, const char *msg) {
  run_tls(main_verify, v);
  assert_loom_err(v->rc, want);
  if (msg && !strstr(v->err, msg))
    fail_msg("error \"%s\" does not say \"%s\"", v->err, msg);
}

static void test_verify_ok(void **state) {
  (void)state;
  vcase_t v = {.server = "server"};
  verify_case(&v, 0, NULL);
  assert_int_equal(v.handled, 1);
  vcase_t byname = {.server = "server", .hostname = "localhost"};
  verify_case(&byname, 0, NULL);
}

static void test_verify_expired(void **state) {
  (void)state;
  vcase_t v = {.server = "expired"};
  verify_case(&v, LOOM_ETLSVERIFY, "certificate has expired");
  assert_int_equal(v.handled, 0);
}

static void test_verify_wrong_host(void **state) {
  (void)state;
  vcase_t v = {.server = "other", .hostname = "localhost"};
  verify_case(&v, LOOM_ETLSVERIFY, "hostname mismatch");
  vcase_t ip = {.server = "other"}; /* 127.0.0.1: an IP address check */
  verify_case(&ip, LOOM_ETLSVERIFY, "IP address mismatch");
}

static void test_verify_unknown_ca(void **state) {
  (void)state;
  vcase_t v = {.server = "rogue"};
  verify_case(&v, LOOM_ETLSVERIFY, "self-signed certificate");
  /* On by default: the system store does not know the test CA. */
  vcase_t sys = {.server = "server", .system_store = 1};
  verify_case(&sys, LOOM_ETLSVERIFY, "unable to get local issuer certificate");
  /* Off only when asked. */
  vcase_t off = {.server = "rogue", .verify_none = 1};
  verify_case(&off, 0, NULL);
}

/* ---- mutual TLS, SNI, resumption ----------------------------------------------- */

typedef struct {
  int with_cert;
  int rc, rc_line;
  char err[256];
  int handled;
} mtls_t;

static int main_mtls(void *arg) {
  mtls_t *m = arg;
  echo_stats_t st = {0};
  setup_t t = {
      .so = {.ca_file = cert("ca.pem"), .verify_client = LOOM_TLS_CLIENT_REQUIRE},
      .serve = echo_handler,
      .arg = &st};
  if (m->with_cert) {
    t.co.cert_file = cert("client.pem");
    t.co.key_file = cert("client.key");
  }
  if (setup_start(&t)) {
    m->rc = -1;
    setup_end(&t);
    return 0;
  }
  loom_stream_t *s;
  m->rc = loom_tls_connect(&s, "127.0.0.1", t.port, t.cctx, NULL);
  if (m->rc == 0) {
    /* TLS 1.3: the client's handshake ends before the server has checked
     * its certificate; the server's verdict comes with the first read. */
    char line[16];
    loom_write(s, "x\n", 2);
    m->rc_line = (int)loom_read_line(s, line, sizeof(line));
    snprintf(m->err, sizeof(m->err), "%s", loom_tls_last_error(s));
    loom_close(s);
  }
  setup_end(&t);
  m->handled = st.handled;
  return 0;
}

static void test_mtls(void **state) {
  (void)state;
  mtls_t ok = {.with_cert = 1};
  run_tls(main_mtls, &ok);
  assert_loom_ok(ok.rc);
  assert_int_equal(ok.rc_line, 2);
  assert_int_equal(ok.handled, 1);
  mtls_t no = {.with_cert = 0};
  assert_loom_ok(loom_run(main_mtls, &no));
  assert_loom_ok(no.rc);
  assert_loom_err(no.rc_line, LOOM_ETLS);
  if (!strstr(no.err, "certificate required")) fail_msg("error: %s", no.err);
  assert_int_equal(no.handled, 0);
}

typedef struct {
  int rc1, rc2, reused1, reused2, srv_reused;
  char sni[64];
  int rc_sni, rc_cb, rc_cb_default, cb_calls;
  loom_tls_ctx_t *other;
} sess_t;

/* An SNI callback: "cb.other.test" gets the other certificate's context. */
static loom_tls_ctx_t *pick_ctx(const char *name, void *arg) {
  sess_t *r = arg;
  r->cb_calls++;
  return strcmp(name, "cb.other.test") == 0 ? r->other : NULL;
}

static int main_sessions(void *arg) {
  sess_t *r = arg;
  echo_stats_t st = {0};
  setup_t t = {0};
  loom_server_t *srv;
  if (setup_start(&t) ||
      loom_tls_ctx_add_cert(t.sctx, "*.other.test", cert("other.pem"),
                            cert("other.key")) ||
      loom_tls_serve(&srv, "127.0.0.1", 0, t.sctx, echo_handler, &st, NULL)) {
    r->rc1 = -1;
    goto out;
  }
  loom_tls_ctx_t *cctx = t.cctx;
  int port = loom_server_port(srv);
  r->rc1 = one_round(cctx, port, "localhost", &r->reused1);
  r->rc2 = one_round(cctx, port, "localhost", &r->reused2);
  r->srv_reused = st.reused;
  r->rc_sni = one_round(cctx, port, "www.other.test", NULL);
  snprintf(r->sni, sizeof(r->sni), "%s", st.sni);
  loom_server_close(srv, 1000);
  /* A callback choosing the context. */
  loom_tls_ctx_t *sctx2 = server_ctx("server", NULL);
  r->other = server_ctx("other", NULL);
  if (sctx2 && r->other && loom_tls_ctx_set_sni(sctx2, pick_ctx, r) == 0 &&
      loom_tls_serve(&srv, "127.0.0.1", 0, sctx2, echo_handler, &st, NULL) == 0) {
    r->rc_cb = one_round(cctx, loom_server_port(srv), "cb.other.test", NULL);
    r->rc_cb_default = one_round(cctx, loom_server_port(srv), "localhost", NULL);
    loom_server_close(srv, 1000);
  } else {
    r->rc_cb = -1;
  }
  loom_tls_ctx_free(sctx2);
  loom_tls_ctx_free(r->other);
out:
  setup_end(&t);
  return 0;
}

static void test_resumption_and_sni(void **state) {
  (void)state;
  sess_t r = {0};
  run_tls(main_sessions, &r);
  assert_loom_ok(r.rc1);
  assert_loom_ok(r.rc2);
  assert_int_equal(r.reused1, 0);
  assert_int_equal(r.reused2, 1);
  assert_int_equal(r.srv_reused, 1);
  /* The second certificate, chosen by SNI, verifies for that name. */
  assert_loom_ok(r.rc_sni);
  assert_string_equal(r.sni, "www.other.test");
  assert_loom_ok(r.rc_cb);
  assert_loom_ok(r.rc_cb_default);
  assert_int_equal(r.cb_calls, 2);
}

/* ---- start_tls ---------------------------------------------------------------------- */

typedef struct {
  loom_tls_ctx_t *sctx;
  int rc_srv_tls, rc_srv_line;
  char srv_line[64];
  int rc_cli_tls, rc_cli_line;
  char cli_line[64];
} starttls_t;

static int starttls_handler(loom_stream_t *s, void *arg) {
  starttls_t *r = arg;
  char line[64];
  /* The client sends its command and, without waiting, its ClientHello:
   * the line read here may bring some of the handshake with it, which the
   * TLS layer must take over. */
  if (loom_read_line(s, line, sizeof(line)) > 0 && strcmp(line, "STARTTLS\n") == 0) {
    r->rc_srv_tls = loom_tls_start(s, r->sctx, 1, NULL);
    if (r->rc_srv_tls == 0) {
      r->rc_srv_line = (int)loom_read_line(s, r->srv_line, sizeof(r->srv_line));
      loom_write(s, "secret reply\n", 13);
    }
  }
  loom_close(s);
  return 0;
}

static int main_starttls(void *arg) {
  starttls_t *r = arg;
  setup_t t = {0};
  int rc = setup_start(&t);
  r->sctx = t.sctx;
  loom_tls_ctx_t *cctx = t.cctx;
  loom_server_t *srv;
  if (rc || loom_serve(&srv, "127.0.0.1", 0, starttls_handler, r, NULL)) {
    r->rc_cli_tls = -1;
    goto out;
  }
  loom_stream_t *s;
  if (loom_tcp_connect(&s, "127.0.0.1", loom_server_port(srv)) == 0) {
    loom_write(s, "STARTTLS\n", 9);
    r->rc_cli_tls = loom_tls_start(s, cctx, 0, "localhost");
    if (r->rc_cli_tls == 0) {
      loom_write(s, "secret line\n", 12);
      r->rc_cli_line = (int)loom_read_line(s, r->cli_line, sizeof(r->cli_line));
    }
    loom_close(s);
  }
  loom_server_close(srv, 1000);
out:
  setup_end(&t);
  return 0;
}

static void test_start_tls(void **state) {
  (void)state;
  starttls_t r = {0};
  run_tls(main_starttls, &r);
  assert_loom_ok(r.rc_cli_tls);
  assert_loom_ok(r.rc_srv_tls);
  assert_string_equal(r.srv_line, "secret line\n");
  assert_string_equal(r.cli_line, "secret reply\n");
}

/* ---- the real tools ----------------------------------------------------------------- */

/* Starts argv with stdin and stdout as pipes (stderr: /dev/null). */
static int spawn_tool(loom_process_t **p, char *const argv[]) {
  loom_process_opts_t o = {0};
  o.stdio[0].kind = LOOM_STDIO_PIPE;
  o.stdio[1].kind = LOOM_STDIO_PIPE;
  o.stdio[2].kind = LOOM_STDIO_DEVNULL;
  return loom_process_spawn(p, argv, &o);
}

typedef struct {
  int rc_spawn, port, rc_connect, rc_line;
  char line[64];
  int rc_reneg_read;
} sserver_t;

/* openssl s_server on a free port (it says which: "ACCEPT 127.0.0.1:N"),
 * in -rev mode (each line comes back reversed), for one connection. */
static int main_s_server(void *arg) {
  sserver_t *r = arg;
  loom_process_t *p;
  char *argv[] = {"openssl", "s_server",
                  "-accept", "127.0.0.1:0",
                  "-cert",   (char *)cert("server.pem"),
                  "-key",    (char *)cert("server.key"),
                  "-rev",    "-naccept",
                  "1",       NULL};
  r->rc_spawn = spawn_tool(&p, argv);
  if (r->rc_spawn) return 0;
  loom_stream_t *out = loom_process_stream(p, 1);
  char line[256];
  loom_scope_t sc;
  loom_timeout_enter(&sc, 10000); /* the tool's lifetime is bounded */
  while (loom_read_line(out, line, sizeof(line)) > 0)
    if (sscanf(line, "ACCEPT 127.0.0.1:%d", &r->port) == 1) break;
  loom_tls_ctx_t *cctx = client_ctx(NULL);
  loom_stream_t *s;
  r->rc_connect = r->port ? loom_tls_connect(&s, "127.0.0.1", r->port, cctx, "localhost")
                          : -1;
  if (r->rc_connect == 0) {
    loom_write(s, "hello tls\n", 10);
    r->rc_line = (int)loom_read_line(s, r->line, sizeof(r->line));
    loom_close(s);
  }
  loom_scope_exit(&sc);
  loom_tls_ctx_free(cctx);
  loom_process_close(p); /* kills it */
  return 0;
}

static void test_client_vs_openssl_s_server(void **state) {
  (void)state;
  sserver_t r = {0};
  run_tls(main_s_server, &r);
  assert_loom_ok(r.rc_spawn);
  assert_true(r.port > 0);
  assert_loom_ok(r.rc_connect);
  assert_string_equal(r.line, "slt olleh\n");
}

/* openssl s_client, trusting the test CA, against the server t is set up
 * to serve (setup_start and setup_end are called here), with the options
 * in opts (NULL-terminated, at most 8) between the common ones and
 * -no_ign_eof (s_client ends at its input's EOF). talk(in, out, arg)
 * speaks to its stdin and stdout; then the tool is waited for (its status
 * into *status, when set) and closed, all within 10 s (the tool's lifetime
 * is bounded). The spawn's result, or -1 without the server. */
static int run_s_client(setup_t *t, const char *const *opts,
                        void (*talk)(loom_stream_t *in, loom_stream_t *out, void *arg),
                        void *arg, int *rc_wait, int *status) {
  if (setup_start(t)) {
    setup_end(t);
    return -1;
  }
  char addr[64];
  snprintf(addr, sizeof(addr), "127.0.0.1:%d", t->port);
  char *argv[16] = {"openssl", "s_client", "-connect",
                    addr,      "-CAfile",  (char *)cert("ca.pem")};
  size_t n = 6;
  for (size_t i = 0; opts[i] && i < 8; i++) argv[n++] = (char *)opts[i];
  argv[n] = "-no_ign_eof"; /* last: -quiet turns ign_eof on */
  loom_process_t *p;
  int rc = spawn_tool(&p, argv);
  if (rc == 0) {
    loom_scope_t sc;
    loom_timeout_enter(&sc, 10000);
    talk(loom_process_stream(p, 0), loom_process_stream(p, 1), arg);
    *rc_wait = loom_process_wait(p, status);
    loom_scope_exit(&sc);
    loom_process_close(p);
  }
  setup_end(t);
  return rc;
}

typedef struct {
  int rc_spawn, rc_line, rc_wait, status;
  char line[64];
  echo_stats_t st;
} sclient_t;

static void talk_ping(loom_stream_t *in, loom_stream_t *out, void *arg) {
  sclient_t *r = arg;
  loom_write(in, "ping over tls\n", 14);
  r->rc_line = (int)loom_read_line(out, r->line, sizeof(r->line));
  loom_close(in); /* EOF: s_client closes */
}

/* openssl s_client against a loom TLS server: what it reads from its stdin
 * goes to the echo server and back to its stdout. */
static int main_s_client(void *arg) {
  sclient_t *r = arg;
  setup_t t = {.so = {.alpn = "h2,http/1.1"},
               .no_client = 1,
               .serve = echo_handler,
               .arg = &r->st};
  static const char *const opts[] = {"-servername", "localhost", "-verify_return_error",
                                     "-alpn",       "http/1.1",  "-quiet",
                                     NULL};
  r->rc_spawn = run_s_client(&t, opts, talk_ping, r, &r->rc_wait, &r->status);
  return 0;
}

static void test_openssl_s_client_vs_server(void **state) {
  (void)state;
  sclient_t r = {0};
  run_tls(main_s_client, &r);
  assert_loom_ok(r.rc_spawn);
  assert_string_equal(r.line, "ping over tls\n");
  assert_loom_ok(r.rc_wait);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.st.handled, 1);
  assert_string_equal(r.st.alpn, "http/1.1");
  assert_string_equal(r.st.sni, "localhost");
}

typedef struct {
  int rc_spawn, rc;
  loom_communicate_t c;
  char req[256];
} curl_t;

static int hello_handler(loom_stream_t *s, void *arg) {
  curl_t *r = arg;
  ssize_t n = loom_read_until(s, "\r\n\r\n", 4, r->req, sizeof(r->req));
  if (n > 0) {
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
                               "Connection: close\r\n\r\nHello, World!";
    loom_write(s, resp, sizeof(resp) - 1);
  }
  loom_close(s);
  return 0;
}

static int main_curl(void *arg) {
  curl_t *r = arg;
  setup_t t = {
      .so = {.alpn = "http/1.1"}, .no_client = 1, .serve = hello_handler, .arg = r};
  if (setup_start(&t)) {
    r->rc_spawn = -1;
    setup_end(&t);
    return 0;
  }
  char url[64];
  snprintf(url, sizeof(url), "https://localhost:%d/hello", t.port);
  char *argv[] = {"curl", "-sS", "--max-time", "10", "--cacert", (char *)cert("ca.pem"),
                  url,    NULL};
  loom_process_t *p;
  r->rc_spawn = spawn_tool(&p, argv);
  if (r->rc_spawn == 0) {
    r->rc = loom_process_communicate(p, &r->c);
    loom_process_close(p);
  }
  setup_end(&t);
  return 0;
}

static void test_curl_vs_server(void **state) {
  (void)state;
  if (!need_certs()) skip();
  if (!have_tool("curl")) {
    print_message("SKIPPED: the curl tool is missing\n");
    skip();
  }
  curl_t r = {0};
  assert_loom_ok(loom_run(main_curl, &r));
  assert_loom_ok(r.rc_spawn);
  assert_loom_ok(r.rc);
  assert_int_equal(r.c.status, 0);
  assert_string_equal(r.c.out, "Hello, World!");
  assert_true(strncmp(r.req, "GET /hello HTTP/1.1\r\n", 21) == 0);
  free(r.c.out);
  free(r.c.err);
}

/* ---- peers that do not speak TLS, or stop speaking it ------------------------------- */

typedef struct {
  int rc_plain, rc_good, rc_client;
  char err[256];
  echo_stats_t st;
} garbage_t;

static int plain_talker(loom_stream_t *s, void *arg) {
  (void)arg;
  loom_write(s, "220 hello, this is not TLS at all\r\n", 35);
  char buf[256];
  loom_read(s, buf, sizeof(buf));
  loom_close(s);
  return 0;
}

static int main_garbage(void *arg) {
  garbage_t *r = arg;
  setup_t t = {.serve = echo_handler, .arg = &r->st};
  loom_server_t *plain;
  if (setup_start(&t) || loom_serve(&plain, "127.0.0.1", 0, plain_talker, NULL, NULL)) {
    r->rc_plain = -1;
    goto out;
  }
  /* A client that sends HTTP instead of a ClientHello: dropped without
   * running the handler; the server goes on serving. */
  loom_stream_t *s;
  if (loom_tcp_connect(&s, "127.0.0.1", t.port) == 0) {
    loom_write(s, "GET / HTTP/1.0\r\n\r\n", 18);
    char *all = NULL;
    size_t len;
    r->rc_plain = loom_read_all(s, &all, &len, 4096);
    free(all);
    loom_close(s);
  }
  r->rc_good = one_round(t.cctx, t.port, "localhost", NULL);
  /* A server that answers in plain text. */
  r->rc_client = loom_tls_connect(&s, "127.0.0.1", loom_server_port(plain), t.cctx, NULL);
  snprintf(r->err, sizeof(r->err), "%s", loom_tls_last_error(NULL));
  loom_server_close(plain, 1000);
out:
  setup_end(&t);
  return 0;
}

static void test_garbage_peers(void **state) {
  (void)state;
  garbage_t r = {0};
  run_tls(main_garbage, &r);
  assert_loom_ok(r.rc_plain); /* an alert, then EOF */
  assert_loom_ok(r.rc_good);
  assert_int_equal(r.st.handled, 1);
  assert_loom_err(r.rc_client, LOOM_ETLS);
  if (!strstr(r.err, "wrong version number") && !strstr(r.err, "packet length"))
    fail_msg("error: %s", r.err);
}

typedef struct {
  int allow;
  int rc;
  char *all;
  size_t len;
  char err[256];
} trunc_t;

static int truncating_handler(loom_stream_t *s, void *arg) {
  (void)arg;
  loom_write(s, "partial", 7);
  /* No close_notify: the TCP connection just ends. */
  SSL_set_quiet_shutdown(loom_tls_ssl(s), 1);
  loom_close(s);
  return 0;
}

static int main_trunc(void *arg) {
  trunc_t *r = arg;
  setup_t t = {.co = {.allow_truncation = r->allow}, .serve = truncating_handler};
  if (setup_start(&t)) {
    r->rc = -1;
    goto out;
  }
  loom_stream_t *s;
  r->rc = loom_tls_connect(&s, "127.0.0.1", t.port, t.cctx, NULL);
  if (r->rc == 0) {
    r->rc = loom_read_all(s, &r->all, &r->len, 1024);
    snprintf(r->err, sizeof(r->err), "%s", loom_tls_last_error(s));
    loom_close(s);
  }
out:
  setup_end(&t);
  return 0;
}

static void test_truncation(void **state) {
  (void)state;
  trunc_t r = {0};
  run_tls(main_trunc, &r);
  assert_loom_err(r.rc, LOOM_ETLSTRUNC);
  if (!strstr(r.err, "close_notify")) fail_msg("error: %s", r.err);
  trunc_t ok = {.allow = 1};
  assert_loom_ok(loom_run(main_trunc, &ok));
  assert_loom_ok(ok.rc);
  assert_int_equal(ok.len, 7);
  assert_string_equal(ok.all, "partial");
  free(ok.all);
}

/* ---- a byte-by-byte peer ------------------------------------------------------------ */

/* The exchange of tls-byte-exchange.h: a proxy in front of a TLS server
 * forwards one byte per write, so each side's handshake sees its peer's
 * flights a byte at a time and parks once per byte. (Cancellation at each
 * of those points is in the shared sweep, tests/test-io-sweep.c.) */
typedef struct {
  int rc_client, rc_line, handled;
  size_t to_client, to_server;
  char line[32];
} bytes_t;

static int main_bytes(void *arg) {
  bytes_t *r = arg;
  setup_t t = {0};
  int rc = setup_start(&t);
  tls_byte_exchange_t x = {.sctx = t.sctx, .cctx = t.cctx};
  if (rc || tls_byte_exchange(&x)) {
    r->rc_client = -100;
    goto out;
  }
  r->rc_client = x.rc_client;
  r->rc_line = x.rc_line;
  memcpy(r->line, x.line, sizeof(r->line));
  r->handled = x.handled;
  r->to_client = x.px.to_client;
  r->to_server = x.px.to_server;
out:
  setup_end(&t);
  return 0;
}

static void test_byte_by_byte(void **state) {
  (void)state;
  bytes_t r = {0};
  run_tls(main_bytes, &r);
  assert_loom_ok(r.rc_client);
  assert_int_equal(r.rc_line, 5);
  assert_string_equal(r.line, "byte\n");
  assert_int_equal(r.handled, 1);
  assert_true(r.to_client > 500 && r.to_server > 200);
}

typedef struct {
  int rc_client, rc_server_side;
  uint64_t client_ms, server_ms;
} hto_t;

static int silent_handler(loom_stream_t *s, void *arg) {
  (void)arg;
  char b[64];
  while (loom_read(s, b, sizeof(b)) > 0) {}
  loom_close(s);
  return 0;
}

static int main_handshake_timeouts(void *arg) {
  hto_t *r = arg;
  echo_stats_t st = {0};
  setup_t t = {.so = {.handshake_timeout_ms = 100}, .serve = echo_handler, .arg = &st};
  loom_server_t *silent;
  if (setup_start(&t) ||
      loom_serve(&silent, "127.0.0.1", 0, silent_handler, NULL, NULL)) {
    r->rc_client = -100;
    goto out;
  }
  /* A client's handshake timeout is a timeout scope. */
  loom_scope_t sc;
  uint64_t t0 = wall_ms();
  loom_timeout_enter(&sc, 100);
  loom_stream_t *s;
  r->rc_client = loom_tls_connect(&s, "127.0.0.1", loom_server_port(silent), t.cctx,
                                  NULL);
  loom_scope_exit(&sc);
  r->client_ms = wall_ms() - t0;
  /* A server drops a client that never says hello. */
  t0 = wall_ms();
  if (loom_tcp_connect(&s, "127.0.0.1", t.port) == 0) {
    char b[64];
    r->rc_server_side = (int)loom_read(s, b, sizeof(b));
    loom_close(s);
  }
  r->server_ms = wall_ms() - t0;
  loom_server_close(silent, 1000);
out:
  setup_end(&t);
  return 0;
}

static void test_handshake_timeouts(void **state) {
  (void)state;
  hto_t r = {0};
  run_tls(main_handshake_timeouts, &r);
  assert_loom_err(r.rc_client, UV_ETIMEDOUT);
  assert_true(r.client_ms >= 90 && r.client_ms < 5000);
  assert_true(r.rc_server_side <= 0); /* EOF (or a reset) */
  assert_true(r.server_ms >= 90 && r.server_ms < 5000);
}

/* ---- renegotiation ---------------------------------------------------------------- */

typedef struct {
  int rc_spawn, saw_echo, rc_wait, end_rc, handled;
} reneg_t;

static int reneg_handler(loom_stream_t *s, void *arg) {
  reneg_t *r = arg;
  r->handled++;
  char buf[256];
  ssize_t n;
  while ((n = loom_read(s, buf, sizeof(buf))) > 0) loom_write(s, buf, (size_t)n);
  r->end_rc = (int)n;
  loom_close(s);
  return 0;
}

static void talk_reneg(loom_stream_t *in, loom_stream_t *out, void *arg) {
  reneg_t *r = arg;
  char line[1024];
  loom_write(in, "hello\n", 6);
  while (loom_read_line(out, line, sizeof(line)) > 0)
    if (strcmp(line, "hello\n") == 0) {
      r->saw_echo = 1;
      break;
    }
  loom_write(in, "R\n", 2);
  while (loom_read_line(out, line, sizeof(line)) > 0) {
  } /* s_client says RENEGOTIATING, then fails (on stderr) */
}

/* openssl s_client (TLS 1.2, where renegotiation exists) asks to
 * renegotiate ("R" on its input): the loom server refuses, and the
 * connection ends with the client's fatal alert. */
static int main_reneg(void *arg) {
  reneg_t *r = arg;
  setup_t t = {.no_client = 1, .serve = reneg_handler, .arg = r};
  static const char *const opts[] = {"-tls1_2", NULL};
  r->rc_spawn = run_s_client(&t, opts, talk_reneg, r, &r->rc_wait, NULL);
  return 0;
}

static void test_renegotiation_refused(void **state) {
  (void)state;
  reneg_t r = {0};
  run_tls(main_reneg, &r);
  assert_loom_ok(r.rc_spawn);
  assert_true(r.saw_echo);
  assert_loom_ok(r.rc_wait);
  assert_int_equal(r.handled, 1);
  assert_loom_err(r.end_rc, LOOM_ETLS); /* and the session ended there */
}

/* ---- close's bounded wait ------------------------------------------------------------ */

typedef struct {
  int rc_write, rc_client;
  uint64_t close_ms; /* from the server's close to the client's end */
  uint64_t t_close;
} cbound_t;

static int flooding_handler(loom_stream_t *s, void *arg) {
  cbound_t *r = arg;
  static char block[256 * 1024];
  loom_scope_t sc;
  loom_timeout_enter(&sc, 200); /* the client reads nothing: writes wait */
  int rc = 0;
  for (int i = 0; i < 64 && rc == 0; i++) rc = loom_write(s, block, sizeof(block));
  loom_scope_exit(&sc);
  r->rc_write = rc;
  r->t_close = wall_ms();
  loom_close(s); /* close_notify cannot go out: the wait is bounded */
  return 0;
}

static int main_close_bound(void *arg) {
  cbound_t *r = arg;
  setup_t t = {.so = {.close_timeout_ms = 100}, .serve = flooding_handler, .arg = r};
  if (setup_start(&t)) {
    r->rc_client = -100;
    goto out;
  }
  loom_stream_t *s;
  r->rc_client = loom_tls_connect(&s, "127.0.0.1", t.port, t.cctx, NULL);
  if (r->rc_client == 0) {
    /* Read nothing until the server has given up, then everything: the
     * stream ends (a reset, or the end without close_notify), it does not
     * hang. */
    while (r->t_close == 0) loom_sleep(10);
    loom_sleep(300);
    static char buf[256 * 1024];
    ssize_t n;
    while ((n = loom_read(s, buf, sizeof(buf))) > 0) {}
    r->rc_client = (int)n;
    r->close_ms = wall_ms() - r->t_close;
    loom_close(s);
  }
out:
  setup_end(&t);
  return 0;
}

static void test_close_wait_is_bounded(void **state) {
  (void)state;
  cbound_t r = {0};
  run_tls(main_close_bound, &r);
  assert_loom_err(r.rc_write, UV_ETIMEDOUT);
  if (r.rc_client != UV_ECONNRESET && r.rc_client != LOOM_ETLSTRUNC)
    fail_msg("client's end: %s", loom_strerror(r.rc_client));
  assert_true(r.close_ms < 5000);
}

/* ---- upload, then close ------------------------------------------------------------ */

/* A client that only writes never reads the session tickets a TLS 1.3
 * server sends after the handshake: closing a socket with unread bytes
 * makes the kernel reset the connection and drop what it had not sent
 * yet. The close must not lose the upload's tail. The server is another
 * process (in this one, its reads would empty the client's kernel buffers
 * before the close), late to read, so the client's kernel still holds some
 * of the upload when the client closes. */
typedef struct {
  int fd; /* the pipe to the parent: the port, then the outcome */
  size_t got;
  int end_rc;
} upload_t;

#define UPLOAD (16u << 20)

static int upload_sink(loom_stream_t *s, void *arg) {
  upload_t *u = arg;
  static char buf[64 * 1024];
  ssize_t n;
  loom_sleep(300);
  while ((n = loom_read(s, buf, sizeof(buf))) > 0) u->got += (size_t)n;
  u->end_rc = (int)n;
  loom_close(s);
  return 0;
}

static int upload_server(void *arg) {
  upload_t *u = arg;
  loom_tls_ctx_t *sctx = server_ctx("server", NULL);
  loom_server_t *srv;
  int port = -1;
  if (sctx && loom_tls_serve(&srv, "127.0.0.1", 0, sctx, upload_sink, u, NULL) == 0)
    port = loom_server_port(srv);
  if (write(u->fd, &port, sizeof(port)) != sizeof(port) || port < 0) return 0;
  loom_scope_t sc;
  loom_timeout_enter(&sc, 20000);
  while (u->end_rc == 0 && u->got < UPLOAD + 1 && loom_server_connections(srv) == 0)
    loom_sleep(5);
  while (loom_server_connections(srv) > 0) loom_sleep(5);
  loom_scope_exit(&sc);
  loom_server_close(srv, 100);
  loom_tls_ctx_free(sctx);
  return 0;
}

typedef struct {
  int port, rc;
} uclient_t;

static int upload_client(void *arg) {
  uclient_t *c = arg;
  loom_tls_ctx_t *cctx = client_ctx(NULL);
  loom_stream_t *s;
  c->rc = cctx ? loom_tls_connect(&s, "127.0.0.1", c->port, cctx, NULL) : -100;
  if (c->rc == 0) {
    static char block[64 * 1024];
    for (size_t i = 0; i < UPLOAD / sizeof(block) && c->rc == 0; i++)
      c->rc = loom_write(s, block, sizeof(block));
    if (c->rc == 0) c->rc = loom_drain(s);
    loom_close(s);
  }
  loom_tls_ctx_free(cctx);
  return 0;
}

static void test_upload_then_close(void **state) {
  (void)state;
  if (!need_certs()) skip();
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    upload_t u = {.fd = fds[1]};
    loom_run(upload_server, &u);
    struct {
      size_t got;
      int end_rc;
    } out;
    memset(&out, 0, sizeof(out)); /* the padding too: it goes down a pipe */
    out.got = u.got;
    out.end_rc = u.end_rc;
    _exit(write(fds[1], &out, sizeof(out)) == sizeof(out) ? 0 : 1);
  }
  close(fds[1]);
  uclient_t c = {0};
  assert_int_equal(read(fds[0], &c.port, sizeof(c.port)), sizeof(c.port));
  assert_true(c.port > 0);
  assert_loom_ok(loom_run(upload_client, &c));
  struct {
    size_t got;
    int end_rc;
  } out = {0, -1};
  assert_int_equal(read(fds[0], &out, sizeof(out)), sizeof(out));
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  assert_loom_ok(c.rc);
  assert_int_equal(out.got, UPLOAD);
  assert_loom_ok(out.end_rc); /* EOF: the client's close_notify */
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_loopback),
    cmocka_unit_test(test_verify_ok),
    cmocka_unit_test(test_verify_expired),
    cmocka_unit_test(test_verify_wrong_host),
    cmocka_unit_test(test_verify_unknown_ca),
    cmocka_unit_test(test_mtls),
    cmocka_unit_test(test_resumption_and_sni),
    cmocka_unit_test(test_start_tls),
    cmocka_unit_test(test_client_vs_openssl_s_server),
    cmocka_unit_test(test_openssl_s_client_vs_server),
    cmocka_unit_test(test_curl_vs_server),
    cmocka_unit_test(test_garbage_peers),
    cmocka_unit_test(test_truncation),
    cmocka_unit_test(test_byte_by_byte),
    cmocka_unit_test(test_handshake_timeouts),
    cmocka_unit_test(test_renegotiation_refused),
    cmocka_unit_test(test_close_wait_is_bounded),
    cmocka_unit_test(test_upload_then_close),
};

int main(void) {
  setup_certs(NULL);
  int rc = HARNESS_RUN(tests);
  teardown_certs(NULL);
  return rc;
}
