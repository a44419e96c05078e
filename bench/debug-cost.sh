#!/bin/sh
# What the introspection work (task dumps, wait reasons, stats, debug mode)
# costs with debug mode off, against a build without it: the context
# switch, yield, spawn and the TCP echo round trip, in one run.
#
#   bench/debug-cost.sh BASE_BUILD NEW_BUILD
#
# Both are Release build directories with LOOM_BUILD_BENCH=ON holding
# bench-switch, bench-yield, bench-spawn and the echo targets (echo-loom,
# echo-client, echo-client-cg). Prints:
#
#   1. wall clock: ROUNDS alternating rounds (base, new, base, new...) of
#      bench-switch, bench-yield, bench-spawn 1000 (ns per operation,
#      medians of their own runs) and an echo run (50 connections, 64 B:
#      server CPU us per round trip); the median over rounds of each, and
#      the median of the per-round new/base ratios;
#   2. whether the switch loop is the same machine code in both builds,
#      callgrind instructions per yield (the slope between two runs of
#      different lengths over the calls of loom_yield: start-up cancels out)
#      and per echo round trip (bench/echo/callgrind.sh), for both builds;
#   3. the new build with debug mode on (LOOM_DEBUG=1): the same wall-clock
#      figures against it off, and its instructions per echo round trip.
#
# Environment: LOOM_COST_ROUNDS (default 5), LOOM_COST_TARGET_S (seconds per
# benchmark run, default 0.2), LOOM_COST_ECHO_S (measured seconds per echo
# run, default 2), LOOM_COST_CALLGRIND=0 to skip part 2.
set -eu
if [ $# -ne 2 ]; then
  echo "usage: $0 BASE_BUILD NEW_BUILD" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
base=$(cd "$1" && pwd)
new=$(cd "$2" && pwd)
rounds=${LOOM_COST_ROUNDS:-5}
target=${LOOM_COST_TARGET_S:-0.2}
echo_s=${LOOM_COST_ECHO_S:-2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ulimit -n 4096 2>/dev/null || true

# The median of the numbers on stdin.
median() {
  sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit }
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ns per operation of loom's line of a bench program's output.
bench_ns() { # BUILD PROGRAM [ARG]
  b=$1 p=$2
  shift 2
  LOOM_BENCH_TARGET_S=$target LOOM_BENCH_REPS=5 "$b/bench/$p" "$@" |
    awk '$2 == "loom" { print $3; exit }'
}

# Server CPU us per echo round trip (50 connections, 64 B).
echo_cpu() { # BUILD
  mkfifo "$tmp/port"
  "$1/bench/echo/echo-loom" 0 >"$tmp/port" 2>/dev/null &
  spid=$!
  port=$(head -n 1 "$tmp/port")
  res=$("$1/bench/echo/echo-client" "$port" 50 64 "$echo_s" 0.3 "$spid" 2>/dev/null || true)
  kill "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  rm -f "$tmp/port"
  echo "$res" | sed -n 's/.*cpu_us_per_rt=\([0-9.]*\).*/\1/p'
}

# One round of every wall-clock figure for BUILD, appended to FILE as
# "name value" lines.
round() { # BUILD FILE
  {
    echo "switch $(bench_ns "$1" bench-switch)"
    echo "yield $(bench_ns "$1" bench-yield)"
    echo "spawn $(bench_ns "$1" bench-spawn 1000)"
    echo "echo $(echo_cpu "$1")"
  } >>"$2"
}

# Medians and new/base ratios of two sets of rounds.
report() { # FILE_A FILE_B LABEL_A LABEL_B
  printf '| %-28s | %10s | %10s | %14s |\n' "" "$3" "$4" "$4/$3"
  printf '|%s|%s|%s|%s|\n' "------------------------------" "-----------:" \
    "-----------:" "---------------:"
  for name in switch yield spawn echo; do
    a=$(awk -v n=$name '$1 == n { print $2 }' "$1" | median)
    b=$(awk -v n=$name '$1 == n { print $2 }' "$2" | median)
    r=$(paste "$1" "$2" | awk -v n=$name '$1 == n && $2 > 0 { print $4 / $2 }' | median)
    case $name in
      echo) what="echo, server CPU us/rt" ;;
      spawn) what="spawn+join (batch 1000), ns" ;;
      *) what="$name, ns" ;;
    esac
    printf '| %-28s | %10s | %10s | %14.3f |\n' "$what" "$a" "$b" "$r"
  done
}

