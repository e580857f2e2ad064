"""What the tests share, in one place: the Graph path, tokens, an in-process mediamute (no socket), participants
joined over WebRTC or straight into the domain, waiting on heard audio, tone checks on what a participant heard,
Graph's error envelope, and a real callback receiver. Test modules import from here, never from each other."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import wave
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from pyee import EventEmitter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mediamute.analysis import first_time_above, last_time_above, tone_amplitudes
from mediamute.api.app import create_app
from mediamute.api.notifications import NotificationHub
from mediamute.calls import Call, CallOptions, CallRegistry, Participant
from mediamute.client import CallParticipant
from mediamute.loopback import LoopbackServer
from mediamute.media.audio import FRAME_SECONDS
from mediamute.rtc.encoding import MixEncoding
from mediamute.settings import ServerSettings
from mediamute.sources import AudioSource, ToneSource
from mediamute.tokens import ALL_CALL_ROLES, SigningKey

CALLS = "/v1.0/communications/calls"
"""Graph's calls collection (v1.0); the /beta twin is the same path under another prefix."""
A = 8000
"""ToneSource's default amplitude: what a listener hears of each tone at unity gain."""
FRAMES_PER_SECOND = 50


# tokens and servers ---------------------------------------------------------------------------------------------
class HasSigningKey(Protocol):
    signing_key: SigningKey


def admin_token(server: HasSigningKey) -> str:
    """An application token holding every calls role the API knows."""
    return server.signing_key.app_token(list(ALL_CALL_ROLES))


class InProcessMediamute:
    """mediamute's ASGI app with its registry, key and hub, called by httpx in-process (no socket, no uvicorn).

    For API tests that need no media: the requests take the same route through the app as over HTTP, minus the
    network. Its `base_url` is a name no socket answers, so a test cannot reach it by accident over the network.
    """

    base_url = "http://mediamute.test"

    def __init__(self, settings: ServerSettings | None = None) -> None:
        self.settings = settings or ServerSettings(log_level="warning", ephemeral_key=True)
        self.registry = CallRegistry(encoding_factory=MixEncoding)  # as MediamuteServer builds it
        self.signing_key = SigningKey.generate()
        self.hub: NotificationHub | None = None
        self.app: FastAPI | None = None

    async def start(self) -> None:
        self.hub = NotificationHub(self.registry.events, self.signing_key)  # its tasks need the running loop
        self.app = create_app(self.registry, self.settings, self.signing_key, self.hub)

    async def stop(self) -> None:
        await self.registry.close()
        if self.app is not None:
            await self.app.state.mediamute.invitations.close()
        if self.hub is not None:
            await self.hub.close()

    def client(self, token: str | None = None, **headers: str) -> httpx.AsyncClient:
        """An httpx client bound to the app; `token` goes in as a bearer token."""
        assert self.app is not None, "start() first"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        transport = httpx.ASGITransport(app=self.app)
        return httpx.AsyncClient(transport=transport, base_url=self.base_url, headers=headers, timeout=10.0)

    async def __aenter__(self) -> "InProcessMediamute":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class InjectedClock:
    """A call's monotonic clock, moved only by the test: mix times and operation times come from it."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = FRAME_SECONDS) -> float:
        self.now += seconds
        return self.now


# calls and participants -----------------------------------------------------------------------------------------
async def create_call(http: httpx.AsyncClient, **body: object) -> str:
    response = await http.post(CALLS, json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


class HasBaseUrl(HasSigningKey, Protocol):
    base_url: str


async def join_all(server: HasBaseUrl, call_id: str, sources: Sequence[tuple[str, AudioSource]]) -> list[CallParticipant]:
    """Join every (name, source) by WHIP over real WebRTC, at once."""
    participants = [
        CallParticipant(server.base_url, call_id, src, display_name=name, token=admin_token(server))
        for name, src in sources
    ]
    await asyncio.gather(*(p.join() for p in participants))
    return participants


async def leave_all(participants: Sequence[CallParticipant]) -> None:
    await asyncio.gather(*(p.leave() for p in participants), return_exceptions=True)


def tones(*frequencies: float) -> list[tuple[str, AudioSource]]:
    return [(f"tone-{f:g}", ToneSource(f)) for f in frequencies]


def domain_call(clock: InjectedClock | None = None, **options: Any) -> Call:
    """A call on its own (no HTTP, no rtc) on an injected clock, its MixClock not started: the test ticks it with
    `call._tick(clock.advance())`, so every 20 ms of media is one step the test takes."""
    return Call(CallOptions(**options), EventEmitter(), clock=clock or InjectedClock())


def listening(call: Call, display_name: str) -> tuple[Participant, list[np.ndarray]]:
    """A participant without media whose mixer sink keeps every frame it is handed (its N-1 mix, or its music)."""
    heard: list[np.ndarray] = []
    participant = call.join(Participant(display_name=display_name), sink=lambda tick, frame, shared: heard.append(frame.copy()), media=None)
    return participant, heard


class ArrivingMedia:
    """A prompt's media on its way (calls.ivr.PendingMedia): the test says when it arrives (`audio`) or why it
    cannot (`error`), and sees whether the call gave up on it (`cancelled`)."""

    def __init__(self) -> None:
        self.audio: np.ndarray | None = None
        self.error: Exception | None = None
        self.cancelled = False

    def done(self) -> bool:
        return self.audio is not None or self.error is not None

    def result(self) -> np.ndarray:
        if self.error is not None:
            raise self.error
        assert self.audio is not None
        return self.audio

    def cancel(self) -> bool:
        self.cancelled = True
        return True


def join_without_media(call: Call, display_name: str, **fields: Any) -> Participant:
    """A participant in the roster and the mix with no connection (for API tests about the roster, not audio)."""
    return call.join(Participant(display_name=display_name, **fields), sink=None, media=None)


async def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> None:
    """Poll a condition that no event announces (e.g. a counter on the server), bounded by `timeout`."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(interval)


