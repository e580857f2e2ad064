"""Encoding the mixes: one Opus stream for everyone who hears the shared mix, one of its own for each contributor.

Every listener who contributed nothing to a tick hears the identical frame (`Mixer.shared_frame`), so it is
encoded once per tick and the one packet goes to all of them (as Asterisk's ConfBridge does). A contributor hears
its own N-1 mix, encoded by its own encoder. A listener that stops contributing keeps its own encoder for
`HOLD_TICKS` more ticks, so a talker's brief underrun does not flip its stream between encoders (each flip costs a
decoder one frame of mismatched state). Packets carry pts = position × 960 on every stream (the tick's place on
the mixer's 20 ms grid), so a listener's RTP timestamps stay continuous whichever encoder made the packet, and
show a gap when the clock had to skip periods.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import av

from ..media.audio import FRAME_SAMPLES, Frame
from ..media.mixer import Mixer
from .codec import MonoOpusEncoder

HOLD_TICKS = 25
"""Half a second: how long a listener who just stopped contributing keeps its own stream."""


class ListenerStream:
    """One listener's own encoder, and when it last heard a mix of its own."""

    __slots__ = ("encoder", "last_own_tick")

    def __init__(self) -> None:
        self.encoder = MonoOpusEncoder()
        self.last_own_tick = -(10**9)


@dataclass(frozen=True, slots=True)
class EncodingCounters:
    ticks: int
    shared: int
    """Shared-mix encodes (at most one per tick)."""
    own: int
    """Per-listener encodes."""
    shared_deliveries: int
    """Packets of the shared stream handed to listeners: each one an encode saved but the first of its tick."""

    @property
    def per_tick(self) -> float:
        return (self.shared + self.own) / self.ticks if self.ticks else 0.0


class MixEncoding:
    """Encodes one mixer's outputs, sharing the shared mix's encode across its listeners."""

    def __init__(self, mixer: Mixer) -> None:
        self._mixer = mixer
        self._shared = MonoOpusEncoder()
        self._shared_tick = -1
        self._shared_packet: av.Packet | None = None
        self._seen_tick = -1
        self.ticks = 0
        self.shared = 0
        self.own = 0
        self.shared_deliveries = 0

    def encode(self, listener: ListenerStream, frame: Frame) -> av.Packet | None:
        """The packet `listener` gets this tick for `frame` (the mix the mixer just handed it)."""
        tick = self._mixer.ticks  # the tick in progress: the mixer counts it once every sink has run
        if tick != self._seen_tick:
            self._seen_tick = tick
            self.ticks += 1
        pts = self._mixer.position * FRAME_SAMPLES  # wall-clock grid: a skipped period shows as a gap
        if frame is self._mixer.shared_frame and tick - listener.last_own_tick > HOLD_TICKS:
            if self._shared_tick != tick:
                self._shared_packet = self._shared.encode(frame, pts)
                self._shared_tick = tick
                self.shared += 1
            self.shared_deliveries += 1
            return self._shared_packet
        if frame is not self._mixer.shared_frame:
            listener.last_own_tick = tick
        self.own += 1
        return listener.encoder.encode(frame, pts)

    def counters(self) -> EncodingCounters:
        return EncodingCounters(self.ticks, self.shared, self.own, self.shared_deliveries)


_by_mixer: "weakref.WeakKeyDictionary[Mixer, MixEncoding]" = weakref.WeakKeyDictionary()


def encoding_for(mixer: Mixer) -> MixEncoding:
    """The one `MixEncoding` of a mixer (a call): every peer of the call shares it."""
    encoding = _by_mixer.get(mixer)
    if encoding is None:
        encoding = _by_mixer[mixer] = MixEncoding(mixer)
    return encoding


def encoding_counters(mixer: Mixer) -> dict[str, float] | None:
    """The counters as JSON-ready numbers (None if no peer of this mixer has encoded anything)."""
    encoding = _by_mixer.get(mixer)
    if encoding is None:
        return None
    c = encoding.counters()
    return {"ticks": c.ticks, "shared": c.shared, "own": c.own, "shared_deliveries": c.shared_deliveries,
            "per_tick": c.per_tick}
