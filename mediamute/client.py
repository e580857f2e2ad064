"""A Python call participant: joins a mediamute call by WHIP, sends a source, records what it hears.

    async with CallParticipant(base_url, call_id, ToneSource(440), display_name="Alice") as alice:
        await alice.wait_for_frames(50)
        audio = alice.recording.audio()

Tests, the demo and the benchmarks all use it. ICE offers 127.0.0.1 only unless `ice_addresses` says otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .media.audio import FRAME_SAMPLES, SAMPLE_RATE, Reframer
from .rtc.ice import configure_ice, rtc_configuration
from .rtc.tracks import SourceTrack, frame_to_mono
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

    await pc.setLocalDescription(await pc.createOffer())
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
    """What a participant heard: 20 ms mono frames, each with its arrival time and its media timestamp.

    Times come on two clocks. *Arrival* is when the client's loop read the frame: it includes any lag of the
    client's own processing. *Playout* is when a listener with a steady playout clock hears it: the frame's RTP
    media time plus the least transit seen, which is what a real receiver does and what the measurements use.
    """

    def __init__(self, max_frames: int = 30_000) -> None:
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.media_times: list[float] = []
        self.max_frames = max_frames
        self._arrived = asyncio.Event()

    def add(self, frame: np.ndarray, at: float, media_time: float | None = None) -> None:
        if len(self.frames) >= self.max_frames:
            cut = self.max_frames // 10
            del self.frames[:cut], self.times[:cut], self.media_times[:cut]
        if media_time is None:
            media_time = self.media_times[-1] + FRAME_SAMPLES / SAMPLE_RATE if self.media_times else 0.0
        self.frames.append(frame)
        self.times.append(at)
        self.media_times.append(media_time)
        self._arrived.set()

    def __len__(self) -> int:
        return len(self.frames)

    def playout_times(self) -> np.ndarray:
        """Media time + the least transit observed (the 2nd percentile, robust to one odd early frame)."""
        arrival = np.asarray(self.times)
        media = np.asarray(self.media_times)
        if arrival.size == 0:
            return arrival
        return media + float(np.percentile(arrival - media, 2))

    def window(self, start: float = -np.inf, end: float = np.inf, clock: str = "playout") -> tuple[np.ndarray, list[np.ndarray]]:
        """Times and frames heard in [start, end), on the playout clock (default) or the arrival clock."""
        times = self.playout_times() if clock == "playout" else np.asarray(self.times)
        picked = np.flatnonzero((times >= start) & (times < end))
        return times[picked], [self.frames[i] for i in picked]

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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.call_id = call_id
        self.source = source or SilenceSource()
        self.display_name = display_name
        self.token = token
        self.ice_servers = list(ice_servers)
        self.ice_addresses = ice_addresses
        self.record = record
        self.region = region
        self.session_token: str | None = None
        """The server's token acting for this participant (self-mute, self-unmute, leave)."""
        self.recording = Recording()
        self.track = SourceTrack(self.source)
        self.pc: RTCPeerConnection | None = None
        self.location: str | None = None
        self.participant_id: str | None = None
        self._recorder: asyncio.Task[None] | None = None
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
        self.pc = RTCPeerConnection(rtc_configuration(self.ice_servers))
        self.pc.addTransceiver(self.track, direction="sendrecv")
        self.pc.on("track", self._on_track)
        session = await whip_join(
            self.pc, self._http, self.call_id, self.display_name,
            params={"region": self.region} if self.region else None, headers=self._headers(), timeout=timeout,
        )
        self.location = session.location
        self.session_token = session.session_token
        self.participant_id = session.participant_id

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._recorder is None:
            self._recorder = asyncio.get_running_loop().create_task(self._record(track))

    async def _record(self, track: MediaStreamTrack) -> None:
        reframer = Reframer()
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            at = time.monotonic()
            if not self.record:
                continue
            media = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
            for index, piece in enumerate(reframer.push(frame_to_mono(frame))):
                self.recording.add(piece, at, None if media is None or index else media)

    async def self_unmute(self) -> httpx.Response:
        """Ask the server to lift this participant's server mute (refused if the call's policy forbids it)."""
        return await self._http.post(
            f"/ext/calls/{self.call_id}/participants/{self.participant_id}/selfUnmute",
            headers={"Authorization": f"Bearer {self.session_token}"} if self.session_token else {},
        )

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
        if self.pc is not None:
            await self.pc.close()
        if self._recorder is not None:
            self._recorder.cancel()
            try:
                await self._recorder
            except (asyncio.CancelledError, MediaStreamError):
                pass
        self.track.stop()
        await self._http.aclose()

    async def __aenter__(self) -> "CallParticipant":
        await self.join()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.leave()

