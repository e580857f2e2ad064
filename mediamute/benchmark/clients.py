"""The benchmark's participants, all in one process: cheap senders and a few decoding probes.

    python -m mediamute.benchmark.clients --base-url URL --call-id ID --participants 8 [--network wifi --network-roles probe]

Every participant replays pre-encoded Opus packets with in-band FEC sized for 10 % loss (aiortc's sender only
packetises an `av.Packet`), so the process encodes nothing while it runs. Roles: `marker` sends 1 kHz bursts every
500 ms (mouth-to-ear onsets), `target` sends a voiced tone (`VoicedToneSource`: a steady 700 Hz tone the benchmark
mutes and unmutes, with LBRR data in every packet), `probe` hears like a real listener (the receive path with the
default jitter buffer, pulled by a 20 ms playout clock) and notes for each playout tick its packet's arrival, its
playout time and what the tick played (the packet's frame, a frame rebuilt by FEC, a concealed one, or nothing);
every other participant sends a quiet voiced tone of its own and drops what it receives before decoding (a receive
path behind a closed gate).
With `--network`, the chosen roles (all by default) join with WHIP's `network` parameter, so the server impairs
their datagrams both ways (with `--network-seed S`, participant i's profiles are seeded S + i: the same draws in every
run); `report` then carries what each client's RTCP knows (its downlink as received, its
uplink as the server's receiver reports told it). Talks JSON lines: prints `{"event": "ready", ...}` once all are
connected, answers `report` and `buffer` (the probe's jitter buffer now) on stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field

import av
import httpx
import numpy as np
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .. import eventloop
from ..analysis import tone_basis
from ..client import whip_join
from ..media.audio import FRAME_SAMPLES
from ..media.clock import MixClock
from ..media.gate import MuteGate
from ..media.netem import ReceptionReport
from ..media.mixer import PulledFrame
from ..rtc.codec import encode_loop, opus_av_packet
from ..rtc.gate_adapter import install_receive_path
from ..rtc.ice import configure_ice, rtc_configuration
from ..rtc.reception import reception_reports
from ..rtc.receive import ReceivePath
from ..rtc.tracks import FramePacer
from ..sources import MarkerSource, ToneSource, VoicedToneSource
from .profiles import with_seed
from .stats import percentiles_ms

MARKER_HZ = 1000.0
TARGET_HZ = 700.0
LOUD = 6000
QUIET = 1000
"""Background talkers are quiet (quieter still in big calls) so their sum never clips the probes' tones."""
ROLES = ("marker", "target", "probe", "talker")
BACKGROUND_HZ = [
    float(f) for f in range(250, 7000, 170)
    if (f < 1000 or f > 4600) and abs(f - MARKER_HZ) > 160 and abs(f - TARGET_HZ) > 160
]
"""The background talkers' steady tones: clear of the marker's and the target's, and outside the two voice-activity
bands their companions swell in (1-2 and 2-4 kHz), where a steady tone would hide the swell from libopus's voice
detector (then ~20-60 % of its packets carry no FEC data)."""


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
        packet = opus_av_packet(self._packets[index % len(self._packets)], index * FRAME_SAMPLES)
        if self._marker_period and index % self._marker_period == 0:
            self.marker_times.append(time.monotonic())
        return packet


PLAYED, RECOVERED, CONCEALED, NOTHING = 0, 1, 2, 3
"""What a probe's playout tick played: its packet's frame, a frame rebuilt by FEC, a concealed one, or nothing."""


@dataclass
class Probe:
    """What a listener heard, summarised per playout tick: its packet's arrival (NaN for a frame without one), its
    playout time, what kind of frame it was, and the tone amplitudes the benchmark cares about."""

    frequencies: tuple[float, ...] = (MARKER_HZ, TARGET_HZ)
    times: list[float] = field(default_factory=list)
    """Arrival of each frame's packet at the probe (NaN: concealed or rebuilt, or nothing played)."""
    playout: list[float] = field(default_factory=list)
    kinds: list[int] = field(default_factory=list)
    """PLAYED, RECOVERED, CONCEALED or NOTHING per tick."""
    amplitudes: list[np.ndarray] = field(default_factory=list)
    _basis: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self._basis = tone_basis(self.frequencies)

    def on_frame(self, pulled: PulledFrame | None, played: float) -> None:
        """One playout tick (None: the buffer had nothing to play, before the first packet or in a stall)."""
        self.playout.append(played)
        if pulled is None:
            self.times.append(float("nan"))
            self.kinds.append(NOTHING)
            self.amplitudes.append(np.zeros(len(self.frequencies)))
            return
        self.times.append(pulled.arrived)
        self.kinds.append(RECOVERED if pulled.recovered else CONCEALED if pulled.concealed else PLAYED)
        self.amplitudes.append(np.abs(pulled.frame.astype(np.float64) @ self._basis))

    def since(self, start: float) -> dict[str, list[float]]:
        picked = [i for i, t in enumerate(self.playout) if t >= start]
        amps = np.array([self.amplitudes[i] for i in picked]).reshape(-1, len(self.frequencies))
        return {
            "times": [self.times[i] for i in picked],  # NaN goes out as JSON NaN, which json.loads reads back
            "playout": [self.playout[i] for i in picked],
            "kinds": [self.kinds[i] for i in picked],
            **{f"amp_{int(f)}": amps[:, k].round(1).tolist() for k, f in enumerate(self.frequencies)},
        }


