"""subprocess peer (not subprocess.py: that name would shadow the standard
library module asyncio imports): spawn + wait of /bin/true with
asyncio.create_subprocess_exec on uvloop, one child at a time or K at once
(argument). The streams are the parent's own. Prints microseconds per
child."""
import asyncio
import sys
import time

from bench_common import REPS, TARGET_S, run, uvloop

K = int(sys.argv[1]) if len(sys.argv) > 1 else 1


async def one():
    proc = await asyncio.create_subprocess_exec("/bin/true")
    if await proc.wait() != 0:
        sys.exit("subprocesses.py: /bin/true failed")


async def runner(n):
    for _ in range(n):
        await one()


async def once(n):
    t0 = time.perf_counter_ns()
    await asyncio.gather(*[runner(n // K) for _ in range(K)])
    return time.perf_counter_ns() - t0


async def main():
    n = 8 * K
    while True:
        ns = await once(n)
        if ns >= TARGET_S * 1e9 / 8:
            break
        n *= 2
    n = max(K, int(n * TARGET_S * 1e9 / max(ns, 1)) // K * K)
    per = sorted([(await once(n)) / n / 1000 for _ in range(REPS)])
    return per[len(per) // 2], per[0], n


med, mn, n = run(main)
v = sys.version_info
impl = f"uvloop(k={K})"
print(f"{'sproc':<6} {impl:<18} {med:10.1f} {'us/child':<10} (median of {REPS} "
      f"runs of {n}; min {mn:.1f}; Python {v.major}.{v.minor}.{v.micro}, "
      f"uvloop {uvloop.__version__})", flush=True)
print(f"#      {impl}: {1e6 / med:.0f} spawns/s", flush=True)
