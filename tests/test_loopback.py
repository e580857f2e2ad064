"""Every server socket the project opens (through LoopbackServer) hands out connections with TCP_NODELAY set, so
an answer written in two pieces never waits for the peer's delayed ACK on a kept-alive connection."""

from __future__ import annotations

import socket

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mediamute.demo.callbacks import CallbackSink
from mediamute.loopback import LoopbackServer
from mediamute.server import MediamuteServer
from .helpers import CallbackReceiver


def _nodelay(sock) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


async def _accepted_nodelay(loopback: LoopbackServer, path: str, method: str = "GET") -> list[int]:
    """Open one kept-alive connection, make two requests on it, and read TCP_NODELAY on the server's side of it."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{loopback.port}", timeout=5.0) as client:
        for _ in range(2):
            await client.request(method, path, json={"value": []} if method == "POST" else None)
        sockets = loopback.connection_sockets()
        assert sockets, "the server holds no open connection although the client keeps one alive"
        return [_nodelay(s) for s in sockets]


async def test_loopback_server_accepts_with_nodelay():
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    loopback = LoopbackServer(Starlette(routes=[Route("/", hello)]))
    await loopback.start()
    try:
        assert all(await _accepted_nodelay(loopback, "/"))
    finally:
        await loopback.stop()


async def test_every_server_of_the_project_accepts_with_nodelay(server: MediamuteServer):
    assert server._http is not None
    assert all(await _accepted_nodelay(server._http, "/ext/keys"))
    async with CallbackReceiver() as receiver:
        assert all(await _accepted_nodelay(receiver._http, "/api/calls", "POST"))
    sink = CallbackSink()
    await sink.start()
    try:
        assert all(await _accepted_nodelay(sink._http, "/callbacks", "POST"))
    finally:
        await sink.stop()
