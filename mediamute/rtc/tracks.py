"""aiortc media tracks: the outbound N-1 mix of one listener, and a paced source for senders.

Both go to aiortc already encoded (mono Opus with in-band FEC, see `codec.py` and `encoding.py`): its sender only
packetises an `av.Packet`, skipping its stereo re-encode (which has no FEC), its thread hop and its pure-Python
audio level. `mono_to_frame` / `frame_to_mono` convert to and from aiortc's frames (interleaved stereo, L == R:
aiortc's own encoder up-mixes mono at -3 dB, so stereo is what keeps a tone's amplitude unchanged through it).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from ..media.audio import (
    FRAME_SAMPLES,
    FRAME_SECONDS,
    SAMPLE_RATE,
    Frame,
    dbfs,
    interleaved_to_mono,
    mono_to_stereo,
    rms,
)
from ..sources import AudioSource
from .codec import TIME_BASE
from .fec import LiveOpusEncoder


def frame_to_mono(frame: AudioFrame) -> Frame:
    """A decoded aiortc frame (packed s16, any channel count, 48 kHz) as mono int16."""
    if frame.sample_rate != SAMPLE_RATE:
        raise ValueError(f"expected {SAMPLE_RATE} Hz audio, got {frame.sample_rate} Hz")
    if frame.format.name != "s16":
        raise ValueError(f"expected s16 audio, got {frame.format.name}")
    return interleaved_to_mono(frame.to_ndarray(), len(frame.layout.channels))


def mono_to_frame(mono: Frame, pts: int) -> AudioFrame:
    """A mono int16 frame as an aiortc-ready stereo AudioFrame with the given pts (in 1/48000 s)."""
    stereo = mono_to_stereo(mono)
    frame = AudioFrame.from_ndarray(stereo.reshape(1, -1), format="s16", layout="stereo")
    frame.sample_rate = SAMPLE_RATE
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame


class MixTrack(MediaStreamTrack):
    """The listener's outbound track: encoded mix packets pushed by the mixer tick, pulled by aiortc's sender.

    A small bounded queue (drop-oldest, counted) decouples the two: a stalled sender never makes the mixer wait,
    and never builds up latency beyond `depth` packets.
    """

    kind = "audio"

    def __init__(self, depth: int = 3) -> None:
        super().__init__()
        self._queue: deque[av.Packet] = deque(maxlen=depth)
        self._ready = asyncio.Event()
        self.frames_sent = 0
        self.payload_bytes = 0
        self.dropped = 0

    def push(self, packet: av.Packet) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(packet)
        self._ready.set()

    async def recv(self) -> av.Packet:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        if self.readyState != "live":
            raise MediaStreamError
        self.frames_sent += 1
        packet = self._queue.popleft()
        self.payload_bytes += packet.size
        return packet

    def stop(self) -> None:
        super().stop()
        self._ready.set()


class FramePacer:
    """Hands out consecutive frame indexes in real time, one per 20 ms, on absolute deadlines.

    A sender that falls far behind (the loop stalled) restarts its schedule rather than bursting to catch up.
    """

    __slots__ = ("_start", "index")

    def __init__(self) -> None:
        self._start: float | None = None
        self.index = 0

    async def next(self) -> int:
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            wait = self._start + self.index * FRAME_SECONDS - now
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.2:
                self._start = now - self.index * FRAME_SECONDS
        index = self.index
        self.index += 1
        return index

    def deadline(self, index: int) -> float:
        """When frame `index` was due on the current schedule (monotonic seconds)."""
        return (self._start or 0.0) + index * FRAME_SECONDS


class SourceTrack(MediaStreamTrack):
    """Sends an `AudioSource` in real time as mono Opus with in-band FEC, one 20 ms packet per period on absolute
    deadlines (encoded here, packetised by aiortc's sender).

    `encoder.expected_loss_percent` sizes the FEC, and may change while it runs (`fec.follow_reports` keeps it at
    the loss the receiver reports; at 0, the start, libopus sends no FEC data). `marker_times` are the monotonic
    times marker onsets were handed to the encoder.
    """

    kind = "audio"

    def __init__(self, source: AudioSource, expected_loss_percent: int = 0) -> None:
        super().__init__()
        self.source = source
        self.pacer = FramePacer()
        self.marker_times: list[float] = []
        self.level_dbov: float | None = None
        """The level of the latest frame encoded (dBov), for the packet's RFC 6464 header (`audio_level.py`)."""
        self.encoder = LiveOpusEncoder(expected_loss_percent)

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        index = await self.pacer.next()
        frame = self.source.next_frame()
        if self.source.is_marker(index):
            self.marker_times.append(time.monotonic())
        packet = self.encoder.encode(frame, index * FRAME_SAMPLES)
        self.level_dbov = dbfs(rms(frame))
        return packet

    @property
    def frames_sent(self) -> int:
        return self.pacer.index
