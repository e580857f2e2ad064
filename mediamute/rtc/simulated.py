"""Simulated participants: server-side talkers that Graph's `participants: invite` seats in a call.

A simulated participant has no network peer, yet its audio takes the path a WebRTC participant's takes once
aiortc's receiver has it. Its source is encoded to Opus once, as a loop of packets that every invitee with the
same source shares (`PacketLoopCache`); every 20 ms its next packet is wrapped as a real RTP packet (its own
SSRC, consecutive sequence numbers, timestamps advancing by 960, and the RFC 6464 audio level of the frame it
carries) and handed to a `receive.ReceivePath`, the object `ParticipantPeer` installs in aiortc's receiver: the
mute gate, RTP sequence validation, the jitter buffer; the call's mixer pulls it each tick through the libopus
decoder (`frame_source`). A server mute therefore drops it exactly as it drops anyone's, and its counters (gate,
RTP sequence, jitter buffer, mixer slot) read like anyone's.

`receive_path()` is the one place that builds that path for a simulated participant, as `ParticipantPeer.accept`
builds it for a WebRTC one.

One `SimulatedSenders` per server paces every simulated participant: one task, one wake-up per 20 ms however
many there are.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from aiortc.rtp import RtpPacket

from ..media.audio import FRAME_SAMPLES, SAMPLE_RATE, Frame, dbfs, rms
from ..media.gate import MuteGate
from ..media.jitter import JitterBufferSettings, JitterStats
from ..media.netem import NetworkSpec, NetworkState, ReceptionReport
from ..media.sequence import SequenceCounters
from ..sources import AudioSource, SilenceSource, ToneSource, WavSource, source_from_spec
from .codec import encode_loop
from .receive import ReceivePath
from .tracks import FramePacer

log = logging.getLogger(__name__)

OPUS_PAYLOAD_TYPE = 111
"""The dynamic payload type browsers and aiortc give Opus; the receive path does not read it."""
MAX_TONE_LOOP_SECONDS = 10
VOICED_DBOV = -50
"""A frame louder than this (dBov) carries RFC 6464's voice-activity flag."""


def audio_level(frame: Frame) -> int:
    """RFC 6464's level of a frame: -dBov (0 loudest, 127 silence), from its RMS as the clients' senders reckon it
    (`media.audio.dbfs`), rounded and clamped to [-127, 0] dBov as RFC 6465 Appendix A says."""
    return -round(max(-127.0, min(0.0, dbfs(rms(frame)))))


@dataclass(frozen=True, slots=True)
class PacketLoop:
    """A source pre-encoded as a loop of Opus packets, each with the RFC 6464 level of its frame."""

    spec: str
    payloads: tuple[bytes, ...]
    levels: tuple[int, ...]
    """-dBov of each packet's frame (0..127)."""
    voiced: tuple[bool, ...]

    def __len__(self) -> int:
        return len(self.payloads)


def loop_frames(source: AudioSource) -> int:
    """How many 20 ms frames make one seamless loop of `source`: a WAV file's length (with its pause), the
    shortest whole number of seconds (at most ten) in which a tone completes whole cycles, one frame of silence."""
    if isinstance(source, WavSource):
        return source.frames_per_loop
    if isinstance(source, ToneSource):
        cycles_per_second = Fraction(source.frequency).limit_denominator(1000)
        seconds = min(cycles_per_second.denominator, MAX_TONE_LOOP_SECONDS)
        return seconds * SAMPLE_RATE // FRAME_SAMPLES
    if isinstance(source, SilenceSource):
        return 1
    raise ValueError(f"no packet loop for {source.describe}")


def encode_packet_loop(spec: str, samples_dir: Path | None = None) -> PacketLoop:
    """Encode the source `spec` names ('silence', a tone, a sample WAV) into a loop (CPU-bound: run it off the loop)."""
    source = source_from_spec(spec, samples_dir)
    frames = [source.next_frame() for _ in range(loop_frames(source))]
    payloads = encode_loop(frames)
    if len(payloads) != len(frames):
        raise RuntimeError(f"the Opus encoder returned {len(payloads)} packets for {len(frames)} frames")
    levels = tuple(audio_level(frame) for frame in frames)
    return PacketLoop(spec, tuple(payloads), levels, tuple(-level > VOICED_DBOV for level in levels))


class PacketLoopCache:
    """Packet loops by source spec, each encoded once in a worker thread and shared by every simulated
    participant with that source (30 invitees of one voice cost one encode); concurrent requests share it too."""

    def __init__(self, samples_dir: Path | None = None, max_entries: int = 32) -> None:
        self.samples_dir = samples_dir
        self.max_entries = max_entries
        self._loops: dict[str, asyncio.Future[PacketLoop]] = {}
        self.encoded = 0
        """Loops encoded so far (a cache hit encodes nothing)."""

    async def get(self, spec: str) -> PacketLoop:
        future = self._loops.get(spec)
        if future is None:
            if len(self._loops) >= self.max_entries:  # forget the oldest loop that is done
                oldest = next((key for key, f in self._loops.items() if f.done()), None)
                if oldest is not None:
                    del self._loops[oldest]
            future = asyncio.ensure_future(asyncio.to_thread(encode_packet_loop, spec, self.samples_dir))
            self._loops[spec] = future
            self.encoded += 1
        try:
            return await asyncio.shield(future)
        except Exception:
            if self._loops.get(spec) is future:  # a failed encode is not cached
                del self._loops[spec]
            raise


