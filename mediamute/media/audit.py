"""The contributor audit: for every mixed tick, which participants were heard in it.

This is how the mute promise is checked on data rather than on a flag: after a mute returns, no later record
may name the muted participant. "Later" is judged on when a tick took its frames (`mixed_at`), not on its
scheduled deadline (`at`): a tick runs up to a period after its deadline, so a mute or an unmute can land between
the two, and only the time the mix was made says which side of it the tick is on. Bounded ring; standard library
only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TickRecord:
    """One mixer tick: when it was due, when it mixed, and whose frames went into it (with their RMS levels)."""

    seq: int
    at: float
    """The tick's scheduled deadline (monotonic): its media time, what the mix stands for on the 20 ms grid."""
    mixed_at: float
    """Monotonic time the tick took its frames from the inboxes (at or after `at`): what orders it against a mute."""
    contributors: tuple[str, ...]
    levels: tuple[float, ...]
    """RMS (int16 sample units) of each contributor's frame, in the order of `contributors`."""
    concealed: tuple[str, ...] = ()
    """Contributors whose frame in this tick was invented by packet-loss concealment (their packet was lost or late)."""
    recovered: tuple[str, ...] = ()
    """Contributors whose frame in this tick was rebuilt from the next packet's in-band FEC."""

    def heard_by(self, listener: str) -> tuple[str, ...]:
        """Who is in the N-1 mix sent to `listener`: every contributor but the listener."""
        return tuple(c for c in self.contributors if c != listener)

    def level_of(self, participant: str) -> float:
        try:
            return self.levels[self.contributors.index(participant)]
        except ValueError:
            return 0.0


class ContributorAudit:
    """A bounded ring of `TickRecord`s, oldest dropped first."""

    def __init__(self, capacity: int = 3000) -> None:
        self._records: deque[TickRecord] = deque(maxlen=capacity)

    @property
    def capacity(self) -> int:
        return self._records.maxlen or 0

    def append(self, record: TickRecord) -> None:
        self._records.append(record)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[TickRecord]:
        return iter(self._records)

    def between(self, start: float, end: float = float("inf")) -> list[TickRecord]:
        """Records of the ticks that mixed at `start` <= mixed_at < `end`."""
        return [r for r in self._records if start <= r.mixed_at < end]

    def frames_from(self, participant: str, start: float, end: float = float("inf")) -> int:
        """How many ticks that mixed in [start, end) took a frame of `participant`."""
        return sum(1 for r in self.between(start, end) if participant in r.contributors)

    def first_without(self, participant: str, start: float) -> TickRecord | None:
        """The first tick that mixed at or after `start` without `participant`."""
        return next((r for r in self._records if r.mixed_at >= start and participant not in r.contributors), None)

    def first_with(self, participant: str, start: float) -> TickRecord | None:
        """The first tick that mixed at or after `start` with `participant`."""
        return next((r for r in self._records if r.mixed_at >= start and participant in r.contributors), None)

    def last(self) -> TickRecord | None:
        """The newest record (O(1)), or None before the first tick."""
        return self._records[-1] if self._records else None

    def latest(self, count: int) -> list[TickRecord]:
        if count <= 0:
            return []
        return list(self._records)[-count:]
