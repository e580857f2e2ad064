"""One participant's receive path: the mute gate, RTP sequence validation, the jitter buffer and the Opus decoder.

    packet (aiortc's receiver, or a simulated participant) ──add()──▶ gate ─▶ sequence ─▶ PlayoutBuffer
    playout clock (the mixer tick, the client's 20 ms clock) ──pull()──▶ buffer's step ─▶ libopus ─▶ 20 ms frame

`add` runs at packet arrival: the gate first (a muted participant's packets are counted and dropped before anything
else sees them), then RFC 3550 A.1 validation (duplicates and unconfirmed jumps or SSRCs dropped; a confirmed new
stream restarts the buffer and the decoder), then the packet is held by the buffer. `pull` runs once per tick: the
buffer says what to play (a packet, a lost frame rebuilt from the next packet's FEC, a concealed frame, or nothing)
and the decoder makes the 20 ms frame. Packets of other durations are cut or gathered into 20 ms frames here.

When the gate closes (its listeners run synchronously inside `MuteGate.close()`), the buffer is flushed, the decoder
reset and any decoded remainder dropped: nothing of the participant reaches a later mix, not even concealment.

The mixer may split `pull` in two (`prepare`, for decodes on other threads: rtc/decode_pool.py): the buffer's
bookkeeping on the loop, the decodes in a `PendingDecode` run anywhere, the frame assembled back on the loop. While
one is out it owns the decoder: a mute or a new stream meanwhile marks it stale, and the decoder is reset when it
comes back, its frame dropped (the mixer also refuses it by the gate's epoch, and counts it).

Constructed without aiortc (`ReceivePath(gate)`), it takes crafted or simulated `RtpPacket`s through `add`; on a
real receiver it sits where aiortc's own jitter buffer was (`gate_adapter.install_receive_path`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

from ..media.audio import FRAME_SAMPLES, FRAME_SECONDS, Frame
from ..media.gate import MuteGate
from ..media.jitter import JitterBufferSettings, JitterStats, PlayoutBuffer, PlayoutKind, PlayoutStep
from ..media.mixer import PulledFrame
from ..media.sequence import SequenceCounters, SequenceValidator, Verdict
from .gate_adapter import GateFront
from .opus import OpusDecoder, OpusPacketError, has_lbrr, packet_samples

QUIET_RMS = 100.0
"""A frame below this RMS (about -50 dBFS) is a pause: the buffer prefers to drop the next one when catching up."""
_EMPTY = np.zeros(0, dtype=np.int16)


class _Decoded(NamedTuple):
    pieces: list[np.ndarray]
    arrived: float
    recovered: bool
    concealed: bool


class PendingDecode:
    """A receive path's pull prepared on the loop (`ReceivePath.prepare`): `run` decodes on any thread,
    `complete` (on the loop) gives the frame. Satisfies the mixer's `PendingPull`."""

    __slots__ = ("path", "steps", "decoded", "stale")

    def __init__(self, path: ReceivePath, steps: list[PlayoutStep]) -> None:
        self.path = path
        self.steps = steps
        self.decoded: _Decoded | None = None
        self.stale = False
        """Set on the loop when the gate closed or a new stream began while decoding: the result is discarded."""

    def run(self) -> None:
        self.decoded = self.path._decode(self.steps)

    def complete(self) -> PulledFrame | None:
        return self.path._landed(self)


