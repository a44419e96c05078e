#!/bin/sh
# Runs loom's benchmarks and their peers, then prints a table with ratios.
#
#   bench/run.sh [BUILD_DIR] [BENCH...]
#
# BUILD_DIR (default: build-bench in the source tree) is configured with
# CMAKE_BUILD_TYPE=Release and LOOM_BUILD_BENCH=ON if it has no CMake cache
# yet, and built either way. BENCH is any of: switch yield spawn scale gather
# queue lock fairness offload sproc tls (default: all). Every program runs pinned to one CPU
# with taskset when it is available; Go peers run with GOMAXPROCS=1, Python
# peers on uvloop. sproc (spawn + wait of /bin/true) has its own runner,
# bench/subprocess/run.sh, run after the table; so has tls (HTTPS and bulk
# TLS against nginx and openssl, bench/tls/run.sh: LOOM_TLSBENCH_* settings).
#
# Environment:
#   LOOM_BENCH_CPU       CPU to pin to (default: the last one allowed)
#   LOOM_BENCH_PYTHON    interpreter for the uvloop peers (default: the first
#                        of /usr/bin/python3, python3 that can import uvloop)
#   LOOM_BENCH_SCALE_N   tasks in the scale benchmark (default 1000000)
#   LOOM_BENCH_PY_SCALE_N  asyncio tasks in the uvloop scale peer (default
#                        100000: a million take about 25 s; 0 skips it)
#   LOOM_BENCH_ROUNDS    times to run the whole set (default 1); the table
#                        then shows the median over the rounds and the range
#   LOOM_BENCH_REPS, LOOM_BENCH_TARGET_S  runs per figure (5) and seconds per
#                        run (0.15), for every program
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=${1:-$src/build-bench}
[ $# -gt 0 ] && shift
benches=${*:-switch yield spawn scale gather queue lock fairness offload sproc tls}
sproc="" tls=""
for b in $benches; do
  case $b in switch|yield|spawn|scale|gather|queue|lock|fairness|offload) ;;
    sproc) sproc=1 ;;
    tls) tls=1 ;;
    *)
    echo "run.sh: unknown benchmark '$b' (switch yield spawn scale gather queue lock fairness offload sproc tls)" >&2; exit 2;;
  esac
done
benches=$(echo " $benches " | sed 's/ sproc / /g; s/ tls / /g')

tmp=$(mktemp -d "${TMPDIR:-/tmp}/loom-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
results=$tmp/results

# say, bench_cmake, bench_go_env, bench_uvloop_python
. "$src/bench/common.sh"

# ---- build ------------------------------------------------------------------
bench_cmake "$src" "$build"
say "== building"
targets=""
for b in $benches; do targets="$targets --target bench-$b"; done
# shellcheck disable=SC2086
cmake --build "$build" -j"$(nproc)" $targets >&2
bin=$build/bench

# ---- pinning ----------------------------------------------------------------
pin=""
if command -v taskset >/dev/null 2>&1; then
  cpu=${LOOM_BENCH_CPU:-}
  if [ -z "$cpu" ]; then
    # The last CPU of the allowed list, e.g. "0-3,6" -> 6.
    cpu=$(taskset -cp $$ | sed 's/.*: *//' | tr ',' '\n' | tail -n 1 | sed 's/.*-//')
  fi
  pin="taskset -c $cpu"
  say "== pinned to CPU $cpu"
else
  say "== taskset not found: not pinned"
fi

# ---- peers' toolchains ---------------------------------------------------------
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in bench/peers
bench_uvloop_python peers

go=""
if command -v go >/dev/null 2>&1; then
  go=go
  bench_go_env "$tmp"
  export GOMAXPROCS=1 # every Go peer runs on one P
  say "== Go peers: $(go version)"
else
  say "== go not found: Go peers skipped"
fi

gobuild() { # name -> path of the built peer ($tmp/name-go), or nothing
  [ -n "$go" ] || return 0
  if (cd "$here/peers" && go build -o "$tmp/$1-go" "$1.go") >&2; then
    echo "$tmp/$1-go"
  else
    say "run.sh: go build $1.go failed: Go peer skipped"
  fi
}

run() { # command... : runs it pinned, shows and records its output
  # shellcheck disable=SC2086
  { $pin "$@" || echo "# FAILED (exit $?): $*"; } | tee -a "$results"
}

# ---- the benchmarks ----------------------------------------------------------
# Go peers are built once, before anything is timed.
gopeers=""
for b in $benches; do
  case $b in yield|spawn|scale|queue|lock|fairness|offload)
    g=$(gobuild "$b")
    if [ -n "$g" ]; then gopeers="$gopeers $b"; fi ;;
  esac
