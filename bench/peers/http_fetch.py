"""http peer: the downloads of bench-http.c in plain asyncio streams.

    http_fetch.py URL [N [ROUNDS]]

No aiohttp: each of N coroutines (default 1000) keeps one keep-alive
connection (asyncio.open_connection) and per round sends an HTTP/1.1 GET,
reads the headers up to the blank line, then exactly Content-Length bytes
of body, all N at once under asyncio.gather. Connections are opened in a
warm-up round, as libcurl's cache opens them in the C programs. Prints the
median round time per download in bench.h's format, on asyncio's own loop
and, when it can be imported, on uvloop."""
import asyncio
import sys
import time
import urllib.parse


async def fetch(conn, host, path):
    reader, writer = conn
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length)
    return status, len(body)


async def bench(url, n, rounds):
    u = urllib.parse.urlsplit(url)
    host, port, path = u.hostname, u.port or 80, u.path or "/"
    conns = [await asyncio.open_connection(host, port) for _ in range(n)]
    per = []
    c0 = 0
    for r in range(rounds + 1):  # the first round warms up
        if r == 1:
            c0 = time.process_time_ns()
        t0 = time.perf_counter_ns()
        res = await asyncio.gather(*(fetch(c, f"{host}:{port}", path) for c in conns))
        dt = time.perf_counter_ns() - t0
        if any(s != 200 for s, _ in res):
            sys.exit("http_fetch: a download failed")
        if r:
            per.append(dt / n)
    cpu = (time.process_time_ns() - c0) / 1000 / (n * rounds)
    for _, w in conns:
        w.close()
    per.sort()
    return per[len(per) // 2] / 1000, per[0] / 1000, cpu


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: http_fetch.py URL [N [ROUNDS]]")
    url = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    loops = [("asyncio", asyncio.new_event_loop)]
    try:
        import uvloop
        loops.append(("asyncio+uvloop", uvloop.new_event_loop))
    except ImportError:
        pass
    v = sys.version_info
    for name, new_loop in loops:
        loop = new_loop()
        try:
            med, mn, cpu = loop.run_until_complete(bench(url, n, rounds))
        finally:
            loop.close()
        print(f"http   {name:<18} {med:10.1f} {'us/dl':<10} (median of {rounds} rounds "
              f"of {n} concurrent downloads; min {mn:.1f}; {1e6 / med:.0f} downloads/s; "
              f"cpu {cpu:.1f} us/dl; Python {v.major}.{v.minor}.{v.micro})", flush=True)


if __name__ == "__main__":
    main()
