/* DNS on libuv's thread pool: getaddrinfo and getnameinfo as suspending
 * calls. An interrupted lookup is abandoned: libuv is asked to cancel it
 * (possible while it is still queued), and its callback frees whatever it
 * produced. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"

static void on_gai(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  loom__req_t *r = req->data;
  if (loom__req_abandoned(r)) {
    uv_freeaddrinfo(res);
    free(r);
    return;
  }
  r->data = res;
  loom__req_done(r, status);
}

int loom_getaddrinfo(const char *node, const char *service,
                     const struct addrinfo *hints, struct addrinfo **res) {
  if (!res) return UV_EINVAL;
  *res = NULL;
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  loom__req_t *r = loom__req_new();
  if (!r) return UV_ENOMEM;
  rc = uv_getaddrinfo(self->rt->loop, &r->u.gai, on_gai, node, service, hints);
  if (rc) {
    free(r);
    return rc;
  }
  rc = loom__req_wait(r);
  if (rc) return rc;
  rc = r->status;
  *res = r->data;
  free(r);
  return rc;
}

static void on_gni(uv_getnameinfo_t *req, int status, const char *host,
                   const char *service) {
  loom__req_t *r = req->data;
  (void)host;
  (void)service; /* also in req->host / req->service */
  loom__req_done(r, status);
}

int loom_getnameinfo(const struct sockaddr *addr, int flags, char *host,
                     size_t hostlen, char *service, size_t servlen) {
  if (!addr) return UV_EINVAL;
  loom_task_t *self = loom__self();
  int rc = loom__check(self);
  if (rc) return rc;
  loom__req_t *r = loom__req_new();
  if (!r) return UV_ENOMEM;
  rc = uv_getnameinfo(self->rt->loop, &r->u.gni, on_gni, addr, flags);
  if (rc) {
    free(r);
    return rc;
  }
  rc = loom__req_wait(r);
  if (rc) return rc;
  rc = r->status;
  if (rc == 0) {
    if (host && hostlen) snprintf(host, hostlen, "%s", r->u.gni.host);
    if (service && servlen) snprintf(service, servlen, "%s", r->u.gni.service);
  }
  free(r);
  return rc;
}

int loom__resolve(const char *host, int port, int socktype,
                  struct addrinfo **res) {
  if (port < 0 || port > 65535) return UV_EINVAL;
  char service[8];
  snprintf(service, sizeof(service), "%d", port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = socktype;
  hints.ai_flags = AI_NUMERICSERV | (host ? 0 : AI_PASSIVE);
  return loom_getaddrinfo(host, service, &hints, res);
}

const struct sockaddr *loom__local_addr(const char *host, int port, int socktype,
                                       struct sockaddr_storage *ss,
                                       struct addrinfo **res, int *rc) {
  *res = NULL;
  *rc = loom__numeric_addr(host, port, ss);
  if (*rc == 0) return (const struct sockaddr *)ss;
  *rc = loom__resolve(host, port, socktype, res);
  return *rc ? NULL : (*res)->ai_addr;
}

int loom__numeric_addr(const char *host, int port, struct sockaddr_storage *ss) {
  if (port < 0 || port > 65535) return UV_EINVAL;
  memset(ss, 0, sizeof(*ss));
  if (!host) host = "0.0.0.0";
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return UV_EINVAL;
}