async def hear_for(participants: CallParticipant | Sequence[CallParticipant], seconds: float) -> None:
    """Wait (on frame arrival events) until every participant has heard `seconds` more audio."""
    group = [participants] if isinstance(participants, CallParticipant) else list(participants)
    targets = [len(p.recording) + int(seconds * FRAMES_PER_SECOND) for p in group]
    await asyncio.gather(*(p.recording.wait_for(t, timeout=seconds + 5) for p, t in zip(group, targets)))


# tone checks on what a participant heard ------------------------------------------------------------------------
def amplitude(p: CallParticipant, freq: float, start: float, end: float = np.inf) -> float:
    """Median amplitude of `freq` in what `p` heard in [start, end) (playout clock): one glitch is moot."""
    _, frames = p.recording.window(start, end)
    assert frames, f"{p.display_name} heard nothing in the window"
    return float(np.median(tone_amplitudes(frames, freq)))


def least_heard(p: CallParticipant, freq: float, start: float, end: float) -> float:
    """The 5th-percentile amplitude of `freq` in [start, end) of what the server sent `p`: a dropout of a few frames
    or more pulls it down. Frames `p`'s own jitter buffer had to invent (its downlink hiccuped: on a shared machine
    the listener's loop stalls too) are not the server's doing and are left out; there must be few of them."""
    _, frames = p.recording.window(start, end)
    assert len(frames) > 50, f"{p.display_name} heard {len(frames)} frames in the window"
    own = p.recording.concealed_in(start, end)
    assert own.mean() <= 0.1, f"{p.display_name} concealed {own.sum()} of {own.size} frames itself"
    delivered = [f for f, concealed in zip(frames, own) if not concealed]
    return float(np.percentile(tone_amplitudes(delivered, freq), 5))


def tone_track(p: CallParticipant, freq: float) -> tuple[np.ndarray, np.ndarray]:
    times, frames = p.recording.window()
    return times, tone_amplitudes(frames, freq)


def assert_tone_stops(p: CallParticipant, freq: float, sent: float, until: float = np.inf, min_silent: int = 25) -> float:
    """`freq`, heard before the request sent at `sent`, stops after it and stays off until `until`.

    Order, not speed: the tone is heard in the second before the request; after the last frame where it is heard
    (sustained), at least `min_silent` frames arrive before `until` and they are silent of it. How fast it stops
    is a figure for `mediamute bench` (probe mute latency). Returns the time it was last heard.
    """
    times, amps = tone_track(p, freq)
    last = last_time_above(times, amps, 0.1 * A, sent - 1.0, until)
    assert last is not None, f"{p.display_name} did not hear {freq:g} Hz before the request"
    after = amps[(times > last) & (times < until)]
    assert after.size >= min_silent, f"{p.display_name} heard only {after.size} frames after {freq:g} Hz stopped"
    assert float(np.median(after)) < 0.03 * A, f"{freq:g} Hz still heard by {p.display_name} after the request"
    return last


def assert_tone_returns(p: CallParticipant, freq: float, sent: float) -> float:
    """`freq`, silent before the request sent at `sent`, is heard again after it, at full amplitude from then on.

    Returns the time it came back (how fast is a figure for `mediamute bench`: probe unmute latency)."""
    times, amps = tone_track(p, freq)
    back = first_time_above(times, amps, 0.5 * A, sent)
    assert back is not None, f"{freq:g} Hz not back at {p.display_name} after the request"
    assert amplitude(p, freq, back) == pytest.approx(A, rel=0.1), f"{freq:g} Hz back at {p.display_name} but not at full level"
    return back


