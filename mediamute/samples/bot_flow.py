#!/usr/bin/env python3
"""A whole Graph bot flow against a running `mediamute serve`, as a bot runs it.

    mediamute serve                                                     # terminal 1 (prints a token)
    python samples/bot_flow.py --server http://127.0.0.1:8080 --token <token>     # terminal 2

The bot creates a group call whose `callbackUri` is its own tiny receiver, invites a (simulated) participant, lets
a caller join over WebRTC, then plays a prompt, records an answer and downloads it, listens for the caller's keys
and sends its own, puts the invitee on hold and back, mutes and unmutes it, and hangs up. Every request body is
the Graph v1.0 documentation's example for that action (create-call example 3, participant-invite example 1,
call-playprompt, call-record, call-subscribetotone, call-senddtmftones, participant-startholdmusic /
stopholdmusic, participant-mute), changed only where a local simulator must: URLs on this machine, short
durations. Each running operation is waited for until its completing notification arrives at the receiver; every
wait is bounded. One line per step; `--json FILE` keeps the steps and every request, response and notification.

The token needs Calls.InitiateGroupCall.All (create, invite, hang up), Calls.AccessMedia.All (prompt, record,
tones) and Calls.JoinGroupCall.All (hold, mute): `mediamute token --role Calls.InitiateGroupCall.All --role
Calls.AccessMedia.All --role Calls.JoinGroupCall.All`, or the all-roles token `mediamute serve` prints.

Only the caller who presses keys uses mediamute's Python participant (`mediamute.client.CallParticipant`), where a
real bot would have a person on a phone or in a browser; the bot itself is httpx and the standard library, plus
`mediamute.tokens.verify_callback` to check each callback's signature.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import io
import json
import math
import sys
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from mediamute.client import CallParticipant

GRAPH = "/v1.0/communications/calls"
CONTEXT = "d45324c1-fcb5-430a-902c-f20af696537c"
"""The clientContext of Graph's media examples (each request below carries it, so each answer must echo it)."""
ROLES = ("Calls.InitiateGroupCall.All", "Calls.AccessMedia.All", "Calls.JoinGroupCall.All")
WAIT = 10.0
"""Seconds any one notification may take (a prompt's completion: its length more)."""
RECORD_SECONDS = 2
CALLER_KEYS = "12#"
CALLER_TONES = ["tone1", "tone2", "pound"]
APP_TONES = ["tone1", "star", "pound"]
RECORDING_MIN_DBFS = -45.0
"""A recording 'has audio' when its RMS level is at least this (the invitee's voice reads about -20 dBFS)."""


# The documentation's request bodies -----------------------------------------------------------------------------
def create_call_body(callback_uri: str) -> dict[str, Any]:
    """application-post-calls, example 3 ("Create a group call with service hosted media"), verbatim but for the
    callbackUri. Service-hosted: Graph serves playPrompt, recordResponse and subscribeToTone only to such calls."""
    return {
        "@odata.type": "#microsoft.graph.call",
        "direction": "outgoing",
        "subject": "Create a group call with service hosted media",
        "callbackUri": callback_uri,
        "source": {
            "@odata.type": "#microsoft.graph.participantInfo",
            "identity": {
                "@odata.type": "#microsoft.graph.identitySet",
                "application": {
                    "@odata.type": "#microsoft.graph.identity",
                    "displayName": "TestBot",
                    "id": "dd3885da-f9ab-486b-bfae-85de3d445555",
                },
            },
        },
        "targets": [
            {
                "@odata.type": "#microsoft.graph.invitationParticipantInfo",
                "identity": {
                    "@odata.type": "#microsoft.graph.identitySet",
                    "user": {"@odata.type": "#microsoft.graph.identity", "displayName": "user1",
                             "id": "98da8a1a-1b87-452c-a713-65d3f10b5555"},
                },
            },
            {
                "@odata.type": "#microsoft.graph.invitationParticipantInfo",
                "identity": {
                    "@odata.type": "#microsoft.graph.identitySet",
                    "user": {"@odata.type": "#microsoft.graph.identity", "displayName": "user2",
                             "id": "bf5aae9a-d11d-47a8-93b1-782504c95555"},
                },
            },
        ],
        "requestedModalities": ["audio"],
        "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig", "removeFromDefaultAudioGroup": False},
    }


