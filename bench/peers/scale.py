"""scale peer: N asyncio tasks on uvloop (default 1,000,000), each sleeping
1 s, all alive at once. Prints the growth of peak RSS (ru_maxrss) over a
baseline taken before creating them, per task, and the times.

    python3 scale.py [N [ms]]
"""
import asyncio
import resource
import sys
import time

from bench_common import run, uvloop  # exits if uvloop is missing


def maxrss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
MS = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
asleep = max_asleep = 0


async def sleeper(s):
    global asleep, max_asleep
    asleep += 1
    max_asleep = max(max_asleep, asleep)
    await asyncio.sleep(s)
    asleep -= 1


async def main():
    base = maxrss()
    t0 = time.perf_counter()
    create = asyncio.create_task
    tasks = [create(sleeper(MS / 1000)) for _ in range(N)]
    t_spawn = time.perf_counter() - t0
    await asyncio.gather(*tasks)
    total = time.perf_counter() - t0
    return base, maxrss(), t_spawn, total


base, peak, t_spawn, total = run(main)
# Named after N when it is not the default, so that run.sh does not set its
# time against loom's for another N.
suffix = "" if N == 1000000 else f"(n={N})"
print(f"{'scale':<6} {'uvloop-task' + suffix:<18} {(peak - base) / N:10.0f} "
      f"{'B/task':<10} (peak RSS {(peak - base) / 1048576:.1f} MiB over a "
      f"{base / 1048576:.1f} MiB baseline, {N} tasks; uvloop "
      f"{uvloop.__version__})")
print(f"{'scale':<6} {'uvloop-task-time' + suffix:<18} {total:10.2f} {'s':<10} "
      f"(spawn {t_spawn:.2f} s, joined after {total:.2f} s, {MS} ms sleeps; "
      f"{max_asleep} asleep at once)", flush=True)
