"""Runs the HTTP API and WebRTC media in one asyncio event loop (uvicorn + aiortc), as `mediamute serve` does
and as the tests, the demo and the benchmarks do in-process."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import uvicorn

from .api.app import create_app
from .calls.call import CallRegistry
from .rtc.ice import configure_ice
from .api.notifications import NotificationHub
from .settings import ServerSettings
from .tokens import SigningKey

log = logging.getLogger(__name__)


class MediamuteServer:
    """A running mediamute: start it, use `base_url`, stop it. The port may be 0 (any free port)."""

    def __init__(self, settings: ServerSettings | None = None, signing_key: SigningKey | None = None) -> None:
        self.settings = settings or ServerSettings()
        self.registry = CallRegistry()
        if signing_key is None:
            key_file = Path(self.settings.key_file) if self.settings.key_file else None
            signing_key = SigningKey.generate() if self.settings.ephemeral_key else SigningKey.load_or_create(key_file)
        self.signing_key = signing_key
        self.hub: NotificationHub | None = None
        self._app = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.port = self.settings.port

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def app(self):
        if self._app is None:
            raise RuntimeError("the server is not started")
        return self._app

    async def start(self) -> None:
        configure_ice(self.settings.ice_addresses)
        # the hub starts delivery tasks, so it is made inside the running loop
        self.hub = NotificationHub(self.registry.events, self.signing_key)
        self._app = create_app(self.registry, self.settings, self.signing_key, self.hub)
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.host, self.settings.port))
        sock.listen(128)  # connections queue here until uvicorn accepts: no start-up race for clients
        sock.setblocking(False)
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level=self.settings.log_level,
            lifespan="off",
            access_log=False,
            log_config=None,  # log through the root logger the CLI (or the test runner) configured
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]), name="uvicorn")

    async def stop(self) -> None:
        await self.registry.close()
        if self.hub is not None:
            await self.hub.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=5)
            except asyncio.TimeoutError:
                self._task.cancel()
        if self._socket is not None:
            self._socket.close()

    async def __aenter__(self) -> "MediamuteServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        if self._task is None:
            await self.start()
        assert self._task is not None
        try:
            await self._task
        finally:
            await self.registry.close()
