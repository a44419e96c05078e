#!/bin/sh
# run-monitor-example.sh TOOL COMMAND [ARG...]
#
# The test of examples/monitor.c. Starts COMMAND (the example, perhaps
# behind a wrapper such as valgrind) with its monitor socket in a scratch
# directory and port 0, waits until it serves, then with TOOL
# (tools/loom-monitor) lists the tasks, cancels "ticker" by the id that ps
# shows, sends a bad command, and stops the server with SIGINT. Prints what
# it saw, with the socket path and the port replaced by SOCK and PORT, for
# check-example.sh to compare with examples/expected/monitor.txt.
set -u
me=run-monitor-example
# shellcheck source=tests/run-with-server.sh
. "$(dirname "$0")/run-with-server.sh"
tool=$1
shift
server_scratch monitor-ex TERM 2
sock=$tmp/m.sock

"$@" "$sock" 0 >"$tmp/out" 2>"$tmp/err" &
pid=$!

# wait_for FILE REGEX SECONDS: polls until a line of FILE matches.
wait_for() {
  n=0
  while ! grep -Eq "$2" "$1" 2>/dev/null; do
    n=$((n + 1))
    if [ "$n" -gt $(($3 * 10)) ] || ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    sleep 0.1
  done
}

if ! wait_for "$tmp/out" '^serving on' 120; then
  echo "the server did not start"
  cat "$tmp/out" "$tmp/err" >&2
  exit 1
fi

"$tool" -s "$sock" ps >"$tmp/ps"
echo "ps: status $?"
for name in main loom-monitor loom-monitor-client ticker janitor; do
  if awk -v n="$name" '$3 == n { found = 1 } END { exit !found }' "$tmp/ps"; then
    echo "ps lists $name"
  else
    echo "ps lacks $name"
  fi
done
id=$(awk '$3 == "ticker" { print $1 }' "$tmp/ps")
"$tool" -s "$sock" cancel "${id:-0}" | sed "s/ ${id:-0}\$/ ID/"
wait_for "$tmp/out" '^ticker: cancelled' 60 || echo "ticker did not end"
"$tool" -s "$sock" bogus
echo "bogus: status $?"
"$tool" -s "$sock" ps >"$tmp/ps2"
if awk '$3 == "ticker" { found = 1 } END { exit !found }' "$tmp/ps2"; then
  echo "ps after cancel: ticker still there"
else
  echo "ps after cancel: no ticker"
fi

kill -INT "$pid"
wait "$pid"
echo "server: status $?"
pid=
if [ -e "$sock" ]; then echo "socket left behind"; else echo "socket removed"; fi
echo "--- server output"
sed -e "s|$sock|SOCK|" -e 's/127\.0\.0\.1:[0-9]*/127.0.0.1:PORT/' "$tmp/out"
# The wrapper's reports, and anything the server said on stderr.
cat "$tmp/err" >&2
