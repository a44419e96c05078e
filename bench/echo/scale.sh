#!/bin/sh
# Echo with N runtimes: the loom echo server (echo-loom) running 1, 2, 4...
# runtimes, one per thread, sharing its port with SO_REUSEPORT, loaded by as
# many echo-client processes as it has runtimes (the connections split
# between them). Nothing is pinned: server and clients share the machine's
# CPUs, so on a small machine the figure that matters is the server's CPU
# time per round trip (does a runtime cost more when others run beside
# it?), and the throughput ratio to one runtime says how far it scales
# with the clients on the same cores. Prints a Markdown table.
#
#   bench/echo/scale.sh [BUILD_DIR]
#
# BUILD_DIR as for bench/echo/run.sh (default: build-bench; configured
# Release with LOOM_BUILD_BENCH=ON if new).
#
# Environment:
#   LOOM_ECHO_RUNTIMES  runtime counts (default: 1 2 4 ... up to the CPUs
#                       this process may use, at least "1 2")
#   LOOM_ECHO_ROUNDS    rounds (default 5); the order of the counts
#                       alternates from round to round
#   LOOM_ECHO_SECONDS   measured seconds per run (default 2)
#   LOOM_ECHO_WARMUP    warm-up seconds (default 0.5)
#   LOOM_ECHO_SIZE      message size in bytes (default 64)
#   LOOM_ECHO_CONNS     connections in all (default 100)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$(dirname "$here")")
build=${1:-$src/build-bench}

ncpu=$(nproc)
if [ -z "${LOOM_ECHO_RUNTIMES:-}" ]; then
  LOOM_ECHO_RUNTIMES="1" n=2
  while [ "$n" -le "$ncpu" ] || [ "$n" -eq 2 ]; do
    LOOM_ECHO_RUNTIMES="$LOOM_ECHO_RUNTIMES $n"
    n=$((n * 2))
  done
fi
counts=$LOOM_ECHO_RUNTIMES
rounds=${LOOM_ECHO_ROUNDS:-5}
secs=${LOOM_ECHO_SECONDS:-2}
warm=${LOOM_ECHO_WARMUP:-0.5}
size=${LOOM_ECHO_SIZE:-64}
conns=${LOOM_ECHO_CONNS:-100}

# say, bench_tmp, bench_cmake
. "$src/bench/common.sh"

bench_tmp loom-echo-scale

bench_cmake "$src" "$build"
cmake --build "$build" -j"$ncpu" --target echo-loom echo-client >&2
bin=$build/bench/echo

need=$((conns + 64))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
  ulimit -n "$need" 2>/dev/null || true
fi

# One run: the server with n runtimes, n clients with conns/n connections
# each, all started together; one line per client into $tmp/run.
fifo=$tmp/port
mkfifo "$fifo"
results=$tmp/results
: >"$results"
run_one() { # round n
  r=$1 n=$2
  "$bin/echo-loom" 0 "$n" >"$fifo" &
  srv_pid=$!
  port=$(head -n 1 "$fifo")
  : >"$tmp/run"
  pids=""
  i=0
  while [ "$i" -lt "$n" ]; do
    c=$(( conns / n + (i < conns % n ? 1 : 0) ))
    "$bin/echo-client" "$port" "$c" "$size" "$secs" "$warm" "$srv_pid" >>"$tmp/run" &
    pids="$pids $!"
    i=$((i + 1))
  done
  ok=1
  for p in $pids; do wait "$p" || ok=0; done
  kill "$srv_pid" 2>/dev/null || true
  wait "$srv_pid" 2>/dev/null || true
  srv_pid=""
  if [ "$ok" = 0 ] || [ "$(grep -c '^echo-result' "$tmp/run")" -ne "$n" ]; then
    say "   $n runtime(s): FAILED"
    return 0
  fi
  # Every client saw the server's CPU over (about) the same window: its
  # cpu_us_per_rt times its own round trips is that CPU time. Their mean
  # over the round trips of all clients is the server's cost per round trip.
  awk -v r="$r" -v n="$n" '
    { for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
      rtps += f["rtps"]; rts += f["rts"]; cpu += f["cpu_us_per_rt"] * f["rts"]
      su += f["server_util"]; cu += f["client_util"]; st += f["steal"]; k++ }
    END { printf "%s %s %.0f %.3f %.3f %.3f %.3f\n", r, n, rtps, (cpu / k) / rts, \
            su / k, cu, st / k }' "$tmp/run" | tee -a "$results" |
    awk '{ printf "   %s runtime(s): %.0f round trips/s, %.2f us server CPU per round trip, server %.0f%% CPU, clients %.0f%%, steal %.0f%%\n", $2, $3, $4, 100 * $5, 100 * $6, 100 * $7 }' >&2
}

say "== $ncpu CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
say "== runtimes: $counts; $rounds rounds; $conns connections of $size B; ${secs} s measured"
r=1
while [ "$r" -le "$rounds" ]; do
  order=$counts
  if [ $((r % 2)) -eq 0 ]; then order=$(echo "$counts" | tr ' ' '\n' | sort -rn | tr '\n' ' '); fi
  say "== round $r of $rounds"
  for n in $order; do run_one "$r" "$n"; done
  r=$((r + 1))
done

# Medians over the rounds; ratios to one runtime are medians of the
# per-round ratios.
echo
echo "| runtimes | clients | round trips/s | x 1 runtime | server CPU us/RT | x 1 runtime | server CPU | client CPU | steal |"
echo "|---------:|--------:|--------------:|------------:|-----------------:|------------:|-----------:|-----------:|------:|"
awk -v counts="$counts" '
  { v[$2, $1, 3] = $3; v[$2, $1, 4] = $4; v[$2, $1, 5] = $5; v[$2, $1, 6] = $6
    v[$2, $1, 7] = $7; has[$2, $1] = 1; if ($1 > maxr) maxr = $1 }
  function med(a, k,   i, j, t) {
    for (i = 2; i <= k; i++)
      for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  function stat(n, i, base,   r, k, a) {
    k = 0
    for (r = 1; r <= maxr; r++) {
      if (!has[n, r]) continue
      if (base) { if (!has[1, r] || v[1, r, i] <= 0) continue; a[++k] = v[n, r, i] / v[1, r, i] }
      else a[++k] = v[n, r, i]
    }
    return k ? med(a, k) : -1
  }
  END {
    nc = split(counts, cs, " ")
    for (c = 1; c <= nc; c++) {
      n = cs[c]; if (stat(n, 3, 0) < 0) continue
      printf "| %d | %d | %.0f | %.2f | %.2f | %.2f | %.0f %% | %.0f %% | %.0f %% |\n", n, n,
        stat(n, 3, 0), stat(n, 3, 1), stat(n, 4, 0), stat(n, 4, 1),
        100 * stat(n, 5, 0), 100 * stat(n, 6, 0), 100 * stat(n, 7, 0)
    }
  }' "$results"
