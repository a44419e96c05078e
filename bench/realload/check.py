#!/usr/bin/env python3
"""check.py: the correctness checks bench/realload/run.sh makes before it
times a server, so that no figure comes from a server that answers wrongly.

    check.py http PORT     keep-alive, 16 pipelined requests answered in
                           order, a request split byte by byte, a bad request
                           answered 400
    check.py redis PORT    PING, SET/GET, 16 pipelined INCRs answered in
                           order, a command split byte by byte, an unknown
                           command answered with an error

Prints one line per check; exits 1 at the first that fails. Plain Python,
no packages; 127.0.0.1 only.
"""
import socket
import sys
import time

HOST = "127.0.0.1"
GET = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


def connect(port):
    return socket.create_connection((HOST, port), timeout=10)


def read_response(f):
    """One HTTP response from file f: (status, headers dict, body)."""
    line = f.readline()
    if not line:
        raise EOFError("connection closed")
    status = int(line.split()[1])
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    body = b""
    if "content-length" in headers:
        body = f.read(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(f.readline().split(b";")[0], 16)
            chunk = f.read(size + 2)[:-2]
            if size == 0:
                break
            body += chunk
    return status, headers, body


def check_http(port):
    with connect(port) as s:
        f = s.makefile("rb")
        for _ in range(3):
            s.sendall(GET)
            st, _, body = read_response(f)
            assert st == 200 and body == b"Hello, World!", (st, body)
    print("keep-alive: 3 requests on one connection answered")

    with connect(port) as s:
        f = s.makefile("rb")
        s.sendall(GET * 16)
        for i in range(16):
            st, _, body = read_response(f)
            assert st == 200 and body == b"Hello, World!", (i, st, body)
    print("pipelining: 16 requests in one write answered")

    with connect(port) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = s.makefile("rb")
        for b in GET:
            s.sendall(bytes([b]))
            time.sleep(0.001)
        st, _, body = read_response(f)
        assert st == 200 and body == b"Hello, World!", (st, body)
    print("split: a request sent byte by byte answered")

    with connect(port) as s:
        f = s.makefile("rb")
        s.sendall(b"NOT HTTP\r\n\r\n")
        st, _, _ = read_response(f)
        assert st == 400, st
    print("bad request: answered 400")


def redis_reply(f):
    line = f.readline()
    if not line:
        raise EOFError("connection closed")
    if line[:1] == b"$":
        n = int(line[1:])
        return line if n < 0 else line + f.read(n + 2)
    if line[:1] == b"*":
        out = line
        for _ in range(int(line[1:])):
            out += redis_reply(f)
        return out
    return line


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def check_redis(port):
    key = b"realload-check-%d" % time.monotonic_ns()
    with connect(port) as s:
        f = s.makefile("rb")
        for req, want in [(resp(b"PING"), b"+PONG\r\n"),
                          (resp(b"SET", key, b"v" * 1000), b"+OK\r\n"),
                          (resp(b"GET", key), b"$1000\r\n" + b"v" * 1000 + b"\r\n"),
                          (resp(b"DEL", key), b":1\r\n")]:
            s.sendall(req)
            got = redis_reply(f)
            assert got == want, (req[:40], got[:40])
        print("keep-alive: PING, SET, GET, DEL on one connection answered")
        s.sendall(resp(b"INCR", key) * 16)
        for i in range(1, 17):
            got = redis_reply(f)
            assert got == b":%d\r\n" % i, (i, got)
        print("pipelining: 16 INCRs in one write answered in order")
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for b in resp(b"SET", key, b"split"):
            s.sendall(bytes([b]))
            time.sleep(0.001)
        assert redis_reply(f) == b"+OK\r\n"
        s.sendall(resp(b"GET", key))
        assert redis_reply(f) == b"$5\r\nsplit\r\n"
        print("split: a SET sent byte by byte stored")
        s.sendall(resp(b"NOSUCHCOMMAND"))
        got = redis_reply(f)
        assert got.startswith(b"-ERR"), got
        s.sendall(resp(b"DEL", key))
        assert redis_reply(f) == b":1\r\n"
        print("errors: an unknown command answered -ERR")


def main():
    kind, port = sys.argv[1], int(sys.argv[2])
    try:
        (check_http if kind == "http" else check_redis)(port)
    except (AssertionError, OSError, EOFError, ValueError, IndexError) as e:
        print("FAILED: %r" % (e,))
        sys.exit(1)


if __name__ == "__main__":
    main()
