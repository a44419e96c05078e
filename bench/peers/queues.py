"""queue peer: items put by a producer task and got by a consumer task
through an asyncio.Queue on uvloop, in the shapes of bench/bench-queue.c.
Prints ns per item.

  queue    unbounded; the producer awaits asyncio.sleep(0) after every put,
           so the consumer is always waiting when an item comes
  queue1   maxsize 1
  queue64  maxsize 64

(Not named queue.py: the script's directory comes first on sys.path, and
the standard library's queue module, which asyncio imports, would be
shadowed.)"""
import asyncio
import time

from bench_common import measure, report, run


async def consumer(q, n):
    get = q.get
    for i in range(1, n + 1):
        if await get() != i:
            raise RuntimeError("items out of order")


async def producer(q, n, yield_each):
    put = q.put
    sleep = asyncio.sleep
    if yield_each:
        for i in range(1, n + 1):
            await put(i)
            await sleep(0)
    else:
        for i in range(1, n + 1):
            await put(i)


def shape(maxsize, yield_each):
    async def once(n):
        q = asyncio.Queue(maxsize)
        t0 = time.perf_counter_ns()
        c = asyncio.create_task(consumer(q, n))
        p = asyncio.create_task(producer(q, n, yield_each))
        await asyncio.gather(c, p)
        return time.perf_counter_ns() - t0
    return once


SHAPES = [("queue", "uvloop-queue", 0, True),
          ("queue1", "uvloop-queue(max=1)", 1, False),
          ("queue64", "uvloop-queue(max=64)", 64, False)]


async def main():
    return [await measure(shape(m, y)) for _, _, m, y in SHAPES]


for (bench, impl, _, _), (med, mn, n) in zip(SHAPES, run(main)):
    report(bench, impl, med, mn, n, "ns/item")
