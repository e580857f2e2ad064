"""A Python call participant: joins a mediamute call by WHIP, sends a source, records what it hears.

    async with CallParticipant(base_url, call_id, ToneSource(440), display_name="Alice") as alice:
        await alice.wait_for_frames(50)
        audio = alice.recording.audio()

It hears the way the server does: the same receive path (`rtc.receive.ReceivePath`, with an always-open gate) sits in
its receiver, with the same `JitterBufferSettings`, and a 20 ms playout clock pulls one frame per tick into the
`Recording`, stamped with the tick's time: what a real listener hears, when it hears it (lost packets rebuilt from
FEC or concealed, late ones waited for or skipped). It sends its source as mono Opus with in-band FEC, encoded here
(aiortc's own encoder has no FEC) and packetised by aiortc; like a browser, it sizes the FEC to the uplink loss the
server's receiver reports (`rtc.fec`: none on a clean network), unless told a fixed expected loss. Tests, the demo and the benchmarks all use it. ICE offers
127.0.0.1 only unless `ice_addresses` says otherwise.
"""

from __future__ import annotations

import asyncio
import json
import logging
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription

from .media.audio import FRAME_SAMPLES, SAMPLE_RATE
from .media.clock import MixClock
from .media.gate import MuteGate
from .media.jitter import JitterBufferSettings, JitterStats
from .media.netem import ReceptionReport
from .rtc.audio_level import send_audio_levels
from .rtc.dtmf import DtmfSender, SentEvent, register_telephone_event
from .rtc.fec import LossEstimate, follow_reports
from .rtc.gate_adapter import ReceiverSeamError, install_receive_path
from .rtc.ice import configure_ice, rtc_configuration
from .rtc.receive import ReceivePath
from .rtc.reception import reception_reports
from .rtc.sdp import with_opus_fec
from .rtc.tracks import SourceTrack
from .sources import AudioSource, SilenceSource

log = logging.getLogger(__name__)


