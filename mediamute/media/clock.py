"""The mixer's 20 ms clock: absolute deadlines on one monotonic clock, resynchronised (and counted) when late.

Absolute deadlines (start + k * 20 ms) keep the mix rate exact over hours, where "sleep 20 ms after each tick"
would drift by the tick's own cost. When the loop falls more than one period behind, the clock does not try to
catch up with a burst of ticks (that would send listeners a burst of audio); it counts a late tick and restarts
its deadlines from now.

Each tick's handler is timed into a fixed-bucket histogram (`DurationHistogram`: one bisect, one increment and
one addition per tick), which /metrics turns into a Prometheus histogram at scrape time. Standard library only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .audio import FRAME_SECONDS

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClockCounters:
    ticks: int
    late_ticks: int
    max_lateness: float
    """Seconds: the worst wake-up after a deadline seen so far."""


TICK_DURATION_BOUNDS: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05)
"""Seconds: the upper bounds of the tick-duration buckets, from a small call's tick to more than two periods."""


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """A `DurationHistogram` at one moment: per-bucket counts (not cumulative) and the sum of what was observed."""

    bounds: tuple[float, ...]
    """Upper bounds in seconds, ascending and inclusive (Prometheus' `le`)."""
    counts: tuple[int, ...]
    """Observations per bucket: one per bound, then a last one for everything above the highest bound."""
    total: float
    """Seconds: the sum of every observation."""

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it) per bucket, ending with (inf, count): Prometheus' shape."""
        running, buckets = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts):
            running += count
            buckets.append((bound, running))
        return buckets


class DurationHistogram:
    """Fixed-bucket counts of durations: O(log buckets) per observation, no allocation, no lock (one thread)."""

    __slots__ = ("bounds", "_counts", "total")

    def __init__(self, bounds: Sequence[float] = TICK_DURATION_BOUNDS) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("bounds must be ascending, distinct and not empty")
        self.bounds = tuple(bounds)
        self._counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self._counts[bisect_left(self.bounds, seconds)] += 1  # the first bound >= seconds; past the last: +Inf
        self.total += seconds

    def snapshot(self) -> HistogramSnapshot:
        return HistogramSnapshot(bounds=self.bounds, counts=tuple(self._counts), total=self.total)


class MixClock:
    """Calls `on_tick(deadline)` every period until stopped.

    The deadline is the tick's media time; the call runs up to `late_after` after it (a later wake-up resynchronises:
    the deadline passed is then the wake-up time). A handler that must know when it actually ran reads the same
    `clock` (the mixer does, for `TickRecord.mixed_at`). How long each handler call took, on that same clock, goes
    into `durations`; `ticks` and `durations` are updated together, so a reader between ticks sees equal counts.
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
        self.durations = DurationHistogram()
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

    def tick_durations(self) -> HistogramSnapshot:
        """How long the tick handler took, per bucket, over every tick so far (its count equals `ticks`)."""
        return self.durations.snapshot()

    def _fire(self, deadline: float) -> None:
        """One tick: run the handler, time it, count it. A handler that raises is timed and counted too."""
        clock = self._clock
        started = clock()
        try:
            self._on_tick(deadline)
        except Exception:  # a broken tick must not stop the call's audio
            log.exception("mixer tick failed")
        self.durations.observe(clock() - started)
        self.ticks += 1

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
            self._fire(deadline)
            deadline += self.period
