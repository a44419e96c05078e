#!/bin/bash
# The real-load benchmark: loom's straightforward servers (examples/
# http_hello.c, examples/mini_redis.c: one loom_write per reply) under real
# load tools, against real servers from Debian's packages:
#
#   HTTP  wrk against http_hello, a callback-style libuv server
#         (hello-libuv.c, which batches its answers by hand), nginx (one
#         worker, a generated config), Node.js's http module (hello.js) and Go's net/http (hello.go,
#         GOMAXPROCS=1): keep-alive with 50 and 1,000 connections, and 16
#         requests pipelined per connection (pipeline.lua) with 50;
#   RESP  redis-benchmark against mini_redis and redis-server (no
#         persistence): PING, SET, GET, INCR with -P 16, and SET/GET with
#         100,000-byte values (-d 100000);
#   idle  memory: 1,000 keep-alive connections (idle.py) each make one
#         request and stay open, idle; the HTTP server's VmRSS and peak RSS
#         (VmHWM) are read meanwhile.
#
# Each server runs on its own core (taskset), the load tool on another; each
# run starts a fresh server process, and the order of the servers rotates
# from round to round. Before any timing, check.py checks every server
# (keep-alive, pipelining, a request split byte by byte, a bad request).
# Prints a Markdown table per suite: requests per second (median over the
# rounds, and the range), the server's CPU time per request (utime + stime
# from /proc), its peak RSS (VmHWM), and loom's ratio to each peer (the
# median of the per-round ratios).
#
#   bench/realload/run.sh [BUILD_DIR]
#
# BUILD_DIR (default: build-bench in the source tree) is configured as a
# Release build with the examples and benchmarks on, and the two examples
# and hello-libuv are built in it.
# Missing tools are installed with apt-get (as root), unless
# LOOM_REALLOAD_NO_INSTALL=1.
#
# Environment:
#   LOOM_REALLOAD_ROUNDS      rounds (default 5)
#   LOOM_REALLOAD_SECONDS     seconds per wrk run (default 5)
#   LOOM_REALLOAD_REQUESTS    redis-benchmark -n for the -P 16 suite
#                             (default 1000000); the 100 kB suite uses a
#                             twentieth of it
#   LOOM_REALLOAD_SUITES      any of http redis idle (default all three)
#   LOOM_REALLOAD_IDLE_CONNS  connections of the idle step (default 1000)
#   LOOM_REALLOAD_HTTP        servers: any of loom libuv nginx node go (default all)
#   LOOM_REALLOAD_REDIS       servers: any of loom redis (default both)
#   LOOM_REALLOAD_SERVER_CPU  the servers' CPU (default 1)
#   LOOM_REALLOAD_CLIENT_CPU  the load tools' CPU (default 0)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$(dirname "$here")")
build=${1:-$src/build-bench}

rounds=${LOOM_REALLOAD_ROUNDS:-5}
secs=${LOOM_REALLOAD_SECONDS:-5}
nreq=${LOOM_REALLOAD_REQUESTS:-1000000}
suites=${LOOM_REALLOAD_SUITES:-http redis idle}
idle_conns=${LOOM_REALLOAD_IDLE_CONNS:-1000}
http_servers=${LOOM_REALLOAD_HTTP:-loom libuv nginx node go}
redis_servers=${LOOM_REALLOAD_REDIS:-loom redis}
scpu=${LOOM_REALLOAD_SERVER_CPU:-1}
ccpu=${LOOM_REALLOAD_CLIENT_CPU:-0}

