# shellcheck shell=bash
# bench/lib.sh: what the bash runners of the load benchmarks share
# (bench/realload/run.sh, bench/tls/run.sh, bench/subprocess/run.sh).
# Source it:
#
#   . "$src/bench/lib.sh"
#
# It defines functions only, and sets nothing else. It sources
# bench/common.sh (say, bench_cmake, bench_go_env, bench_uvloop_python)
# from the runner's $src.

# shellcheck source=bench/common.sh disable=SC2154 # src: the runner's
. "$src/bench/common.sh"

die() { say "${0##*/}: $*"; exit 1; }

# bench_install CMD:PACKAGE...: installs, with apt-get, the Debian packages
# of the commands not found; as root only, and never when $1 is 1 (the
# runner's NO_INSTALL setting). A freshly installed package's service
# (nginx, redis-server) is stopped, so that it does not run next to the
# servers measured.
bench_install() {
  local no_install=$1 need="" pair
  shift
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need="$need ${pair#*:}"
  done
  [ -n "$need" ] || return 0
  if [ "$no_install" = 1 ] || [ "$(id -u)" != 0 ]; then
    die "missing:$need (apt-get install them, or run as root)"
  fi
  say "== installing:$need"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $need >&2
  local svc
  for svc in redis-server nginx; do
    if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
  done
}

# bench_raise_nofile: 1,000 connections need 1,000 descriptors on each
# side; raises the soft limit to 4096 where it is lower.
bench_raise_nofile() {
  if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
    ulimit -n 4096 2>/dev/null || say "run.sh: warning: cannot raise the descriptor limit"
  fi
}

# bench_nginx TMP LISTEN [SERVER_LINES]: writes TMP/nginx.conf, an nginx of
# one process (no master, one worker's loop: without the master its CPU
# and RSS are the process's own) answering "Hello, World!" on LISTEN
# (e.g. "127.0.0.1:8080 ssl"), with SERVER_LINES added to its server block,
# and sets the array cmd to the command that runs it.
bench_nginx() {
  mkdir -p "$1/nginx"
  cat >"$1/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $1/nginx.pid;
error_log $1/nginx-error.log warn;
worker_rlimit_nofile 8192;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $1/nginx/body;
  proxy_temp_path $1/nginx/proxy;
  fastcgi_temp_path $1/nginx/fastcgi;
  uwsgi_temp_path $1/nginx/uwsgi;
  scgi_temp_path $1/nginx/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {
    listen $2;
${3:-}
    location / { default_type text/plain; return 200 "Hello, World!"; }
  }
}
EOF
  # shellcheck disable=SC2034 # the caller's
  cmd=(nginx -c "$1/nginx.conf" -p "$1/nginx" -e "$1/nginx-error.log")
}

# bench_wait_server NAME TENTHS: waits, up to TENTHS tenths of a second,
# until the server $srv_pid accepts connections on $port; with $port
# empty, on the port of the "serving on ...:PORT" line it prints into
# $tmp/srv.out, which sets port. Shows $tmp/srv.err and dies if the server
# exits or the time runs out.
# shellcheck disable=SC2154 # tmp, srv_pid: the runner's
bench_wait_server() {
  local _
  for _ in $(seq "$2"); do
    if [ -z "$port" ]; then
      port=$(sed -n 's/^serving on .*:\([0-9][0-9]*\).*/\1/p' "$tmp/srv.out" | head -n 1)
    fi
    if [ -n "$port" ] && port_open "$port"; then return 0; fi
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$tmp/srv.err" >&2
  die "$1 did not start"
}

# kill_tree PID [SIGNAL]: signals PID and all its descendants, children
# first (a server started as `{ time server; } &` is a subshell whose
# child is the server).
kill_tree() {
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$c" "${2:-TERM}"; done
  kill -"${2:-TERM}" "$1" 2>/dev/null || true
}

# A port of 127.0.0.1 free right now (the kernel's pick).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# port_open PORT: whether something accepts connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# proc_cpu_ticks PID: its utime + stime, in clock ticks (getconf CLK_TCK).
proc_cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# proc_peak_rss_kib PID: its peak RSS (VmHWM), KiB.
proc_peak_rss_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# rotate N WORD...: the words, the list rotated left by (N - 1) mod their
# count: each goes first in some round.
rotate() {
  local r=$1
  shift
  local k=$(((r - 1) % $#)) i
  for i in $(seq $((k + 1)) $#) $(seq 1 "$k"); do printf '%s ' "${!i}"; done
}

# The awk function median(a, n): the median of a[1..n], sorting a.
# Prepend it to an awk program: awk "$AWK_MEDIAN"' ... '.
# shellcheck disable=SC2034 # used by the runners that source this
AWK_MEDIAN='
  function median(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
      t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }'
