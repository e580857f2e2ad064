"""What one impaired direction did to its datagrams: counts by outcome, and the delay it added (running mean,
maximum, an RFC 3550-style jitter estimate and a fixed-bucket histogram). Standard library only."""

from __future__ import annotations

from dataclasses import dataclass

from ..clock import DurationHistogram, HistogramSnapshot

DELAY_BOUNDS: tuple[float, ...] = (0.0, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56)
"""Seconds: upper bounds of the added-delay histogram's buckets (the first counts datagrams not delayed)."""


@dataclass(frozen=True, slots=True)
class NetworkCounters:
    """A snapshot of one direction's counters. Every datagram that came in is, at any moment, delivered,
    dropped (by reason), pending, or cancelled: `datagrams + duplicated == delivered + dropped + pending +
    cancelled`."""

    datagrams: int
    """Media datagrams (SRTP/SRTCP) that entered the impairment."""
    delivered: int
    """Datagrams handed on (duplicates included)."""
    dropped_random: int
    """Lost to the independent `loss`."""
    dropped_burst: int
    """Lost to the Gilbert-Elliott burst process."""
    dropped_queue: int
    """Dropped because the bottleneck queue (or the bounded delivery line) was full."""
    duplicated: int
    """Extra copies made."""
    reordered: int
    """Datagrams delivered after one that was sent later."""
    pending: int
    """Datagrams in flight now (delayed, not yet delivered)."""
    cancelled: int
    """Datagrams in flight when the participant left (never delivered)."""
    passed: int
    """Datagrams passed on untouched because they are not media (DTLS): the handshake is never impaired."""
    delay_mean_ms: float
    """Mean delay added to the delivered datagrams (ms)."""
    delay_max_ms: float
    jitter_ms: float
    """RFC 3550's interarrival jitter estimate over the added delays (J += (|ΔD| - J) / 16), in ms: what RTCP
    would report on top of the sender's own jitter for a steady stream."""
    delay_histogram: HistogramSnapshot
    """Added delay of the delivered datagrams, bucketed by `DELAY_BOUNDS`."""

    @property
    def dropped(self) -> int:
        return self.dropped_random + self.dropped_burst + self.dropped_queue

    @property
    def loss_ratio(self) -> float:
        """The share of incoming datagrams dropped (0 before any)."""
        return self.dropped / self.datagrams if self.datagrams else 0.0


class DirectionCounters:
    """The live counters of one direction, written by its model (outcomes) and its delivery line (deliveries)."""

    __slots__ = (
        "datagrams", "delivered", "dropped_random", "dropped_burst", "dropped_queue", "duplicated", "reordered",
        "pending", "cancelled", "passed", "_delay_sum", "_delay_max", "_jitter", "_last_delay", "_histogram",
    )

    def __init__(self) -> None:
        self.datagrams = 0
        self.delivered = 0
        self.dropped_random = 0
        self.dropped_burst = 0
        self.dropped_queue = 0
        self.duplicated = 0
        self.reordered = 0
        self.pending = 0
        self.cancelled = 0
        self.passed = 0
        self._delay_sum = 0.0
        self._delay_max = 0.0
        self._jitter = 0.0
        self._last_delay: float | None = None
        self._histogram = DurationHistogram(DELAY_BOUNDS)

    def delivered_after(self, delay: float) -> None:
        """One datagram delivered `delay` seconds after it came in."""
        self.delivered += 1
        self._delay_sum += delay
        if delay > self._delay_max:
            self._delay_max = delay
        if self._last_delay is not None:
            self._jitter += (abs(delay - self._last_delay) - self._jitter) / 16.0
        self._last_delay = delay
        self._histogram.observe(delay)

    def snapshot(self) -> NetworkCounters:
        return NetworkCounters(
            datagrams=self.datagrams,
            delivered=self.delivered,
            dropped_random=self.dropped_random,
            dropped_burst=self.dropped_burst,
            dropped_queue=self.dropped_queue,
            duplicated=self.duplicated,
            reordered=self.reordered,
            pending=self.pending,
            cancelled=self.cancelled,
            passed=self.passed,
            delay_mean_ms=1000.0 * self._delay_sum / self.delivered if self.delivered else 0.0,
            delay_max_ms=1000.0 * self._delay_max,
            jitter_ms=1000.0 * self._jitter,
            delay_histogram=self._histogram.snapshot(),
        )
