#!/bin/sh
# Reads files through loom, plain blocking C and uvloop's to_thread (the
# aiofiles way), and prints their figures side by side.
#
#   bench/files.sh [BUILD_DIR] [BIG_MIB]
#
# BUILD_DIR (default build-bench) must be a Release build with
# LOOM_BUILD_BENCH=ON (bench-files is built here). BIG_MIB (default 1024)
# is the size of the sequentially read file; 0 skips it. The files go to a
# temporary directory under ${TMPDIR:-/tmp}, warmed into the page cache,
# and are deleted at the end. The programs run LOOM_FILES_ROUNDS times
# (default 2), alternating, so that a change in the machine's load shows
# as a spread rather than a ratio; bench-files reads the large file with
# 1 MiB and with 4 MiB reads (LOOM_FILES_CHUNKS_KIB, default "1024 4096")
# and, within one run, alternates loom and blocking C in every round (its
# ratios are per round). LOOM_BENCH_CPUS (e.g. 0,1) pins every program
# with taskset.
# Python: LOOM_BENCH_PYTHON (default /usr/bin/python3, which has uvloop
# from Debian's python3-uvloop).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=${1:-$src/build-bench}
big=${2:-1024}
python=${LOOM_BENCH_PYTHON:-/usr/bin/python3}
cmake --build "$build" --target bench-files >&2
dir=$(mktemp -d "${TMPDIR:-/tmp}/loom-bench-files.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM
"$build/bench/bench-files" prepare "$dir" "$big"
cat "$dir"/small/* > /dev/null
[ "$big" -gt 0 ] && cat "$dir/big" > /dev/null
rounds=${LOOM_FILES_ROUNDS:-2}
chunks=${LOOM_FILES_CHUNKS_KIB:-1024 4096}
pin=""
[ -n "${LOOM_BENCH_CPUS:-}" ] && pin="taskset -c $LOOM_BENCH_CPUS"
round=1
while [ "$round" -le "$rounds" ]; do
  echo "== round $round"
  for kib in $chunks; do
    echo "-- $kib KiB reads"
    LOOM_BENCH_CHUNK_KIB=$kib $pin "$build/bench/bench-files" run "$dir"
  done
  PYTHONPATH="$here/peers" $pin "$python" "$here/peers/files.py" "$dir"
  round=$((round + 1))
done