def receive_path(
    gate: MuteGate, jitter: JitterBufferSettings | None = None, clock: Callable[[], float] = time.monotonic
) -> ReceivePath:
    """What a WebRTC participant's packets meet after aiortc's receiver, built for a simulated one: the gate, RTP
    sequence validation, the jitter buffer and the libopus decoder, with the server's jitter-buffer settings (as
    `ParticipantPeer.accept` builds it, without a receiver to seat it in)."""
    return ReceivePath(gate, jitter, clock)


class SimulatedParticipant:
    """An invited participant's media (`calls.model.MediaSession`): a packet loop replayed as an RTP stream into
    the receive path, one packet each time its `SimulatedSenders` ticks."""

    def __init__(
        self,
        participant_id: str,
        gate: MuteGate,
        loop: PacketLoop,
        jitter: JitterBufferSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        on_muted_level: Callable[[int], None] | None = None,
    ) -> None:
        self.participant_id = participant_id
        self.loop = loop
        self.path = receive_path(gate, jitter, clock)
        self.path.on_dropped_level = on_muted_level
        """Called with the RFC 6464 level (-dBov) of each packet the closed gate drops: talking while muted."""
        rng = rng or random.Random()
        self.ssrc = rng.getrandbits(32)
        self._sequence = rng.getrandbits(16)
        self._timestamp = rng.getrandbits(32)
        self._index = zlib.crc32(participant_id.encode()) % len(loop)
        """Where in the loop it starts: invitees sharing a voice do not speak in unison."""
        self.packets_sent = 0
        self._senders: SimulatedSenders | None = None
        self._closed = False

    def start(self, senders: SimulatedSenders) -> None:
        """Start sending, one packet each time `senders` ticks (from its next tick)."""
        if not self._closed:
            self._senders = senders
            senders.add(self)

    def next_packet(self) -> RtpPacket:
        """The next packet of the stream, as aiortc's receiver hands packets on (payload depayloaded in `_data`)."""
        loop = self.loop
        index = self._index % len(loop)
        packet = RtpPacket(
            payload_type=OPUS_PAYLOAD_TYPE,
            sequence_number=self._sequence,
            timestamp=self._timestamp,
            ssrc=self.ssrc,
            payload=loop.payloads[index],
        )
        packet.extensions.audio_level = (loop.voiced[index], loop.levels[index])
        packet._data = packet.payload  # type: ignore[attr-defined]  # aiortc's depayload of Opus is the payload
        self._index = index + 1
        self._sequence = (self._sequence + 1) & 0xFFFF
        self._timestamp = (self._timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
        return packet

    def send_next(self) -> None:
        """Hand the next packet to the receive path (the gate decides whether it goes further)."""
        self.path.add(self.next_packet())
        self.packets_sent += 1

    @property
    def received_audio_level_dbov(self) -> float | None:
        """`calls.model.MediaSession`: the RFC 6464 level of its latest packet (dropped or not), in dBov."""
        level = self.path.last_audio_level
        return None if level is None else -float(level)

    @property
    def sequence_counters(self) -> SequenceCounters:
        """`calls.model.MediaSession`: what RTP sequence validation accepted and dropped of its packets."""
        return self.path.sequence_counters

    @property
    def frame_source(self) -> ReceivePath:
        """`calls.model.MediaSession`: the receive path the call's mixer pulls one frame from per tick."""
        return self.path

    def jitter_stats(self) -> JitterStats:
        """`calls.model.MediaSession`: its jitter buffer's numbers now."""
        return self.path.jitter_stats()

    @property
    def network(self) -> NetworkState | None:
        """`calls.model.MediaSession`: none. Its packets are made inside the server and never cross a network, so
        there is nothing to impair (the call answers a network request for it as for one without a connection)."""
        return None

    def set_network(self, spec: NetworkSpec) -> NetworkState:
        """`calls.model.MediaSession`: refused, as there is no network (the call checks `network` first)."""
        raise RuntimeError("a simulated participant has no network to impair")

    @property
    def outbound_counters(self) -> None:
        """A simulated participant hears nothing: no mix is encoded or sent to it."""
        return None

    async def reception(self) -> tuple[ReceptionReport | None, ReceptionReport | None]:
        """`calls.model.MediaSession`: no RTCP, so nothing to report in either direction."""
        return None, None

    async def close(self) -> None:
        """Stop sending (the call has dropped the participant from the mix already)."""
        if self._closed:
            return
        self._closed = True
        if self._senders is not None:
            self._senders.remove(self)


class SimulatedSenders:
    """Paces every simulated participant of a server: one task wakes on absolute 20 ms deadlines (`FramePacer`:
    a short stall is caught up packet by packet, a long one restarts the schedule) and gives each its next packet.
    The task runs while there is someone to pace."""

    def __init__(self, pacer: Callable[[], FramePacer] = FramePacer) -> None:
        self._members: dict[int, SimulatedParticipant] = {}
        self._make_pacer = pacer
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0
        self.send_errors = 0

    def __len__(self) -> int:
        return len(self._members)

    def add(self, member: SimulatedParticipant) -> None:
        self._members[id(member)] = member
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="simulated-senders")

    def remove(self, member: SimulatedParticipant) -> None:
        self._members.pop(id(member), None)

    async def _run(self) -> None:
        pacer = self._make_pacer()
        while self._members:
            await pacer.next()
            self.ticks += 1
            for member in list(self._members.values()):
                try:
                    member.send_next()
                except Exception:  # one broken stream must not silence the others
                    self.send_errors += 1
                    self.remove(member)
                    log.exception("simulated participant %s stopped sending", member.participant_id)

    async def close(self) -> None:
        self._members.clear()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
