"""spawn peer: batches of 1000 empty asyncio tasks on uvloop, created with
create_task and awaited with gather. Prints ns per task."""
import asyncio
import time

from bench_common import measure, report, run

BATCH = 1000


async def empty():
    return 0


async def once(n):
    create = asyncio.create_task
    t0 = time.perf_counter_ns()
    for _ in range(n // BATCH):
        await asyncio.gather(*[create(empty()) for _ in range(BATCH)])
    return time.perf_counter_ns() - t0


async def main():
    return await measure(once, BATCH)


med, mn, n = run(main)
report("spawn", "uvloop-task", med, mn, n, "ns/task")
