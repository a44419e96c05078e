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
me=run-with-redis
# shellcheck source=tests/run-with-server.sh
. "$(dirname "$0")/run-with-server.sh"

server_need_command "$@"
server=${LOOM_REDIS_SERVER:-$(command -v redis-server)}
cli=${LOOM_REDIS_CLI:-$(command -v redis-cli)}
if [ -z "$server" ] || ! [ -x "$server" ]; then
  server_skip LOOM_REDIS_SKIP "redis-server not found (Debian package redis-server)" "$@"
elif [ -z "$cli" ] || ! [ -x "$cli" ]; then
  server_skip LOOM_REDIS_SKIP "redis-cli not found (Debian package redis-tools)" "$@"
fi

server_scratch redis TERM 2
# shellcheck disable=SC2317 # called by server_start
start() {
  server_spawn "$server" --port "$1" --bind 127.0.0.1 --save "" \
    --appendonly no --dir "$tmp" --daemonize no --logfile "$tmp/redis.log"
}
# shellcheck disable=SC2317 # called by server_start
ready() { [ "$("$cli" -h 127.0.0.1 -p "$1" PING 2>/dev/null)" = PONG ]; }
server_start redis-server start ready "$tmp/redis.log"

LOOM_REDIS_PORT=$port
export LOOM_REDIS_PORT
server_run @PORT@ "$port" -- "$@"
