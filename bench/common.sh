# shellcheck shell=sh
# bench/common.sh: what the benchmark runners share, POSIX sh (the sh
# runners source it directly, the bash ones through bench/lib.sh):
#
#   . "$src/bench/common.sh"
#
# It defines functions only, and sets nothing else.

say() { printf '%s\n' "$*" >&2; }

# bench_cmake SRC BUILD [examples]: configures BUILD as a Release build of
# SRC with the benchmarks on (the tests off, the examples off unless
# "examples" is given) when it has no CMake cache yet, or configures the one
# it has again with the benchmarks (and with "examples" the examples) on: a
# build dir made before a benchmark existed has no target for it, and a
# Makefile does not regenerate itself for an unknown target. Warns when
# BUILD is not a Release build.
bench_cmake() {
  if [ ! -f "$2/CMakeCache.txt" ]; then
    say "== configuring $2 (Release)"
    cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release -DLOOM_BUILD_BENCH=ON \
      -DLOOM_BUILD_TESTS=OFF -DLOOM_BUILD_EXAMPLES="$([ "${3:-}" = examples ] && echo ON || echo OFF)" >&2
  else
    cmake "$2" -DLOOM_BUILD_BENCH=ON ${3:+-DLOOM_BUILD_EXAMPLES=ON} >/dev/null
  fi
  grep -q '^CMAKE_BUILD_TYPE:STRING=Release' "$2/CMakeCache.txt" ||
    say "${0##*/}: warning: $2 is not a Release build"
}

# bench_tmp NAME: sets tmp to a new directory NAME.XXXXXX under TMPDIR
# (default /tmp) and srv_pid to nothing; on exit the server srv_pid, if
# set, is stopped and tmp removed. An interrupt exits 130.
bench_tmp() {
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  srv_pid=""
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}
bench_cleanup() {
  if [ -n "$srv_pid" ]; then kill "$srv_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}

# bench_go_env TMP: the environment of the Go peers' builds: standard
# library only (never touch the network, never fetch toolchains), and a
# build cache in TMP when the user's cannot be written.
bench_go_env() {
  export GOPROXY=off GOTOOLCHAIN=local
  gocache=$(go env GOCACHE 2>/dev/null || true)
  if [ -z "$gocache" ] || ! mkdir -p "$gocache" 2>/dev/null || [ ! -w "$gocache" ]; then
    export GOCACHE="$1/gocache"
  fi
}

# bench_uvloop_python WHAT: sets py to the first of LOOM_BENCH_PYTHON,
# /usr/bin/python3 and python3 that can import uvloop, or to nothing, and
# says which (the uvloop WHAT) or that WHAT is skipped. Debian's
# python3-uvloop is for /usr/bin/python3; a pyenv or venv python3 first on
# PATH usually cannot import it, and a PYTHONHOME or PYTHONPATH meant for
# another interpreter can break /usr/bin/python3 itself: such a candidate
# runs without them.
bench_uvloop_python() {
  py=""
  for cand in ${LOOM_BENCH_PYTHON:-} /usr/bin/python3 python3; do
    if "$cand" -c 'import uvloop' >/dev/null 2>&1; then
      py="$cand"; break
    fi
    if env -u PYTHONHOME -u PYTHONPATH "$cand" -c 'import uvloop' >/dev/null 2>&1; then
      py="env -u PYTHONHOME -u PYTHONPATH $cand"; break
    fi
  done
  if [ -n "$py" ]; then
    say "== uvloop $1: $py ($($py -c 'import sys, uvloop; print("Python", sys.version.split()[0], "uvloop", uvloop.__version__)'))"
  else
    say "== no python3 can import uvloop (Debian: apt install python3-uvloop): uvloop $1 skipped"
  fi
}
