"""A tiny real HTTP server that plays a callback receiver (something mediamute does not own, so a fake is fine)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mediamute.loopback import LoopbackServer


@dataclass
class Delivery:
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class CallbackReceiver:
    """Records every POST. `fail_first` answers 500 to that many attempts; `hang` never answers until released."""

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

    def notifications(self) -> list[dict[str, Any]]:
        """Every commsNotification accepted, in arrival order."""
        return [n for d in self.accepted for n in d.json["value"]]

    async def wait_for(self, predicate, timeout: float = 10.0) -> None:
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