def loop_packets(source: ToneSource, frames: int) -> list[bytes]:
    """One loop of `frames` frames (a whole number of the source's periods), encoded as the talkers send it."""
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
        gate = MuteGate()
        if self.probe is None:
            gate.close()  # count and drop what this participant hears, before buffering: only probes decode
        self.receive_path = ReceivePath(gate)
        self.playout = MixClock(self._play) if self.probe is not None else None
        self.participant_id = ""

    def _play(self, deadline: float) -> None:
        pulled = self.receive_path.pull(deadline)
        if self.probe is not None and (pulled is not None or self.probe.playout):  # from its first frame on
            self.probe.on_frame(pulled, deadline)

    async def join(self, http: httpx.AsyncClient, network: str | None = None, timeout: float = 20.0) -> None:
        transceiver = self.pc.addTransceiver(self.track, direction="sendrecv")
        install_receive_path(transceiver.receiver, self.receive_path)
        if self.playout is not None:
            self.playout.start()
        params = {"network": network} if network is not None else None
        session = await whip_join(self.pc, http, self.call_id, f"bench-{self.role}", params=params, timeout=timeout)
        self.participant_id = session.participant_id

    async def reception(self) -> dict:
        """This client's RTCP view: its downlink as received, its uplink as the server's reports told it."""
        downlink, uplink = await reception_reports(self.pc)
        return {"id": self.participant_id, "role": self.role, "downlink": _report(downlink), "uplink": _report(uplink)}

    async def close(self) -> None:
        if self.playout is not None:
            await self.playout.stop()
        await self.pc.close()


def _report(report: ReceptionReport | None) -> dict | None:
    return None if report is None else {**asdict(report), "loss_ratio": report.loss_ratio}


def roles(count: int) -> list[str]:
    base = ["marker", "target", "probe"]
    return base[:count] + ["talker"] * max(0, count - len(base))


def emit(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    configure_ice(None)
    marker = loop_packets(MarkerSource(MARKER_HZ, LOUD, period_frames=25, burst_frames=5), 25)
    target = loop_packets(VoicedToneSource(TARGET_HZ, LOUD), 50)
    participants: list[BenchParticipant] = []
    for i, role in enumerate(roles(args.participants)):
        if role == "marker":
            participants.append(BenchParticipant(args.base_url, args.call_id, role, marker, marker_period=25))
        elif role == "target":
            participants.append(BenchParticipant(args.base_url, args.call_id, role, target))
        else:
            hz = BACKGROUND_HZ[i % len(BACKGROUND_HZ)]
            quiet = max(100, min(QUIET, 12_000 // max(1, args.participants - 3)))  # peaks at 1.5 x with its companions
            participants.append(BenchParticipant(args.base_url, args.call_id, role, loop_packets(VoicedToneSource(hz, quiet), 50)))
    impaired = set(args.network_roles or ROLES)

    def network(index: int, p: BenchParticipant) -> str | None:
        if p.role not in impaired:
            return None
        return args.network if args.network_seed is None else with_seed(args.network, args.network_seed + index)

    async with httpx.AsyncClient(base_url=args.base_url, timeout=30.0) as http:
        for start in range(0, len(participants), 4):  # a few at a time: ICE on a busy 2-core box is slow
            group = list(enumerate(participants))[start : start + 4]
            await asyncio.gather(*(p.join(http, network(i, p)) for i, p in group))
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
            buffers = [p.receive_path.jitter_stats().as_dict() for p in participants if p.probe is not None]
            reception = await asyncio.gather(*(p.reception() for p in participants)) if args.network else None
            lateness = [late for p in participants for at, late in p.track.handed if at >= since]
            emit({"event": "report", "marker_times": markers, "probe": probes[0] if probes else None,
                  "probe_buffer": buffers[0] if buffers else None, "reception": reception,
                  "send_lateness_ms": percentiles_ms(lateness)})
        elif command["cmd"] == "buffer":  # the probe's jitter buffer now (the orchestrator marks the window with it)
            buffers = [p.receive_path.jitter_stats().as_dict() for p in participants if p.probe is not None]
            emit({"event": "buffer", "probe_buffer": buffers[0] if buffers else None})
        elif command["cmd"] == "quit":
            break
    await asyncio.gather(*(p.close() for p in participants), return_exceptions=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--call-id", required=True)
    parser.add_argument("--participants", type=int, default=8)
    parser.add_argument("--network", help="the WHIP network spec the impaired roles join with")
    parser.add_argument("--network-roles", nargs="*", choices=ROLES, help="the roles to impair (default: all)")
    parser.add_argument("--network-seed", type=int, help="seed participant i's network with this + i (default: random)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    eventloop.run(main(parse()))