INVITEE_ID = "278405a3-f568-4b3e-b684-009193463064"


def invite_body(voice: str) -> dict[str, Any]:
    """participant-invite, example 1, verbatim (its replacesCallId names a call that is not this server's, which
    mediamute echoes and ignores), plus mediamute's extension: who the simulated invitee is and when it answers."""
    return {
        "participants": [
            {
                "@odata.type": "#microsoft.graph.invitationParticipantInfo",
                "replacesCallId": "a7ebfb2d-871e-419c-87af-27290b22e8db",
                "identity": {
                    "@odata.type": "#microsoft.graph.identitySet",
                    "user": {"@odata.type": "#microsoft.graph.identity", "id": INVITEE_ID, "identityProvider": "AAD"},
                },
            }
        ],
        "clientContext": "f2fa86af-3c51-4bc2-8fc0-475452d9764f",
        "mediamute": {"ringDelaySeconds": 0.5, "source": voice},
    }


def media_prompt(uri: str) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.mediaPrompt",
        "mediaInfo": {"@odata.type": "#microsoft.graph.mediaInfo", "uri": uri,
                      "resourceId": "1D6DE2D4-CD51-4309-8DAA-70768651088E"},
    }


def play_prompt_body(uri: str) -> dict[str, Any]:
    """call-playprompt: its example's mediaPrompt, the uri a package sample (cdn.contoso.com is not on this machine)."""
    return {"clientContext": CONTEXT, "prompts": [media_prompt(uri)]}


def record_body(beep_uri: str) -> dict[str, Any]:
    """call-record: the example's body, its beep.wav served by this bot, a 2 s maximum instead of 10."""
    return {
        "bargeInAllowed": True,
        "clientContext": CONTEXT,
        "prompts": [{"@odata.type": "#microsoft.graph.mediaPrompt",
                     "mediaInfo": {"uri": beep_uri, "resourceId": "1D6DE2D4-CD51-4309-8DAA-70768651088E"}}],
        "maxRecordDurationInSeconds": RECORD_SECONDS,
        "initialSilenceTimeoutInSeconds": 5,
        "maxSilenceTimeoutInSeconds": 2,
        "playBeep": True,
        "stopTones": ["#", "1", "*"],
    }


def send_dtmf_body() -> dict[str, Any]:
    """call-senddtmftones: three of its twelve tones, 100 ms apart instead of 1000."""
    return {"tones": APP_TONES, "delayBetweenTonesMs": 100, "clientContext": "e0be71f1-a14f-4cec-b65a-e7aba5db7c53"}


def start_hold_body() -> dict[str, Any]:
    """participant-startholdmusic (without the example's trailing commas, which are not JSON); the music a package
    sample (bot.contoso.com is not on this machine)."""
    return {
        "customPrompt": {
            "@odata.type": "#microsoft.graph.mediaPrompt",
            "mediaInfo": {"@odata.type": "#microsoft.graph.mediaInfo", "uri": "hold-music.wav"},
        },
        "clientContext": CONTEXT,
    }


# Small audio helpers (standard library) ---------------------------------------------------------------------------
def beep_wav(hz: float = 1000.0, seconds: float = 0.2, rate: int = 16_000) -> bytes:
    """Graph's prompt format (WAV, mono, 16-bit, 16 kHz): a beep at -6 dBFS."""
    samples = array.array("h", (int(16_000 * math.sin(2 * math.pi * hz * i / rate)) for i in range(int(rate * seconds))))
    if sys.byteorder == "big":  # WAV is little-endian
        samples.byteswap()
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return out.getvalue()


