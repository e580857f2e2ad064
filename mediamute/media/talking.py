"""Talking while muted: is a server-muted participant speaking? Read from the RFC 6464 audio level in the header of
the packets its closed gate drops, so nothing is decoded. Standard library only: it runs for every dropped packet.

The sender measures each packet's level (RFC 6464: the frame's RMS in -dBov, 0..127; browsers and aiortc both
write it). Speech is a level at or above `threshold_dbov`; one loud packet is not speech, nor is one quiet packet
the end of it, so a hysteresis decides:

- talking starts once the level has stayed at or above the threshold for `start_s` (any packet below it restarts
  that count);
- talking stops once the level has stayed below it for `stop_s` (pauses between words and phrases are shorter),
  or once no packet at all has arrived for `stop_s` (the sender went quiet or away).

The defaults suit speech through a microphone or the demo's voices: speech runs from -40 to -10 dBov in 20 ms
frames, a quiet room stays below -50, and the demo's faint speaker pilot tones sit at -38; -35 dBov separates them.
A muted participant who keeps talking is flagged within about a fifth of a second of speech, and stays flagged
through the pauses of a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass


SLACK = 1e-6
"""Seconds of float rounding forgiven: 200 ms of 20 ms packets is 200 ms, even when 0.3 - 0.1 is 0.19999999999999998."""


@dataclass(frozen=True, slots=True)
class TalkingParams:
    """The detector's thresholds (see the module's docstring for why these)."""

    threshold_dbov: float = -35.0
    """A packet at or above this level (dBov, 0 the loudest) counts as speech."""
    start_s: float = 0.2
    """Speech must last this long without a packet below the threshold before talking starts."""
    stop_s: float = 0.8
    """Talking stops after this long without a packet at or above the threshold."""


@dataclass(frozen=True, slots=True)
class TalkingCounters:
    """A snapshot of a detector: its state now and what it has seen."""

    talking: bool
    since: float | None
    """When the current episode was detected (monotonic), or None while not talking."""
    episodes: int
    """Times talking started while muted."""
    talking_seconds: float
    """How long the finished episodes lasted, in all (the current one is not counted until it ends)."""
    levels: int
    """Packet levels read."""


class TalkingDetector:
    """The hysteresis over one muted participant's packet levels. `feed` and `poll` return True when the state
    changed, so the caller (the call, which owns the events) can tell the world; `reset` ends an episode at once
    (the participant was unmuted or left)."""

    __slots__ = ("params", "talking", "since", "episodes", "talking_seconds", "levels", "_above_since", "_last_above")

    def __init__(self, params: TalkingParams | None = None) -> None:
        self.params = params or TalkingParams()
        self.talking = False
        self.since: float | None = None
        self.episodes = 0
        self.talking_seconds = 0.0
        self.levels = 0
        self._above_since: float | None = None
        """The first packet of the current unbroken run at or above the threshold."""
        self._last_above: float | None = None

    def feed(self, level_dbov: float, at: float) -> bool:
        """One dropped packet's level (dBov, ≤ 0), arrived at monotonic time `at`."""
        self.levels += 1
        if level_dbov >= self.params.threshold_dbov:
            self._last_above = at
            if self._above_since is None:
                self._above_since = at
            if not self.talking and at - self._above_since >= self.params.start_s - SLACK:
                self.talking = True
                self.since = at
                self.episodes += 1
                return True
            return False
        self._above_since = None
        return self._stop_if_quiet(at)

    def poll(self, now: float) -> bool:
        """Stop an episode whose packets stopped coming (nothing arrives to `feed` then)."""
        return self._stop_if_quiet(now)

    def reset(self, now: float) -> bool:
        """Forget the run so far and end the current episode, if any (gate opened, participant gone)."""
        self._above_since = None
        self._last_above = None
        return self._end(now) if self.talking else False

    def counters(self) -> TalkingCounters:
        return TalkingCounters(self.talking, self.since, self.episodes, self.talking_seconds, self.levels)

    def _stop_if_quiet(self, now: float) -> bool:
        if not self.talking:
            return False
        last = self._last_above if self._last_above is not None else self.since
        if last is not None and now - last < self.params.stop_s - SLACK:
            return False
        return self._end(now)

    def _end(self, now: float) -> bool:
        if self.since is not None:
            self.talking_seconds += max(0.0, now - self.since)
        self.talking = False
        self.since = None
        return True
