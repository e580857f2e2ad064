"""MediamuteServer's in-process interface for embedding (what the demo and tests use besides HTTP): an audit
subscription that sees every tick until it ends. (The application speaks through Graph's playPrompt:
tests/test_ivr_integration.py.)"""

from __future__ import annotations

import asyncio

import pytest

from mediamute.calls.errors import CallNotFound, CallTerminated
from mediamute.media.audit import TickRecord

from .helpers import wait_until

pytestmark = pytest.mark.integration
G = "/v1.0/communications/calls"


async def test_an_audit_subscription_gets_every_record_once_until_it_ends(server, call_id):
    call = server.registry.get(call_id)
    got: list[TickRecord] = []
    enough = asyncio.Event()

    def on_record(record: TickRecord) -> None:
        got.append(record)
        if len(got) >= 25:
            enough.set()

    unsubscribe = server.subscribe_audit(call_id, on_record)
    async with asyncio.timeout(5):
        await enough.wait()
    unsubscribe()
    seen = len(got)
    assert [r.seq for r in got] == list(range(got[0].seq, got[0].seq + seen))  # no tick missed, none twice
    ring = {id(r) for r in call.mixer.audit}
    assert all(id(r) in ring for r in got)  # the audit's own records, not copies or guesses

    last = call.mixer.audit.last()
    assert last is not None
    await wait_until(lambda: call.mixer.audit.last().seq >= last.seq + 10, timeout=5)  # the clock goes on...
    assert len(got) == seen  # ...and the ended subscription hears nothing of it
    unsubscribe()  # ending it twice is harmless


async def test_the_interface_refuses_a_call_that_is_not_live(server, http, call_id):
    with pytest.raises(CallNotFound):
        server.subscribe_audit("no-such-call", lambda record: None)
    assert (await http.delete(f"{G}/{call_id}")).status_code == 204
    with pytest.raises(CallTerminated):
        server.subscribe_audit(call_id, lambda record: None)

