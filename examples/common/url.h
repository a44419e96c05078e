/* url.h: the little URL parser the HTTP examples share (http_get.c,
 * http_head.c), as urllib.parse.urlsplit would split an http:// URL.
 *
 * A header of static functions rather than a library: each example stays
 * one C file plus what it includes, built exactly as a user's program would
 * be. Include it as "common/url.h" from an example's directory.
 */
#ifndef LOOM_EXAMPLES_URL_H
#define LOOM_EXAMPLES_URL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <loom.h>

typedef struct {
  char host[256]; /* without the brackets of an IPv6 address */
  int port;
  char path[1024];
} url_t;

/* Splits "http://host[:port][/path]". Returns 0, UV_EPROTONOSUPPORT for
 * https (loom has no TLS), UV_EINVAL otherwise. */
static inline int parse_url(const char *url, url_t *u) {
  const char *p;
  if (strncmp(url, "http://", 7) == 0)
    p = url + 7;
  else if (strncmp(url, "https://", 8) == 0)
    return UV_EPROTONOSUPPORT; /* no TLS in loom */
  else
    return UV_EINVAL;
  const char *host = p, *host_end;
  if (*p == '[') { /* [::1] */
    host = ++p;
    p = strchr(p, ']');
    if (!p) return UV_EINVAL;
    host_end = p++;
  } else {
    p += strcspn(p, ":/?#");
    host_end = p;
  }
  size_t hlen = (size_t)(host_end - host);
  if (hlen == 0 || hlen >= sizeof u->host) return UV_EINVAL;
  memcpy(u->host, host, hlen);
  u->host[hlen] = '\0';
  u->port = 80;
  if (*p == ':') {
    char *end;
    long port = strtol(p + 1, &end, 10);
    if (end == p + 1 || port < 1 || port > 65535) return UV_EINVAL;
    u->port = (int)port;
    p = end;
  }
  if (*p != '\0' && *p != '/' && *p != '?' && *p != '#') return UV_EINVAL;
  /* The path and query go to the server; a #fragment does not. */
  size_t plen = strcspn(p, "#");
  if (plen + 2 > sizeof u->path) return UV_EINVAL;
  snprintf(u->path, sizeof u->path, "%s%.*s", *p == '/' ? "" : "/", (int)plen, p);
  return 0;
}

#endif
