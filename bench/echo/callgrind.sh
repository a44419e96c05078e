#!/bin/sh
# Instructions per echo round trip, counted by callgrind: repeatable where
# wall-clock echo figures on a VM swing by 10 %. The server runs under
# `valgrind --tool=callgrind`; echo-client-cg warms every connection up,
# zeroes the server's counters (callgrind_control -z), runs exactly ROUNDS
# round trips, and dumps the counters (-d), so only those round trips count:
# no start-up, accept or shutdown. Prints one line per server and cell:
#
#   echo-ir server=loom conns=50 size=64 rts=100000 ir_per_rt=718.0
#
#   bench/echo/callgrind.sh [BUILD_DIR]
#
# BUILD_DIR (default build-bench) must hold the echo targets
# (LOOM_BUILD_BENCH=ON; a Release build). Environment:
#   LOOM_ECHO_CG_SERVERS  default "loom libuv" (libuv is the control: it
#                         should not move between two builds of loom)
#   LOOM_ECHO_CG_CELLS    "CONNS:SIZE ..." (default "50:64 1000:4096")
#   LOOM_ECHO_CG_ROUNDS   round trips counted (default 100000)
#   LOOM_ECHO_CG_CLIENT   the client (default BUILD_DIR's echo-client-cg;
#                         set it to measure a build that predates it)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$(dirname "$(dirname "$here")")/build-bench}
bin=$build/bench/echo
servers=${LOOM_ECHO_CG_SERVERS:-loom libuv}
cells=${LOOM_ECHO_CG_CELLS:-50:64 1000:4096}
rounds=${LOOM_ECHO_CG_ROUNDS:-100000}
cpus=$(nproc)
scpu=$((cpus - 1))
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ulimit -n 4096 2>/dev/null || true
for cell in $cells; do
  conns=${cell%%:*} size=${cell##*:}
  for s in $servers; do
    out=$tmp/cg.$s.$conns.$size
    mkfifo "$tmp/port"
    taskset -c "$scpu" valgrind --tool=callgrind --compress-strings=no --callgrind-out-file="$out" \
      "$bin/echo-$s" 0 >"$tmp/port" 2>"$tmp/vg.log" &
    vpid=$!
    port=$(head -n 1 "$tmp/port")
    res=$(taskset -c 0 "${LOOM_ECHO_CG_CLIENT:-$bin/echo-client-cg}" "$port" "$conns" "$size" \
          "$rounds" "$vpid" 2>/dev/null)
    kill "$vpid"
    wait "$vpid" 2>/dev/null || true
    rm -f "$tmp/port"
    rts=$(echo "$res" | sed 's/.*rts=\([0-9]*\).*/\1/')
    dump=$(ls "$out".* | head -n 1)
    ir=$(grep -m1 '^summary:' "$dump" | awk '{print $2}')
    echo "echo-ir server=$s conns=$conns size=$size rts=$rts" \
         "ir_per_rt=$(awk -v i="$ir" -v r="$rts" 'BEGIN { printf "%.1f", i / r }')"
  done
done
