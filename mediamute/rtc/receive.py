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

Constructed without aiortc (`ReceivePath(gate)`), it takes crafted or simulated `RtpPacket`s through `add`; on a
real receiver it sits where aiortc's own jitter buffer was (`gate_adapter.install_receive_path`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

from ..media.audio import FRAME_SAMPLES, FRAME_SECONDS, Frame
from ..media.gate import MuteGate
from ..media.jitter import JitterBufferSettings, JitterStats, PlayoutBuffer, PlayoutKind
from ..media.mixer import PulledFrame
from ..media.sequence import SequenceCounters, SequenceValidator, Verdict
from .gate_adapter import GateFront
from .opus import OpusDecoder, OpusPacketError, has_lbrr, packet_samples

QUIET_RMS = 100.0
"""A frame below this RMS (about -50 dBFS) is a pause: the buffer prefers to drop the next one when catching up."""
_EMPTY = np.zeros(0, dtype=np.int16)


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
            self.decoder.reset()
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
        if now is None:
            now = self._clock()
        self._last_pull, self._last_pull_late = now, now - at > FRAME_SECONDS
        pieces = [self._pending] if self._pending.size else []
        have = self._pending.size
        arrived = math.nan
        recovered = concealed = False
        decoder = self.decoder
        while have < FRAME_SAMPLES:
            step = self.buffer.next(at, now, have, self._quiet)
            if step is None:
                break
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
            have += pcm.size
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
        return PulledFrame(frame, arrived, recovered, concealed)

    def _on_gate_close(self, _gate: MuteGate) -> None:
        """Muted: nothing held, decoded or remembered of this participant may reach a later mix."""
        self._last_pull = None  # no pulls while muted: that is no stall
        self.buffer.flush()
        self.decoder.reset()
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
