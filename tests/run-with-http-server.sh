#!/bin/sh
# run-with-http-server.sh COMMAND [ARG...]
#
# Runs COMMAND against a local HTTP server: Python's http.server, bound to
# 127.0.0.1 on a port the kernel picks, serving a temporary directory of
# known files:
#
#   /hello.txt    12 bytes, "hello, loom\n"
#   /big.bin      200000 bytes
#   /chunked      5000 bytes, sent with chunked transfer coding (HTTP/1.1)
#   (anything else: 404)
#
# In COMMAND's arguments, @PORT@ becomes the server's port and @DEADPORT@ a
# port where connections are refused (a socket bound there that never
# listens, held for as long as the server runs, so that nothing else can
# take it). The script exits with COMMAND's status; 77 (which the test
# registers as "skipped") if Python is missing; 2 if the server does not
# start.
#
# No sleeps, no fixed ports: the server prints its ports once it listens,
# and the script reads that line before it starts COMMAND. The server stops
# on every way out: the EXIT trap kills it, and should this script be
# killed outright, the server sees its standard input (a FIFO this script
# holds open) reach EOF and exits; it also exits on its own after 10
# minutes, whatever happens.
#
# POSIX sh; needs mkfifo and mktemp, and Python 3 ($LOOM_PYTHON, default
# /usr/bin/python3; plain Python, no packages).
set -u
me=run-with-http-server
# shellcheck source=tests/run-with-server.sh
. "$(dirname "$0")/run-with-server.sh"

server_need_command "$@"
server_need_python

# The server. argv[1]: the directory to fill and serve.
server_py='
import functools, http.server, os, socket, sys, threading

root = sys.argv[1]
with open(os.path.join(root, "hello.txt"), "wb") as f:
    f.write(b"hello, loom\n")
with open(os.path.join(root, "big.bin"), "wb") as f:
    f.write(bytes((i * 7) % 251 for i in range(200000)))

class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/chunked":
            return super().do_GET()
        # Chunks of 1, 10, 100, 1000 and 3889 bytes (5000 in all); the
        # second carries a chunk extension, and a trailer field ends them.
        self.protocol_version = "HTTP/1.1"
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        for i, n in enumerate((1, 10, 100, 1000, 3889)):
            ext = b";note=x" if i == 1 else b""
            self.wfile.write(b"%x%s\r\n%s\r\n" % (n, ext, b"c" * n))
        self.wfile.write(b"0\r\nX-Trailer: done\r\n\r\n")

    def log_message(self, fmt, *args):
        sys.stderr.write("http-server: " + (fmt % args) + "\n")

def stop_at_eof():
    sys.stdin.buffer.read()     # returns when the script is gone
    os._exit(0)

threading.Thread(target=stop_at_eof, daemon=True).start()
threading.Timer(600, os._exit, (3,)).start()    # a last resort

server = http.server.ThreadingHTTPServer(
    ("127.0.0.1", 0), functools.partial(Handler, directory=root))
dead = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
dead.bind(("127.0.0.1", 0))     # bound, never listening: connections are refused
print(server.server_address[1], dead.getsockname()[1], flush=True)
server.serve_forever()
'

server_scratch http TERM 128+n

mkdir "$tmp/root" && mkfifo "$tmp/ports" "$tmp/stdin" || exit 2
"$python" -c "$server_py" "$tmp/root" <"$tmp/stdin" >"$tmp/ports" 2>"$tmp/server.log" &
pid=$!
# Open our ends of the FIFOs, in the order the server opens its own (each
# open waits for the other end). Keeping fd 4 open keeps the server alive.
exec 4>"$tmp/stdin" 3<"$tmp/ports"
if ! read -r port deadport <&3 || [ -z "$deadport" ]; then
  echo "run-with-http-server: the server did not start:" >&2
  cat "$tmp/server.log" >&2
  exit 2
fi

# The command, with the ports put into its arguments. It does not get our
# FIFO ends: the server's life is ours. (In a subshell: a redirection on the
# command itself would make some shells keep copies of fds 3 and 4, which
# the command would inherit.)
server_exec() { (exec 3<&- 4>&- && exec "$@"); }
server_failed() {
  echo "run-with-http-server: the server's log:" >&2
  cat "$tmp/server.log" >&2
}
server_run @DEADPORT@ "$deadport" @PORT@ "$port" -- "$@"
