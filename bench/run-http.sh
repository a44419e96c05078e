#!/bin/sh
# The HTTP benchmark: 1,000 concurrent downloads of a 1 KiB file from a
# local nginx (tests/run-with-nginx.sh: one process, keep-alive), by
#   bench-http           libcurl's multi driven by loom (loom_http_get)
#   curl_multi           the same on libcurl's own curl_multi_poll loop
#   peers/http_fetch.py  asyncio streams, no aiohttp (and on uvloop when
#                        /usr/bin/python3 has it)
# each pinned to one CPU and nginx to another, then prints the ratios.
#
#   bench/run-http.sh [BUILD_DIR] [N [ROUNDS]]
#
# BUILD_DIR (default: build-bench in the source tree) needs
# LOOM_BUILD_BENCH=ON and the HTTP client (libcurl found); it is built here.
# N downloads at once (1000), ROUNDS timed rounds (20) after a warm-up
# round that opens the connections.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=${1:-$src/build-bench}
n=${2:-1000}
rounds=${3:-20}

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLOOM_BUILD_BENCH=ON \
    -DLOOM_BUILD_TESTS=OFF -DLOOM_BUILD_EXAMPLES=OFF >&2
fi
cmake --build "$build" -j"$(nproc)" --target bench-http bench-peer-curl-multi >&2

py=/usr/bin/python3
[ -x "$py" ] || py=python3

# nginx on the first CPU, the clients on the last, when there are two.
ncpu=$(nproc)
pin_server="" pin_client=""
if command -v taskset >/dev/null 2>&1 && [ "$ncpu" -ge 2 ]; then
  pin_server="taskset -c 0"
  pin_client="taskset -c $((ncpu - 1))"
fi

out=$(mktemp "${TMPDIR:-/tmp}/loom-http-bench.XXXXXX")
trap 'rm -f "$out"' EXIT
# shellcheck disable=SC2086
$pin_server sh "$src/tests/run-with-nginx.sh" sh -c '
  [ -n "${LOOM_NGINX_SKIP:-}" ] && { echo "run-http: $LOOM_NGINX_SKIP" >&2; exit 1; }
  url=http://127.0.0.1:$LOOM_NGINX_PORT/1k.bin
  '"$pin_client"' "$1/bench/bench-http" "$url" "$2" "$3" &&
  '"$pin_client"' "$1/bench/curl_multi" "$url" "$2" "$3" &&
  '"$pin_client"' "$4" "$5/bench/peers/http_fetch.py" "$url" "$2" "$3"
' run-http "$build" "$n" "$rounds" "$py" "$src" | tee "$out"

awk '
  $1 == "http" { v[$2] = $3 }
  END {
    base = v["loom+libcurl"]
    if (!base) exit 1
    printf "\nratios (time per download, against loom+libcurl; > 1 = slower than loom):\n"
    for (k in v) if (k != "loom+libcurl") printf "  %-18s %.2fx\n", k, v[k] / base
  }' "$out"
