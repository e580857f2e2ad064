"""What a participant's network is doing now, as read-only records for the stats, the API and /metrics."""

from __future__ import annotations

from dataclasses import dataclass

from .counters import NetworkCounters
from .profile import Direction, NetworkProfile


@dataclass(frozen=True, slots=True)
class DirectionState:
    """One direction: its profile (with the seed in use), whether its datagrams go through the impairment now,
    and its counters."""

    direction: Direction
    profile: NetworkProfile
    engaged: bool
    """The impairment sits on this direction's packet path (False: a perfect network with nothing in flight,
    where nothing is installed and a datagram costs nothing extra)."""
    counters: NetworkCounters

    @property
    def burst_p(self) -> float:
        """Gilbert-Elliott p (good → bad) the profile's burstLoss and burstLength give (0 without bursts)."""
        loss, length = self.profile.burst_loss, self.profile.burst_length
        return loss / (length * (1.0 - loss)) if loss else 0.0

    @property
    def burst_r(self) -> float:
        """Gilbert-Elliott r (bad → good): 1 / burstLength (0 without bursts)."""
        return 1.0 / self.profile.burst_length if self.profile.burst_loss else 0.0


@dataclass(frozen=True, slots=True)
class NetworkState:
    """Both directions of one participant's network."""

    uplink: DirectionState
    """Participant → server."""
    downlink: DirectionState
    """Server → participant."""


@dataclass(frozen=True, slots=True)
class ReceptionReport:
    """RFC 3550 reception statistics of one RTP stream (its cumulative loss and interarrival jitter): measured by
    this side's own receiver, or told by the other side's RTCP receiver reports."""

    packets_lost: int
    """Cumulative: expected minus received (a duplicate counts as received, so it can be below the true loss)."""
    jitter_ms: float
    """RFC 3550 interarrival jitter, in ms."""
    packets_received: int | None = None
    fraction_lost: float | None = None
    """The loss share since the previous report, from the last receiver report (reports only)."""
    round_trip_ms: float | None = None
    """From the receiver reports' LSR/DLSR (reports only, once one has echoed a sender report)."""

    @property
    def loss_ratio(self) -> float | None:
        """Cumulative loss over expected packets, when the received count is known."""
        if self.packets_received is None:
            return None
        expected = self.packets_received + self.packets_lost
        return self.packets_lost / expected if expected > 0 else 0.0
