"""The demo's bot-side web server, a real HTTP server on loopback: its callback endpoint collects the call's
notifications and checks each one's signature, as a bot behind `callbackUri` would; and it serves the bot's
prompt files (`/media/{name}`), which the demo's playPrompt names by URL, as a bot names its own."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..loopback import LoopbackServer
from ..tokens import verify_callback


@dataclass
class ReceivedNotification:
    at: float
    """Monotonic arrival time."""
    notification: dict[str, Any]
    verified: bool


def summarize(notification: dict[str, Any]) -> str:
    """What one commsNotification says, in one line: each participant's name and mute state (and whether it talks
    while muted), an operation's end, a key press, or the call's state."""
    data = notification.get("resourceData")
    parts: list[str] = []
    if isinstance(data, dict) and str(data.get("@odata.type", "")).endswith("Operation"):
        kind = str(data["@odata.type"]).rsplit(".", 1)[-1]
        result = data.get("resultInfo") or {}
        reason = f" ({data['completionReason']})" if data.get("completionReason") else ""
        return f"{kind} {data.get('status')}: {result.get('code')}/{result.get('subcode')} {result.get('message') or ''}{reason}".rstrip()
    if isinstance(data, list):
        for participant in data:
            identity = participant.get("info", {}).get("identity", {})
            person = identity.get("user") or identity.get("application") or {}
            stream = (participant.get("mediaStreams") or [{}])[0]
            talking = " talking while muted" if (participant.get("mediamute") or {}).get("talkingWhileMuted") else ""
            parts.append(
                f"{person.get('displayName')} isMuted={participant.get('isMuted')} serverMuted={stream.get('serverMuted')}{talking}"
            )
    elif isinstance(data, dict) and data.get("toneInfo") and "id" not in data:
        tone = data["toneInfo"]
        parts.append(f"tone {tone.get('tone')} #{tone.get('sequenceId')}")
    elif isinstance(data, dict):
        parts.append(f"call state={data.get('state')}")
    return "; ".join(parts)


@dataclass
class CallbackSink:
    jwks: dict[str, Any] | None = None
    received: list[ReceivedNotification] = field(default_factory=list)
    on_notification: Callable[[ReceivedNotification], None] | None = None
    bad_signatures: int = 0
    port: int = 0
    media: dict[str, bytes] = field(default_factory=dict)
    """The bot's prompt files by name, served at `media_url(name)`."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/callbacks"

    def media_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/media/{name}"

    async def _media(self, request: Request) -> Response:
        body = self.media.get(request.path_params["name"])
        return Response(status_code=404) if body is None else Response(body, media_type="audio/wav")

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        verified = False
        if self.jwks is not None:
            try:
                verify_callback(token, body, self.url, self.jwks)
                verified = True
            except jwt.InvalidTokenError:
                self.bad_signatures += 1
        try:
            payload = json.loads(body)
        except json.JSONDecodeError:
            return Response(status_code=400)
        now = time.monotonic()
        for item in payload.get("value", []):
            entry = ReceivedNotification(at=now, notification=item, verified=verified)
            self.received.append(entry)
            if self.on_notification is not None:
                self.on_notification(entry)
        self._arrived.set()
        return Response(status_code=202)

    async def wait_for(self, predicate: Callable[[list[ReceivedNotification]], bool], timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self.received):
                    self._arrived.clear()
                    await self._arrived.wait()
            return True
        except TimeoutError:
            return False

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        routes = [Route("/callbacks", self._handle, methods=["POST"]), Route("/media/{name}", self._media, methods=["GET"])]
        self._http = LoopbackServer(Starlette(routes=routes))
        await self._http.start()
        self.port = self._http.port

    async def stop(self) -> None:
        await self._http.stop()