@dataclass(frozen=True)
class WavSummary:
    rate: int
    channels: int
    sample_bits: int
    seconds: float
    rms_dbfs: float


def summarise_wav(data: bytes) -> WavSummary:
    """Format, length and RMS level (dBFS) of a 16-bit PCM WAV."""
    with wave.open(io.BytesIO(data)) as wav:
        rate, channels, width, frames = wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getnframes()
        pcm = wav.readframes(frames)
    if width != 2:
        return WavSummary(rate, channels, 8 * width, frames / rate, float("nan"))
    samples = array.array("h", pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    mean_square = sum(s * s for s in samples) / max(len(samples), 1)
    level = 10 * math.log10(mean_square / 32768**2) if mean_square else float("-inf")
    return WavSummary(rate, channels, 16, frames / rate, level)


# The bot's callback receiver ----------------------------------------------------------------------------------
@dataclass
class Received:
    """One commsNotification as it arrived (a batch may carry several)."""

    at: float
    notification: dict[str, Any]
    verified: bool | None


class CallbackReceiver:
    """The bot's own HTTP endpoint on 127.0.0.1 (a free port): POST /callback takes commsNotifications (each
    batch's bearer token verified against the server's keys), GET /prompts/beep.wav serves the bot's prompt.
    It runs on a thread (http.server); arrivals are handed to the flow's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_batch: Callable[[dict[str, Any], bool | None], None]) -> None:
        self.loop = loop
        self.on_batch = on_batch
        self.received: list[Received] = []
        self.jwks: dict[str, Any] | None = None
        self._changed = asyncio.Event()
        self._beep = beep_wav()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                authorization = self.headers.get("Authorization", "")
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.loop.call_soon_threadsafe(receiver._arrived, body, authorization)

            def do_GET(self) -> None:  # noqa: N802
                found = self.path == "/prompts/beep.wav"
                payload = receiver._beep if found else b""
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "audio/wav")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="callback-receiver", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def callback_uri(self) -> str:
        return f"{self.base_url}/callback"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _arrived(self, body: bytes, authorization: str) -> None:
        batch = json.loads(body)
        verified = None
        if self.jwks is not None:
            from mediamute.tokens import verify_callback  # what a bot does with the server's signature

            try:
                verify_callback(authorization.removeprefix("Bearer "), body, self.callback_uri, self.jwks)
                verified = True
            except Exception:  # noqa: BLE001 (any failure to verify is a finding, reported by the flow)
                verified = False
        self.on_batch(batch, verified)
        now = time.monotonic()
        self.received.extend(Received(now, n, verified) for n in batch.get("value", []))
        self._changed.set()

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = WAIT,
                       since: int = 0) -> Received:
        """The first notification from index `since` on that `predicate` accepts; FlowFailed after `timeout`."""
        deadline = time.monotonic() + timeout
        checked = since
        while True:
            for entry in self.received[checked:]:
                if predicate(entry.notification):
                    return entry
            checked = len(self.received)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FlowFailed(f"no {what} within {timeout:g} s")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass


# The flow -----------------------------------------------------------------------------------------------------
class FlowFailed(Exception):
    """A step did not go as Graph documents it; the message says what differed."""


@dataclass
class Step:
    """What one step sent and got back."""

    name: str
    request: str
    status: int
    odata_type: str | None = None
    operation_status: str | None = None
    """The operation's status as answered (running, completed)."""
    final_status: str | None = None
    """The operation's status in its completing notification (for one answered running)."""
    completed_after: float | None = None
    """Seconds from the request to its completing notification."""
    details: dict[str, Any] = field(default_factory=dict)

    def line(self, number: int) -> str:
        parts = [f"{number:2d} {self.name:<16} {self.request} -> {self.status}"]
        if self.odata_type:
            parts.append(self.odata_type.removeprefix("#microsoft.graph."))
        if self.operation_status:
            parts.append(self.operation_status)
        if self.final_status:
            parts.append(f"-> {self.final_status} after {self.completed_after:.2f} s")
        text = " ".join(parts)
        notes = self.details.get("summary")
        return f"{text}; {notes}" if notes else text


@dataclass
class FlowResult:
    call_id: str
    steps: list[Step]
    notifications: list[dict[str, Any]]
    """Every commsNotification the receiver got, in arrival order."""
    unverified_callbacks: int


class BotFlow:
    """One run of the flow against `server` with `token`; `log` receives every exchange (for --json)."""

    def __init__(self, server: str, token: str, prompt: str = "prompt.wav", voice: str = "bob.wav",
                 out: Callable[[str], None] = print) -> None:
        self.server = server.rstrip("/")
        self.prompt = prompt
        self.voice = voice
        self.out = out
        self.http = httpx.AsyncClient(base_url=self.server, headers={"Authorization": f"Bearer {token}"},
                                      timeout=WAIT, trust_env=False)
        self.log: list[dict[str, Any]] = []
        self.steps: list[Step] = []
        self.started = time.monotonic()
        self.receiver: CallbackReceiver | None = None
        self.call_id = ""
        self.invitee_id = ""
        self.caller: CallParticipant | None = None
        """The WebRTC participant who presses keys (mediamute.client, imported when it joins)."""

    # plumbing -------------------------------------------------------------------------------------------------
    def _note(self, kind: str, **entry: Any) -> None:
        self.log.append({"at": round(time.monotonic() - self.started, 4), "kind": kind, **entry})

    def _notified(self, batch: dict[str, Any], verified: bool | None) -> None:
        self._note("notification", verified=verified, body=batch)

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                      expect: int = 200) -> httpx.Response:
        self._note("request", method=method, path=path, body=body)
        response = await self.http.request(method, path, json=body)
        try:
            answer: Any = response.json() if response.content else None
        except ValueError:
            answer = f"<{len(response.content)} bytes>"
        self._note("response", method=method, path=path, status=response.status_code,
                   location=response.headers.get("Location"), body=answer)
        if response.status_code != expect:
            raise FlowFailed(f"{method} {path} answered {response.status_code}, not {expect}: {response.text[:300]}")
        return response

    def done(self, step: Step) -> Step:
        self.steps.append(step)
        self.out(step.line(len(self.steps)))
        return step

    @property
    def call_path(self) -> str:
        return f"{GRAPH}/{self.call_id}"

    def short(self, path: str) -> str:
        """A path for one line: the call's own prefix as '…', the invitee's id cut to 8 characters."""
        if self.call_id:
            path = path.replace(self.call_path, "…").replace(f"/ext/calls/{self.call_id}", "/ext/calls/…")
        if self.invitee_id:
            path = path.replace(self.invitee_id, f"{self.invitee_id[:8]}…")
        return path

    @staticmethod
    def expect(body: dict[str, Any], **fields: Any) -> None:
        """The documented values of a response (`odata_type` stands for @odata.type)."""
        for name, wanted in fields.items():
            key = "@odata.type" if name == "odata_type" else name
            if body.get(key) != wanted:
                raise FlowFailed(f"{key} is {body.get(key)!r}, the documentation says {wanted!r}")

    def roster_update(self, participant_id: str, check: Callable[[dict[str, Any]], bool],
                      change: str = "updated") -> Callable[[dict[str, Any]], bool]:
        """A test for the roster notification (`changeType` on …/participants) in which `participant_id` passes `check`."""
        path = f"/communications/calls/{self.call_id}/participants"

        def matches(n: dict[str, Any]) -> bool:
            return (n["changeType"] == change and n["resourceUrl"] == path
                    and any(p["id"] == participant_id and check(p) for p in n["resourceData"]))
        return matches

    async def operation(self, name: str, path: str, body: dict[str, Any] | None, odata_type: str,
                        expect: int = 200, answered: str = "running") -> tuple[Step, dict[str, Any]]:
        """POST an action answered `running` and wait for its completing notification: Graph's `deleted` on
        …/operations/{id} carrying the final operation. Its Location must resolve to the same operation."""
        sent = time.monotonic()
        response = await self.request("POST", path, body, expect)
        operation = response.json()
        self.expect(operation, odata_type=odata_type, status=answered)
        if body and "clientContext" in body:
            self.expect(operation, clientContext=body["clientContext"])
        op_path = f"/communications/calls/{self.call_id}/operations/{operation['id']}"
        if not response.headers.get("Location", "").endswith(op_path):
            raise FlowFailed(f"Location {response.headers.get('Location')!r} does not name {op_path}")
        assert self.receiver is not None
        done = await self.receiver.wait_for(
            lambda n: n["changeType"] == "deleted" and n["resourceUrl"] == op_path,
            f"completing notification of {odata_type.removeprefix('#microsoft.graph.')}",
            timeout=WAIT + self.expected_seconds(name),
        )
        final = done.notification["resourceData"]
        self.expect(final, odata_type=odata_type)
        resolved = (await self.request("GET", response.headers["Location"])).json()
        if resolved.get("status") != final.get("status"):
            raise FlowFailed(f"GET {op_path} says {resolved.get('status')!r}, the notification {final.get('status')!r}")
        step = Step(name, f"POST {self.short(path)}", response.status_code, operation["@odata.type"], operation["status"],
                    final["status"], done.at - sent)
        return step, final

    def expected_seconds(self, name: str) -> float:
        """How long an action's media takes before its completion can arrive (added to every wait's bound)."""
        return {"playPrompt": 6.0, "recordResponse": RECORD_SECONDS + 1.0}.get(name, 0.0)

    # the steps ------------------------------------------------------------------------------------------------
    async def create_call(self) -> None:
        assert self.receiver is not None
        self.receiver.jwks = (await self.request("GET", "/ext/keys")).json()
        sent = time.monotonic()
        response = await self.request("POST", GRAPH, create_call_body(self.receiver.callback_uri), expect=201)
        call = response.json()
        self.expect(call, odata_type="#microsoft.graph.call", callbackUri=self.receiver.callback_uri)
        self.call_id = call["id"]
        if not response.headers.get("Location", "").endswith(f"{GRAPH}/{self.call_id}"):
            raise FlowFailed(f"201 Created without a Location naming the call: {response.headers.get('Location')!r}")
        sent_app = create_call_body("")["source"]["identity"]["application"]
        app = call["source"]["identity"]["application"]
        if (app["displayName"], app["id"]) != (sent_app["displayName"], sent_app["id"]):
            raise FlowFailed(f"the call's source is {app}, not the application that created it")
        established = await self.receiver.wait_for(
            lambda n: n["resourceUrl"] == f"/communications/calls/{self.call_id}"
            and n["resourceData"].get("state") == "established", "call notification 'established'")
        self.done(Step("create call", f"POST {GRAPH}", response.status_code, call["@odata.type"], details={
            "state": call["state"], "callId": self.call_id, "myParticipantId": call["myParticipantId"],
            "mediaConfig": call.get("mediaConfig"), "establishedAfter": established.at - sent,
            "summary": f"state {call['state']}, call {self.call_id}; 'established' notified after "
                       f"{established.at - sent:.2f} s"}))

    async def invite(self) -> None:
        assert self.receiver is not None
        mark = len(self.receiver.received)
        sent = time.monotonic()
        step, final = await self.operation("invite", f"{self.call_path}/participants/invite", invite_body(self.voice),
                                           "#microsoft.graph.inviteParticipantsOperation")
        (invited,) = final["participants"]
        self.invitee_id = invited["participantId"]
        joined = await self.receiver.wait_for(
            self.roster_update(self.invitee_id, lambda p: p["info"]["identity"]["user"]["id"] == INVITEE_ID),
            "roster update listing the invitee", since=mark)
        step.details = {"participantId": self.invitee_id, "resultInfo": final.get("resultInfo"),
                        "summary": f"user {INVITEE_ID[:8]}… joined as {self.invitee_id[:8]}… ({self.voice}); in the "
                                   f"roster after {joined.at - sent:.2f} s"}
        self.done(step)

    async def caller_joins(self) -> None:
        """The person who will press keys joins by WHIP with a join token the bot hands out (an invite link)."""
        from mediamute.client import CallParticipant
        from mediamute.sources import SilenceSource

        assert self.receiver is not None
        sent = time.monotonic()
        grant = (await self.request("POST", f"/ext/calls/{self.call_id}/joinTokens")).json()
        self.caller = CallParticipant(self.server, self.call_id, SilenceSource(), display_name="Caller",
                                      token=grant["token"])
        await self.caller.join(timeout=WAIT)
        pid = self.caller.participant_id
        assert pid is not None
        joined = await self.receiver.wait_for(self.roster_update(pid, lambda p: True), "roster update listing the caller")
        self.done(Step("caller joins", "POST /whip/…", 201, details={
            "participantId": pid, "summary": f"WebRTC participant {pid[:8]}… in the roster after {joined.at - sent:.2f} s"}))

    async def play_prompt(self) -> None:
        step, final = await self.operation("playPrompt", f"{self.call_path}/playPrompt", play_prompt_body(self.prompt),
                                           "#microsoft.graph.playPromptOperation")
        self.expect(final["resultInfo"], code=200, subcode=0)
        step.details = {"resultInfo": final["resultInfo"], "summary": f"{self.prompt}; resultInfo 200/0"}
        self.done(step)

    async def record_response(self) -> None:
        assert self.receiver is not None
        body = record_body(f"{self.receiver.base_url}/prompts/beep.wav")
        step, final = await self.operation("recordResponse", f"{self.call_path}/recordResponse", body,
                                           "#microsoft.graph.recordOperation")
        location, token = final.get("recordingLocation"), final.get("recordingAccessToken")
        if not location or not token:
            raise FlowFailed(f"the recordOperation completed without a recording: {final}")
        self._note("request", method="GET", path=location, body=None)
        async with httpx.AsyncClient(timeout=WAIT, trust_env=False) as plain:  # only the recording's own token
            download = await plain.get(location, headers={"Authorization": f"Bearer {token}"})
        self._note("response", method="GET", path=location, status=download.status_code,
                   body=f"<{len(download.content)} bytes of {download.headers.get('content-type')}>")
        if download.status_code != 200:
            raise FlowFailed(f"GET recordingLocation answered {download.status_code}: {download.text[:200]}")
        wav = summarise_wav(download.content)
        if wav.rms_dbfs < RECORDING_MIN_DBFS:
            raise FlowFailed(f"the recording is silent ({wav.rms_dbfs:.1f} dBFS < {RECORDING_MIN_DBFS:g})")
        result = final["resultInfo"]
        step.details = {"resultInfo": result, "completionReason": final.get("completionReason"),
                        "recording": asdict(wav), "contentType": download.headers.get("content-type"),
                        "summary": f"resultInfo {result['code']}/{result['subcode']} "
                                   f"({final.get('completionReason')}); GET recordingLocation -> {download.status_code} "
                                   f"{wav.seconds:.1f} s WAV {wav.rate} Hz at {wav.rms_dbfs:.1f} dBFS"}
        self.done(step)

    async def tones(self) -> None:
        assert self.receiver is not None
        sent = time.monotonic()
        response = await self.request("POST", f"{self.call_path}/subscribeToTone", {"clientContext": CONTEXT})
        subscribed = response.json()
        self.expect(subscribed, odata_type="#microsoft.graph.subscribeToToneOperation", status="completed",
                    clientContext=CONTEXT)
        mark = len(self.receiver.received)
        assert self.caller is not None
        await self.caller.send_dtmf(CALLER_KEYS)
        call_url = f"/communications/calls/{self.call_id}"
        presses: list[dict[str, Any]] = []
        last = None
        for tone in CALLER_TONES:  # in order, each once (a duplicated delivery repeats a sequenceId)
            last = await self.receiver.wait_for(
                lambda n, tone=tone: n["changeType"] == "updated" and n["resourceUrl"] == call_url
                and n["resourceData"].get("toneInfo", {}).get("tone") == tone
                and all(n["resourceData"]["toneInfo"]["sequenceId"] > p["sequenceId"] for p in presses),
                f"tone notification {tone}", since=mark)
            self.expect(last.notification["resourceData"], odata_type="#microsoft.graph.call", state="established")
            presses.append(last.notification["resourceData"]["toneInfo"])
        assert last is not None
        keys = ", ".join(f"{p['tone']}#{p['sequenceId']}" for p in presses)
        self.done(Step("subscribeToTone", f"POST {self.short(self.call_path)}/subscribeToTone", response.status_code,
                       subscribed["@odata.type"], subscribed["status"], details={
                           "tones": presses, "lastToneAfter": last.at - sent,
                           "summary": f"caller pressed {CALLER_KEYS}: notified {keys}"}))

        step, final = await self.operation("sendDtmfTones", f"{self.call_path}/sendDtmfTones", send_dtmf_body(),
                                           "#microsoft.graph.sendDtmfTonesOperation")
        step.details = {"completionReason": final.get("completionReason"),
                        "summary": f"{', '.join(APP_TONES)}: {final.get('completionReason')}"}
        if final.get("completionReason") != "completedSuccessfully":
            raise FlowFailed(f"sendDtmfTones completed with {final.get('completionReason')!r}")
        self.done(step)

    async def hold(self) -> None:
        assert self.receiver is not None
        for action, body, direction in (("startHoldMusic", start_hold_body(), "receiveOnly"),
                                        ("stopHoldMusic", {"clientContext": CONTEXT}, "sendReceive")):
            mark = len(self.receiver.received)
            step, _ = await self.operation(action, f"{self.call_path}/participants/{self.invitee_id}/{action}", body,
                                           f"#microsoft.graph.{action}Operation", expect=202)
            roster = await self.receiver.wait_for(
                self.roster_update(self.invitee_id, lambda p: p["mediaStreams"][0]["direction"] == direction),
                f"roster update with the invitee {direction}", since=mark)
            step.details = {"direction": direction, "rosterAfter": roster.at - self.started,
                            "summary": f"roster: invitee {direction}"}
            self.done(step)

    async def mute(self) -> None:
        """participant-mute, the page's request exactly; then mediamute's extension unmute (Graph has none)."""
        assert self.receiver is not None
        for verb, path, odata_type, muted in (
            ("mute", f"{self.call_path}/participants/{self.invitee_id}/mute", "#microsoft.graph.muteParticipantOperation",
             True),
            ("unmute", f"/ext/calls/{self.call_id}/participants/{self.invitee_id}/unmute",
             "#microsoft.graph.unmuteParticipantOperation", False),
        ):
            mark = len(self.receiver.received)
            sent = time.monotonic()
            response = await self.request("POST", path, {"clientContext": CONTEXT})
            operation = response.json()
            self.expect(operation, odata_type=odata_type, status="completed", clientContext=CONTEXT)
            roster = await self.receiver.wait_for(
                self.roster_update(self.invitee_id, lambda p, m=muted: p["isMuted"] is m
                                   and p["mediaStreams"][0]["serverMuted"] is m),
                f"roster update with the invitee isMuted {str(muted).lower()}", since=mark)
            member = next(p for p in roster.notification["resourceData"] if p["id"] == self.invitee_id)
            self.done(Step(verb, f"POST {self.short(path)}", response.status_code, operation["@odata.type"],
                           operation["status"], details={
                               "location": response.headers.get("Location"), "participant": member,
                               "rosterAfter": roster.at - sent,
                               "summary": f"roster: isMuted {str(member['isMuted']).lower()}, serverMuted "
                                          f"{str(member['mediaStreams'][0]['serverMuted']).lower()} after "
                                          f"{roster.at - sent:.3f} s"}))

    async def hang_up(self) -> None:
        assert self.receiver is not None
        sent = time.monotonic()
        response = await self.request("DELETE", self.call_path, expect=204)
        ended = await self.receiver.wait_for(
            lambda n: n["changeType"] == "deleted" and n["resourceUrl"] == f"/communications/calls/{self.call_id}",
            "call notification 'deleted'")
        state = ended.notification["resourceData"].get("state")
        if state != "terminated":
            raise FlowFailed(f"the call's deleted notification says state {state!r}, not 'terminated'")
        self.done(Step("hang up", f"DELETE {self.short(self.call_path)}", response.status_code, details={
            "state": state, "summary": f"'deleted' notified (state {state}) after {ended.at - sent:.2f} s"}))

    async def run(self) -> FlowResult:
        self.receiver = CallbackReceiver(asyncio.get_running_loop(), self._notified)
        self.receiver.start()
        try:
            for name, action in (("create call", self.create_call), ("invite", self.invite),
                                 ("caller joins", self.caller_joins), ("playPrompt", self.play_prompt),
                                 ("recordResponse", self.record_response), ("tones", self.tones),
                                 ("hold music", self.hold), ("mute", self.mute), ("hang up", self.hang_up)):
                try:
                    await action()
                except FlowFailed as exc:
                    raise FlowFailed(f"step '{name}': {exc}") from None
                except (httpx.HTTPError, OSError, KeyError, ValueError, TimeoutError) as exc:
                    raise FlowFailed(f"step '{name}': {type(exc).__name__}: {exc}") from exc
            unverified = sum(1 for r in self.receiver.received if r.verified is not True)
            if unverified:
                raise FlowFailed(f"{unverified} callback(s) whose signature did not verify")
            return FlowResult(self.call_id, self.steps, [r.notification for r in self.receiver.received], unverified)
        finally:
            if self.call_id and not any(step.name == "hang up" for step in self.steps):
                try:  # a bot that fails hangs up, so the call does not outlive it
                    await self.http.delete(self.call_path)
                except httpx.HTTPError:
                    pass
            if self.caller is not None:
                await self.caller.leave()
            await self.http.aclose()
            self.receiver.stop()


