#!/bin/bash
# The subprocess benchmark: spawn + wait of /bin/true, loom against Go's
# exec.Command (GOMAXPROCS=1), asyncio.create_subprocess_exec on uvloop
# and uv_spawn alone (bench-spawn-process K libuv: loom's own overhead),
# plus, as a reference, posix_spawn + waitpid with no loop (k=1 only),
# one child at a time (k=1) and four in flight (k=4). Prints each
# program's result lines, then a Markdown table: microseconds per child,
# spawns per second, the peers' ratio to loom (> 1: loom is ahead) and the
# verdict on the target of docs/benchmarks.md (loom's rate >= Go's).
#
#   bench/subprocess/run.sh [BUILD_DIR]
#
# BUILD_DIR (default: build-bench in the source tree) is configured with
# CMAKE_BUILD_TYPE=Release and LOOM_BUILD_BENCH=ON if it has no CMake cache
# yet, and bench-spawn-process is built in it. The programs are not pinned
# unless LOOM_BENCH_CPUS is set (e.g. 1: every program, and so its
# children, on that CPU, under taskset). Each round runs the four, in a
# rotating order, then, one child at a time with 1,000 loom tasks asleep
# meanwhile (LOOM_SPROC_IDLE), loom and uv_spawn (on a loop of its own
# run inside a loom task: what a fork costs in a process with many task
# stacks); a figure is the median over the rounds.
#
# Environment:
#   LOOM_SPROC_ROUNDS   rounds (default 3)
#   LOOM_SPROC_IDLE     tasks asleep in the last two programs (default
#                       1000; 0 skips them)
#   LOOM_BENCH_CPUS     taskset CPU list for every program (default: none)
#   LOOM_BENCH_PYTHON   interpreter for the uvloop peer (default
#                       /usr/bin/python3)
#   LOOM_BENCH_REPS, LOOM_BENCH_TARGET_S  runs per figure (5) and seconds
#                       per run (0.15), for every program
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$(dirname "$here")")
build=${1:-$src/build-bench}
rounds=${LOOM_SPROC_ROUNDS:-3}
idle=${LOOM_SPROC_IDLE:-1000}
unset LOOM_SPROC_IDLE # bench-spawn-process reads it too: only where given
pin=""
[ -n "${LOOM_BENCH_CPUS:-}" ] && pin="taskset -c $LOOM_BENCH_CPUS"
py=${LOOM_BENCH_PYTHON:-/usr/bin/python3}

# say, bench_cmake, bench_go_env, AWK_MEDIAN
# shellcheck source=bench/lib.sh
. "$src/bench/lib.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/loom-sproc.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

bench_cmake "$src" "$build"
cmake --build "$build" -j"$(nproc)" --target bench-spawn-process >&2
loom=$build/bench/bench-spawn-process

gopeer=""
if command -v go >/dev/null 2>&1; then
  bench_go_env "$tmp"
  export GOMAXPROCS=1
  if (cd "$src/bench/peers" && go build -o "$tmp/subprocess-go" subprocess.go) >&2; then
    gopeer=$tmp/subprocess-go
  fi
else
  say "== go not found: Go peer skipped"
fi
export PYTHONDONTWRITEBYTECODE=1
pypeer=""
if "$py" -c 'import uvloop' >/dev/null 2>&1; then
  pypeer=$py
else
  say "== $py cannot import uvloop (Debian: apt install python3-uvloop): peer skipped"
fi

results=$tmp/results
: >"$results"
say "== $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
# With perf (and the syscall tracepoints readable), each program also
# gets a CPU figure: task-clock of the program and its children over the
# number of execve calls but its own (Python's interpreter start counts
# too, spread over its children). Wall time on a shared machine measures
# the load as much as the spawn; CPU time does not.
perf=""
if [ "${LOOM_SPROC_PERF:-1}" = 1 ] && command -v perf >/dev/null 2>&1 &&
   perf stat -x, -e task-clock,syscalls:sys_enter_execve -o "$tmp/perf" -- true >/dev/null 2>&1; then
  perf=perf
else
  say "== perf stat with syscalls:sys_enter_execve unavailable: no CPU figures"
