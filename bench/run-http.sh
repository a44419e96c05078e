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
# round that opens the connections. LOOM_HTTP_PASSES (3) runs the three
# clients that many times, interleaved, against the same nginx; the table
# gives each client's median pass, the range, and the client's CPU time
# (user + system) per download, steadier than the wall clock on a shared
# machine. "x loom" above 1: the peer takes longer than loom.
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
  i=0
  while [ $i -lt "$6" ]; do
    '"$pin_client"' "$1/bench/bench-http" "$url" "$2" "$3" &&
    '"$pin_client"' "$1/bench/curl_multi" "$url" "$2" "$3" &&
    '"$pin_client"' "$4" "$5/bench/peers/http_fetch.py" "$url" "$2" "$3" || exit 1
    i=$((i + 1))
  done
' run-http "$build" "$n" "$rounds" "$py" "$src" "${LOOM_HTTP_PASSES:-3}" | tee "$out"

# Median pass per client (us per download), its range, and the ratio to
# loom's median: above 1, the peer takes longer per download than loom.
awk '
  $1 == "http" {
    k = $2; n[k]++; v[k, n[k]] = $3 + 0
    for (i = 4; i < NF; i++) if ($i == "cpu") c[k, n[k]] = $(i + 1) + 0
  }
  function sort(a, k, m,   i, j, t) {
    for (i = 1; i <= m; i++)
      for (j = i + 1; j <= m; j++)
        if (a[k, j] < a[k, i]) { t = a[k, i]; a[k, i] = a[k, j]; a[k, j] = t }
  }
  END {
    for (k in n) {
      sort(v, k, n[k]); sort(c, k, n[k])
      mid = int((n[k] + 1) / 2)
      med[k] = v[k, mid]; cmed[k] = c[k, mid]
      lo[k] = v[k, 1]; hi[k] = v[k, n[k]]
    }
    base = med["loom+libcurl"]; cbase = cmed["loom+libcurl"]
    if (!base) exit 1
    printf "\n| client | wall us/download | range | downloads/s | x loom | CPU us/download | x loom |\n"
    printf "|--------|-----------------:|-------|------------:|-------:|----------------:|-------:|\n"
    split("loom+libcurl curl_multi_poll asyncio asyncio+uvloop", order, " ")
    for (o = 1; o <= 4; o++) {
      k = order[o]
      if (!(k in med)) continue
      printf "| %s | %.1f | %.1f-%.1f | %.0f | %.2f | %.1f | %.2f |\n", k, med[k], lo[k],
             hi[k], 1e6 / med[k], med[k] / base, cmed[k], cbase ? cmed[k] / cbase : 0
    }
  }' "$out"