# Graph's error envelope -----------------------------------------------------------------------------------------
def assert_graph_error(response: httpx.Response, status: int, code: str | None = None, message_part: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    error = body["error"]
    assert set(error) >= {"code", "message", "innerError"}
    assert error["innerError"]["request-id"] and error["innerError"]["date"]
    if code is not None:
        assert error["code"] == code
    if message_part is not None:
        assert message_part.lower() in error["message"].lower(), error["message"]
    assert "Traceback" not in response.text
    return error


UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def assert_contains(seed, ours, path="$", ids_at=("id",), placeholders=()):
    """Every property of a documentation example is in ours with the same value, except ids (any UUID) and the
    declared placeholders (paths like "$.resultInfo.message")."""
    if isinstance(seed, dict):
        assert isinstance(ours, dict), f"{path}: expected an object, got {ours!r}"
        for key, value in seed.items():
            assert key in ours, f"{path}.{key} missing from {sorted(ours)}"
            assert_contains(value, ours[key], f"{path}.{key}", ids_at, placeholders)
    elif isinstance(seed, list):
        assert isinstance(ours, list) and len(ours) == len(seed), f"{path}: {ours!r}"
        for i, (a, b) in enumerate(zip(seed, ours)):
            assert_contains(a, b, f"{path}[{i}]", ids_at, placeholders)
    elif path in placeholders:
        return
    elif path.rsplit(".", 1)[-1] in ids_at:
        assert isinstance(ours, str) and UUID.match(ours), f"{path}: {ours!r} is not an id"
    else:
        assert ours == seed, f"{path}: {ours!r} != seed {seed!r}"


# a callback receiver --------------------------------------------------------------------------------------------
@dataclass
class Delivery:
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class CallbackReceiver:
    """A tiny real HTTP server playing a callback receiver (not ours to own, so a fake is fine).

    Records every POST. `fail_first` answers 500 to that many attempts; `hang` holds every POST until `release()`.
    A test ends its call (and waits for that notification) inside the receiver's `async with`, so no delivery is
    left retrying against a closed receiver when the server stops.
    """

    fail_first: int = 0
    hang: bool = False
    attempts: list[Delivery] = field(default_factory=list)
    accepted: list[Delivery] = field(default_factory=list)
    port: int = 0
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/calls"

    async def _handle(self, request: Request) -> Response:
        delivery = Delivery(await request.body(), {k.lower(): v for k, v in request.headers.items()})
        self.attempts.append(delivery)
        self._arrived.set()
        if self.hang:
            await self._release.wait()
        if len(self.attempts) <= self.fail_first:
            return Response(status_code=500)
        self.accepted.append(delivery)
        return Response(status_code=202)

    def release(self) -> None:
        """Answer the held POSTs (and every later one) at once."""
        self._release.set()

    def notifications(self) -> list[dict[str, Any]]:
        """Every commsNotification accepted, in arrival order."""
        return [n for d in self.accepted for n in d.json["value"]]

    async def wait_for(self, predicate: Callable[["CallbackReceiver"], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._arrived.clear()
                await self._arrived.wait()

    async def __aenter__(self) -> "CallbackReceiver":
        self._http = LoopbackServer(Starlette(routes=[Route("/api/calls", self._handle, methods=["POST"])]))
        await self._http.start()
        self.port = self._http.port
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        await self._http.stop()


@contextlib.asynccontextmanager
async def call_with_callback(
    server: HasBaseUrl, http: httpx.AsyncClient, sources: Sequence[tuple[str, AudioSource]]
) -> AsyncIterator[tuple[CallbackReceiver, str, list[CallParticipant]]]:
    """A call whose callbackUri is a real receiver, with `sources` joined over WebRTC; afterwards everyone leaves,
    the call is deleted and its `deleted` notification awaited while the receiver is still up."""
    async with CallbackReceiver() as receiver:
        created = await http.post(CALLS, json={"callbackUri": receiver.url})
        assert created.status_code == 201, created.text
        call_id = created.json()["id"]
        participants = await join_all(server, call_id, sources)
        try:
            yield receiver, call_id, participants
        finally:
            await leave_all(participants)
            await http.delete(f"{CALLS}/{call_id}")
            await receiver.wait_for(
                lambda r: any(n["changeType"] == "deleted" and n["resourceUrl"] == f"/communications/calls/{call_id}" for n in r.notifications())
            )



# audio files and a host that serves them ------------------------------------------------------------------------
def tone_wav(frequency: float, seconds: float, rate: int = 16_000, amplitude: int = A, channels: int = 1) -> bytes:
    """A WAV file of a steady tone (16-bit PCM): Graph's own prompt format by default (mono, 16 kHz)."""
    t = np.arange(int(seconds * rate)) / rate
    samples = np.round(amplitude * np.sin(2 * np.pi * frequency * t)).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.repeat(samples, channels).tobytes())
    return buffer.getvalue()


def wav_audio(data: bytes) -> tuple[int, np.ndarray]:
    """A mono 16-bit WAV file's rate and samples."""
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        return wav.getframerate(), np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")


@dataclass
class MediaHost:
    """A tiny real HTTP server playing a bot's media host (not ours to own): GET /media/{name} answers the bytes
    in `files`, 404 otherwise."""

    files: dict[str, bytes] = field(default_factory=dict)
    port: int = 0

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/media/{name}"

    async def _handle(self, request: Request) -> Response:
        body = self.files.get(request.path_params["name"])
        if body is None:
            return Response(status_code=404)
        return Response(body, media_type="audio/wav")

    async def __aenter__(self) -> "MediaHost":
        self._http = LoopbackServer(Starlette(routes=[Route("/media/{name}", self._handle, methods=["GET"])]))
        await self._http.start()
        self.port = self._http.port
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.stop()