class ReceivePath(GateFront, JitterBuffer):
    """The gate, sequence validation, the adaptive jitter buffer and the libopus decoder of one incoming stream.

    A subclass of aiortc's `JitterBuffer` only so it can sit in a receiver in its place: `add` returns nothing to
    aiortc, whose decoder thread and track stay idle (the track still ends when the peer goes).
    """

    def __init__(
        self,
        gate: MuteGate,
        settings: JitterBufferSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(capacity=2, prefetch=0, is_video=False)
        self.gate = gate
        self.settings = settings or JitterBufferSettings()
        self.sequence = SequenceValidator()
        self.buffer = PlayoutBuffer(self.settings)
        self.decoder = OpusDecoder()
        self.last_audio_level = None
        self.malformed = 0
        """Packets past the gate whose payload is not an Opus packet: dropped."""
        self.frames = 0
        """20 ms frames handed out by `pull`."""
        self._clock = clock
        self._pending = _EMPTY
        self._quiet = False
        self._last_pull: float | None = None
        self._last_pull_late = False
        self.stalled_packets = 0
        """Packets read late because this process's loop stalled: played, but kept out of the delay statistics."""
        self._flight: PendingDecode | None = None
        """The prepared pull whose decodes are running (it owns the decoder until it is back on the loop)."""
        self.stale_decodes = 0
        """Prepared pulls discarded on their return because the gate closed or a new stream began meanwhile."""
        gate.on_close(self._on_gate_close)

    # --- arrival ------------------------------------------------------------------------------------------------
    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        """One RTP packet at its arrival (aiortc calls this from its receiver; a simulated participant may too)."""
        if not self._admit(packet):  # the gate first: a muted participant's packets are not even validated
            return False, None
        arrived = self._clock()
        verdict = self.sequence.check(packet.ssrc, packet.sequence_number)
        if not verdict.accepted:
            return False, None
        if verdict is Verdict.RESYNC:  # a new stream: what is held belongs to the old one
            self.buffer.restart()
            self._reset_decoder()
            self._pending = _EMPTY
        payload: bytes = getattr(packet, "_data", None) or packet.payload  # aiortc depayloads into _data
        try:
            samples = packet_samples(payload)
        except OpusPacketError:
            self.malformed += 1
            return False, None
        stalled = self._read_after_stall(arrived)
        self.stalled_packets += stalled
        self.buffer.insert(packet.timestamp, payload, samples, arrived, has_lbrr(payload),
                           verdict is Verdict.MISORDERED, stalled)
        return False, None

    def _read_after_stall(self, arrived: float) -> bool:
        """Was this packet read late because our own event loop stalled? Then the playout clock stalled too: either
        it has not pulled for two periods, or its last pull ran more than a period late and this packet came right
        after it (a stalled loop reads its socket and runs its late tick in either order). A network delay does not
        hold back our own clock."""
        last = self._last_pull
        if last is None:
            return False
        since = arrived - last
        return since > 2 * FRAME_SECONDS or (self._last_pull_late and since < FRAME_SECONDS)

    # --- playout --------------------------------------------------------------------------------------------------
    def pull(self, at: float, now: float | None = None) -> PulledFrame | None:
        """The 20 ms frame to play at the tick due at `at` (None: nothing to play, e.g. before the first packet)."""
        if self._flight is not None:
            raise RuntimeError("pull while a prepared pull is still decoding")
        steps = self._plan(at, now)
        return self._assemble(self._decode(steps))

    def prepare(self, at: float, now: float) -> PendingDecode | None:
        """`pull` in two halves (`Mixer.begin_tick`): the buffer's bookkeeping now, on the loop; the decodes in
        the returned job's `run` (any thread: it touches only this path's decoder); the frame from its `complete`,
        back on the loop. Until then the decoder is the job's: a mute or a new stream meanwhile marks the job
        stale, and its `complete` resets the decoder and returns nothing."""
        if self._flight is not None:
            raise RuntimeError("prepare while a prepared pull is still decoding")
        steps = self._plan(at, now)
        if not steps and not self._pending.size:
            return None
        self._flight = flight = PendingDecode(self, steps)
        return flight

    def _plan(self, at: float, now: float | None) -> list[PlayoutStep]:
        """The buffer's steps for this tick: enough to fill a 20 ms frame (after any decoded remainder)."""
        if now is None:
            now = self._clock()
        self._last_pull, self._last_pull_late = now, now - at > FRAME_SECONDS
        have = self._pending.size
        steps: list[PlayoutStep] = []
        while have < FRAME_SAMPLES:
            step = self.buffer.next(at, now, have, self._quiet)
            if step is None:
                break
            steps.append(step)
            if not step.discard:
                have += step.samples
        return steps

    def _decode(self, steps: list[PlayoutStep]) -> _Decoded:
        """Run the decoder on the planned steps: the PCM pieces, the first played packet's arrival, and whether a
        frame was recovered by FEC or concealed. Touches nothing but the decoder (safe off the loop)."""
        pieces: list[np.ndarray] = []
        arrived = math.nan
        recovered = concealed = False
        decoder = self.decoder
        for step in steps:
            kind = step.kind
            if kind is PlayoutKind.DECODE:
                assert step.packet is not None
                pcm = decoder.decode(step.packet.payload)
                if step.discard:
                    continue
                if pcm is None:  # libopus refused the packet (counted in decoder.errors): conceal its frame
                    pcm = decoder.conceal(step.samples)
                    concealed = True
                elif arrived != arrived:
                    arrived = step.packet.arrived
            elif kind is PlayoutKind.RECOVER:
                assert step.packet is not None
                pcm = decoder.recover(step.packet.payload, step.samples)
                if pcm is None:
                    pcm = decoder.conceal(step.samples)
                    concealed = True
                else:
                    recovered = True
            else:
                pcm = decoder.conceal(step.samples)
                if step.fade:
                    pcm = (pcm * np.linspace(1.0, 0.0, pcm.size)).astype(np.int16)
                concealed = True
            pieces.append(pcm)
        return _Decoded(pieces, arrived, recovered, concealed)

    def _assemble(self, decoded: _Decoded) -> PulledFrame | None:
        """The 20 ms frame from the remainder of the last pull and the new pieces; keeps what is left over."""
        pieces = decoded.pieces
        if self._pending.size:
            pieces = [self._pending, *pieces]
        have = sum(piece.size for piece in pieces)
        if have == 0:
            self._pending = _EMPTY
            return None
        data = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        if have < FRAME_SAMPLES:  # the stream stopped part-way through a frame
            data = np.concatenate((data, np.zeros(FRAME_SAMPLES - have, dtype=np.int16)))
        frame: Frame = data[:FRAME_SAMPLES]
        self._pending = data[FRAME_SAMPLES:].copy() if have > FRAME_SAMPLES else _EMPTY
        wide = frame.astype(np.float32)
        self._quiet = float(np.dot(wide, wide)) < QUIET_RMS * QUIET_RMS * FRAME_SAMPLES
        self.frames += 1
        return PulledFrame(frame, arrived=decoded.arrived, recovered=decoded.recovered, concealed=decoded.concealed)

    def _landed(self, flight: PendingDecode) -> PulledFrame | None:
        """A prepared pull is back on the loop (`PendingDecode.complete`)."""
        self._flight = None
        decoded = flight.decoded
        if flight.stale or decoded is None:  # reset while decoding (mute, new stream), or its decode raised
            self.decoder.reset()
            self._pending = _EMPTY
            if flight.stale:
                self.stale_decodes += 1
            return None
        return self._assemble(decoded)

    def _reset_decoder(self) -> None:
        """Reset the decoder now, or, while a prepared pull is decoding on it, when that pull comes back."""
        if self._flight is not None:
            self._flight.stale = True
        else:
            self.decoder.reset()

    def _on_gate_close(self, _gate: MuteGate) -> None:
        """Muted: nothing held, decoded or remembered of this participant may reach a later mix."""
        self._last_pull = None  # no pulls while muted: that is no stall
        self.buffer.flush()
        self._reset_decoder()
        self._pending = _EMPTY
        self._quiet = False

    # --- reading ----------------------------------------------------------------------------------------------------
    @property
    def sequence_counters(self) -> SequenceCounters:
        """Accepted packets, drops by reason (duplicates, jumps/SSRCs pending), misordered, restarts, SSRC changes."""
        return self.sequence.counters

    def jitter_stats(self) -> JitterStats:
        """The buffer's counters, depth, delays and jitter, with the malformed packets and decode errors counted in."""
        stats = self.buffer.stats()
        stats.counters.malformed = self.malformed + self.decoder.errors
        return stats
