"""The per-participant mute gate: the server-side switch that drops a muted participant's RTP packets.

The gate sits in the receive path after receive statistics and before the jitter buffer, so a closed gate
means the packet is never decoded nor mixed, while RTCP receiver reports still count it as received.
This module is the hot path: standard library only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

GateListener = Callable[["MuteGate"], None]


@dataclass(frozen=True, slots=True)
class GateCounters:
    """A snapshot of what a gate has let through and dropped."""

    is_open: bool
    passed_packets: int
    passed_bytes: int
    dropped_packets: int
    dropped_bytes: int
    closed_since: float | None
    """Monotonic time the gate last closed, or None while open."""
    closures: int


class MuteGate:
    """Decides, packet by packet, whether a participant's audio may enter the media pipeline.

    `close()` and `open()` are synchronous and call their listeners before returning: that is what lets the
    mute action promise that, once it returns, no frame of the participant enters a later mix.
    """

    __slots__ = (
        "_open",
        "passed_packets",
        "passed_bytes",
        "dropped_packets",
        "dropped_bytes",
        "closed_since",
        "closures",
        "_on_close",
        "_on_open",
        "_clock",
        "epoch",
    )

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._open = True
        self.passed_packets = 0
        self.passed_bytes = 0
        self.dropped_packets = 0
        self.dropped_bytes = 0
        self.closed_since: float | None = None
        self.closures = 0
        self._on_close: list[GateListener] = []
        self._on_open: list[GateListener] = []
        self._clock = clock
        self.epoch = 0
        """Bumped by every close and every open: work started while the gate was open (a decode on another thread)
        may still be admitted only if the epoch it started in is the current one, so a mute and an unmute in
        between (the same `is_open` again) cannot let a frame from before the mute through."""

    @property
    def is_open(self) -> bool:
        return self._open

    def admit(self, nbytes: int) -> bool:
        """The per-packet decision: count the packet and say whether it may pass."""
        if self._open:
            self.passed_packets += 1
            self.passed_bytes += nbytes
            return True
        self.dropped_packets += 1
        self.dropped_bytes += nbytes
        return False

    def close(self) -> bool:
        """Close the gate; returns False if it was already closed. Listeners run before this returns."""
        if not self._open:
            return False
        self._open = False
        self.epoch += 1
        self.closed_since = self._clock()
        self.closures += 1
        for listener in self._on_close:
            listener(self)
        return True

    def open(self) -> bool:
        """Open the gate; returns False if it was already open. Listeners run before this returns."""
        if self._open:
            return False
        self._open = True
        self.epoch += 1
        self.closed_since = None
        for listener in self._on_open:
            listener(self)
        return True

    def on_close(self, listener: GateListener) -> None:
        self._on_close.append(listener)

    def on_open(self, listener: GateListener) -> None:
        self._on_open.append(listener)

    def counters(self) -> GateCounters:
        return GateCounters(
            is_open=self._open,
            passed_packets=self.passed_packets,
            passed_bytes=self.passed_bytes,
            dropped_packets=self.dropped_packets,
            dropped_bytes=self.dropped_bytes,
            closed_since=self.closed_since,
            closures=self.closures,
        )
