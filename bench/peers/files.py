"""files peer: the layout bench-files prepares (DIR/small/0..999, DIR/big),
read the way aiofiles reads, on uvloop: every blocking call goes to a
thread with asyncio.to_thread.

  files-small uvloop-aiofiles   1,000 files at once; per file: open, read,
                                close, each an await asyncio.to_thread(...)
                                (what `async with aiofiles.open(p) as f:
                                await f.read()` does)
  files-small uvloop-to_thread  per file one to_thread of a function that
                                opens, reads and closes (the cheapest form)
  files-big   uvloop-to_thread  DIR/big: await asyncio.to_thread(f.read,
                                1 MiB) until the end

Usage: files.py DIR (run by bench/files.sh)."""
import asyncio
import os
import sys
import time

from bench_common import REPS, run, uvloop

NSMALL = 1000
CHUNK = int(os.environ.get("LOOM_BENCH_CHUNK_KIB", "1024")) * 1024


def line(bench, impl, med, mn, unit, notes):
    v = sys.version_info
    print(f"{bench:<11} {impl:<18} {med:10.2f} {unit:<10} (median of {REPS} runs; "
          f"min {mn:.2f}; {notes}; Python {v.major}.{v.minor}.{v.micro}, "
          f"uvloop {uvloop.__version__})", flush=True)


def read_whole(path):
    with open(path, "rb") as f:
        return f.read()


async def aiofiles_style(path):
    f = await asyncio.to_thread(open, path, "rb")
    try:
        return await asyncio.to_thread(f.read)
    finally:
        await asyncio.to_thread(f.close)


async def small(d, per_file):
    paths = [os.path.join(d, "small", str(i)) for i in range(NSMALL)]
    times = []
    for rep in range(REPS + 1):  # the first warms up
        t0 = time.perf_counter_ns()
        datas = await asyncio.gather(*[per_file(p) for p in paths])
        t1 = time.perf_counter_ns()
        assert all(len(x) == 4096 for x in datas)
        if rep:
            times.append(t1 - t0)
    times.sort()
    return times[len(times) // 2], times[0]


async def one_thread(path):
    return await asyncio.to_thread(read_whole, path)


async def big(d):
    path = os.path.join(d, "big")
    size = os.path.getsize(path)
    times = []
    for rep in range(REPS + 1):
        t0 = time.perf_counter_ns()
        got = 0
        f = await asyncio.to_thread(open, path, "rb", buffering=0)
        while True:
            b = await asyncio.to_thread(f.read, CHUNK)
            if not b:
                break
            got += len(b)
        await asyncio.to_thread(f.close)
        t1 = time.perf_counter_ns()
        assert got == size
        if rep:
            times.append(t1 - t0)
    times.sort()
    return times[len(times) // 2], times[0], size


async def main(d):
    med, mn = await small(d, aiofiles_style)
    line("files-small", "uvloop-aiofiles", med / 1e6, mn / 1e6, "ms/1000",
         "open, read, close: a to_thread each")
    med, mn = await small(d, one_thread)
    line("files-small", "uvloop-to_thread", med / 1e6, mn / 1e6, "ms/1000",
         "one to_thread per file")
    if os.path.exists(os.path.join(d, "big")):
        med, mn, size = await big(d)
        gib = size / (1 << 30)
        line("files-big", "uvloop-to_thread", gib / (med / 1e9), gib / (mn / 1e9), "GiB/s",
             f"{gib:.2f} GiB, {CHUNK // 1024} KiB reads, page cache warm")


if len(sys.argv) != 2:
    sys.exit("usage: files.py DIR")
run(lambda: main(sys.argv[1]))