fi
run() {
  if [ -z "$perf" ]; then
    $pin "$@" | tee -a "$results" || echo "# FAILED: $*"
    return
  fi
  $pin perf stat -x, -e task-clock,syscalls:sys_enter_execve -o "$tmp/perf" -- "$@" >"$tmp/out" ||
    echo "# FAILED: $*"
  tee -a "$results" <"$tmp/out"
  impl=$(awk '$1 == "sproc" { print $2; exit }' "$tmp/out")
  awk -F, -v impl="$impl" '
    $3 == "task-clock" { ms = $1 }
    $3 ~ /execve/ { n = $1 }
    END { if (impl != "" && n > 1) printf "sproc-cpu %s %.1f us/child (perf: task-clock over %d children)\n", impl, ms * 1000 / (n - 1), n - 1 }
  ' "$tmp/perf" | tee -a "$results"
}
r=1
while [ "$r" -le "$rounds" ]; do
  for k in 1 4; do
    say "== round $r of $rounds, k=$k"
    for who in $(echo "loom go py libuv loom go py" | cut -d' ' -f"$(( (r - 1) % 4 + 1 ))-$(( (r - 1) % 4 + 4 ))"); do
      case $who in
        loom) run "$loom" "$k" ;;
        libuv) run "$loom" "$k" libuv ;;
        go) if [ -n "$gopeer" ]; then run "$gopeer" "$k"; fi ;;
        py) if [ -n "$pypeer" ]; then (cd "$src/bench/peers" && run "$pypeer" subprocesses.py "$k"); fi ;;
      esac
    done
  done
  say "== round $r of $rounds: posix_spawn + waitpid, no loop (a reference)"
  run "$loom" 1 posix_spawn
  if [ "$idle" -gt 0 ]; then
    say "== round $r of $rounds: k=1 with $idle loom tasks asleep"
    LOOM_SPROC_IDLE=$idle run "$loom" 1
    LOOM_SPROC_IDLE=$idle run "$loom" 1 libuv
  fi
  r=$((r + 1))
done

# table KEY TARGET: the Markdown rows of the figures "KEY IMPL(k=K...) US"
# in $results: per implementation and children in flight, the median over
# the rounds and the ratio to loom's; with TARGET 1, also spawns per second
# and the verdict on the target (loom's rate >= Go's).
table() {
  awk -v key="$1" -v target="$2" "$AWK_MEDIAN"'
    $1 == key && $3 ~ /^[0-9.]+$/ {
      impl = $2; k = impl; sub(/.*k=/, "", k); sub(/\).*/, "", k)
      name = impl; sub(/\(.*/, "", name)
      id = k " " name
      if (!(id in cnt)) { n++; order[n] = id; kk[id] = k; nm[id] = name }
      vals[id, ++cnt[id]] = $3
    }
    END {
      for (i = 1; i <= n; i++) {
        id = order[i]
        split("", a)
        for (j = 1; j <= cnt[id]; j++) a[j] = vals[id, j]
        med[id] = median(a, cnt[id])
      }
      for (i = 1; i <= n; i++) {
        id = order[i]; l = kk[id] " loom"
        ratio = (l in med) ? sprintf("%.2fx", med[id] / med[l]) : "-"
        tgt = ""
        g = kk[id] " go-exec"
        if (nm[id] == "loom" && (g in med)) tgt = med[id] <= med[g] ? "met (>= Go)" : "NOT MET (< Go)"
        if (kk[id] ~ /idle/) nm[id] = nm[id] " (" substr(kk[id], index(kk[id], "idle=") + 5) " tasks asleep)"
        if (kk[id] ~ /idle/) kk[id] = substr(kk[id], 1, index(kk[id], ",") - 1)
        if (target) printf "| %s | %s | %.1f | %.0f | %s | %s |\n", kk[id], nm[id], med[id], 1e6 / med[id], ratio, tgt
        else printf "| %s | %s | %.1f | %s |\n", kk[id], nm[id], med[id], ratio
      }
    }' "$results"
}

echo
echo "| in flight | implementation | us/child | spawns/s | x loom | target |"
echo "|----------:|----------------|---------:|---------:|-------:|--------|"
table sproc 1

if [ -n "$perf" ]; then
  echo
  echo "CPU per child (the program and its children, user + system):"
  echo
  echo "| in flight | implementation | CPU us/child | x loom |"
  echo "|----------:|----------------|-------------:|-------:|"
  table sproc-cpu 0
fi
