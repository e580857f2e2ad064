"""Roster notifications to a real local callback receiver: order, payloads, signatures, retries, and a hanging
receiver that must not cost the mixer a single late tick while a real WebRTC call runs."""

from __future__ import annotations

import time

import httpx
import pytest

from mediamute.api.notifications import CallbackDelivery, DeliveryPolicy
from mediamute.api.schemas import CommsNotification
from mediamute.tokens import SigningKey, verify_callback

from .conftest import create_call, join_all, leave_all, tones
from .receiver import CallbackReceiver
from .test_call_integration import A, amplitude, hear_for

pytestmark = pytest.mark.integration
G = "/v1.0/communications/calls"


def kinds(receiver: CallbackReceiver) -> list[tuple[str, str]]:
    out = []
    for n in receiver.notifications():
        what = "call" if n["resourceUrl"].count("/") == 3 else "participants"
        out.append((n["changeType"], what))
    return out


async def test_notifications_arrive_in_order_signed_and_match_the_audio(server, http):
    async with CallbackReceiver() as receiver:
        call_id = await create_call(http, callbackUri=receiver.url)
        (alice,) = await join_all(server, call_id, [("Alice", *tones(440)[0][1:])])
        (bob,) = await join_all(server, call_id, [("Bob", *tones(660)[0][1:])])
        try:
            await hear_for([alice], 1.0)
            r = await http.post(f"{G}/{call_id}/participants/{bob.participant_id}/mute", json={"clientContext": "m"})
            t_ok = time.monotonic()
            assert r.status_code == 200
            await hear_for([alice], 0.6)
            assert amplitude(alice, 660, t_ok + 0.2) < 0.03 * A  # the mute silenced Bob, checked on the audio
            await http.post(f"/ext/calls/{call_id}/participants/{bob.participant_id}/unmute", json={})
            await bob.leave()
            assert (await http.delete(f"{G}/{call_id}")).status_code == 204
            await receiver.wait_for(lambda r: ("deleted", "call") in kinds(r))
        finally:
            await leave_all([alice, bob])

    assert kinds(receiver) == [
        ("updated", "call"),  # established
        ("updated", "participants"),  # Alice joined
        ("updated", "participants"),  # Bob joined
        ("updated", "participants"),  # Bob server-muted
        ("updated", "participants"),  # Bob unmuted
        ("deleted", "participants"),  # Bob left
        ("deleted", "call"),  # the call ended
    ]
    notes = receiver.notifications()
    assert notes[0]["resourceData"]["state"] == "established"
    assert notes[-1]["resourceData"]["state"] == "terminated"
    joined = [n["resourceData"][0]["info"]["identity"]["user"]["displayName"] for n in notes[1:3]]
    assert joined == ["Alice", "Bob"]
    muted, unmuted, left = (n["resourceData"][0] for n in notes[3:6])
    assert muted["id"] == unmuted["id"] == left["id"] == bob.participant_id
    assert muted["isMuted"] is True and muted["mediaStreams"][0]["serverMuted"] is True
    assert unmuted["isMuted"] is False and unmuted["mediaStreams"][0]["serverMuted"] is False
    assert left["removedState"]["reason"] == "left"
    sequence = [n["resourceData"][0]["rosterSequenceNumber"] for n in notes[1:6]]
    assert sequence == sorted(sequence) and len(set(sequence)) == 5
    for delivery in receiver.accepted:  # every POST verifies against the public key and binds its body
        body = delivery.json
        assert body["@odata.type"] == "#microsoft.graph.commsNotifications"
        token = delivery.headers["authorization"].removeprefix("Bearer ")
        verify_callback(token, delivery.body, receiver.url, server.signing_key.public_key)
        with pytest.raises(Exception):
            verify_callback(token, delivery.body + b" ", receiver.url, server.signing_key.public_key)


async def test_a_failed_delivery_is_retried_with_the_same_body(server, http):
    async with CallbackReceiver(fail_first=2) as receiver:
        call_id = await create_call(http, callbackUri=receiver.url)
        await receiver.wait_for(lambda r: len(r.accepted) >= 1)
    assert len(receiver.attempts) == 3
    assert receiver.attempts[0].body == receiver.attempts[1].body == receiver.accepted[0].body
    assert [a.headers["mediamute-delivery-attempt"] for a in receiver.attempts] == ["1", "2", "3"]
    assert receiver.notifications()[0]["resourceUrl"] == f"/communications/calls/{call_id}"
    counters = server.hub.delivery_counters(call_id)
    assert counters.retries == 2 and counters.delivered_batches == 1


async def test_a_hanging_receiver_costs_the_mixer_no_late_tick(server, http):
    async with CallbackReceiver(hang=True) as receiver:
        call_id = await create_call(http, callbackUri=receiver.url)
        a, b = await join_all(server, call_id, tones(440, 880))
        call = server.registry.get(call_id)
        try:
            await hear_for([a, b], 1.5)  # let the joins' DTLS handshakes settle
            await receiver.wait_for(lambda r: len(r.attempts) >= 1)  # the receiver holds the first POST
            late_before = call.clock.late_ticks
            ticks_before = call.clock.ticks
            for i in range(10):
                url = f"{G}/{call_id}/participants/{b.participant_id}/mute"
                assert (await http.post(url, json={"clientContext": str(i)})).status_code == 200
                url = f"/ext/calls/{call_id}/participants/{b.participant_id}/unmute"
                assert (await http.post(url, json={})).status_code == 200
            await hear_for([a, b], 1.5)
            assert call.clock.ticks - ticks_before >= 70
            assert call.clock.late_ticks == late_before
            assert amplitude(b, 440, time.monotonic() - 0.5) == pytest.approx(A, rel=0.1)
            counters = server.hub.delivery_counters(call_id)
            assert counters.delivered_batches == 0 and counters.enqueued >= 21  # all queued, none lost, none sent
        finally:
            await leave_all([a, b])


async def test_the_delivery_queue_is_bounded():
    async with CallbackReceiver(hang=True) as receiver:
        async with httpx.AsyncClient() as client:
            delivery = CallbackDelivery(
                "c", receiver.url, SigningKey.generate(), client, DeliveryPolicy(queue_size=3, timeout=30)
            )
            first = CommsNotification(change_type="updated", resource_url="/first")
            delivery.enqueue(first)
            await receiver.wait_for(lambda r: len(r.attempts) == 1)  # the worker is stuck on the first POST
            for i in range(10):
                delivery.enqueue(CommsNotification(change_type="updated", resource_url=f"/n{i}"))
            assert delivery.counters.dropped_overflow == 7
            assert [n.resource_url for n in delivery._queue] == ["/n7", "/n8", "/n9"]
            await delivery.close(drain_timeout=0.1)
