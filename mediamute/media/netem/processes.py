"""The random processes of an impaired direction, each on its own seeded stream, so switching one on or changing
it leaves the others' draws (and a run's loss pattern) as they were. Standard library only.

- `GilbertElliott`: two-state Markov loss (good → bad with probability p, bad → good with r; a loss probability
  in each state). With loss only in the bad state the losses come in bursts of mean length 1/r and the mean loss
  is p / (p + r); `from_mean` inverts that (netem's `loss gemodel p r`, WebRTC's avg_burst_loss_length).
- `CorrelatedDelay`: base + σ·x where x is a unit Gaussian AR(1) process (x' = ρx + √(1-ρ²)ε), so the delay's
  standard deviation is σ whatever ρ, and consecutive delays correlate with coefficient ρ; truncated at 0.
- `RateQueue`: a bottleneck that serialises datagrams at a rate, holding at most a queue of them (drop-tail).
"""

from __future__ import annotations

import math
import random
from collections import deque

IP_UDP_OVERHEAD = 28
"""Bytes of IPv4 (20) and UDP (8) headers a datagram carries on a real link, counted against the rate cap."""


def stream(seed: int, direction: str, process: str) -> random.Random:
    """The random stream of one process of one direction (a str seed hashes the same in every run)."""
    return random.Random(f"mediamute-netem/{seed}/{direction}/{process}")


class GilbertElliott:
    """Gilbert-Elliott burst loss: each datagram is judged in the current state, then the state moves on."""

    __slots__ = ("p", "r", "loss_good", "loss_bad", "bad", "_random")

    def __init__(self, p: float, r: float, rng: random.Random, loss_good: float = 0.0, loss_bad: float = 1.0) -> None:
        if not (0.0 <= p <= 1.0 and 0.0 < r <= 1.0):
            raise ValueError(f"Gilbert-Elliott needs 0 <= p <= 1 and 0 < r <= 1, got p={p}, r={r}")
        self.p = p
        self.r = r
        self.loss_good = loss_good
        self.loss_bad = loss_bad
        self.bad = False
        self._random = rng.random

    @classmethod
    def from_mean(cls, loss: float, length: float, rng: random.Random) -> "GilbertElliott":
        """The model whose losses (all in the bad state) average `loss` in bursts of mean `length` datagrams."""
        r = 1.0 / length
        return cls(loss * r / (1.0 - loss), r, rng)

    def retune(self, loss: float, length: float) -> None:
        """New mean loss and burst length from the next datagram on; the state and the stream carry on."""
        self.r = 1.0 / length
        self.p = loss * self.r / (1.0 - loss)

    @property
    def stationary_bad(self) -> float:
        """The long-run share of datagrams judged in the bad state: p / (p + r)."""
        return self.p / (self.p + self.r) if self.p + self.r else 0.0

    @property
    def mean_loss(self) -> float:
        bad = self.stationary_bad
        return bad * self.loss_bad + (1.0 - bad) * self.loss_good

    @property
    def mean_burst_length(self) -> float:
        """Mean run of consecutive bad-state datagrams, 1/r: the mean loss burst when only the bad state loses."""
        return 1.0 / self.r

    def lost(self) -> bool:
        """Judge one datagram (True: lost), then move the state on."""
        chance = self.loss_bad if self.bad else self.loss_good
        lost = chance >= 1.0 or (chance > 0.0 and self._random() < chance)  # certain outcomes take no draw
        if self.bad:
            self.bad = self._random() >= self.r
        else:
            self.bad = self._random() < self.p
        return lost


class CorrelatedDelay:
    """Delays of successive datagrams: base + sigma·x, x a unit Gaussian AR(1) process, truncated at zero."""

    __slots__ = ("base", "sigma", "rho", "_innovation", "_x", "_gauss")

    def __init__(self, base: float, sigma: float, rho: float, rng: random.Random) -> None:
        self.base = base
        self.sigma = sigma
        self.rho = rho
        self._innovation = math.sqrt(1.0 - rho * rho)
        self._x = 0.0
        self._gauss = rng.gauss

    def retune(self, base: float, sigma: float, rho: float) -> None:
        self.base, self.sigma, self.rho = base, sigma, rho
        self._innovation = math.sqrt(1.0 - rho * rho)

    def next(self) -> float:
        """The next datagram's delay in seconds (never negative)."""
        if not self.sigma:
            return self.base
        self._x = self.rho * self._x + self._innovation * self._gauss(0.0, 1.0)
        delay = self.base + self.sigma * self._x
        return delay if delay > 0.0 else 0.0


class RateQueue:
    """A bottleneck link: datagrams leave one after the other at `bits_per_second`, at most `limit` waiting."""

    __slots__ = ("bits_per_second", "limit", "_finishes", "_free_at")

    def __init__(self, bits_per_second: float, limit: int) -> None:
        self.bits_per_second = bits_per_second
        self.limit = limit
        self._finishes: deque[float] = deque()
        """When each datagram still in the queue (or on the wire) is fully sent, in order."""
        self._free_at = 0.0

    def backlog(self, now: float) -> int:
        """Datagrams not yet fully sent at `now`."""
        finishes = self._finishes
        while finishes and finishes[0] <= now:
            finishes.popleft()
        return len(finishes)

    def enqueue(self, now: float, size: int) -> float | None:
        """When a datagram of `size` bytes arriving at `now` is fully sent, or None if the queue is full."""
        if self.backlog(now) >= self.limit:
            return None
        start = self._free_at if self._free_at > now else now
        self._free_at = start + (size + IP_UDP_OVERHEAD) * 8.0 / self.bits_per_second
        self._finishes.append(self._free_at)
        return self._free_at
