"""The API round trip on one keep-alive connection, as the Graph SDKs (httpx, aiohttp) make it: the server runs in
its own thread and event loop, the client reuses a single connection for every request.

Target: p50 ≤ 3 ms for a GET and for a participant mute (before issue 10 item 1 every request after the first on
a connection waited ~40 ms for the client's delayed ACK, since the accepted sockets lacked TCP_NODELAY).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest

from mediamute.server import MediamuteServer
from mediamute.settings import ServerSettings
from mediamute.tokens import ALL_CALL_ROLES

ROUNDS = 300


class ThreadedServer:
    """A real MediamuteServer in a thread of its own, so a synchronous benchmark can talk to it over loopback."""

    def __init__(self) -> None:
        self.server = MediamuteServer(ServerSettings(port=0, log_level="warning", ephemeral_key=True))
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="mediamute-bench-server", daemon=True)

    def __enter__(self) -> MediamuteServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[httpx.Client, str]]:
    """One keep-alive connection (a pool of one) to a real server, and a call on it."""
    with ThreadedServer() as server:
        token = server.signing_key.app_token(list(ALL_CALL_ROLES))
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, limits=limits) as client:
            response = client.post("/v1.0/communications/calls", json={})
            response.raise_for_status()
            yield client, response.json()["id"]


def _one_connection(client: httpx.Client, request) -> None:
    """Run `request` a few times and check every answer came over the same connection (a keep-alive round trip)."""
    seen = set()

    def hook(response: httpx.Response) -> None:
        stream = response.extensions.get("network_stream")
        seen.add(id(stream.get_extra_info("socket")) if stream is not None else None)

    client.event_hooks["response"].append(hook)
    try:
        for _ in range(5):
            request().raise_for_status()
    finally:
        client.event_hooks["response"].remove(hook)
    assert len(seen) == 1, "the client opened more than one connection"


def test_api_get_call_keepalive(benchmark, api):
    client, call_id = api
    request = lambda: client.get(f"/v1.0/communications/calls/{call_id}")  # noqa: E731
    _one_connection(client, request)
    benchmark.pedantic(request, rounds=ROUNDS, iterations=1, warmup_rounds=10)


def test_api_mute_keepalive(benchmark, api):
    """The application's own mute (the gate closes before the 200 OK): the round trip the caller of a mute waits."""
    client, call_id = api
    request = lambda: client.post(f"/v1.0/communications/calls/{call_id}/mute", json={})  # noqa: E731
    _one_connection(client, request)
    benchmark.pedantic(request, rounds=ROUNDS, iterations=1, warmup_rounds=10)
