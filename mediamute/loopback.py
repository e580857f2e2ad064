"""An ASGI app served by uvicorn inside the running event loop, on a socket bound before serving (port 0: any
free port), so its URL is known at once and connections queue in the backlog instead of racing start-up.

The mediamute server, the demo's callback receiver and the tests' fake receivers all run this way.

The listening socket names its protocol (IPPROTO_TCP): asyncio sets TCP_NODELAY only on sockets whose `proto` is
IPPROTO_TCP, and an accepted socket inherits the listener's. With protocol 0 every answer uvicorn writes in two
pieces (head, then body) waited for the peer's delayed ACK (~40 ms) on a kept-alive connection."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn


class LoopbackServer:
    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning", shared_fd: int | None = None
    ) -> None:
        self.app = app
        self.shared_fd = shared_fd
        """An inherited listening socket served too (the public port that `--workers` nodes share)."""
        self.host = host
        self.port = port
        self.log_level = log_level
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    def connection_sockets(self) -> list[Any]:
        """The server side of every open connection (asyncio's read-only socket view): what its options are."""
        if self._server is None:
            return []
        return [connection.transport.get_extra_info("socket") for connection in self._server.server_state.connections]

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        sock.setblocking(False)
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level=self.log_level,
            lifespan="off",
            access_log=False,
            log_config=None,  # log through the root logger the CLI (or the test runner) configured
            timeout_keep_alive=30,  # well beyond a client's pause between requests (uvicorn's default is 5 s)
        )
        self._server = uvicorn.Server(config)
        sockets = [sock]
        if self.shared_fd is not None:
            shared = socket.socket(fileno=self.shared_fd)
            shared.setblocking(False)
            sockets.append(shared)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=sockets), name="uvicorn")

    async def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout)
            except asyncio.TimeoutError:
                self._task.cancel()
        if self._socket is not None:
            self._socket.close()
