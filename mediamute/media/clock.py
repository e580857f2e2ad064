"""The mixer's 20 ms clock: absolute deadlines on one monotonic clock, resynchronised (and counted) when late.

Absolute deadlines (start + k * 20 ms) keep the mix rate exact over hours, where "sleep 20 ms after each tick"
would drift by the tick's own cost. When the loop falls more than one period behind, the clock does not try to
catch up with a burst of ticks (that would send listeners a burst of audio); it counts a late tick and restarts
its deadlines from now. Standard library only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .audio import FRAME_SECONDS

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClockCounters:
    ticks: int
    late_ticks: int
    max_lateness: float
    """Seconds: the worst wake-up after a deadline seen so far."""


class MixClock:
    """Calls `on_tick(deadline)` every period until stopped.

    The deadline is the tick's media time; the call runs up to `late_after` after it (a later wake-up resynchronises:
    the deadline passed is then the wake-up time). A handler that must know when it actually ran reads the same
    `clock` (the mixer does, for `TickRecord.mixed_at`).
    """

    def __init__(
        self,
        on_tick: Callable[[float], object],
        period: float = FRAME_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        late_after: float | None = None,
    ) -> None:
        self._on_tick = on_tick
        self.period = period
        self._clock = clock
        self.late_after = period if late_after is None else late_after
        self.ticks = 0
        self.late_ticks = 0
        self.max_lateness = 0.0
        self.lateness: list[float] = []
        self._lateness_cap = 3000
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mix-clock")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    def counters(self) -> ClockCounters:
        return ClockCounters(ticks=self.ticks, late_ticks=self.late_ticks, max_lateness=self.max_lateness)

    async def _run(self) -> None:
        deadline = self._clock() + self.period
        while True:
            delay = deadline - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            now = self._clock()
            lateness = now - deadline
            self.max_lateness = max(self.max_lateness, lateness)
            if len(self.lateness) >= self._lateness_cap:
                del self.lateness[: self._lateness_cap // 2]
            self.lateness.append(lateness)
            if lateness > self.late_after:
                self.late_ticks += 1
                log.warning("mix clock late by %.1f ms; resynchronising", lateness * 1000)
                deadline = now
            try:
                self._on_tick(deadline)
            except Exception:  # a broken tick must not stop the call's audio
                log.exception("mixer tick failed")
            self.ticks += 1
            deadline += self.period
