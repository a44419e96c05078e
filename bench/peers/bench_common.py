"""Shared by the Python peers: uvloop set-up, calibration, and the result
line format of bench/bench.h ("<bench> <impl> <value> <unit> (notes)")."""
import asyncio
import os
import sys
import time

try:
    import uvloop
except ImportError as e:  # run.sh picks an interpreter that has it
    sys.exit(f"{sys.executable}: cannot import uvloop ({e}); on Debian: "
             "apt install python3-uvloop and run with /usr/bin/python3")

TARGET_S = float(os.environ.get("LOOM_BENCH_TARGET_S", "0") or 0) or 0.15
REPS = int(os.environ.get("LOOM_BENCH_REPS", "0") or 0) or 5


def run(coro_fn):
    """Runs coro_fn() on a fresh uvloop event loop and returns its result."""
    loop = uvloop.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro_fn())
    finally:
        loop.close()


async def measure(fn, quantum=1):
    """fn(n) is a coroutine performing n operations, returning elapsed ns.
    Calibrates n to about TARGET_S per run; returns (median, min, n) in ns
    per operation over REPS runs."""
    n = max(1024, quantum)
    while True:
        ns = await fn(n)
        if ns >= TARGET_S * 1e9 / 8:
            break
        n *= 2
    n = int(n * TARGET_S * 1e9 / max(ns, 1))
    n = max(quantum, (n + quantum - 1) // quantum * quantum)
    per = sorted([(await fn(n)) / n for _ in range(REPS)])
    return per[len(per) // 2], per[0], n


BATCH = 1000


async def empty():
    return 0


async def gather_batches(n):
    """n empty tasks, BATCH at a time, created with create_task and awaited
    with gather (the spawn and gather peers); returns elapsed ns."""
    create = asyncio.create_task
    t0 = time.perf_counter_ns()
    for _ in range(n // BATCH):
        await asyncio.gather(*[create(empty()) for _ in range(BATCH)])
    return time.perf_counter_ns() - t0


def report(bench, impl, med, mn, n, unit):
    v = sys.version_info
    print(f"{bench:<6} {impl:<18} {med:10.1f} {unit:<10} (median of {REPS} "
          f"runs of {n}; min {mn:.1f}; Python {v.major}.{v.minor}.{v.micro}, "
          f"uvloop {uvloop.__version__})", flush=True)
