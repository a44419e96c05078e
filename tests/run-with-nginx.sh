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

if [ $# -lt 1 ]; then
  echo "usage: $0 COMMAND [ARG...]" >&2
  exit 2
fi
nginx=${LOOM_NGINX:-$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; })}
openssl=$(command -v openssl)

skip_reason=
if [ -z "$nginx" ] || ! [ -x "$nginx" ]; then
  skip_reason="nginx not found (Debian package nginx-light)"
elif [ -z "$openssl" ]; then
  skip_reason="openssl not found (Debian package openssl)"
fi
if [ -n "$skip_reason" ]; then
  echo "run-with-nginx: $skip_reason" >&2
  if [ -n "${LOOM_NGINX_SKIP_STATUS:-}" ]; then
    echo "SKIPPED: $skip_reason"
    exit "$LOOM_NGINX_SKIP_STATUS"
  fi
  LOOM_NGINX_SKIP=$skip_reason
  export LOOM_NGINX_SKIP
  exec "$@"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/loom-nginx.XXXXXX") || exit 2
pid=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 2' INT TERM HUP

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

port=
for attempt in 1 2 3 4 5 6 7 8 9 10; do
  try=$((20000 + ($(od -An -N2 -tu2 /dev/urandom) % 40000)))
  try2=$((try + 1))
  write_conf "$try" "$try2"
  rm -f "$tmp/nginx.pid"
  timeout -s KILL 600 "$nginx" -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/logs/error.log" &
  pid=$!
  i=0
  while [ $i -lt 100 ]; do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi # exited: port taken
    if [ -s "$tmp/nginx.pid" ]; then
      port=$try
      break
    fi
    i=$((i + 1))
    sleep 0.1
  done
  [ -n "$port" ] && break
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  pid=
done
if [ -z "$port" ]; then
  echo "run-with-nginx: nginx did not start; its log:" >&2
  cat "$tmp/logs/error.log" >&2 2>/dev/null
  exit 2
fi

LOOM_NGINX_PORT=$port
LOOM_NGINX_TLS_PORT=$try2
LOOM_NGINX_CA=$tmp/ca.pem
LOOM_NGINX_ROOT=$www
export LOOM_NGINX_PORT LOOM_NGINX_TLS_PORT LOOM_NGINX_CA LOOM_NGINX_ROOT
# Replace the placeholders in the arguments.
n=$#
while [ "$n" -gt 0 ]; do
  a=$1
  shift
  case $a in
  *@PORT@* | *@TLSPORT@* | *@CA@* | *@ROOT@*)
    a=$(printf '%s' "$a" | sed -e "s|@PORT@|$port|g" -e "s|@TLSPORT@|$try2|g" \
      -e "s|@CA@|$LOOM_NGINX_CA|g" -e "s|@ROOT@|$www|g")
    ;;
  esac
  set -- "$@" "$a"
  n=$((n - 1))
done
"$@"
status=$?
exit $status
