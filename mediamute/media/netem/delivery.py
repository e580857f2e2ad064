"""The delivery line of one impaired direction: it asks the model what happens to each datagram and hands the
survivors on at their times, on the event loop, without blocking and without a task per datagram.

Datagrams wait in one heap ordered by (delivery time, send order), with a single timer armed for the earliest
(`loop.call_at`); when it fires, everything due goes out in that order as one batch through `deliver`. Equal
times therefore keep their send order, which a timer per datagram would not promise. What is already due when a
datagram comes in (a profile without delay, or a late timer) is handed back to the caller of `submit`, which sends
it on the spot: no timer, no extra hop. Memory is bounded by the model (`MAX_IN_FLIGHT`); `close()` cancels what
is still in flight (the participant left). Standard library only.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, Protocol

from .model import DirectionModel


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """What the line needs of an event loop (asyncio's, or a virtual clock in tests)."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None], /) -> TimerHandle: ...


Batch = list[tuple[bytes, Any]]
"""Datagrams due together, in delivery order, each with what the caller attached to it (e.g. its ICE component)."""


class DeliveryLine:
    """Holds one direction's datagrams for the model's delays and hands them to `deliver` in batches."""

    __slots__ = ("model", "counters", "_deliver", "_loop", "_heap", "_seq", "_timer", "_timer_at", "_top", "closed")

    def __init__(self, model: DirectionModel, deliver: Callable[[Batch], None], loop: Scheduler) -> None:
        self.model = model
        self.counters = model.counters
        self._deliver = deliver
        self._loop = loop
        self._heap: list[tuple[float, int, int, float, bytes, Any]] = []
        """(delivery time, send sequence, copy, arrival time, datagram, attachment)."""
        self._seq = 0
        self._timer: TimerHandle | None = None
        self._timer_at = 0.0
        self._top = -1
        """The highest send sequence delivered so far: a datagram delivered below it was reordered."""
        self.closed = False

    @property
    def idle(self) -> bool:
        """Nothing in flight."""
        return not self._heap

    def submit(self, data: bytes, attachment: Any = None) -> Batch:
        """One datagram in: dropped, or queued for its time(s). Returns what is due now (this datagram, its copy,
        and anything overdue before it, in order), for the caller to hand on at once; the rest goes to `deliver`."""
        if self.closed:
            return []
        now = self._loop.time()
        times = self.model.admit(now, len(data))
        if not times:
            return []
        seq = self._seq
        self._seq = seq + 1
        heap = self._heap
        for copy, when in enumerate(times):
            heapq.heappush(heap, (when, seq, copy, now, data, attachment))
        batch = self._due(now)
        if heap:
            self._arm()
        return batch

    def _arm(self) -> None:
        when = self._heap[0][0]
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        """The timer: hand on everything due, in (time, send order); re-arm for the next one."""
        self._timer = None
        batch = self._due(self._loop.time())
        if self._heap:
            self._arm()
        if batch:
            self._deliver(batch)

    def _due(self, now: float) -> Batch:
        """Take everything due at `now` off the heap, in (time, send order), counting each delivery."""
        heap = self._heap
        counters = self.counters
        batch: Batch = []
        while heap and heap[0][0] <= now:
            when, seq, _copy, arrived, data, attachment = heapq.heappop(heap)
            if seq < self._top:
                counters.reordered += 1
            else:
                self._top = seq
            counters.delivered_after(when - arrived)
            batch.append((data, attachment))
        counters.pending = len(heap)
        return batch

    def close(self) -> None:
        """Cancel everything in flight (counted as cancelled); later datagrams are ignored."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.counters.cancelled += len(self._heap)
        self._heap.clear()
        self.counters.pending = 0
