#!/bin/sh
# The echo benchmark: the loom echo server against a callback-style libuv
# server, an asyncio server on uvloop and a Go server (GOMAXPROCS=1), each
# pinned to one CPU with the load client (echo-client) on another, for 64 B
# and 4 KiB messages at 50 and 1000 connections. Prints a Markdown table:
# round trips per second, server CPU time per round trip, the ratios to the
# libuv server, and the verdicts on the targets of docs/benchmarks.md.
#
#   bench/echo/run.sh [BUILD_DIR]
#
# BUILD_DIR (default: build-bench in the source tree) is configured with
# CMAKE_BUILD_TYPE=Release and LOOM_BUILD_BENCH=ON if it has no CMake cache
# yet (an existing one is configured again with LOOM_BUILD_BENCH=ON), and
# the echo targets are built in it. The Go server is built with `go build`
# into a temporary directory (GOPROXY=off, standard library only).
#
# Within each cell (message size x connections) the servers run one after the
# other, each in a fresh process, and the order rotates from round to round.
# A figure is the median over the rounds; a ratio is the median of the
# per-round ratios (each taken between runs of the same round, seconds apart).
# "steal" is the share of the machine's CPU time the hypervisor took during
# the runs: on a VM, figures from runs with much steal are noise.
#
# Environment:
#   LOOM_ECHO_ROUNDS      rounds (default 5)
#   LOOM_ECHO_SECONDS     measured seconds per run (default 2)
#   LOOM_ECHO_WARMUP      seconds of warm-up once every connection has
#                         echoed once (default 0.5)
#   LOOM_ECHO_SIZES       message sizes in bytes (default "64 4096")
#   LOOM_ECHO_CONNS       connection counts (default "50 1000")
#   LOOM_ECHO_SERVERS     any of loom libuv uvloop go (default: all four)
#   LOOM_ECHO_SERVER_CPU  CPU of the server (default: the last allowed one)
#   LOOM_ECHO_CLIENT_CPU  CPU of the client (default: the first allowed one)
#   LOOM_BENCH_PYTHON     interpreter for the uvloop server (default: the first
#                         of /usr/bin/python3, python3 that can import uvloop)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$(dirname "$here")")
build=${1:-$src/build-bench}

rounds=${LOOM_ECHO_ROUNDS:-5}
secs=${LOOM_ECHO_SECONDS:-2}
warm=${LOOM_ECHO_WARMUP:-0.5}
sizes=${LOOM_ECHO_SIZES:-64 4096}
conns_list=${LOOM_ECHO_CONNS:-50 1000}
servers=${LOOM_ECHO_SERVERS:-loom libuv uvloop go}
for s in $servers; do
  case $s in loom|libuv|uvloop|go) ;; *)
    echo "run.sh: unknown server '$s' (loom libuv uvloop go)" >&2; exit 2;;
  esac
done

# say, bench_tmp, bench_cmake, bench_go_env, bench_uvloop_python
. "$src/bench/common.sh"

bench_tmp loom-echo
results=$tmp/results

# ---- build ------------------------------------------------------------------
bench_cmake "$src" "$build"
say "== building"
cmake --build "$build" -j"$(nproc)" --target echo-loom echo-libuv echo-client >&2
bin=$build/bench/echo

# ---- pinning ----------------------------------------------------------------
# The server on the last allowed CPU, the client on the first.
srv_pin="" cli_pin=""
if command -v taskset >/dev/null 2>&1; then
  cpus=$(taskset -cp $$ | sed 's/.*: *//' | tr ',' '\n')
  first=$(echo "$cpus" | head -n 1 | sed 's/-.*//')
  last=$(echo "$cpus" | tail -n 1 | sed 's/.*-//')
  scpu=${LOOM_ECHO_SERVER_CPU:-$last}
  ccpu=${LOOM_ECHO_CLIENT_CPU:-$first}
  if [ "$scpu" = "$ccpu" ]; then
    say "run.sh: warning: server and client share CPU $scpu"
  fi
  srv_pin="taskset -c $scpu"
  cli_pin="taskset -c $ccpu"
  say "== server pinned to CPU $scpu, client to CPU $ccpu"
else
  say "== taskset not found: not pinned"
fi

# 1000 connections need 1000 descriptors on each side.
need=$(( $(echo "$conns_list" | tr ' ' '\n' | sort -n | tail -n 1) + 64 ))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
  ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)" ||
    say "run.sh: warning: cannot raise the descriptor limit to $need"
