"""recordResponse's recordings: kept in memory, fetched by the app at the `recordingLocation` its recordOperation
names, with `Authorization: Bearer {recordingAccessToken}`, as Graph's page shows (`200`, `application/octet-stream`).

- Where: `GET /ext/calls/{callId}/recordings/{recordingId}` (a path of ours; Graph's is a storage URL). Under the
  call's path so that a cluster relays it to the node that holds the call (and its recordings), as any call path.
- What: a WAV file, PCM 16-bit mono 16 kHz (Graph's own prompt format; the size of Graph's example download fits
  it), resampled from the 48 kHz mix by libswresample when first fetched.
- Who: the bearer of that recording's access token, an ES256 JWT bound to the one recording (`sub`), valid
  `TOKEN_SECONDS`. No token, a malformed, forged or expired one: 401; another kind of token (an app token) or a
  token of another recording: 403; a recording that does not exist (or no longer): 404. With auth off
  (`mediamute serve --no-auth`) no token is asked for.
- How long: until `GRACE_SECONDS` after its call ends ("discarded shortly after the call ends", Graph says), and at
  most `MAX_RECORDINGS` recordings or `MAX_STORED_BYTES` in all: past that the oldest is evicted (counted, logged).
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
import uuid
import wave
from dataclasses import dataclass, field
from typing import Any

import jwt
import numpy as np
from fastapi import APIRouter, Request, Response
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pyee import EventEmitter

from ..calls import call as call_events
from ..calls.call import Call
from ..media.audio import SAMPLE_RATE
from ..sources import resample_mono
from ..tokens import GRAPH_AUDIENCE, SigningKey
from .auth import FORBIDDEN, UNAUTHENTICATED, WHIP_AUDIENCE, bearer_token
from .errors import GraphError

log = logging.getLogger("mediamute.recordings")

RECORDING_AUDIENCE = "mediamute:recording"
WAV_RATE = 16_000
GRACE_SECONDS = 300.0
TOKEN_SECONDS = 900.0
MAX_RECORDINGS = 100
MAX_STORED_BYTES = 256 * 1024 * 1024


def wav_bytes(audio: np.ndarray, rate: int = WAV_RATE) -> bytes:
    """48 kHz mono int16 as a WAV file of 16-bit mono PCM at `rate`."""
    pcm = resample_mono(audio, SAMPLE_RATE, rate) if audio.size and rate != SAMPLE_RATE else audio
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.astype("<i2").tobytes())
    return buffer.getvalue()


@dataclass
class StoredRecording:
    id: str
    call_id: str
    audio: np.ndarray | None
    """The 48 kHz recording until its WAV is made (at the first fetch), then None."""
    wav: bytes | None = None
    created: float = field(default_factory=time.monotonic)
    _encoding: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def nbytes(self) -> int:
        return len(self.wav) if self.wav is not None else (self.audio.nbytes if self.audio is not None else 0)


@dataclass
class RecordingCounters:
    kept: int = 0
    fetched: int = 0
    evicted: int = 0
    """Dropped to stay within MAX_RECORDINGS / MAX_STORED_BYTES before their call's grace period ended."""
    expired: int = 0
    """Dropped GRACE_SECONDS after their call ended."""


