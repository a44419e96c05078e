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
# and are deleted at the end. The programs run twice, alternating, so that
# a change in the machine's load shows as a spread rather than a ratio.
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
for round in 1 2; do
  echo "== round $round"
  "$build/bench/bench-files" run "$dir"
  PYTHONPATH="$here/peers" "$python" "$here/peers/files.py" "$dir"
done