# say, die, bench_install, bench_cmake, bench_go_env, bench_raise_nofile,
# bench_nginx, bench_wait_server, free_port, port_open, proc_cpu_ticks,
# proc_peak_rss_kib, rotate, AWK_MEDIAN
# shellcheck source=bench/lib.sh
. "$src/bench/lib.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/loom-realload.XXXXXX")
srv_pid=""
stop_server() {
  if [ -n "$srv_pid" ]; then
    kill -TERM "$srv_pid" 2>/dev/null || true
    wait "$srv_pid" 2>/dev/null || true
    srv_pid=""
  fi
}
cleanup() {
  stop_server
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- tools ------------------------------------------------------------------
# Debian's packages: the load tools, the peers, and what the checks use.
bench_install "${LOOM_REALLOAD_NO_INSTALL:-0}" wrk:wrk redis-benchmark:redis-tools \
  redis-server:redis-server nginx:nginx-light node:nodejs go:golang-go python3:python3 \
  taskset:util-linux

# ---- build ------------------------------------------------------------------
bench_cmake "$src" "$build" examples
say "== building"
cmake --build "$build" -j2 --target example-http_hello example-mini_redis hello-libuv >&2

export GOFLAGS=-mod=mod GO111MODULE=off
bench_go_env "$tmp"
case " $http_servers " in *" go "*)
  (cd "$here" && go build -o "$tmp/hello-go" hello.go) >&2 || die "go build hello.go failed" ;;
esac

bench_raise_nofile

srv_pin=(taskset -c "$scpu")
cli_pin=(taskset -c "$ccpu")
say "== servers on CPU $scpu, load tools on CPU $ccpu; $rounds rounds"
say "== $(wrk --version 2>&1 | head -n 1 | cut -c1-60); $(redis-server --version | cut -d' ' -f1-3)"
say "== $(nginx -v 2>&1); node $(node --version); $(go version | cut -d' ' -f3)"

# ---- servers ----------------------------------------------------------------

# start_server NAME: starts it on a free port (sets srv_pid and port) and
# waits until it accepts connections.
start_server() {
  local name=$1 cmd
  port=""
  case $name in
  http-loom) cmd=("$build/examples/http_hello" 0) ;;
  http-libuv) cmd=("$build/bench/realload/hello-libuv" 0) ;;
  http-node) cmd=(node "$here/hello.js" 0) ;;
  http-go) cmd=(env GOMAXPROCS=1 "$tmp/hello-go" 0) ;;
  http-nginx)
    port=$(free_port)
    bench_nginx "$tmp" "127.0.0.1:$port" ;;
  redis-loom) cmd=("$build/examples/mini_redis" 0) ;;
  redis-redis)
    port=$(free_port)
    cmd=(redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no
         --protected-mode no --daemonize no --dir "$tmp" --maxclients 4000) ;;
  *) die "unknown server $name" ;;
  esac
  "${srv_pin[@]}" "${cmd[@]}" >"$tmp/srv.out" 2>"$tmp/srv.err" </dev/null &
  srv_pid=$!
  bench_wait_server "$name" 100
}

# utime + stime of the server, in clock ticks.
cpu_ticks() { proc_cpu_ticks "$srv_pid"; }
peak_rss_kib() { proc_peak_rss_kib "$srv_pid"; }
hz=$(getconf CLK_TCK)

# ---- correctness --------------------------------------------------------------
say "== correctness checks"
for suite in $suites; do
  [ "$suite" = idle ] && continue # the http servers' checks cover it
  servers=$http_servers
  [ "$suite" = redis ] && servers=$redis_servers
  for s in $servers; do
    start_server "$suite-$s"
    if ! python3 "$here/check.py" "$suite" "$port" >"$tmp/check.out"; then
      cat "$tmp/check.out" >&2
      die "$suite-$s failed its checks"
    fi
    say "   $suite-$s: $(paste -sd';' "$tmp/check.out" | sed 's/;/; /g')"
    stop_server
  done
done

