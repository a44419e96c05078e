#!/bin/sh
# Instructions per HTTP keep-alive request, counted by callgrind: repeatable
# where wall-clock figures on a shared machine are not. The server
# (examples/http_hello or hello-libuv) runs under `valgrind
# --tool=callgrind`; http-client-cg warms every connection up, zeroes the
# server's counters, runs exactly REQUESTS requests (one per round trip per
# connection, as wrk's keep-alive case), and dumps the counters, so only
# those requests count. Prints one line per server and cell:
#
#   http-ir server=loom conns=50 requests=100000 ir_per_req=1234.5
#
#   bench/realload/callgrind.sh [BUILD_DIR]
#
# BUILD_DIR (default build-bench) must hold http_hello, hello-libuv and
# http-client-cg (LOOM_BUILD_EXAMPLES=ON, LOOM_BUILD_BENCH=ON; a Release
# build). Environment:
#   LOOM_HTTP_CG_SERVERS   default "loom libuv"
#   LOOM_HTTP_CG_CONNS     connection counts (default "50 1000")
#   LOOM_HTTP_CG_REQUESTS  requests counted (default 100000)
#   LOOM_HTTP_CG_OUT       keep the callgrind files in this directory
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$(dirname "$(dirname "$here")")/build-bench}
servers=${LOOM_HTTP_CG_SERVERS:-loom libuv}
conns_list=${LOOM_HTTP_CG_CONNS:-50 1000}
requests=${LOOM_HTTP_CG_REQUESTS:-100000}
scpu=$(($(nproc) - 1))
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ulimit -n 4096 2>/dev/null || true
for conns in $conns_list; do
  for s in $servers; do
    case $s in
    loom) bin=$build/examples/http_hello ;;
    libuv) bin=$build/bench/realload/hello-libuv ;;
    *) echo "callgrind.sh: unknown server $s" >&2; exit 1 ;;
    esac
    out=$tmp/cg.$s.$conns
    mkfifo "$tmp/port"
    taskset -c "$scpu" valgrind --tool=callgrind --compress-strings=no --callgrind-out-file="$out" \
      "$bin" 0 >"$tmp/port" 2>"$tmp/vg.log" &
    vpid=$!
    # "serving on 127.0.0.1:PORT"
    port=$(head -n 1 "$tmp/port" | sed 's/.*:\([0-9][0-9]*\).*/\1/')
    res=$(taskset -c 0 "$build/bench/realload/http-client-cg" "$port" "$conns" \
          "$requests" "$vpid")
    kill "$vpid"
    wait "$vpid" 2>/dev/null || true
    rm -f "$tmp/port"
    n=$(echo "$res" | sed 's/.*requests=\([0-9]*\).*/\1/')
    dump=$(ls "$out".* | head -n 1)
    ir=$(grep -m1 '^summary:' "$dump" | awk '{print $2}')
    if [ -n "${LOOM_HTTP_CG_OUT:-}" ]; then
      mkdir -p "$LOOM_HTTP_CG_OUT"
      cp "$dump" "$LOOM_HTTP_CG_OUT/cg.$s.$conns"
    fi
    echo "http-ir server=$s conns=$conns requests=$n" \
         "ir_per_req=$(awk -v i="$ir" -v r="$n" 'BEGIN { printf "%.1f", i / r }')"
  done
done
