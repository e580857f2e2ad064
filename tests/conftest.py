"""Shared fixtures: a real mediamute server on a free loopback port, an HTTP client, and call helpers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import httpx
import pytest

from mediamute.client import CallParticipant
from mediamute.server import MediamuteServer
from mediamute.settings import ServerSettings
from mediamute.sources import AudioSource, ToneSource
from mediamute.tokens import ALL_CALL_ROLES


def admin_token(server: MediamuteServer) -> str:
    """An application token holding every calls role the API knows."""
    return server.signing_key.app_token(list(ALL_CALL_ROLES))


@pytest.fixture
async def server() -> AsyncIterator[MediamuteServer]:
    srv = MediamuteServer(ServerSettings(port=0, log_level="warning", ephemeral_key=True))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def http(server: MediamuteServer) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {admin_token(server)}"}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0, headers=headers) as client:
        yield client


async def create_call(http: httpx.AsyncClient, **body: object) -> str:
    response = await http.post("/v1.0/communications/calls", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
async def call_id(http: httpx.AsyncClient) -> str:
    return await create_call(http)


async def join_all(
    server: MediamuteServer, call_id: str, sources: Sequence[tuple[str, AudioSource]]
) -> list[CallParticipant]:
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


async def wait_until(predicate, timeout: float, interval: float = 0.02) -> None:
    """Poll a condition that no event announces (e.g. a counter on the server), bounded by `timeout`."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(interval)
