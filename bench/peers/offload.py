"""offload peer: asyncio.to_thread of a no-op function on uvloop, one at a
time (submit, await). Prints ns per round trip."""
import asyncio
import time

from bench_common import measure, report, run


def noop():
    return 0


async def once(n):
    to_thread = asyncio.to_thread
    t0 = time.perf_counter_ns()
    for _ in range(n):
        await to_thread(noop)
    return time.perf_counter_ns() - t0


async def main():
    return await measure(once)


med, mn, n = run(main)
report("offload", "uvloop-to_thread", med, mn, n, "ns/job")
