"""Encoding a call's mixes: one Opus stream for everyone who hears the shared mix, one of its own for each contributor.

Every listener who contributed nothing to a tick hears the identical frame (the mixer hands it over with
`shared=True`), so it is encoded once per tick and the one packet goes to all of them (as Asterisk's ConfBridge
does). A contributor hears its own N-1 mix, encoded by its own encoder. A listener that stops contributing keeps
its own encoder for `HOLD_TICKS` more ticks, so a talker's brief underrun does not flip its stream between encoders
(each flip costs a decoder one frame of mismatched state). Packets carry pts = position × 960 on every stream (the
tick's place on the mixer's 20 ms grid, from `MixTick`), so a listener's RTP timestamps stay continuous whichever
encoder made the packet, and show a gap when the clock had to skip periods.

The mixer hands each listener its mix through its sink; the sinks only note what to encode for whom. When the tick
is over (`tick_done`, called by the call after the mixer's tick), the tick's encodes run — on the server's encode
pool (`encode_pool.py`, one thread per core) or, without a pool, inline — and every listener's packet is sent, in
the order the mixer handed out the mixes.

Encoders come from `mix_encoder.py` (PyAV's libopus by default, the system's libopus through opuslib-next on
request); packets are `EncodedMix` (payload, pts).

One `MixEncoding` belongs to one call (the server gives the call registry a factory of them); each listener's mixer
sink is a `ListenerSink` made by `MixEncoding.listener`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..media.audio import FRAME_SAMPLES, Frame
from ..media.mixer import MixTick, PendingPull
from .decode_pool import TickDecoder
from .encode_pool import EncodePool, TickBatch, TickEncoder
from .mix_encoder import EncodedMix, MixEncoder, PyAVMixEncoder

HOLD_TICKS = 25
"""Half a second: how long a listener who just stopped contributing keeps its own stream."""

PacketSend = Callable[[EncodedMix], None]


@dataclass(frozen=True, slots=True)
class EncodingCounters:
    ticks: int
    shared: int
    """Shared-mix encodes (at most one per tick)."""
    own: int
    """Per-listener encodes."""
    shared_deliveries: int
    """Packets of the shared stream handed to listeners: each one an encode saved but the first of its tick."""
    pooled_ticks: int = 0
    """Ticks whose encodes ran on the encode pool's threads."""
    inline_ticks: int = 0
    """Ticks encoded on the event loop (no pool, or too few encodes to be worth a thread hop)."""
    dropped_ticks: int = 0
    """Ticks whose packets were dropped because the pool fell behind (see encode_pool.MAX_WAITING)."""
    decode_pooled_ticks: int = 0
    """Ticks whose receive paths' decodes ran on the pool's threads (decode_pool.py)."""
    decode_inline_ticks: int = 0
    """Ticks whose decodes ran on the event loop (no pool, or too few decodes to be worth the hop)."""

    @property
    def per_tick(self) -> float:
        return (self.shared + self.own) / self.ticks if self.ticks else 0.0


class ListenerStream:
    """One listener's own encoder, and the last tick in which it heard a mix of its own."""

    __slots__ = ("encoder", "last_own_tick")

    def __init__(self, encoder: MixEncoder) -> None:
        self.encoder = encoder
        self.last_own_tick = -(10**9)


class MixEncoding:
    """Encodes one call's mixes, sharing the shared mix's encode across its listeners."""

    def __init__(self, pool: EncodePool | None = None, new_encoder: Callable[[], MixEncoder] = PyAVMixEncoder) -> None:
        self._new_encoder = new_encoder
        self._shared = new_encoder()
        self._shared_tick = -1
        self._shared_job = -1
        self._seen_tick = -1
        self._batch = TickBatch()
        self._runner = TickEncoder(pool)
        self._decoder = TickDecoder(pool)
        self.ticks = 0
        self.shared = 0
        self.own = 0
        self.shared_deliveries = 0

    def listener(self, send: PacketSend) -> ListenerSink:
        """A mixer sink for one listener: what the mixer hands it is encoded and `send` gets the packet."""
        return ListenerSink(self, send, ListenerStream(self._new_encoder()))

    def stage(self, listener: ListenerStream, tick: MixTick, frame: Frame, shared: bool, send: PacketSend) -> None:
        """Note that `listener` gets `frame` at `tick` (`shared`: the tick's shared mix, else its own), for `send`."""
        seq = tick.seq
        if seq != self._seen_tick:
            self._seen_tick = seq
            self.ticks += 1
        pts = tick.position * FRAME_SAMPLES  # wall-clock grid: a skipped period shows as a gap
        batch = self._batch
        if not shared:
            listener.last_own_tick = seq
        elif seq - listener.last_own_tick > HOLD_TICKS:
            if self._shared_tick != seq:
                self._shared_job = batch.add_job(self._shared, frame, pts)
                self._shared_tick = seq
                self.shared += 1
            self.shared_deliveries += 1
            batch.deliveries.append((send, self._shared_job))
            return
        self.own += 1
        batch.deliveries.append((send, batch.add_job(listener.encoder, frame, pts)))

    def tick_done(self) -> None:
        """The mixer has handed out this tick's mixes: encode them and send every listener its packet."""
        batch = self._batch
        if batch.jobs:
            self._batch = TickBatch()
            self._runner.run(batch)

    def decode(self, jobs: Sequence[PendingPull], done: Callable[[], None]) -> None:
        """Run a tick's prepared decodes (on the pool, or inline for a few); `done()` on the loop once all ran."""
        self._decoder.run(jobs, done)

    @property
    def pool_decode_waits(self) -> list[float]:
        """Seconds from handing a tick's decodes to the pool to their completion on the loop (latest ticks)."""
        return list(self._decoder.waits)

    @property
    def pool_send_delays(self) -> list[float]:
        """Seconds from tick end to its packets sent, for the latest ticks encoded on the pool."""
        return list(self._runner.send_delays)

    def counters(self) -> EncodingCounters:
        r, d = self._runner, self._decoder
        return EncodingCounters(self.ticks, self.shared, self.own, self.shared_deliveries,
                                r.pooled_ticks, r.inline_ticks, r.dropped_ticks, d.pooled_ticks, d.inline_ticks)

    def stats(self) -> dict[str, float] | None:
        """The counters as JSON-ready numbers (None until a listener has been handed a mix)."""
        c = self.counters()
        if c.ticks == 0:
            return None
        return {"ticks": c.ticks, "shared": c.shared, "own": c.own, "shared_deliveries": c.shared_deliveries,
                "per_tick": c.per_tick, "pooled_ticks": c.pooled_ticks, "inline_ticks": c.inline_ticks,
                "dropped_ticks": c.dropped_ticks, "decode_pooled_ticks": c.decode_pooled_ticks,
                "decode_inline_ticks": c.decode_inline_ticks}


class ListenerSink:
    """The mixer's sink for one listener (`FrameSink`): stage its mix with the call's `MixEncoding`."""

    __slots__ = ("_encoding", "_send", "stream")

    def __init__(self, encoding: MixEncoding, send: PacketSend, stream: ListenerStream) -> None:
        self._encoding = encoding
        self._send = send
        self.stream = stream

    def __call__(self, tick: MixTick, frame: Frame, shared: bool) -> None:
        self._encoding.stage(self.stream, tick, frame, shared, self._send)