fi

# ---- the peers' toolchains ----------------------------------------------------
export PYTHONDONTWRITEBYTECODE=1
py=""
case " $servers " in *" uvloop "*) bench_uvloop_python server ;; esac

gobin=""
case " $servers " in *" go "*)
  if command -v go >/dev/null 2>&1; then
    bench_go_env "$tmp"
    export GOMAXPROCS=1
    if (cd "$here" && go build -o "$tmp/echo-go" echo.go) >&2; then
      gobin=$tmp/echo-go
      say "== Go: $(go version)"
    else
      say "run.sh: go build echo.go failed: Go server skipped"
    fi
  else
    say "== go not found: Go server skipped"
  fi ;;
esac

active=""
for s in $servers; do
  case $s in
    uvloop) [ -n "$py" ] && active="$active $s" ;;
    go) [ -n "$gobin" ] && active="$active $s" ;;
    *) active="$active $s" ;;
  esac
done
nact=$(echo $active | wc -w)

# ---- one run --------------------------------------------------------------------
# Starts the server pinned, waits for the port it prints (its first line of
# stdout, through a FIFO: no sleeping), runs the client, stops the server.
fifo=$tmp/port
mkfifo "$fifo"
run_one() { # round server size conns
  case $2 in
    loom) set -- "$@" "$bin/echo-loom" ;;
    libuv) set -- "$@" "$bin/echo-libuv" ;;
    uvloop) set -- "$@" $py "$here/echo_uvloop.py" ;;
    go) set -- "$@" "$gobin" ;;
  esac
  r=$1 name=$2 size=$3 conns=$4
  shift 4
  # shellcheck disable=SC2086
  $srv_pin "$@" 0 >"$fifo" &
  srv_pid=$!
  port=$(head -n 1 "$fifo")
  line=""
  if [ -n "$port" ]; then
    # shellcheck disable=SC2086
    line=$($cli_pin "$bin/echo-client" "$port" "$conns" "$size" "$secs" "$warm" "$srv_pid") || line=""
  fi
  kill "$srv_pid" 2>/dev/null || true
  wait "$srv_pid" 2>/dev/null || true
  srv_pid=""
  if [ -z "$line" ]; then
    say "   $name: FAILED (size $size, $conns connections)"
    echo "# FAILED $name $size $conns" >>"$results"
    return 0
  fi
  say "   $(printf '%-6s' "$name") $line"
  # round server size conns rtps cpu_us server_util client_util steal user_us
  echo "$line" | awk -v r="$r" -v n="$name" '{
      for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
      print r, n, f["size"], f["conns"], f["rtps"], f["cpu_us_per_rt"], \
            f["server_util"], f["client_util"], f["steal"], f["user_us_per_rt"]
    }' >>"$results"
}

# ---- the runs ---------------------------------------------------------------------
: >"$results"
say "== $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
say "== $rounds rounds; per run: warm-up ${warm} s, measured ${secs} s"
r=1
while [ "$r" -le "$rounds" ]; do
  for size in $sizes; do
    for conns in $conns_list; do
      say "== round $r of $rounds: $size B, $conns connections"
      # Rotate the order: round r starts with the r-th server.
      k=$(( (r - 1) % nact )) i=0 order=""
      for s in $active; do
        if [ "$i" -ge "$k" ]; then order="$order $s"; fi
        i=$((i + 1))
      done
      i=0
      for s in $active; do
        if [ "$i" -lt "$k" ]; then order="$order $s"; fi
        i=$((i + 1))
      done
      for s in $order; do run_one "$r" "$s" "$size" "$conns"; done
    done
  done
  r=$((r + 1))
done

