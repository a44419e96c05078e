#!/bin/sh
# run-with-redis.sh COMMAND [ARG...]
#
# Runs COMMAND next to a real redis-server of its own: on 127.0.0.1, on a
# free port, with persistence off (--save "" --appendonly no), in a
# temporary directory, killed on every way out (the EXIT trap) and in any
# case after 10 minutes (timeout -s KILL), so that none outlives the test.
# @PORT@ in the arguments becomes the server's port, which COMMAND also
# finds in LOOM_REDIS_PORT. Exits with COMMAND's status.
#
# Without redis-server (or redis-cli, to see it ready), COMMAND still runs,
# with LOOM_REDIS_SKIP set to the reason and no server: the test reports
# itself SKIPPED with that reason rather than passing (exit 77 for
# commands that are not tests: see LOOM_REDIS_SKIP_STATUS).
#
# No sleeps as synchronisation beyond polling for readiness: the server is
# ready when redis-cli PING answers PONG; a port already taken makes the
# server exit, and another port is tried.
set -u

if [ $# -lt 1 ]; then
  echo "usage: $0 COMMAND [ARG...]" >&2
  exit 2
fi
server=${LOOM_REDIS_SERVER:-$(command -v redis-server)}
cli=${LOOM_REDIS_CLI:-$(command -v redis-cli)}

skip_reason=
if [ -z "$server" ] || ! [ -x "$server" ]; then
  skip_reason="redis-server not found (Debian package redis-server)"
elif [ -z "$cli" ] || ! [ -x "$cli" ]; then
  skip_reason="redis-cli not found (Debian package redis-tools)"
fi
if [ -n "$skip_reason" ]; then
  echo "run-with-redis: $skip_reason" >&2
  if [ -n "${LOOM_REDIS_SKIP_STATUS:-}" ]; then
    echo "SKIPPED: $skip_reason"
    exit "$LOOM_REDIS_SKIP_STATUS"
  fi
  LOOM_REDIS_SKIP=$skip_reason
  export LOOM_REDIS_SKIP
  exec "$@"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/loom-redis.XXXXXX") || exit 2
pid=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 2' INT TERM HUP

# A free port: random in 20000-59999, retried when the server cannot bind.
port=
for attempt in 1 2 3 4 5 6 7 8 9 10; do
  try=$(( 20000 + ( $(od -An -N2 -tu2 /dev/urandom) % 40000 ) ))
  timeout -s KILL 600 "$server" --port "$try" --bind 127.0.0.1 --save "" \
    --appendonly no --dir "$tmp" --daemonize no --logfile "$tmp/redis.log" &
  pid=$!
  i=0
  while [ $i -lt 100 ]; do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi # exited: port taken
    if [ "$("$cli" -h 127.0.0.1 -p "$try" PING 2>/dev/null)" = PONG ]; then
      port=$try
      break
    fi
    i=$((i + 1))
    sleep 0.1
  done
  [ -n "$port" ] && break
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  pid=
done
if [ -z "$port" ]; then
  echo "run-with-redis: redis-server did not start; its log:" >&2
  cat "$tmp/redis.log" >&2 2>/dev/null
  exit 2
fi

LOOM_REDIS_PORT=$port
export LOOM_REDIS_PORT
# Replace @PORT@ in the arguments.
n=$#
while [ "$n" -gt 0 ]; do
  a=$1
  shift
  case $a in
  *@PORT@*) a=$(printf '%s' "$a" | sed "s/@PORT@/$port/g") ;;
  esac
  set -- "$@" "$a"
  n=$((n - 1))
done
"$@"
status=$?
exit $status
