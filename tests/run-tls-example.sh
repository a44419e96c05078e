#!/bin/sh
# run-tls-example.sh --check CHECKER EXPECTED COMMAND [ARG...]
# run-tls-example.sh COMMAND [ARG...]
#
# With --check (how ctest runs it): without the openssl tool, prints
# SKIPPED with the reason and exits 77 (the test's SKIP_RETURN_CODE: the
# test counts as skipped, never passed); with it, runs this script again
# under CHECKER (check-example.sh), which matches its output against
# EXPECTED.
#
# Tests examples/tls_echo_server as a user would run it: makes a test CA
# and a server certificate (tls-certs.sh), starts COMMAND CERT KEY 0 in the
# background, reads its first line ("serving TLS on 127.0.0.1:PORT"), has
# `openssl s_client` (verifying against the test CA) send two lines and
# prints what came back, waits for the server's "connection closed" line,
# stops the server with SIGINT and prints its other lines. Exits with the
# server's status; 77 without the openssl tool, 2 if a step fails.
#
# No sleeps, no fixed ports: each step waits for a line of output; the
# server is killed on every way out, and the test's timeout bounds a hang.
set -u
here=$(cd "$(dirname "$0")" && pwd)
me=run-tls-example
# shellcheck source=tests/run-with-server.sh
. "$here/run-with-server.sh"
if ! command -v openssl >/dev/null 2>&1; then
  echo "SKIPPED: the openssl tool is missing (the test's certificates and its" \
    "client, openssl s_client)"
  exit 77
fi
if [ "${1-}" = "--check" ]; then
  [ $# -ge 4 ] || {
    echo "usage: $0 --check CHECKER EXPECTED COMMAND [ARG...]" >&2
    exit 2
  }
  checker=$2
  expected=$3
  shift 3
  exec sh "$checker" "$expected" -- sh "$here/run-tls-example.sh" "$@"
fi
server_scratch tls-example KILL 128+n
sh "$here/tls-certs.sh" "$tmp/certs" >/dev/null 2>&1 || exit 2
example_start "$@" "$tmp/certs/server.pem" "$tmp/certs/server.key" 0

# s_client's input and output through FIFOs: each line is sent once the
# one before it came back, and the input ends (s_client then closes, with
# close_notify: -quiet implies -ign_eof, -no_ign_eof undoes it) only after
# the last came back, however slow the server (under Valgrind).
mkfifo "$tmp/cin" "$tmp/cout" || exit 2
(exec 3<&- && exec timeout 60 openssl s_client -connect "127.0.0.1:$port" \
  -servername localhost -CAfile "$tmp/certs/ca.pem" -verify_return_error -quiet \
  -no_ign_eof <"$tmp/cin" >"$tmp/cout" 2>"$tmp/client.err") &
cpid=$!
exec 4>"$tmp/cin" 5<"$tmp/cout"
for send in 'hello over tls' 'second line'; do
  printf '%s\n' "$send" >&4
  if ! IFS= read -r line <&5; then
    echo "$me: s_client ended early:" >&2
    cat "$tmp/client.err" >&2
    exit 2
  fi
  printf 's_client got back: %s\n' "$line"
done
exec 4>&-
wait "$cpid"
crc=$?
cpid=
if [ "$crc" -ne 0 ]; then
  echo "$me: s_client failed:" >&2
  cat "$tmp/client.err" >&2
  exit 2
fi
exec 5<&-

while IFS= read -r line <&3; do
  printf '%s\n' "$line"
  case $line in "connection closed "*) break ;; esac
done
example_interrupt
