"""spawn peer: batches of 1000 empty asyncio tasks on uvloop, created with
create_task and awaited with gather. Prints ns per task."""
from bench_common import BATCH, gather_batches, measure, report, run


async def main():
    return await measure(gather_batches, BATCH)


med, mn, n = run(main)
report("spawn", "uvloop-task", med, mn, n, "ns/task")