# ---- one run -------------------------------------------------------------------
# run_one SUITE CASE SERVER: prints "rps cpu_us_per_request peak_rss_kib".
run_one() {
  local suite=$1 case=$2 s=$3 t0 t1 n rps
  start_server "$suite-$s"
  t0=$(cpu_ticks)
  case $case in
  ka50 | ka1000 | pipe16)
    local conns=50 extra=()
    [ "$case" = ka1000 ] && conns=1000
    [ "$case" = pipe16 ] && extra=(-s "$here/pipeline.lua" "http://127.0.0.1:$port/" -- 16)
    [ "$case" = pipe16 ] || extra=("http://127.0.0.1:$port/")
    "${cli_pin[@]}" wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s "${extra[@]}" >"$tmp/load.out" 2>&1
    # "  1234567 requests in 5.00s, ..." and "Requests/sec: 246913.40"
    n=$(awk '/ requests in / { print $1 }' "$tmp/load.out")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$tmp/load.out")
    if grep -q 'Non-2xx\|Socket errors' "$tmp/load.out"; then
      say "   warning: $s $case: $(grep 'Non-2xx\|Socket errors' "$tmp/load.out" | tr -s ' ')"
    fi ;;
  p16 | d100k)
    local args=(-t ping,set,get,incr -n "$nreq" -c 50 -P 16)
    [ "$case" = d100k ] && args=(-t set,get -n $((nreq / 20)) -c 50 -d 100000)
    "${cli_pin[@]}" redis-benchmark -h 127.0.0.1 -p "$port" "${args[@]}" -q --csv \
      >"$tmp/load.out" 2>&1
    # CSV: "test","rps",...; the figure is the mean over the tests' rps, and
    # the requests are n per test.
    rps=$(awk -F'"' '$2 != "test" && NF > 3 { s += $4; k++ } END { if (k) printf "%.1f", s / k }' \
      "$tmp/load.out")
    local tests
    tests=$(awk -F'"' '$2 != "test" && NF > 3' "$tmp/load.out" | wc -l)
    n=$(( ${args[3]} * tests )) ;;
  esac
  t1=$(cpu_ticks)
  local rss
  rss=$(peak_rss_kib)
  stop_server
  if [ -z "$rps" ] || [ -z "$n" ] || [ "$n" = 0 ]; then
    cat "$tmp/load.out" >&2
    die "$s $case: no figure"
  fi
  awk -v r="$rps" -v n="$n" -v c=$((t1 - t0)) -v hz="$hz" -v m="$rss" \
    'BEGIN { printf "%s %.3f %s\n", r, c / hz / n * 1e6, m }'
}

# run_idle SERVER: prints "rss_kib peak_rss_kib" of the HTTP server with
# idle_conns idle keep-alive connections, each having made one request.
run_idle() {
  local s=$1 ipid i rss hwm
  start_server "http-$s"
  rm -f "$tmp/idle.in"
  mkfifo "$tmp/idle.in"
  "${cli_pin[@]}" python3 "$here/idle.py" "$port" "$idle_conns" <"$tmp/idle.in" \
    >"$tmp/idle.out" 2>&1 &
  ipid=$!
  exec 4>"$tmp/idle.in" # idle.py holds its connections until this closes
  for i in $(seq 600); do
    grep -q '^ready' "$tmp/idle.out" && break
    kill -0 "$ipid" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q '^ready' "$tmp/idle.out"; then
    exec 4>&-
    cat "$tmp/idle.out" >&2
    die "idle: $s did not answer $idle_conns connections"
  fi
  sleep 1 # idle, as a server's connections mostly are
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$srv_pid/status")
  hwm=$(peak_rss_kib)
  exec 4>&-
  wait "$ipid" 2>/dev/null || true
  stop_server
  echo "$rss $hwm"
}

# ---- the rounds ---------------------------------------------------------------------
results=$tmp/results
: >"$results"
for suite in $suites; do
  if [ "$suite" = idle ]; then
    for r in $(seq "$rounds"); do
      for s in $http_servers; do
        out=$(run_idle "$s")
        echo "idle c$idle_conns $r $s $out" >>"$results"
        say "   idle $idle_conns connections round $r: $s $out"
      done
    done
    continue
  fi
  servers=$http_servers cases="ka50 ka1000 pipe16"
  [ "$suite" = redis ] && servers=$redis_servers cases="p16 d100k"
  for case in $cases; do
    for r in $(seq "$rounds"); do
      # Rotate the order: each server goes first in some round.
      # shellcheck disable=SC2086
      for s in $(rotate "$r" $servers); do
        out=$(run_one "$suite" "$case" "$s")
        echo "$suite $case $r $s $out" >>"$results"
        say "   $suite $case round $r: $s $out"
      done
    done
  done
done

# ---- the tables ------------------------------------------------------------------------
# table_head FIRST SERVERS: the head of a table with the column FIRST, one
# column a server and one a server but loom for loom's ratio to it.
table_head() {
  local s
  printf '|%s |' "${1:+ $1}"; for s in $2; do printf ' %s |' "$s"; done
  for s in $2; do [ "$s" = loom ] || printf ' loom/%s |' "$s"; done; echo
  printf '|---|'; for s in $2; do printf -- '---|'; done
  for s in $2; do [ "$s" = loom ] || printf -- '---|'; done; echo
}