class JoinError(RuntimeError):
    """The server refused the WHIP offer; `status` and `body` say how."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"WHIP join failed with HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


@dataclass(frozen=True, slots=True)
class WhipSession:
    """What the server's WHIP answer names: the session resource and the server's token acting for it.

    `location` is absolute, resolved against the URL the offer was finally posted to: after a cluster's 307
    redirect, that is the node that holds the call (RFC 9725), where DELETE ends the session."""

    location: str
    session_token: str | None

    @property
    def participant_id(self) -> str:
        return self.location.rstrip("/").rsplit("/", 1)[-1]


async def whip_join(
    pc: RTCPeerConnection,
    http: httpx.AsyncClient,
    call_id: str,
    display_name: str,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> WhipSession:
    """Offer `pc`'s transceivers to the call's WHIP endpoint, apply the answer, and wait until `pc` is connected.

    Raises `JoinError` (after closing `pc`) if the server refuses the offer, TimeoutError if ICE never connects.
    Follows a `307 Temporary Redirect` to the node that holds the call (a cluster's answer for a call held
    elsewhere: it carries its own short join token, since `Authorization` is not sent to another origin).
    """
    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    def _on_state() -> None:
        if pc.connectionState == "connected":
            connected.set()

    offer = await pc.createOffer()
    await pc.setLocalDescription(RTCSessionDescription(sdp=with_opus_fec(offer.sdp), type="offer"))
    response = await http.post(
        f"/whip/{call_id}",
        params={"displayName": display_name, **(params or {})},
        content=pc.localDescription.sdp,
        headers={**(headers or {}), "Content-Type": "application/sdp"},
        follow_redirects=True,
    )
    if response.status_code != 201:
        await pc.close()
        raise JoinError(response.status_code, response.text)
    location = str(response.url.join(response.headers["Location"]))
    session = WhipSession(location, response.headers.get("Mediamute-Session-Token"))
    await pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
    async with asyncio.timeout(timeout):
        await connected.wait()
    return session


class Recording:
    """What a participant heard: 20 ms mono frames, each with the time it was played and its packet's arrival.

    *Playout* times are the client's playout clock (its 20 ms ticks, pulling the jitter buffer): when a listener
    hears the frame, what the measurements use. *Arrival* is when the frame's packet reached the client (NaN for a
    frame invented by concealment). Media times continue 20 ms per frame.
    """

    def __init__(self, max_frames: int = 30_000) -> None:
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        """Playout time of each frame (monotonic)."""
        self.arrivals: list[float] = []
        self.concealed: list[bool] = []
        """Whether this listener's own jitter buffer invented the frame (its packet lost or late on the way here)."""
        self.media_times: list[float] = []
        self.max_frames = max_frames
        self._arrived = asyncio.Event()

    def add(self, frame: np.ndarray, at: float, media_time: float | None = None, arrived: float = np.nan,
            concealed: bool = False) -> None:
        """Record one frame played at `at` (its packet arrived at `arrived`; `concealed`: none did, it was invented)."""
        if len(self.frames) >= self.max_frames:
            cut = self.max_frames // 10
            del self.frames[:cut], self.times[:cut], self.media_times[:cut], self.arrivals[:cut], self.concealed[:cut]
        if media_time is None:
            media_time = self.media_times[-1] + FRAME_SAMPLES / SAMPLE_RATE if self.media_times else 0.0
        self.frames.append(frame)
        self.times.append(at)
        self.arrivals.append(arrived)
        self.concealed.append(concealed)
        self.media_times.append(media_time)
        self._arrived.set()

    def __len__(self) -> int:
        return len(self.frames)

    def playout_times(self) -> np.ndarray:
        """When each frame was played (the playout clock's ticks)."""
        return np.asarray(self.times)

    def window(self, start: float = -np.inf, end: float = np.inf, clock: str = "playout") -> tuple[np.ndarray, list[np.ndarray]]:
        """Times and frames heard in [start, end), on the playout clock (default) or their packets' arrival clock."""
        times = self.playout_times() if clock == "playout" else np.asarray(self.arrivals)
        picked = np.flatnonzero((times >= start) & (times < end))
        return times[picked], [self.frames[i] for i in picked]

    def concealed_in(self, start: float = -np.inf, end: float = np.inf) -> np.ndarray:
        """For each frame `window(start, end)` returns, whether this listener's own jitter buffer invented it."""
        times = self.playout_times()
        return np.asarray(self.concealed, dtype=bool)[(times >= start) & (times < end)]

    def audio(self, start: float = -np.inf, end: float = np.inf) -> np.ndarray:
        _, frames = self.window(start, end)
        return np.concatenate(frames) if frames else np.zeros(0, dtype=np.int16)

    def save_wav(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(SAMPLE_RATE)
            wav.writeframes(self.audio().astype("<i2").tobytes())
        return path

    async def wait_for(self, count: int, timeout: float) -> None:
        """Wait until at least `count` frames have arrived in all."""
        async with asyncio.timeout(timeout):
            while len(self.frames) < count:
                self._arrived.clear()
                await self._arrived.wait()


class CallParticipant:
    """One WHIP participant with a real RTCPeerConnection."""

    def __init__(
        self,
        base_url: str,
        call_id: str,
        source: AudioSource | None = None,
        display_name: str = "Guest",
        token: str | None = None,
        ice_servers: Sequence[str] = (),
        ice_addresses: str | None = None,
        record: bool = True,
        region: str | None = None,
        network: str | Mapping[str, object] | None = None,
        jitter: JitterBufferSettings | None = None,
        expected_loss: int | None = None,
    ) -> None:
        """`expected_loss` (percent) fixes what the sender's in-band FEC is sized for; None (the default) follows the
        loss the server's receiver reports, as WebRTC's Opus encoder does (`rtc.fec`)."""
        self.base_url = base_url.rstrip("/")
        self.call_id = call_id
        self.source = source or SilenceSource()
        self.display_name = display_name
        self.token = token
        self.ice_servers = list(ice_servers)
        self.ice_addresses = ice_addresses
        self.record = record
        self.region = region
        self.network = network if network is None or isinstance(network, str) else json.dumps(network)
        """The server impairs this participant's network as this says (WHIP `network`: a preset or a JSON profile)."""
        self.session_token: str | None = None
        """The server's token acting for this participant (self-mute, self-unmute, leave)."""
        self.recording = Recording()
        self.track = SourceTrack(self.source, expected_loss or 0)
        self.loss_estimate: LossEstimate | None = LossEstimate() if expected_loss is None else None
        """The uplink loss the FEC follows, from the server's receiver reports (None: a fixed expected loss)."""
        self._fec_task: asyncio.Task[None] | None = None
        self.jitter = jitter or JitterBufferSettings()
        self.receive_path = ReceivePath(MuteGate(), self.jitter)
        """What this participant hears goes through here: sequence validation, the jitter buffer, the decoder."""
        self.playout = MixClock(self._play)
        """The listener's 20 ms playout clock: one frame from the receive path per tick."""
        self.pc: RTCPeerConnection | None = None
        self.location: str | None = None
        self.participant_id: str | None = None
        self._dtmf: DtmfSender | None = None
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=10.0)

    def _headers(self, **extra: str) -> dict[str, str]:
        headers = dict(extra)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def join(self, timeout: float = 10.0) -> None:
        """Offer, get the answer, and wait until the peer connection is connected."""
        if self.ice_addresses is not None:
            configure_ice(self.ice_addresses)
        register_telephone_event()  # offer DTMF, as browsers do
        self.pc = RTCPeerConnection(rtc_configuration(self.ice_servers))
        params = {k: v for k, v in (("region", self.region), ("network", self.network)) if v is not None}
        transceiver = self.pc.addTransceiver(self.track, direction="sendrecv")
        try:
            send_audio_levels(transceiver.sender, lambda: self.track.level_dbov)
        except ReceiverSeamError as exc:  # an unverified aiortc: the audio still flows, without RFC 6464 levels
            log.warning("%s; sending without audio levels", exc)
        install_receive_path(transceiver.receiver, self.receive_path)
        self.playout.start()
        session = await whip_join(
            self.pc, self._http, self.call_id, self.display_name, params=params, headers=self._headers(), timeout=timeout,
        )
        self.location = session.location
        self.session_token = session.session_token
        self.participant_id = session.participant_id
        if self.loss_estimate is not None:
            self._fec_task = asyncio.get_running_loop().create_task(
                follow_reports(self._uplink_report, self.track.encoder, self.loss_estimate)
            )

    async def _uplink_report(self) -> ReceptionReport | None:
        return (await self.reception())[1]

    def _play(self, deadline: float) -> None:
        """One playout tick: the next 20 ms the listener hears (nothing before the first packet or in a stall)."""
        pulled = self.receive_path.pull(deadline)
        if pulled is not None and self.record:
            self.recording.add(pulled.frame, deadline, arrived=pulled.arrived, concealed=pulled.concealed)

    def jitter_stats(self) -> JitterStats:
        """The client's jitter buffer now: the same numbers the server gives per participant under `jitterBuffer`."""
        return self.receive_path.jitter_stats()

    async def self_unmute(self) -> httpx.Response:
        """Ask the server to lift this participant's server mute (refused if the call's policy forbids it)."""
        return await self._http.post(
            f"/ext/calls/{self.call_id}/participants/{self.participant_id}/selfUnmute",
            headers={"Authorization": f"Bearer {self.session_token}"} if self.session_token else {},
        )

    async def reception(self) -> tuple[ReceptionReport | None, ReceptionReport | None]:
        """What RTCP says: (the downlink as this client received it, the uplink as the server's reports told it)."""
        if self.pc is None:
            return None, None
        return await reception_reports(self.pc)
    async def send_dtmf(self, keys: str, duration_ms: int = 100, gap_ms: int = 70) -> list[SentEvent]:
        """Press `keys` (0-9, *, #, A-D; `,` waits 2 s) as RFC 4733 telephone-event packets on this participant's
        audio stream, like a browser's `RTCDTMFSender.insertDTMF(keys, duration_ms, gap_ms)`: in real time, so it
        returns once the last key's end packets are out (with the packets sent). The audio goes on meanwhile.

        Raises `DtmfUnavailable` if the server's answer has no telephone-event at the audio codec's clock rate."""
        if self.pc is None:
            raise RuntimeError("join the call first")
        if self._dtmf is None:
            transceiver = next(t for t in self.pc.getTransceivers() if t.kind == "audio")
            self._dtmf = DtmfSender(transceiver)
        return await self._dtmf.send(keys, duration_ms, gap_ms)

    @property
    def marker_times(self) -> list[float]:
        """Monotonic times at which marker bursts were handed to the encoder (MarkerSource only)."""
        return self.track.marker_times

    async def wait_for_frames(self, count: int, timeout: float = 10.0) -> None:
        await self.recording.wait_for(count, timeout)

    async def leave(self) -> None:
        """Leave politely: DELETE the WHIP session, then close the connection."""
        try:
            if self.location is not None:
                token = self.session_token or self.token
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                try:
                    await self._http.delete(self.location, headers=headers)
                except httpx.TransportError:
                    # the server may close an idle keep-alive connection just as it is reused: DELETE is
                    # idempotent, so send it once more on a fresh connection
                    async with httpx.AsyncClient(base_url=self.base_url, timeout=10.0) as fresh:
                        await fresh.delete(self.location, headers=headers)
        finally:
            await self.vanish()

    async def vanish(self) -> None:
        """Close the connection without telling the server (a participant that crashes or loses its network)."""
        if self._fec_task is not None:
            self._fec_task.cancel()
        await self.playout.stop()
        if self.pc is not None:
            await self.pc.close()
        self.track.stop()
        await self._http.aclose()

    async def __aenter__(self) -> "CallParticipant":
        await self.join()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.leave()

