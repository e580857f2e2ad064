"""Latency samples: percentiles in milliseconds (with the sample count; nan when there is nothing), and a fixed-memory
recorder for them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np


def percentiles_ms(samples: Sequence[float], qs: Sequence[int] = (50, 95, 99)) -> dict[str, float]:
    """`{"p50": ..., "n": ...}` of samples given in seconds."""
    values = np.asarray(samples, dtype=np.float64) * 1000.0
    out: dict[str, float] = {f"p{q}": (float(np.percentile(values, q)) if values.size else float("nan")) for q in qs}
    out["n"] = int(values.size)
    return out


class SampleRing:
    """The latest `capacity` samples in one preallocated float64 array (8 bytes a sample, written at once).

    The server's arrival→mix latency recorder: a `deque(maxlen=100_000)` of Python floats grows to ~3.2 MB while
    it fills (125 s at N = 16), which a long run's RSS would show as growth of the server itself.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data = np.full(capacity, np.nan)  # full, not zeros: touch every page now, not during the window
        self._written = 0

    def extend(self, values: Iterable[float]) -> None:
        new = np.fromiter(values, dtype=np.float64)
        if new.size > self.capacity:
            self._written += new.size - self.capacity
            new = new[-self.capacity :]
        self._data[(self._written + np.arange(new.size)) % self.capacity] = new
        self._written += new.size

    def clear(self) -> None:
        self._written = 0

    def __len__(self) -> int:
        return min(self._written, self.capacity)

    def __iter__(self) -> Iterator[float]:
        """Oldest first."""
        start = self._written % self.capacity if self._written > self.capacity else 0
        return iter(np.roll(self._data[: len(self)], -start).tolist())
