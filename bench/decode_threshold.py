"""Where a tick's decodes should leave the loop (rtc/decode_pool.py `DECODE_INLINE_BELOW`): N talkers' real Opus
packets through real receive paths, each tick's decodes inline or on a two-thread pool; per tick the event loop
thread's CPU (what the loop is relieved of) and the whole process's (what the hop costs in all).

    PYTHONPATH=. python bench/decode_threshold.py
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mediamute.eventloop import run  # noqa: E402
from mediamute.rtc.decode_pool import TickDecoder  # noqa: E402
from mediamute.rtc.encode_pool import EncodePool  # noqa: E402
from tests.test_decode_offload import Room  # noqa: E402


async def measure(n: int, pooled: bool, ticks: int = 300) -> tuple[float, float]:
    room = Room(*[(f"p{i}", 300 + 40 * i) for i in range(n)])
    pool = EncodePool(2)
    decoder = TickDecoder(pool, min_jobs=1 if pooled else 10**9)
    for _ in range(20):
        room.tick_inline()
    loop_cpu = process_cpu = 0.0
    for _ in range(ticks):
        room.arrive()
        room.clock.now += 0.016
        pending = room.mixer.begin_tick(room.clock.now)
        done = asyncio.Event()
        c0, p0 = time.thread_time(), time.process_time()
        decoder.run(pending.jobs, done.set)
        await done.wait()
        loop_cpu += time.thread_time() - c0
        process_cpu += time.process_time() - p0
        room.mixer.finish_tick(pending)
    pool.close()
    return loop_cpu / ticks * 1e6, process_cpu / ticks * 1e6


async def main() -> None:
    print("decodes | inline: loop CPU, process CPU (us/tick) | pooled: loop CPU, process CPU")
    for n in (4, 8, 12, 16, 24, 32, 48):
        li, pi = await measure(n, False)
        lp, pp = await measure(n, True)
        print(f"{n:7d} | {li:7.1f} {pi:7.1f} | {lp:7.1f} {pp:7.1f}")


if __name__ == "__main__":
    run(main())
