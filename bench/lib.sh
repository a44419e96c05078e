# shellcheck shell=bash
# bench/lib.sh: what the bash runners of the load benchmarks share
# (bench/realload/run.sh, bench/tls/run.sh). Source it:
#
#   . "$src/bench/lib.sh"
#
# It defines functions only, and sets nothing else.

say() { printf '%s\n' "$*" >&2; }
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
