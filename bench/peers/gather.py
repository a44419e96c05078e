"""gather peer: batches of 1000 empty asyncio tasks on uvloop, awaited with
asyncio.gather and with an asyncio.TaskGroup. Prints ns per task."""
import asyncio
import time

from bench_common import BATCH, empty, gather_batches, measure, report, run


async def group_once(n):
    t0 = time.perf_counter_ns()
    for _ in range(n // BATCH):
        async with asyncio.TaskGroup() as tg:
            for _ in range(BATCH):
                tg.create_task(empty())
    return time.perf_counter_ns() - t0


async def main():
    return (await measure(gather_batches, BATCH), await measure(group_once, BATCH))


(gm, gmin, gn), (tm, tmin, tn) = run(main)
report("gather", "uvloop-gather", gm, gmin, gn, "ns/task")
report("group", "uvloop-taskgroup", tm, tmin, tn, "ns/task")
