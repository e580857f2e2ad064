"""The benchmark's participants, all in one process: cheap senders and a few decoding probes.

    python -m mediamute.benchmark.clients --base-url URL --call-id ID --participants 8

Every participant replays pre-encoded Opus packets (aiortc's sender only packetises an `av.Packet`), so the
process encodes nothing while it runs. Roles: `marker` sends 1 kHz bursts every 500 ms (mouth-to-ear onsets),
`target` sends a steady tone (the one the benchmark mutes and unmutes), `probe` decodes what it hears at RTP
arrival; every other participant sends a quiet tone of its own and drops what it receives before decoding.
Talks JSON lines: prints `{"event": "ready", ...}` once all are connected, answers `report` on stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections import deque
from dataclasses import dataclass, field

import av
import httpx
import numpy as np
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .. import eventloop
from ..analysis import tone_basis
from ..client import whip_join
from ..media.audio import FRAME_SAMPLES, Frame
from ..media.gate import MuteGate
from ..rtc.codec import TIME_BASE, encode_loop
from ..rtc.gate_adapter import install_inline_decoder
from ..rtc.ice import configure_ice, rtc_configuration
from ..rtc.tracks import FramePacer
from ..sources import MarkerSource, ToneSource
from .stats import percentiles_ms

MARKER_HZ = 1000.0
TARGET_HZ = 700.0
LOUD = 6000
QUIET = 1000
"""Background talkers are quiet (quieter still in big calls) so their sum never clips the probes' tones."""
BACKGROUND_HZ = [float(f) for f in range(250, 7000, 170) if abs(f - MARKER_HZ) > 160 and abs(f - TARGET_HZ) > 160]


class PacketLoopTrack(MediaStreamTrack):
    """Replays a loop of Opus packets in real time (absolute 20 ms deadlines); records marker hand-off times."""

    kind = "audio"

    def __init__(self, packets: list[bytes], marker_period: int = 0) -> None:
        super().__init__()
        self._packets = packets
        self._marker_period = marker_period
        self._pacer = FramePacer()
        self.marker_times: list[float] = []
        self.handed: deque[tuple[float, float]] = deque(maxlen=30_000)
        """(when, how late) each packet was handed to the sender against its 20 ms deadline: a busy clients
        process sends late and in bursts, which the server then receives late."""

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        index = await self._pacer.next()
        now = time.monotonic()
        self.handed.append((now, now - self._pacer.deadline(index)))
        packet = av.Packet(self._packets[index % len(self._packets)])
        packet.pts = index * FRAME_SAMPLES
        packet.time_base = TIME_BASE
        if self._marker_period and index % self._marker_period == 0:
            self.marker_times.append(time.monotonic())
        return packet


@dataclass
class Probe:
    """Decoded audio, summarised per frame at RTP arrival: the tone amplitudes the benchmark cares about."""

    frequencies: tuple[float, ...] = (MARKER_HZ, TARGET_HZ)
    times: list[float] = field(default_factory=list)
    amplitudes: list[np.ndarray] = field(default_factory=list)
    _basis: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self._basis = tone_basis(self.frequencies)

    def on_frame(self, mono: Frame, arrived: float) -> None:
        self.times.append(arrived)
        self.amplitudes.append(np.abs(mono.astype(np.float64) @ self._basis))

    def since(self, start: float) -> dict[str, list[float]]:
        picked = [i for i, t in enumerate(self.times) if t >= start]
        amps = np.array([self.amplitudes[i] for i in picked]).reshape(-1, len(self.frequencies))
        return {
            "times": [self.times[i] for i in picked],
            **{f"amp_{int(f)}": amps[:, k].round(1).tolist() for k, f in enumerate(self.frequencies)},
        }


def loop_packets(source: ToneSource, frames: int) -> list[bytes]:
    return encode_loop([source.next_frame() for _ in range(frames)])


class BenchParticipant:
    """One cheap WHIP participant."""

    def __init__(self, base_url: str, call_id: str, role: str, packets: list[bytes], marker_period: int = 0) -> None:
        self.base_url = base_url
        self.call_id = call_id
        self.role = role
        self.track = PacketLoopTrack(packets, marker_period)
        self.pc = RTCPeerConnection(rtc_configuration())
        self.probe = Probe() if role == "probe" else None
        self.participant_id = ""

    async def join(self, http: httpx.AsyncClient, timeout: float = 20.0) -> None:
        transceiver = self.pc.addTransceiver(self.track, direction="sendrecv")
        if self.probe is not None:
            install_inline_decoder(transceiver.receiver, MuteGate(), self.probe.on_frame)
        else:
            deaf = MuteGate()
            deaf.close()  # count and drop what this participant hears, before decoding: only probes decode
            install_inline_decoder(transceiver.receiver, deaf, lambda _mono, _arrived: None)
        session = await whip_join(self.pc, http, self.call_id, f"bench-{self.role}", timeout=timeout)
        self.participant_id = session.participant_id

    async def close(self) -> None:
        await self.pc.close()


def roles(count: int) -> list[str]:
    base = ["marker", "target", "probe"]
    return base[:count] + ["talker"] * max(0, count - len(base))


def emit(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    configure_ice(None)
    marker = loop_packets(MarkerSource(MARKER_HZ, LOUD, period_frames=25, burst_frames=5), 25)
    target = loop_packets(ToneSource(TARGET_HZ, LOUD), 50)
    participants: list[BenchParticipant] = []
    for i, role in enumerate(roles(args.participants)):
        if role == "marker":
            participants.append(BenchParticipant(args.base_url, args.call_id, role, marker, marker_period=25))
        elif role == "target":
            participants.append(BenchParticipant(args.base_url, args.call_id, role, target))
        else:
            hz = BACKGROUND_HZ[i % len(BACKGROUND_HZ)]
            quiet = max(100, min(QUIET, 18_000 // max(1, args.participants - 3)))
            participants.append(BenchParticipant(args.base_url, args.call_id, role, loop_packets(ToneSource(hz, quiet), 50)))
    async with httpx.AsyncClient(base_url=args.base_url, timeout=30.0) as http:
        for start in range(0, len(participants), 4):  # a few at a time: ICE on a busy 2-core box is slow
            await asyncio.gather(*(p.join(http) for p in participants[start : start + 4]))
    emit({"event": "ready", "participants": [{"id": p.participant_id, "role": p.role} for p in participants]})

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        if command["cmd"] == "report":
            since = float(command.get("since", 0.0))
            markers = [t for p in participants for t in p.track.marker_times if t >= since - 1.0]
            probes = [p.probe.since(since) for p in participants if p.probe is not None]
            lateness = [late for p in participants for at, late in p.track.handed if at >= since]
            emit({"event": "report", "marker_times": markers, "probe": probes[0] if probes else None,
                  "send_lateness_ms": percentiles_ms(lateness)})
        elif command["cmd"] == "quit":
            break
    await asyncio.gather(*(p.close() for p in participants), return_exceptions=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--call-id", required=True)
    parser.add_argument("--participants", type=int, default=8)
    return parser.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    eventloop.run(main(parse()))