echo "== wall clock: $rounds alternating rounds (load: $(cut -d' ' -f1-3 /proc/loadavg))"
: >"$tmp/base" && : >"$tmp/new"
i=0
while [ $i -lt "$rounds" ]; do
  round "$base" "$tmp/base"
  round "$new" "$tmp/new"
  i=$((i + 1))
done
report "$tmp/base" "$tmp/new" base new

# Callgrind: Ir and the calls of FN over a whole run, for a run of target S.
cg_run() { # BUILD PROGRAM FN S
  out=$tmp/cg.out
  rm -f "$out"*
  LOOM_BENCH_REPS=1 LOOM_BENCH_TARGET_S=$4 valgrind --tool=callgrind \
    --separate-threads=yes --compress-strings=no --callgrind-out-file="$out" \
    "$1/bench/$2" >/dev/null 2>&1
  f=$out # the main thread's part, with --separate-threads
  [ -e "$out-01" ] && f=$out-01
  ir=$(grep -m1 '^summary:' "$f" | awk '{ print $2 }')
  # cfn=NAME, or NAME'2 for a recursion level callgrind tells apart
  calls=$(awk -v fn="$3" '/^cfn=/ { hit = ($0 ~ "[ =]" fn "(\047[0-9]+)?$") }
    /^calls=/ && hit { sub(/^calls=/, ""); split($0, c, " "); n += c[1]; hit = 0 }
    END { print n + 0 }' "$f")
  echo "$ir $calls"
}

# Instructions per call of FN: the slope between a short and a long run.
cg_slope() { # BUILD PROGRAM FN
  set -- "$1" "$2" "$3" "$(cg_run "$1" "$2" "$3" 0.05)" "$(cg_run "$1" "$2" "$3" 0.5)"
  echo "$4 $5" | awk '{ if ($4 == $2) print "nan"; else printf "%.1f", ($3 - $1) / ($4 - $2) }'
}

# bench-switch's "loom" figure: its loop (sym_body, run_loom_sym) and
# loom__ctx_switch, as machine code without addresses. Callgrind cannot
# count per switch here (a switch "returns" on another stack, and the
# program's other figures call loom__ctx_switch too): when the code is the
# same in both builds, so is every switch.
switch_code() { # BUILD
  objdump -d --no-show-raw-insn "$1/bench/bench-switch" |
    awk '/<(sym_body|run_loom_sym|loom__ctx_switch)[^>]*>:$/ { f = 1; next }
      f && /^$/ { f = 0 } f' |
    sed 's/^ *[0-9a-f]*:\t//; s/ *#.*//; s/[0-9a-f]\{6,\}//g; s/<[^>]*>//g'
}

if [ "${LOOM_COST_CALLGRIND:-1}" != 0 ]; then
  echo
  echo "== callgrind: instructions per operation"
  switch_code "$base" >"$tmp/sw.base"
  switch_code "$new" >"$tmp/sw.new"
  if cmp -s "$tmp/sw.base" "$tmp/sw.new"; then
    echo "switch: the same machine code ($(wc -l <"$tmp/sw.new") instructions)"
  else
    echo "switch: the machine code differs:"
    diff "$tmp/sw.base" "$tmp/sw.new" | head -n 20
  fi
  for b in base new; do
    dir=$base
    [ "$b" = new ] && dir=$new
    yi=$(cg_slope "$dir" bench-yield loom_yield)
    ec=$(LOOM_ECHO_CG_SERVERS=loom LOOM_ECHO_CG_CELLS=50:64 "$here/echo/callgrind.sh" "$dir" |
      sed -n 's/.*ir_per_rt=\([0-9.]*\).*/\1/p')
    echo "$b: yield $yi  echo(50 conns, 64 B) $ec"
  done
  ec=$(LOOM_DEBUG=1 LOOM_ECHO_CG_SERVERS=loom LOOM_ECHO_CG_CELLS=50:64 \
    "$here/echo/callgrind.sh" "$new" | sed -n 's/.*ir_per_rt=\([0-9.]*\).*/\1/p')
  echo "new, LOOM_DEBUG=1: echo(50 conns, 64 B) $ec"
fi

echo
echo "== debug mode on (LOOM_DEBUG=1) against off, new build: $rounds alternating rounds"
: >"$tmp/off" && : >"$tmp/on"
i=0
while [ $i -lt "$rounds" ]; do
  unset LOOM_DEBUG
  round "$new" "$tmp/off"
  export LOOM_DEBUG=1
  round "$new" "$tmp/on"
  unset LOOM_DEBUG
  i=$((i + 1))
done
report "$tmp/off" "$tmp/on" off on