class RecordingStore:
    """Every recording of the server's calls, with its access tokens' key; one per server."""

    def __init__(
        self,
        key: SigningKey,
        events: EventEmitter,
        auth: bool = True,
        grace: float = GRACE_SECONDS,
        token_lifetime: float = TOKEN_SECONDS,
        max_count: int = MAX_RECORDINGS,
        max_bytes: int = MAX_STORED_BYTES,
    ) -> None:
        self.key = key
        self.auth = auth
        self.grace = grace
        self.token_lifetime = token_lifetime
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.recordings: dict[str, StoredRecording] = {}
        self.counters = RecordingCounters()
        self._timers: list[asyncio.TimerHandle] = []
        events.on(call_events.CALL_ENDED, self._call_ended)

    # keeping ------------------------------------------------------------------------------------------------------
    def keep(self, call_id: str, audio: np.ndarray, base_url: str) -> tuple[str, str]:
        """Keep a finished recording; returns (recordingLocation, recordingAccessToken)."""
        recording = StoredRecording(str(uuid.uuid4()), call_id, audio)
        self.recordings[recording.id] = recording
        self.counters.kept += 1
        self._bound()
        location = f"{base_url.rstrip('/')}/ext/calls/{call_id}/recordings/{recording.id}"
        return location, self.access_token(recording.id, call_id)

    def access_token(self, recording_id: str, call_id: str) -> str:
        return self.key.sign(
            {"aud": RECORDING_AUDIENCE, "mm:kind": "recording", "sub": recording_id, "mm:call": call_id},
            self.token_lifetime,
        )

    def _bound(self) -> None:
        total = sum(r.nbytes for r in self.recordings.values())
        while len(self.recordings) > self.max_count or (total > self.max_bytes and len(self.recordings) > 1):
            oldest = next(iter(self.recordings.values()))
            del self.recordings[oldest.id]
            total -= oldest.nbytes
            self.counters.evicted += 1
            log.warning("recording %s of call %s evicted to stay within %d recordings / %d bytes",
                        oldest.id, oldest.call_id, self.max_count, self.max_bytes)

    def _call_ended(self, call: Call) -> None:
        if any(r.call_id == call.id for r in self.recordings.values()):
            loop = asyncio.get_running_loop()
            self._timers = [t for t in self._timers if t.when() > loop.time()]  # forget those that have run
            self._timers.append(loop.call_later(self.grace, self._expire, call.id))

    def _expire(self, call_id: str) -> None:
        gone = [rid for rid, r in self.recordings.items() if r.call_id == call_id]
        for rid in gone:
            del self.recordings[rid]
        self.counters.expired += len(gone)

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    # fetching -----------------------------------------------------------------------------------------------------
    def authorize(self, token: str | None, recording_id: str) -> None:
        """The bearer may fetch this recording, or a GraphError (401/403) says why not."""
        if not self.auth:
            return
        if token is None:
            raise GraphError(401, "Access token is empty: send the recordingAccessToken as 'Bearer <token>'.", UNAUTHENTICATED)
        try:
            claims: dict[str, Any] = self.key.decode(token, audiences=(RECORDING_AUDIENCE, GRAPH_AUDIENCE, WHIP_AUDIENCE))
        except jwt.ExpiredSignatureError:
            raise GraphError(401, "Lifetime validation failed, the token is expired.", UNAUTHENTICATED) from None
        except jwt.InvalidTokenError as exc:
            raise GraphError(401, f"Access token validation failure: {exc}.", UNAUTHENTICATED) from None
        if claims.get("mm:kind") != "recording":
            raise GraphError(403, "This is not a recording access token: use the recordOperation's recordingAccessToken.", FORBIDDEN)
        if claims.get("sub") != recording_id:
            raise GraphError(403, "This recording access token is for another recording.", FORBIDDEN)

    async def wav(self, call_id: str, recording_id: str) -> bytes:
        recording = self.recordings.get(recording_id)
        if recording is None or recording.call_id != call_id:
            raise GraphError(404, f"Recording {recording_id} not found (recordings are deleted {self.grace:g} s after their call ends).", "itemNotFound")
        async with recording._encoding:
            if recording.wav is None:
                assert recording.audio is not None
                recording.wav = await asyncio.to_thread(wav_bytes, recording.audio)
                recording.audio = None
        self.counters.fetched += 1
        return recording.wav


class RecordingCollector(Collector):
    """The store's numbers on /metrics (registered in the app's own registry)."""

    def __init__(self, store: RecordingStore) -> None:
        self.store = store

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        store, counters = self.store, self.store.counters
        return [
            GaugeMetricFamily("mediamute_recordings", "recordResponse recordings kept for download.", value=len(store.recordings)),
            GaugeMetricFamily("mediamute_recordings_bytes", "Bytes the kept recordings take.",
                              value=sum(r.nbytes for r in store.recordings.values())),
            CounterMetricFamily("mediamute_recordings_kept", "Recordings kept (recordResponse completed).", value=counters.kept),
            CounterMetricFamily("mediamute_recordings_fetched", "Recordings downloaded with their access token.", value=counters.fetched),
            CounterMetricFamily("mediamute_recordings_evicted", "Recordings dropped (oldest first) to stay within the store's bounds.", value=counters.evicted),
            CounterMetricFamily("mediamute_recordings_expired", "Recordings deleted after their call's grace period.", value=counters.expired),
        ]


router = APIRouter(prefix="/ext", tags=["mediamute extensions (not Graph)"])


@router.get(
    "/calls/{call_id}/recordings/{recording_id}",
    summary="Download a recordResponse recording (its recordingLocation), with its recordingAccessToken",
    response_class=Response,
    responses={
        200: {"description": "The recording: WAV, 16-bit mono PCM at 16 kHz",
              "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        401: {"description": "No, malformed, forged or expired token"},
        403: {"description": "Not a recording access token, or one of another recording"},
        404: {"description": "No such recording (or deleted after its call ended)"},
    },
)
async def download(call_id: str, recording_id: str, request: Request) -> Response:
    store: RecordingStore = request.app.state.recordings
    store.authorize(bearer_token(request) if store.auth else None, recording_id)
    return Response(await store.wav(call_id, recording_id), media_type="application/octet-stream")