# ---- the table ---------------------------------------------------------------------
# "x libuv": the server's figure over the libuv server's (the median of the
# per-round ratios). For round trips, above 1 means faster than libuv; for
# CPU per round trip, above 1 means it costs more.
echo
echo "| size | conns | server | round trips/s | range | x libuv | server CPU us/RT | user part | x libuv | server CPU | client CPU | steal |"
echo "|-----:|------:|--------|--------------:|-------|--------:|-----------------:|----------:|--------:|-----------:|-----------:|------:|"
awk -v servers="$active" '
  !/^#/ {
    r = $1; s = $2; cell = $3 " " $4
    if (!(cell in seen)) { seen[cell] = 1; cells[++nc] = cell }
    for (i = 5; i <= 10; i++) v[cell, s, r, i] = $i + 0
    has[cell, s, r] = 1; if (r > maxr) maxr = r
  }
  function med(a, k,   i, j, t) {
    for (i = 2; i <= k; i++)
      for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  # The median over the rounds of field i of server s (5 round trips/s,
  # 6 CPU us/RT, 7 server CPU share, 8 client CPU share, 9 steal, 10 user
  # us/RT), or of its ratio to server b in the same round. Sets n_, lo, hi.
  function stat(cell, s, i, b,   r, k, a, x) {
    k = 0
    for (r = 1; r <= maxr; r++) {
      if (!has[cell, s, r] || v[cell, s, r, i] < 0) continue
      x = v[cell, s, r, i]
      if (b != "") {
        if (!has[cell, b, r] || v[cell, b, r, i] <= 0) continue
        x = x / v[cell, b, r, i]
      }
      a[++k] = x
      if (k == 1 || x < lo) lo = x
      if (k == 1 || x > hi) hi = x
    }
    n_ = k
    return k ? med(a, k) : -1
  }
  END {
    ns = split(servers, sv, " ")
    for (c = 1; c <= nc; c++) {
      cell = cells[c]; split(cell, f, " ")
      for (i = 1; i <= ns; i++) {
        s = sv[i]
        m = stat(cell, s, 5, ""); if (n_ == 0) continue
        range = sprintf("%.0f-%.0f", lo, hi)
        x = cx = "-"
        if (s != "libuv" && stat(cell, s, 5, "libuv") >= 0) {
          x = sprintf("%.2f", stat(cell, s, 5, "libuv"))
          cx = sprintf("%.2f", stat(cell, s, 6, "libuv"))
        }
        printf "| %s B | %s | %s | %.0f | %s | %s | %.2f | %.2f | %s | %.0f %% | %.0f %% | %.0f %% |\n", \
          f[1], f[2], s, m, range, x, stat(cell, s, 6, ""), stat(cell, s, 10, ""), cx, \
          100 * stat(cell, s, 7, ""), 100 * stat(cell, s, 8, ""), 100 * stat(cell, s, 9, "")
      }
    }
    # Targets (docs/benchmarks.md): loom >= 0.95x the libuv server in every cell,
    # and ahead of uvloop and Go, in round trips per second. The CPU cost
    # per round trip says the same where the server is the bottleneck, with
    # less noise: 0.95x the throughput is 1/0.95 = 1.053x the cost.
    print ""
    print "Targets (round trips/s): loom >= 0.95x the libuv server in every cell; ahead of uvloop and Go."
    all = 1; allc = 1; nc_cost = 0
    for (c = 1; c <= nc; c++) {
      cell = cells[c]; split(cell, f, " ")
      head = sprintf("- %s B, %s connections: ", f[1], f[2])
      if (stat(cell, "loom", 5, "") < 0) { print head "no loom figure"; all = 0; continue }
      parts = ""; cost = ""
      if (stat(cell, "libuv", 5, "") >= 0) {
        x = stat(cell, "loom", 5, "libuv"); ok = x >= 0.95; all = all && ok
        parts = sprintf("loom/libuv = %.2fx (%s)", x, ok ? "met" : "NOT MET")
        y = stat(cell, "loom", 6, "libuv"); okc = y <= 1 / 0.95; allc = allc && okc; nc_cost++
        cost = sprintf(" [CPU per round trip: %.2fx libuv, %s]", y, okc ? "within 1.053x" : "more than 1.053x")
      }
      for (i = 1; i <= ns; i++) {
        s = sv[i]; if (s != "uvloop" && s != "go") continue
        if (stat(cell, s, 5, "") < 0) continue
        y = stat(cell, "loom", 5, s); ok = y > 1; all = all && ok
        parts = parts (parts == "" ? "" : "; ") sprintf("loom/%s = %.2fx (%s)", s, y, ok ? "ahead" : "NOT AHEAD")
      }
      print head parts cost
    }
    print ""
    print "All throughput targets: " (all ? "met" : "NOT MET") \
          "; loom CPU per round trip within 1.053x libuv in every cell: " \
          (nc_cost ? (allc ? "yes" : "no") : "n/a")
  }' "$results"
if grep '^# FAILED' "$results" >&2; then exit 1; fi
exit 0