async def run(server: str, token: str, json_path: str | None = None, prompt: str = "prompt.wav",
              voice: str = "bob.wav", out: Callable[[str], None] = print) -> FlowResult:
    """Run the flow once; raises FlowFailed naming the step that went wrong. `json_path` gets the steps (as the
    lines say them, with their details), the failure if any, and every request, response and notification."""
    flow = BotFlow(server, token, prompt=prompt, voice=voice, out=out)
    failure: str | None = None
    try:
        return await flow.run()
    except FlowFailed as exc:
        failure = str(exc)
        raise
    finally:
        if json_path:
            record = {"server": flow.server, "callId": flow.call_id, "failure": failure,
                      "steps": [asdict(step) for step in flow.steps], "exchanges": flow.log}
            with open(json_path, "w", encoding="utf-8") as file:
                json.dump(record, file, indent=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="http://127.0.0.1:8080", help="the mediamute server (default: %(default)s)")
    parser.add_argument("--token", required=True, help=f"an app token with {', '.join(ROLES)}")
    parser.add_argument("--json", metavar="FILE", help="write the steps and every request, response and notification here")
    parser.add_argument("--prompt", default="prompt.wav", help="playPrompt's mediaInfo.uri: a package sample or a WAV "
                        "URL on this machine, at most 6 s long (default: %(default)s)")
    parser.add_argument("--voice", default="bob.wav", help="what the invitee says (default: %(default)s)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        result = asyncio.run(run(args.server, args.token, args.json, args.prompt, args.voice))
    except FlowFailed as exc:
        print(f"FAILED {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"bot flow done: {len(result.steps)} steps, {len(result.notifications)} notifications (signatures verified) "
          f"in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
