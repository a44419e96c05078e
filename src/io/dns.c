/* Addresses: DNS on libuv's thread pool (getaddrinfo and getnameinfo as
 * suspending calls), numeric addresses parsed without a lookup, the local
 * address every bind starts from, and addresses formatted for people.
 *
 * An interrupted lookup is abandoned: libuv is asked to cancel it
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

int loom_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                     struct addrinfo **res) {
  if (!res) return UV_EINVAL;
  *res = NULL;
  loom_task_t *self;
  loom__req_t *r;
  int rc = loom__req_begin(&self, &r);
  if (rc) return rc;
  rc = loom__req_finish(
      r, uv_getaddrinfo(self->rt->loop, &r->u.gai, on_gai, node, service, hints));
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

int loom_getnameinfo(const struct sockaddr *addr, int flags, char *host, size_t hostlen,
                     char *service, size_t servlen) {
  if (!addr) return UV_EINVAL;
  loom_task_t *self;
  loom__req_t *r;
  int rc = loom__req_begin(&self, &r);
  if (rc) return rc;
  rc = loom__req_finish(r,
                        uv_getnameinfo(self->rt->loop, &r->u.gni, on_gni, addr, flags));
  if (rc) return rc;
  rc = r->status;
  if (rc == 0) {
    if (host && hostlen) snprintf(host, hostlen, "%s", r->u.gni.host);
    if (service && servlen) snprintf(service, servlen, "%s", r->u.gni.service);
  }
  free(r);
  return rc;
}

int loom__resolve(const char *host, int port, int socktype, struct addrinfo **res) {
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

int loom__bind_addr(loom_t **rt, loom__bind_addr_t *a, const char *host, int port,
                    int socktype) {
  *rt = loom_runtime();
  if (!*rt) return LOOM_ENOTASK;
  a->res = NULL;
  a->sa = (const struct sockaddr *)&a->ss;
  if (loom__numeric_addr(host, port, &a->ss) == 0) return 0;
  int rc = loom__resolve(host, port, socktype, &a->res);
  if (rc == 0) a->sa = a->res->ai_addr;
  return rc;
}

int loom__numeric_addr(const char *host, int port, struct sockaddr_storage *ss) {
  if (port < 0 || port > 65535) return UV_EINVAL;
  memset(ss, 0, sizeof(*ss));
  if (!host) host = "0.0.0.0";
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return UV_EINVAL;
}

int loom__addr_port(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

int loom_addr_format(const struct sockaddr *sa, char *buf, size_t size) {
  if (!buf && size) return UV_EINVAL;
  if (size) buf[0] = '\0'; /* what every error leaves */
  if (!sa) return UV_EINVAL;
  /* INET6_ADDRSTRLEN (46) covers the longest IPv6 text, an IPv4-mapped
   * address with its dotted quad. */
  char ip[64], out[96];
  int n;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    int rc = uv_ip4_name(a, ip, sizeof(ip));
    if (rc) return rc;
    n = snprintf(out, sizeof(out), "%s:%d", ip, loom__addr_port(sa));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    int rc = uv_ip6_name(a, ip, sizeof(ip));
    if (rc) return rc;
    /* A link-local address means little without its interface: keep the
     * zone, as getnameinfo does, by number ("[fe80::1%2]:80"). */
    if (a->sin6_scope_id)
      n = snprintf(out, sizeof(out), "[%s%%%u]:%d", ip, (unsigned)a->sin6_scope_id,
                   loom__addr_port(sa));
    else
      n = snprintf(out, sizeof(out), "[%s]:%d", ip, loom__addr_port(sa));
  } else {
    return UV_EAFNOSUPPORT;
  }
  if (n < 0) return UV_EINVAL; /* cannot happen: the format is fixed */
  if ((size_t)n >= size) return UV_ENOSPC;
  memcpy(buf, out, (size_t)n + 1);
  return n;
}
