"""At most one log line per source per interval: what keeps hostile input from flooding the log.

Used for refused datagrams at the ICE ports (rtc/ice.py) and refused API requests (api/errors.py): a source that
keeps sending garbage gets one line per interval, which says how many more it sent since the last one. Memory is
bounded: past `max_sources`, quiet sources are forgotten first, then the oldest. Standard library only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable


class PerSourceLimiter:
    """Decides, per source key, whether a log line may be written now."""

    def __init__(self, interval: float = 10.0, max_sources: int = 1024, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.max_sources = max_sources
        self.lines = 0
        """Lines allowed so far."""
        self._clock = clock
        self._last_line: dict[Hashable, float] = {}
        self._suppressed: dict[Hashable, int] = {}

    def allow(self, source: Hashable) -> int | None:
        """None if `source` had a line within the interval (counted as suppressed); else how many were suppressed."""
        now = self._clock()
        last = self._last_line.get(source)
        if last is not None and now - last < self.interval:
            self._suppressed[source] = self._suppressed.get(source, 0) + 1
            return None
        if len(self._last_line) >= self.max_sources:
            self._forget_quiet_sources(now)
        self._last_line[source] = now
        self.lines += 1
        return self._suppressed.pop(source, 0)

    def _forget_quiet_sources(self, now: float) -> None:
        quiet = [s for s, t in self._last_line.items() if now - t >= self.interval]
        for source in quiet or list(self._last_line)[: self.max_sources // 2]:  # a flood of sources: the oldest go
            self._last_line.pop(source, None)
            self._suppressed.pop(source, None)

    def __len__(self) -> int:
        """Sources remembered now (bounded by `max_sources`)."""
        return len(self._last_line)
