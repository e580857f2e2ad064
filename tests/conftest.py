"""Fixtures: a real mediamute server on a free loopback port (WebRTC tests), the same app in-process through
httpx's ASGI transport (API tests that need no media), and an admin client for each. Helpers live in helpers.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from mediamute.server import MediamuteServer
from mediamute.settings import ServerSettings

from .helpers import InProcessMediamute, admin_token, create_call


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


@pytest.fixture
async def call_id(http: httpx.AsyncClient) -> str:
    return await create_call(http)


@pytest.fixture
async def api() -> AsyncIterator[InProcessMediamute]:
    async with InProcessMediamute() as app:
        yield app


@pytest.fixture
async def api_http(api: InProcessMediamute) -> AsyncIterator[httpx.AsyncClient]:
    async with api.client(admin_token(api)) as client:
        yield client
