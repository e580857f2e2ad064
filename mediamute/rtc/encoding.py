"""Encoding a call's mixes: one Opus stream for everyone who hears the shared mix, one of its own for each contributor.

Every listener who contributed nothing to a tick hears the identical frame (the mixer hands it over with
`shared=True`), so it is encoded once per tick and the one packet goes to all of them (as Asterisk's ConfBridge
does). A contributor hears its own N-1 mix, encoded by its own encoder. A listener that stops contributing keeps
its own encoder for `HOLD_TICKS` more ticks, so a talker's brief underrun does not flip its stream between encoders
(each flip costs a decoder one frame of mismatched state). Packets carry pts = position × 960 on every stream (the
tick's place on the mixer's 20 ms grid, from `MixTick`), so a listener's RTP timestamps stay continuous whichever
encoder made the packet, and show a gap when the clock had to skip periods.

One `MixEncoding` belongs to one call (the server gives the call registry `MixEncoding` as its encoding factory);
each listener's mixer sink is a `ListenerSink` made by `MixEncoding.listener`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import av

from ..media.audio import FRAME_SAMPLES, Frame
from ..media.mixer import MixTick
from .codec import MIX_EXPECTED_LOSS_PERCENT, MonoOpusEncoder

HOLD_TICKS = 25
"""Half a second: how long a listener who just stopped contributing keeps its own stream."""

PacketSend = Callable[[av.Packet], None]


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


class ListenerStream:
    """One listener's own encoder, and the last tick in which it heard a mix of its own."""

    __slots__ = ("encoder", "last_own_tick")

    def __init__(self) -> None:
        self.encoder = MonoOpusEncoder(expected_loss_percent=MIX_EXPECTED_LOSS_PERCENT)
        self.last_own_tick = -(10**9)


class MixEncoding:
    """Encodes one call's mixes, sharing the shared mix's encode across its listeners."""

    def __init__(self) -> None:
        self._shared = MonoOpusEncoder(expected_loss_percent=MIX_EXPECTED_LOSS_PERCENT)
        self._shared_tick = -1
        self._shared_packet: av.Packet | None = None
        self._seen_tick = -1
        self.ticks = 0
        self.shared = 0
        self.own = 0
        self.shared_deliveries = 0

    def listener(self, send: PacketSend) -> ListenerSink:
        """A mixer sink for one listener: it encodes what the mixer hands it and `send`s the packet."""
        return ListenerSink(self, send)

    def encode(self, listener: ListenerStream, tick: MixTick, frame: Frame, shared: bool) -> av.Packet | None:
        """The packet `listener` gets at `tick` for `frame` (`shared`: the tick's shared mix, else its own)."""
        seq = tick.seq
        if seq != self._seen_tick:
            self._seen_tick = seq
            self.ticks += 1
        pts = tick.position * FRAME_SAMPLES  # wall-clock grid: a skipped period shows as a gap
        if not shared:
            listener.last_own_tick = seq
        elif seq - listener.last_own_tick > HOLD_TICKS:
            if self._shared_tick != seq:
                self._shared_packet = self._shared.encode(frame, pts)
                self._shared_tick = seq
                self.shared += 1
            self.shared_deliveries += 1
            return self._shared_packet
        self.own += 1
        return listener.encoder.encode(frame, pts)

    def counters(self) -> EncodingCounters:
        return EncodingCounters(self.ticks, self.shared, self.own, self.shared_deliveries)

    def stats(self) -> dict[str, float] | None:
        """The counters as JSON-ready numbers (None until a listener has been handed a mix)."""
        c = self.counters()
        if c.ticks == 0:
            return None
        return {"ticks": c.ticks, "shared": c.shared, "own": c.own, "shared_deliveries": c.shared_deliveries,
                "per_tick": c.per_tick}


class ListenerSink:
    """The mixer's sink for one listener (`FrameSink`): encode through the call's `MixEncoding`, then send."""

    __slots__ = ("_encoding", "_send", "stream")

    def __init__(self, encoding: MixEncoding, send: PacketSend) -> None:
        self._encoding = encoding
        self._send = send
        self.stream = ListenerStream()

    def __call__(self, tick: MixTick, frame: Frame, shared: bool) -> None:
        packet = self._encoding.encode(self.stream, tick, frame, shared)
        if packet is not None:
            self._send(packet)
