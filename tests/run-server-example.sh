#!/bin/sh
# run-server-example.sh KIND COMMAND [ARG...]
#
# Tests a server example in its serving mode, as a user would run it:
# starts COMMAND (the server, told to listen on port 0) in the background,
# reads the first line it prints ("... on 127.0.0.1:PORT"), has a client
# of KIND talk to PORT, waits for the server to print the line that ends
# that client's visit, stops the server with SIGINT (what Ctrl-C sends) and
# waits for it to exit. KIND is one of
#
#   echo    sends two lines, checks each comes back; the visit ends with
#           the server's "connection closed ..." line
#   pizza   orders a margherita and reads the answer up to the close; the
#           visit ends with "pizza handed to ..."
#
# Prints the server's first line, then the client's report, then the
# server's other lines (so the order is the same on every run), and exits
# with the server's status; 77 if Python is missing, 2 if the server or
# the client fails.
#
# No sleeps, no fixed ports: each step waits for a line of output. The
# server is killed on every way out (the EXIT trap), the client gives up
# after 30 s of silence, and the test's own timeout bounds a server that
# hangs.
#
# POSIX sh; needs mkfifo and mktemp, and Python 3 for the client
# ($LOOM_PYTHON, default /usr/bin/python3; plain Python, no packages).
set -u
me=run-server-example
# shellcheck source=tests/run-with-server.sh
. "$(dirname "$0")/run-with-server.sh"

server_need_command --after "echo|pizza" "$@"
kind=$1
shift
case $kind in
echo) visit_ends='connection closed *' ;;
pizza) visit_ends='pizza handed to *' ;;
*)
  echo "run-server-example: unknown client kind '$kind'" >&2
  exit 2
  ;;
esac
server_need_python

# The client. argv: KIND PORT.
client_py='
import socket, sys

kind, port = sys.argv[1], int(sys.argv[2])
with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
    if kind == "echo":
        for line in (b"hello\n", b"loom\n"):
            s.sendall(line)
            back = b""
            while len(back) < len(line):
                chunk = s.recv(len(line) - len(back))
                if not chunk:
                    break
                back += chunk
            print("client: sent %r, got back %r" % (line.decode(), back.decode()))
    else:
        s.sendall(b"margherita\n")
        answer = b"".join(iter(lambda: s.recv(1024), b""))  # up to the close
        print("client: ordered margherita, got %r" % answer.decode())
'

server_scratch server KILL 128+n
example_start "$@"

if ! (exec 3<&- && exec "$python" -c "$client_py" "$kind" "$port"); then
  echo "run-server-example: the client failed" >&2
  exit 2
fi

# The server's lines about the visit, up to the one that ends it: once it
# is printed, the server has nothing left to do for this client.
while IFS= read -r line <&3; do
  printf '%s\n' "$line"
  # shellcheck disable=SC2254 # $visit_ends is a pattern
  case $line in $visit_ends) break ;; esac
done

example_interrupt
