"""yield peer: two asyncio tasks on uvloop, each awaiting asyncio.sleep(0)
in turn. Prints ns per sleep(0)."""
import asyncio
import time

from bench_common import measure, report, run


async def yielder(n):
    sleep = asyncio.sleep
    for _ in range(n):
        await sleep(0)


async def once(n):
    t0 = time.perf_counter_ns()
    await asyncio.gather(asyncio.create_task(yielder(n // 2)),
                         asyncio.create_task(yielder(n // 2)))
    return time.perf_counter_ns() - t0


async def main():
    return await measure(once, 2)


med, mn, n = run(main)
report("yield", "uvloop-sleep0", med, mn, n, "ns/yield")