done
has_go() { case " $gopeers " in *" $1 "*) return 0;; esac; return 1; }

: >"$results"
rounds=${LOOM_BENCH_ROUNDS:-1}
say "== $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
round=1
while [ "$round" -le "$rounds" ]; do
  for b in $benches; do
    say ""
    say "== $b (round $round of $rounds)"
    case $b in
      switch) run "$bin/bench-switch" ;;
      yield)
        run "$bin/bench-yield"
        if has_go yield; then run "$tmp/yield-go"; fi
        if [ -n "$py" ]; then (cd "$here/peers" && run $py yield.py); fi
        ;;
      spawn)
        # One process per batch size: the stack pool remembers earlier ones.
        for batch in 1000 100 10000; do run "$bin/bench-spawn" $batch; done
        if has_go spawn; then run "$tmp/spawn-go"; fi
        if [ -n "$py" ]; then (cd "$here/peers" && run $py spawn.py); fi
        ;;
      gather)
        run "$bin/bench-gather"
        if [ -n "$py" ]; then (cd "$here/peers" && run $py gather.py); fi
        ;;
      queue)
        run "$bin/bench-queue"
        if has_go queue; then run "$tmp/queue-go"; fi
        if [ -n "$py" ]; then (cd "$here/peers" && run $py queues.py); fi
        ;;
      lock)
        run "$bin/bench-lock"
        if has_go lock; then run "$tmp/lock-go"; fi
        if [ -n "$py" ]; then (cd "$here/peers" && run $py locks.py); fi
        ;;
      offload)
        # A hand-off between threads, so not pinned to one CPU: there it
        # would time the kernel's context switches, not the hand-off
        # (loom's figure on one CPU is in docs/benchmarks.md). Go's
        # goroutines hand off within one thread either way.
        saved_pin=$pin; pin=""
        run "$bin/bench-offload"
        if has_go offload; then run "$tmp/offload-go"; fi
        if [ -n "$py" ]; then (cd "$here/peers" && run $py offload.py); fi
        pin=$saved_pin
        ;;
      fairness)
        run "$bin/bench-fairness"
        if has_go fairness; then run "$tmp/fairness-go"; fi
        ;;
      scale)
        run "$bin/bench-scale" "${LOOM_BENCH_SCALE_N:-1000000}"
        if has_go scale; then
          run "$tmp/scale-go" "${LOOM_BENCH_SCALE_N:-1000000}"
        fi
        pyn=${LOOM_BENCH_PY_SCALE_N:-100000}
        if [ -n "$py" ] && [ "$pyn" -gt 0 ]; then
          (cd "$here/peers" && run $py scale.py "$pyn")
        fi
        ;;
    esac
  done
  round=$((round + 1))
done