# results: suite case round server rps cpu_us rss_kib
summarise() {
  local suite=$1 servers=$2 cases=$3
  echo
  echo "### $suite ($rounds rounds; requests/s median [min-max]; server CPU us/request; peak RSS MiB; loom's ratio, median of per-round ratios)"
  echo
  table_head case "$servers"
  for case in $cases; do
    awk -v suite="$suite" -v cs="$case" -v servers="$servers" "$AWK_MEDIAN"'
      $1 == suite && $2 == cs { rps[$4, $3] = $5; cpu[$4, $3] = $6
        if ($7 > rss[$4]) rss[$4] = $7; if ($3 > nr) nr = $3 }
      END {
        ns = split(servers, sv, " ")
        line = "| " cs " |"
        for (i = 1; i <= ns; i++) {
          s = sv[i]; k = 0; lo = ""; hi = ""
          for (r = 1; r <= nr; r++) if ((s, r) in rps) {
            a[++k] = rps[s, r]; c[k] = cpu[s, r]
            if (lo == "" || rps[s, r] < lo) lo = rps[s, r]
            if (hi == "" || rps[s, r] > hi) hi = rps[s, r] }
          if (!k) { line = line " - |"; continue }
          line = line sprintf(" %.0f [%.0f-%.0f], %.2f us, %.1f MiB |", median(a, k), lo, hi,
                              median(c, k), rss[s] / 1024)
        }
        for (i = 1; i <= ns; i++) {
          s = sv[i]; if (s == "loom") continue; k = 0
          for (r = 1; r <= nr; r++) if (((s, r) in rps) && (("loom", r) in rps) && rps[s, r] > 0)
            q[++k] = rps["loom", r] / rps[s, r]
          line = line (k ? sprintf(" %.2fx |", median(q, k)) : " - |")
        }
        print line
      }' "$results"
  done
}

echo "## real load: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, server CPU $scpu, client CPU $ccpu, ${secs}s per wrk run, redis-benchmark -n $nreq"
# results: idle cCONNS round server rss_kib hwm_kib
summarise_idle() {
  echo
  echo "### idle ($rounds rounds; $idle_conns idle keep-alive connections, one request made on each; the server's VmRSS and peak RSS (VmHWM), MiB, median; loom's ratio of peak RSS)"
  echo
  table_head "" "$http_servers"
  awk -v servers="$http_servers" "$AWK_MEDIAN"'
    $1 == "idle" { k = ++n[$4]; rss[$4, k] = $5; hwm[$4, k] = $6 }
    END {
      ns = split(servers, sv, " ")
      line = "| RSS, peak |"
      for (i = 1; i <= ns; i++) {
        s = sv[i]
        if (!n[s]) { line = line " - |"; continue }
        for (k = 1; k <= n[s]; k++) { a[k] = rss[s, k]; b[k] = hwm[s, k] }
        m[s] = median(b, n[s])
        line = line sprintf(" %.1f, %.1f |", median(a, n[s]) / 1024, m[s] / 1024)
      }
      for (i = 1; i <= ns; i++) {
        s = sv[i]; if (s == "loom") continue
        line = line ((m[s] > 0 && m["loom"] > 0) ? sprintf(" %.2fx |", m["loom"] / m[s]) : " - |")
      }
      print line
    }' "$results"
}

for suite in $suites; do
  case $suite in
  http) summarise http "$http_servers" "ka50 ka1000 pipe16" ;;
  redis) summarise redis "$redis_servers" "p16 d100k" ;;
  idle) summarise_idle ;;
  esac
done
echo
echo "ka50/ka1000: wrk -t1 -c50/-c1000, keep-alive; pipe16: 16 requests pipelined per connection, 50 connections (requests/s counts requests)."
echo "p16: redis-benchmark -c 50 -P 16 -t ping,set,get,incr (mean of the four tests' rps); d100k: -c 50 -d 100000 -t set,get."
case " $suites " in *" idle "*)
  echo "idle: $idle_conns connections (bench/realload/idle.py) each make one keep-alive request, then stay open; memory read a second later." ;;
esac
