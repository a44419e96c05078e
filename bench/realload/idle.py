#!/usr/bin/env python3
"""idle.py: idle keep-alive connections, for bench/realload/run.sh's memory
step.

    idle.py PORT CONNS

Opens CONNS connections to the HTTP server on 127.0.0.1:PORT, makes one
keep-alive request on each (all sent before any answer is read, so that the
server holds every connection at once), reads every answer, then prints
"ready" and keeps the connections open, idle, until its standard input is
closed. The caller reads the server's memory meanwhile. Plain Python, no
packages.
"""
import socket
import sys

GET = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    conns = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns.append(s)
    for s in conns:
        s.sendall(GET)
    for s in conns:
        # One answer: its head, then Content-Length bytes of body.
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                sys.exit("idle.py: the server closed a connection")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(body) < length:
            chunk = s.recv(4096)
            if not chunk:
                sys.exit("idle.py: the server closed a connection")
            body += chunk
        if not head.startswith(b"HTTP/1.1 200"):
            sys.exit("idle.py: not a 200 answer")
    print("ready", flush=True)
    sys.stdin.read()  # until closed
    for s in conns:
        s.close()


if __name__ == "__main__":
    main()