# ---- the table ------------------------------------------------------------------
# Result lines are "<bench> <impl> <value> <unit> (notes)". With several
# rounds, a figure is the median over the rounds, and "range" their spread.
# A peer's ratio is its figure over loom's in the same unit: > 1 means loom is
# ahead.
echo
echo "| benchmark | implementation | figure | unit | range | x loom | target |"
echo "|-----------|----------------|-------:|------|-------|-------:|--------|"
awk '
  $1 ~ /^(switch|yield|spawn|scale|gather|group|queue|queue1|queue64|lock|sem|lock100|fairness|offload)$/ && $3 ~ /^[0-9.]+$/ {
    id = $1 " " $2 " " $4
    if (!(id in cnt)) { n++; order[n] = id; bench[id] = $1; impl[id] = $2; unit[id] = $4 }
    v[id, ++cnt[id]] = $3 + 0
  }
  function median(id,   i, j, k, t, a) {
    k = cnt[id]
    for (i = 1; i <= k; i++) a[i] = v[id, i]
    for (i = 2; i <= k; i++)
      for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    lo[id] = a[1]; hi[id] = a[k]
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  END {
    for (i = 1; i <= n; i++) {
      id = order[i]; med[id] = median(id)
      key = bench[id] " " unit[id]
      if (impl[id] == "loom" || (impl[id] ~ /^loom/ && !(key in ref))) ref[key] = med[id]
    }
    tgt["switch ns/switch"] = 15; tgt["yield ns/yield"] = 40
    tgt["spawn ns/task"] = 100; tgt["scale B/task"] = 8192
    # The targets of docs/benchmarks.md: queue hand-off <= 60 ns per item,
    # uncontended lock and semaphore <= 10 ns per acquire + release.
    tgt["queue ns/item"] = 60; tgt["queue1 ns/item"] = 60; tgt["queue64 ns/item"] = 60
    tgt["lock ns/pair"] = 10; tgt["sem ns/pair"] = 10
    # Fairness: timers and I/O at most ~10 ms late beyond the slice of the
    # running task (2 ms by default in bench-fairness).
    tgt["fairness us-worst-timer"] = 12000; tgt["fairness us-worst-read"] = 12000
    for (i = 1; i <= n; i++) {
      id = order[i]; key = bench[id] " " unit[id]
      ratio = "-"; t = ""; range = "-"
      if (cnt[id] > 1) range = sprintf("%.4g-%.4g", lo[id], hi[id])
      # A time is comparable only for the same number of tasks.
      if (impl[id] !~ /^loom/ && (key in ref) && ref[key] > 0 &&
          !(unit[id] == "s" && impl[id] ~ /\(n=/))
        ratio = sprintf("%.2f", med[id] / ref[key])
      if (impl[id] == "loom" && (key in tgt))
        t = sprintf("<= %s: %s", tgt[key], ((med[id] <= tgt[key]) ? "met" : "NOT MET"))
      printf "| %s | %s | %.4g | %s | %s | %s | %s |\n", bench[id], impl[id], med[id], unit[id], range, ratio, t
    }
    # gather and task group of 1000 tasks >= 20x faster than uvloop.
    split("gather uvloop-gather;group uvloop-taskgroup", pairs, ";")
    for (p in pairs) {
      split(pairs[p], f, " "); l = f[1] " loom ns/task"; u = f[1] " " f[2] " ns/task"
      if ((l in med) && (u in med) && med[l] > 0)
        printf "\n%s: loom is %.1fx faster than %s (target >= 20x: %s)\n", \
               f[1], med[u] / med[l], f[2], ((med[u] / med[l] >= 20) ? "met" : "NOT MET")
    }
    ol = "offload loom ns/job"; ou = "offload uvloop-to_thread ns/job"
    if ((ol in med) && (ou in med) && med[ol] > 0)
      printf "\noffload: loom_to_thread is %.1fx faster than uvloop to_thread (target >= 10x: %s)\n", \
             med[ou] / med[ol], ((med[ou] / med[ol] >= 10) ? "met" : "NOT MET")
    sl = "switch loom ns/switch"; su = "switch ucontext ns/switch"
    if ((sl in med) && (su in med) && med[sl] > 0)
      printf "\nswitch: loom is %.1fx faster than ucontext (target >= 10x: %s)\n", \
             med[su] / med[sl], ((med[su] / med[sl] >= 10) ? "met" : "NOT MET")
  }' "$results"
if grep '^# FAILED' "$results" >&2; then exit 1; fi
if [ -n "$sproc" ]; then
  echo
  sh "$here/subprocess/run.sh" "$build"
fi
if [ -n "$tls" ]; then
  echo
  bash "$here/tls/run.sh" "$build"
fi
exit 0
