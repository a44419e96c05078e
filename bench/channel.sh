#!/bin/sh
# The cross-runtime channel benchmark: bench-channel (a producer task on
# one runtime, a consumer task on another, each runtime on its own thread)
# against a Go channel between two goroutines at GOMAXPROCS=2
# (peers/channel.go), for capacities 1 and 128. Both run on the same two
# CPUs (taskset -c LOOM_CHANNEL_TASKSET, default 0,1): the point is two
# threads on two cores. loom runs twice: with its two threads free to move
# between those CPUs ("loom"), and with each pinned to one of them
# ("loom-pinned", LOOM_CHANNEL_CPUS), which keeps them off each other's
# CPU but leaves each to share its CPU with whatever else runs there.
# They alternate, round after round; a figure is the median over the
# rounds, a ratio the median of the per-round ratios. Prints a Markdown
# table and the verdict on the target (loom <= Go per item).
#
#   bench/channel.sh [BUILD_DIR]
#
# BUILD_DIR (default: build-bench in the source tree) is configured with
# CMAKE_BUILD_TYPE=Release and LOOM_BUILD_BENCH=ON if it has no CMake cache
# yet. Environment: LOOM_CHANNEL_ROUNDS (default 5), and bench.h's
# LOOM_BENCH_TARGET_S / LOOM_BENCH_REPS for each run.
#
# Wall-clock figures on a loaded machine measure the scheduler as much as
# the channel; where `perf stat` works, a second table gives what stays
# put: system calls, context switches and CPU time (both threads) per
# item, from one run of LOOM_CHANNEL_PERF_ITEMS items per shape (default
# 100000 at capacity 1, 20 times that at 128; LOOM_CHANNEL_PERF=0 skips
# it).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=${1:-$src/build-bench}
rounds=${LOOM_CHANNEL_ROUNDS:-5}
cpuset=${LOOM_CHANNEL_TASKSET:-0,1}
pin() {
  if command -v taskset >/dev/null 2>&1; then taskset -c "$cpuset" "$@"; else "$@"; fi
}
first=${cpuset%%,*}
second=${cpuset#*,}
second=${second%%,*}
# say, bench_tmp, bench_cmake, bench_go_env
. "$src/bench/common.sh"

bench_tmp loom-channel

bench_cmake "$src" "$build"
cmake --build "$build" -j"$(nproc)" --target bench-channel >&2

gobin=""
if command -v go >/dev/null 2>&1; then
  bench_go_env "$tmp"
  if (cd "$here/peers" && go build -o "$tmp/channel-go" channel.go) >&2; then
    gobin=$tmp/channel-go
    say "== Go: $(go version)"
  fi
else
  say "== go not found: the Go peer is skipped"
fi

say "== CPUs $cpuset of $(nproc) (taskset), GOMAXPROCS=2"
say "== $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
results=$tmp/results
: >"$results"
r=1
while [ "$r" -le "$rounds" ]; do
  say "== round $r of $rounds"
  loom() {
    pin "$build/bench/bench-channel" | sed "s/^/$r /" | tee -a "$results" >&2
    LOOM_CHANNEL_CPUS="$first,$second" pin "$build/bench/bench-channel" |
      sed "s/^/$r /" | tee -a "$results" >&2
  }
  go_peer() {
    [ -z "$gobin" ] || GOMAXPROCS=2 pin "$gobin" | sed "s/^/$r /" | tee -a "$results" >&2
  }
  if [ $((r % 2)) -eq 1 ]; then
    loom
    go_peer
  else
    go_peer
    loom
  fi
  r=$((r + 1))
done

echo
echo "| benchmark | implementation | ns/item | range | x loom |"
echo "|-----------|----------------|--------:|-------|-------:|"
awk '
  $4 ~ /^[0-9.]+$/ {
    r = $1; b = $2; impl = $3; key = b " " impl
    v[key, r] = $4; has[key, r] = 1
    if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    if (r > maxr) maxr = r
  }
  function med(a, k,   i, j, t) {
    for (i = 2; i <= k; i++)
      for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  END {
    nv = 0
    for (i = 1; i <= n; i++) {
      key = order[i]; split(key, p, " "); b = p[1]; impl = p[2]; lk = b " loom"
      k = 0; kr = 0
      for (r = 1; r <= maxr; r++) {
        if (!has[key, r]) continue
        x = v[key, r]; a[++k] = x
        if (k == 1 || x < lo) lo = x
        if (k == 1 || x > hi) hi = x
        if (has[lk, r] && v[lk, r] > 0) q[++kr] = x / v[lk, r]
      }
      m = med(a, k)
      x = "-"
      if (impl != "loom" && kr) {
        x = sprintf("%.2f", med(q, kr))
        if (impl ~ /^go/)
          verdict[++nv] = sprintf("- %s, %s: Go/loom = %sx (%s)", b, impl, x, x + 0 >= 1 ? "met" : "NOT MET")
      }
      printf "| %s | %s | %.1f | %.1f-%.1f | %s |\n", b, impl, m, lo, hi, x
    }
    print ""
    print "Target: loom <= the Go channel per item (x loom >= 1)."
    for (i = 1; i <= nv; i++) print verdict[i]
  }' "$results"

[ "${LOOM_CHANNEL_PERF:-1}" != 0 ] && command -v perf >/dev/null 2>&1 || exit 0
items=${LOOM_CHANNEL_PERF_ITEMS:-100000}
header=0
for shape in channel1 channel128 local1 bare1; do
  n=$items
  [ "$shape" = channel128 ] && n=$((items * 20))
  [ "$shape" = local1 ] && n=$((items * 3))
  LOOM_CHANNEL_ITEMS=$n pin perf stat -x, -o "$tmp/perf" \
    -e raw_syscalls:sys_enter,context-switches,task-clock \
    "$build/bench/bench-channel" "$shape" >"$tmp/out" 2>/dev/null || continue
  line=$(awk -F, -v n="$n" -v b="$shape" -v wall="$(awk '{print $3}' "$tmp/out")" '
    $3 ~ /sys_enter/ { sc = $1 } $3 ~ /context-switches/ { cs = $1 } $3 ~ /task-clock/ { cpu = $1 }
    END {
      if (sc == "" || sc ~ /not/) exit 1
      printf "| %s | %.3f | %.3f | %.0f | %.0f |", b, sc / n, cs / n, cpu * 1e6 / n, wall
    }' "$tmp/perf") || continue
  if [ "$header" = 0 ]; then
    echo
    echo "Per item (perf stat, one run; load $(cut -d' ' -f1 /proc/loadavg)):"
    echo
    echo "| shape | system calls | context switches | CPU ns | wall ns |"
    echo "|-------|-------------:|-----------------:|-------:|--------:|"
    header=1
  fi
  echo "$line"
done
