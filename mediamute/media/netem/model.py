"""One direction of a participant's network as a pure model: each datagram that comes in at time `now` is dropped
(and counted by reason) or given the time(s) it comes out. No clock, no loop: the caller passes the time, so
tests run it on an injected clock and the delivery line (`delivery.py`) schedules what it decides.

Per datagram, in order: the bound on datagrams in flight; Gilbert-Elliott burst loss, then independent loss;
the bottleneck (rate cap, drop-tail queue); the correlated delay; then either its place in send order (a datagram
never comes out before one sent earlier: the delay is raised to the previous one's if needed) or, with
probability `reorder`, held back `reorderMs` behind that place so later ones overtake it; and duplication (the
copy comes out right after the original). Standard library only.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

from .counters import DirectionCounters
from .processes import CorrelatedDelay, GilbertElliott, RateQueue, stream
from .profile import PERFECT, Direction, NetworkProfile

MAX_IN_FLIGHT = 2048
"""Datagrams one direction holds at most (delayed or queued), whatever the profile: memory stays bounded."""

Deliveries = tuple[float, ...]
"""When a datagram comes out: empty (dropped), one time, or two (duplicated: the copy right after)."""

NO_DELIVERY: Deliveries = ()


def random_seed() -> int:
    """A fresh seed for a direction nobody seeded (shown in its profile, so the run can be replayed)."""
    return random.SystemRandom().randrange(2**32)


class DirectionModel:
    """What one direction does to datagrams: drops, delays, reorders, duplicates; seeded, deterministic."""

    __slots__ = (
        "direction", "profile", "counters", "_last", "_burst", "_delay", "_queue", "_loss", "_reorder",
        "_duplicate", "_streams",
    )

    def __init__(self, direction: Direction, profile: NetworkProfile = PERFECT, seed: int | None = None) -> None:
        self.direction = direction
        self.counters = DirectionCounters()
        self._last = 0.0
        """The latest delivery time given in send order: no later datagram comes out before it (unless reordered)."""
        self.profile = PERFECT
        self._burst: GilbertElliott | None = None
        self._delay: CorrelatedDelay | None = None
        self._queue: RateQueue | None = None
        self._streams: dict[str, random.Random] = {}
        self._loss: Callable[[], float] = random.random
        self._reorder: Callable[[], float] = random.random
        self._duplicate: Callable[[], float] = random.random
        self._reseed(random_seed() if seed is None else seed)
        self.apply(profile)

    @property
    def seed(self) -> int:
        assert self.profile.seed is not None
        return self.profile.seed

    def _reseed(self, seed: int) -> None:
        """Restart every process from `seed`: the burst state and the delay process start afresh."""
        self._streams = {name: stream(seed, self.direction, name) for name in ("burst", "loss", "delay", "reorder", "duplicate")}
        self._loss = self._streams["loss"].random
        self._reorder = self._streams["reorder"].random
        self._duplicate = self._streams["duplicate"].random
        self._burst = None
        self._delay = None
        self.profile = NetworkProfile(seed=seed)

    def apply(self, profile: NetworkProfile) -> None:
        """Use `profile` from the next datagram on. Its seed, if it has one, restarts the streams; without one the
        streams (and the burst state, the delay process, the bottleneck's backlog) carry on."""
        if profile.seed is not None:
            self._reseed(profile.seed)
        seed = self.profile.seed
        if profile.burst_loss:
            if self._burst is None:
                self._burst = GilbertElliott.from_mean(profile.burst_loss, profile.burst_length, self._streams["burst"])
            else:
                self._burst.retune(profile.burst_loss, profile.burst_length)
        else:
            self._burst = None
        if profile.delay_ms or profile.jitter_ms:
            base, sigma, rho = profile.delay_ms / 1000.0, profile.jitter_ms / 1000.0, profile.jitter_correlation
            if self._delay is None:
                self._delay = CorrelatedDelay(base, sigma, rho, self._streams["delay"])
            else:
                self._delay.retune(base, sigma, rho)
        else:
            self._delay = None
        if profile.rate_kbps:
            if self._queue is None:
                self._queue = RateQueue(profile.rate_kbps * 1000.0, profile.queue_packets)
            else:
                self._queue.bits_per_second = profile.rate_kbps * 1000.0
                self._queue.limit = profile.queue_packets
        else:
            self._queue = None
        self.profile = replace(profile, seed=seed)

    def admit(self, now: float, size: int) -> Deliveries:
        """Judge one datagram of `size` bytes arriving at `now` (seconds): when it comes out, or () if dropped."""
        counters = self.counters
        counters.datagrams += 1
        if counters.pending >= MAX_IN_FLIGHT:
            counters.dropped_queue += 1
            return NO_DELIVERY
        profile = self.profile
        if self._burst is not None and self._burst.lost():
            counters.dropped_burst += 1
            return NO_DELIVERY
        if profile.loss and self._loss() < profile.loss:
            counters.dropped_random += 1
            return NO_DELIVERY
        when = now
        if self._queue is not None:
            sent = self._queue.enqueue(now, size)
            if sent is None:
                counters.dropped_queue += 1
                return NO_DELIVERY
            when = sent
        if self._delay is not None:
            when += self._delay.next()
        if when < self._last:
            when = self._last  # a datagram never overtakes one sent before it...
        if profile.reorder and self._reorder() < profile.reorder:
            when += profile.reorder_ms / 1000.0  # ... unless it is held back, so later ones overtake it
        else:
            self._last = when
        if profile.duplicate and self._duplicate() < profile.duplicate:
            counters.duplicated += 1
            return (when, when)
        return (when,)
