"""lock peer: asyncio.Lock and asyncio.Semaphore on uvloop, in the shapes
of bench/bench-lock.c.

  lock     await lock.acquire(); lock.release(), uncontended (ns per pair)
  sem      the same with asyncio.Semaphore(1)
  lock100  a lock passed around 100 tasks: the main task holds it while the
           tasks start and queue on it, then releases it; each task loops
           acquire, count, release. asyncio.Lock's release wakes the first
           waiter and a newcomer does not jump the queue, so every
           acquisition is a hand-off (checked). ns per hand-off."""
import asyncio
import time

from bench_common import measure, report, run

NTASKS = 100


async def pairs(sync, n):
    acquire, release = sync.acquire, sync.release
    t0 = time.perf_counter_ns()
    for _ in range(n):
        await acquire()
        release()
    return time.perf_counter_ns() - t0


async def handoff(n):
    each = -(-n // NTASKS)
    lock = asyncio.Lock()
    st = {"count": 0, "handoffs": 0, "holder": -1}

    async def contender(ident):
        acquire, release = lock.acquire, lock.release
        for _ in range(each):
            await acquire()
            st["count"] += 1
            if st["holder"] != ident:
                st["handoffs"] += 1
            st["holder"] = ident
            release()

    t0 = time.perf_counter_ns()
    await lock.acquire()
    tasks = [asyncio.create_task(contender(i)) for i in range(NTASKS)]
    await asyncio.sleep(0)  # they all queue on the lock
    lock.release()
    await asyncio.gather(*tasks)
    ns = time.perf_counter_ns() - t0
    total = each * NTASKS
    if st["count"] != total or st["handoffs"] != total:
        raise RuntimeError(f"lock100: {st} for {total} acquisitions")
    return ns * n / total


async def main():
    return (await measure(lambda n: pairs(asyncio.Lock(), n)),
            await measure(lambda n: pairs(asyncio.Semaphore(1), n)),
            await measure(handoff, NTASKS))


(lm, lmin, ln), (sm, smin, sn), (hm, hmin, hn) = run(main)
report("lock", "uvloop-lock", lm, lmin, ln, "ns/pair")
report("sem", "uvloop-semaphore", sm, smin, sn, "ns/pair")
report("lock100", "uvloop-lock", hm, hmin, hn, "ns/handoff")
