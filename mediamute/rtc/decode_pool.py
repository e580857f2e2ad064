"""A tick's decodes on the encode pool's threads: the receive paths' libopus work off the event loop.

At a tick the mixer's `begin_tick` runs every open receive path's jitter-buffer bookkeeping on the loop and hands
back what each must decode (`ReceivePath.prepare`); `TickDecoder.run` runs those decodes — decode, FEC recovery,
concealment, each on its own participant's decoder — on the pool's threads (libopus through opuslib-next's ctypes
call releases the GIL), and calls back on the loop when the last one is done, where `Mixer.finish_tick` admits
each frame only if its participant's gate is still open in the epoch its pull began in. The gate, the inbox flush
and admission to the mix never leave the loop.

A tick with fewer than `DECODE_INLINE_BELOW` decodes runs them on the loop at once. Off the loop, the loop's share
of a tick's decodes falls 3-10 times, but the whole process pays 15-50 % more CPU for them in a micro-benchmark
(the hop, and the decodes' Python parts contending for the GIL), and about twice the work moved in a live call:
worth it only where the loop needs the room (bench/decode_threshold.py, bench/RESULTS.md, issue 13).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence

from ..media.mixer import PendingPull
from .encode_pool import EncodePool, PoolBatch

log = logging.getLogger(__name__)

DECODE_INLINE_BELOW = int(os.environ.get("MEDIAMUTE_DECODE_INLINE_BELOW", "64"))
"""A tick with fewer decodes than this decodes on the loop. Off the loop a tick's decodes cost the process more CPU
in all (the hop, and their Python parts contending for the GIL with the loop: live at N = 48, +14 % of a core on
the threads for −4 % on the loop), so they leave it only in calls whose loop runs short: at N = 80 on a loaded
machine, decoding on the threads halved the late ticks and cut the API's answer from ≈ 300 to ≈ 50 ms
(bench/RESULTS.md, issue 13). $MEDIAMUTE_DECODE_INLINE_BELOW overrides it (for measurements)."""


class DecodeBatch(PoolBatch):
    """One tick's prepared pulls, decoded in slices by the pool's threads."""

    __slots__ = ()

    def run(self, lo: int, hi: int) -> int:
        failed = 0
        for job in self.jobs[lo:hi]:
            try:
                job.run()
            except Exception:  # its pull comes back empty (the receive path resets its decoder)
                failed += 1
                log.exception("decoding a participant's frame failed")
        return failed


class TickDecoder:
    """A call's side of the pool for decodes: one tick's batch at a time (the call never begins a tick before the
    last one finished), its completion handed back to the loop."""

    def __init__(self, pool: EncodePool | None, min_jobs: int = DECODE_INLINE_BELOW) -> None:
        self.pool = pool
        self.min_jobs = min_jobs
        self.pooled_ticks = 0
        self.inline_ticks = 0
        self.waits: deque[float] = deque(maxlen=3000)
        """Seconds from handing a tick's decodes over to their completion running on the loop (pooled ticks)."""

    def run(self, jobs: Sequence[PendingPull], done: Callable[[], None]) -> None:
        """Run the jobs (on the pool, or inline for a few) and call `done()` on the loop once all ran."""
        pool = self.pool
        if pool is None or len(jobs) < self.min_jobs:
            self.inline_ticks += 1
            DecodeBatch(list(jobs)).run(0, len(jobs))
            done()
            return
        self.pooled_ticks += 1
        loop = asyncio.get_running_loop()
        handed = time.monotonic()

        def back(_batch: PoolBatch) -> None:  # on the pool thread that finished last
            try:
                loop.call_soon_threadsafe(self._landed, handed, done)
            except RuntimeError:  # the loop is closed: the call is gone
                pass

        pool.submit(DecodeBatch(list(jobs)), back)

    def _landed(self, handed: float, done: Callable[[], None]) -> None:
        self.waits.append(time.monotonic() - handed)
        done()
