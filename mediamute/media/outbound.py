"""What happened to a listener's outbound mix packets: the counters the rtc layer's send path keeps (standard library
only, like the other counter records of `media`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SendPath = Literal["pending", "lean", "aiortc"]
"""`pending`: not connected yet; `lean`: mediamute's synchronous send path; `aiortc`: aiortc's own sender."""


@dataclass(frozen=True, slots=True)
class OutboundCounters:
    path: SendPath
    packets: int
    """RTP packets of the mix sent to the listener."""
    payload_bytes: int
    """Their Opus payload bytes (what RTCP sender reports count as octets)."""
    dropped_not_connected: int
    """Mix packets dropped because the listener's connection was not (or no longer) up to send them."""
    dropped_overflow: int
    """On aiortc's path: packets dropped (oldest first) from the queue its sender had not yet taken."""
    dropped_errors: int
    """Mix packets dropped because protecting or writing them failed."""

    @property
    def dropped(self) -> int:
        return self.dropped_not_connected + self.dropped_overflow + self.dropped_errors
