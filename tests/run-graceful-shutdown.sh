#!/bin/sh
# run-graceful-shutdown.sh SIGNAL COMMAND [ARG...]
#
# Tests examples/graceful_shutdown as a supervisor stops a service: starts
# COMMAND (the server, told to listen on port 0) in the background, reads
# its first line ("serving on 127.0.0.1:PORT"), has a client send a request
# that takes 500 ms of work, waits for the server to print that the
# request started, sends SIGNAL (TERM or INT) to the server in the middle
# of it, and then checks that the client still gets its answer and that
# the server exits by itself. SIGNAL TERM,TERM is an impatient supervisor:
# the request takes 30 s, and a second SIGTERM follows once the server
# says it is closing; the request is then cut short. Prints the server's
# first line, the client's report and the server's other lines, in that
# order, and exits with the server's status; 77 if Python is missing, 2 if
# something else fails.
#
# No sleeps, no fixed ports: each step waits for a line of output. The
# server is killed on every way out (the EXIT trap), the client gives up
# after 30 s, and the test's own timeout bounds a server that hangs.
#
# POSIX sh; needs mkfifo and mktemp, and Python 3 for the client
# ($LOOM_PYTHON, default /usr/bin/python3; plain Python, no packages).
set -u
me=run-graceful-shutdown
# shellcheck source=tests/run-with-server.sh
. "$(dirname "$0")/run-with-server.sh"

server_need_command --after "TERM|INT" "$@"
sig=${1%%,*}
sig2=
case $1 in *,*) sig2=${1#*,} ;; esac
shift
work=500
[ -n "$sig2" ] && work=30000
server_need_python

# The client. argv: PORT MS. Sends "work MS", reads the answer to the close.
client_py='
import socket, sys

work = "work " + sys.argv[2]
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30) as s:
    s.sendall(work.encode() + b"\n")
    answer = b"".join(iter(lambda: s.recv(1024), b""))  # up to the close
    print("client: sent %r, got %r" % (work, answer.decode()))
'

server_scratch graceful KILL 128+n
example_start "$@"

# The client runs in the background: its answer comes after the signal.
(exec 3<&- && exec "$python" -c "$client_py" "$port" "$work") >"$tmp/client" &
cpid=$!

# Wait until the server says the request is being worked on, then signal.
lines=
while IFS= read -r line <&3; do
  lines="$lines$line
"
  case $line in "request from "*": work "*) break ;; esac
done
kill -"$sig" "$pid"

# The server's other lines, up to its exit; then the client's answer. An
# impatient supervisor signals again once the server says it is closing.
while IFS= read -r line <&3; do
  lines="$lines$line
"
  case $line in *": closing, "*) [ -n "$sig2" ] && kill -"$sig2" "$pid" ;; esac
done
wait "$pid"
status=$?
pid=
if ! wait "$cpid"; then
  cpid=
  echo "run-graceful-shutdown: the client failed" >&2
  exit 2
fi
cpid=
cat "$tmp/client"
printf '%s' "$lines"
exit "$status"
