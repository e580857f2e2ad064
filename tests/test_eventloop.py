"""One place chooses the event loop: uvloop when installed (or asked for), the standard loop otherwise; a real call
works on both."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from mediamute import eventloop
from mediamute.server import MediamuteServer
from mediamute.settings import ServerSettings

from .helpers import A, admin_token, amplitude, create_call, hear_for, join_all, leave_all, tones


def test_the_environment_chooses_the_loop(monkeypatch):
    monkeypatch.setenv(eventloop.LOOP_ENV, "asyncio")
    assert eventloop.loop_kind() == "asyncio"
    assert eventloop.loop_kind("auto") == ("uvloop" if eventloop.uvloop_available() else "asyncio")
    monkeypatch.setenv(eventloop.LOOP_ENV, "trio")
    with pytest.raises(ValueError, match="MEDIAMUTE_LOOP must be one of"):
        eventloop.loop_kind()


def test_a_refused_choice_does_not_leave_the_coroutine_unawaited(monkeypatch, recwarn):
    async def never() -> None:  # pragma: no cover - must not run
        raise AssertionError

    with pytest.raises(ValueError):
        eventloop.run(never(), "trio")
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


async def short_call() -> str:
    """Two tone participants over real WebRTC hear each other at unity gain; returns the loop that ran it."""
    async with MediamuteServer(ServerSettings(port=0, log_level="warning", ephemeral_key=True)) as server:
        headers = {"Authorization": f"Bearer {admin_token(server)}"}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=10.0) as http:
            call_id = await create_call(http)
        a, b = await join_all(server, call_id, tones(440, 660))
        try:
            await hear_for([a, b], 0.5)
            settled = time.monotonic()
            await hear_for([a, b], 1.0)
            assert amplitude(a, 660, settled) == pytest.approx(A, rel=0.1)
            assert amplitude(b, 440, settled) == pytest.approx(A, rel=0.1)
            assert amplitude(a, 440, settled) < 0.03 * A  # N-1: not itself
        finally:
            await leave_all([a, b])
        return eventloop.running_loop_kind()


@pytest.mark.integration
def test_a_real_call_on_the_standard_loop():
    assert eventloop.run(short_call(), "asyncio") == "asyncio"


@pytest.mark.integration
def test_a_real_call_on_uvloop():
    pytest.importorskip("uvloop")
    assert eventloop.run(short_call(), "uvloop") == "uvloop"
    assert eventloop.loop_kind("auto") == "uvloop"  # installed, so it is the default choice


def test_run_returns_the_coroutine_result_on_the_chosen_loop():
    async def kind() -> str:
        await asyncio.sleep(0)
        return eventloop.running_loop_kind()

    assert eventloop.run(kind(), "asyncio") == "asyncio"
