#!/bin/sh
# run-with-nginx.sh COMMAND [ARG...]
#
# Runs COMMAND next to a real nginx of its own, serving static files on
# 127.0.0.1 over HTTP and HTTPS (HTTP/2 offered by ALPN), from a temporary
# prefix with its own configuration, on free ports. The HTTPS certificate
# is signed by a test CA made here with `openssl req`, for localhost and
# 127.0.0.1. nginx runs in the foreground as one process (master_process
# off), is stopped on every way out (the EXIT trap) and killed in any case
# after 10 minutes (timeout -s KILL), so that none outlives the test.
#
# COMMAND finds in its environment, and in its arguments as placeholders:
#   LOOM_NGINX_PORT      @PORT@     the HTTP port
#   LOOM_NGINX_TLS_PORT  @TLSPORT@  the HTTPS port
#   LOOM_NGINX_CA        @CA@       the test CA's certificate (PEM)
#   LOOM_NGINX_ROOT      @ROOT@     the document root:
#       hello.txt        "Hello, World!\n"
#       small/<i>.txt    i = 0..199: "file <i>\n" and 1000 bytes of it
#       1k.bin           1024 bytes
#       big.bin          10 MiB of random bytes
#       redirect/<n>     n = 0..20: 302 to redirect/<n-1>, and
#                        redirect/0 to hello.txt
# Exits with COMMAND's status.
#
# Without nginx or openssl, COMMAND still runs, with LOOM_NGINX_SKIP set to
# the reason and no server: the test reports itself SKIPPED with that
# reason rather than passing (with LOOM_NGINX_SKIP_STATUS set, this script
# prints SKIPPED and exits with that status instead: for examples).
#
# No sleeps as synchronisation beyond polling for readiness: nginx writes
# its pid file once it listens on both ports; a port already taken makes it
# exit, and other ports are tried.
set -u
me=run-with-nginx
# shellcheck source=tests/run-with-server.sh
. "$(dirname "$0")/run-with-server.sh"

server_need_command "$@"
nginx=${LOOM_NGINX:-$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; })}
openssl=$(command -v openssl)
if [ -z "$nginx" ] || ! [ -x "$nginx" ]; then
  server_skip LOOM_NGINX_SKIP "nginx not found (Debian package nginx-light)" "$@"
elif [ -z "$openssl" ]; then
  server_skip LOOM_NGINX_SKIP "openssl not found (Debian package openssl)" "$@"
fi

server_scratch nginx TERM 2

# ---- the test CA and the server's certificate -----------------------------
{
  "$openssl" req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$tmp/ca.key" -out "$tmp/ca.pem" -days 2 -subj "/CN=loom test CA" &&
    "$openssl" req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$tmp/server.key" -out "$tmp/server.csr" -subj "/CN=localhost" &&
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$tmp/ext.cnf" &&
    "$openssl" x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
      -CAcreateserial -out "$tmp/server.pem" -days 2 -extfile "$tmp/ext.cnf"
} >"$tmp/openssl.log" 2>&1 || {
  echo "run-with-nginx: openssl failed:" >&2
  cat "$tmp/openssl.log" >&2
  exit 2
}

# ---- the files --------------------------------------------------------------
www=$tmp/www
mkdir -p "$www/small" "$tmp/logs"
printf 'Hello, World!\n' >"$www/hello.txt"
i=0
while [ $i -lt 200 ]; do
  printf 'file %d\n' $i >"$www/small/$i.txt"
  head -c 1000 /dev/zero | tr '\0' 'x' >>"$www/small/$i.txt"
  i=$((i + 1))
done
head -c 1024 /dev/urandom >"$www/1k.bin"
head -c 10485760 /dev/urandom >"$www/big.bin"

# ---- nginx --------------------------------------------------------------------
# shellcheck disable=SC2317 # called by start
write_conf() { # port tls_port
  cat >"$tmp/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/logs/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  default_type application/octet-stream;
  types { text/plain txt; }
  keepalive_requests 1000000;
  client_body_temp_path $tmp/body;
  proxy_temp_path $tmp/proxy;
  fastcgi_temp_path $tmp/fastcgi;
  uwsgi_temp_path $tmp/uwsgi;
  scgi_temp_path $tmp/scgi;
  root $www;
  server {
    listen 127.0.0.1:$1;
    include $tmp/redirects.conf;
  }
  server {
    listen 127.0.0.1:$2 ssl http2;
    ssl_certificate $tmp/server.pem;
    ssl_certificate_key $tmp/server.key;
    include $tmp/redirects.conf;
  }
}
EOF
}
# redirect/<n> -> redirect/<n-1> -> ... -> redirect/0 -> hello.txt
{
  echo 'location = /redirect/0 { return 302 /hello.txt; }'
  n=1
  while [ $n -le 20 ]; do
    echo "location = /redirect/$n { return 302 /redirect/$((n - 1)); }"
    n=$((n + 1))
  done
} >"$tmp/redirects.conf"

# nginx writes its pid file once it listens on both ports.
# shellcheck disable=SC2317 # called by server_start
start() {
  tls_port=$(($1 + 1))
  write_conf "$1" "$tls_port"
  rm -f "$tmp/nginx.pid"
  server_spawn "$nginx" -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/logs/error.log"
}
# shellcheck disable=SC2317 # called by server_start
ready() { [ -s "$tmp/nginx.pid" ]; }
server_start nginx start ready "$tmp/logs/error.log"

LOOM_NGINX_PORT=$port
LOOM_NGINX_TLS_PORT=$tls_port
LOOM_NGINX_CA=$tmp/ca.pem
LOOM_NGINX_ROOT=$www
export LOOM_NGINX_PORT LOOM_NGINX_TLS_PORT LOOM_NGINX_CA LOOM_NGINX_ROOT
server_run @PORT@ "$port" @TLSPORT@ "$tls_port" @CA@ "$LOOM_NGINX_CA" \
  @ROOT@ "$www" -- "$@"
