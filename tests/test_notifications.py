"""Roster notifications to a real local callback receiver: order, payloads, signatures, retries, and a hanging
receiver that must not hold up the mute answers nor the mixer while a real WebRTC call runs."""

from __future__ import annotations

import time

import httpx
import pytest

from mediamute.api.notifications import CallbackDelivery, DeliveryPolicy
from mediamute.api.schemas import CommsNotification
from mediamute.tokens import SigningKey, verify_callback

from .helpers import (
    A,
    CALLS,
    CallbackReceiver,
    amplitude,
    assert_tone_stops,
    create_call,
    hear_for,
    join_all,
    leave_all,
    tones,
    wait_until,
)

pytestmark = pytest.mark.integration


def talking_while_muted(notification: dict) -> bool:
    data = notification.get("resourceData")
    return isinstance(data, list) and any(p.get("mediamute", {}).get("talkingWhileMuted") for p in data)


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
            sent = time.monotonic()
            r = await http.post(f"{CALLS}/{call_id}/participants/{bob.participant_id}/mute", json={"clientContext": "m"})
            assert r.status_code == 200
            await hear_for([alice], 0.6)
            assert_tone_stops(alice, 660, sent)  # the mute silenced Bob, checked on the audio
            await receiver.wait_for(lambda r: any(talking_while_muted(n) for n in r.notifications()))  # his tone goes on
            await http.post(f"/ext/calls/{call_id}/participants/{bob.participant_id}/unmute", json={})
            await bob.leave()
            assert (await http.delete(f"{CALLS}/{call_id}")).status_code == 204
            await receiver.wait_for(lambda r: ("deleted", "call") in kinds(r))
        finally:
            await leave_all([alice, bob])

    assert kinds(receiver) == [
        ("updated", "call"),  # established
        ("updated", "participants"),  # Alice joined
        ("updated", "participants"),  # Bob joined
        ("updated", "participants"),  # Bob server-muted
        ("updated", "participants"),  # Bob talks while muted (his tone goes on): mediamute's extension property
        ("updated", "participants"),  # Bob unmuted (which ends talking while muted)
        ("deleted", "participants"),  # Bob left
        ("deleted", "call"),  # the call ended
    ]
    notes = receiver.notifications()
    assert notes[0]["resourceData"]["state"] == "established"
    assert notes[-1]["resourceData"]["state"] == "terminated"
    joined = [n["resourceData"][0]["info"]["identity"]["user"]["displayName"] for n in notes[1:3]]
    assert joined == ["Alice", "Bob"]
    muted, talking, unmuted, left = (n["resourceData"][0] for n in notes[3:7])
    assert muted["id"] == talking["id"] == unmuted["id"] == left["id"] == bob.participant_id
    assert muted["isMuted"] is True and muted["mediaStreams"][0]["serverMuted"] is True
    assert muted["mediamute"] == {"talkingWhileMuted": False}
    assert talking["isMuted"] is True and talking["mediamute"] == {"talkingWhileMuted": True}
    assert unmuted["isMuted"] is False and unmuted["mediaStreams"][0]["serverMuted"] is False
    assert unmuted["mediamute"] == {"talkingWhileMuted": False}
    assert left["removedState"]["reason"] == "left"
    sequence = [n["resourceData"][0]["rosterSequenceNumber"] for n in notes[1:7]]
    assert sequence == sorted(sequence) and len(set(sequence)) == 6
    for delivery in receiver.accepted:  # every POST verifies against the public key and binds its body
        body = delivery.json
        assert body["@odata.type"] == "#microsoft.graph.commsNotifications"
        token = delivery.headers["authorization"].removeprefix("Bearer ")
        verify_callback(token, delivery.body, receiver.url, server.signing_key.public_key)
        with pytest.raises(Exception):
            verify_callback(token, delivery.body + b" ", receiver.url, server.signing_key.public_key)


async def test_a_failed_delivery_is_retried_with_the_same_body(api, api_http):
    async with CallbackReceiver(fail_first=2) as receiver:
        call_id = await create_call(api_http, callbackUri=receiver.url)
        await receiver.wait_for(lambda r: len(r.accepted) >= 1)
        attempts = list(receiver.attempts)
        counters = api.hub.delivery_counters(call_id)
        await wait_until(lambda: counters.delivered_batches >= 1, timeout=5)  # the 202 reached the hub
        retries, delivered = counters.retries, counters.delivered_batches
        assert (await api_http.delete(f"{CALLS}/{call_id}")).status_code == 204
        await receiver.wait_for(lambda r: len(r.accepted) >= 2)  # the end, delivered at its first attempt
    assert len(attempts) == 3
    assert attempts[0].body == attempts[1].body == receiver.accepted[0].body
    assert [a.headers["mediamute-delivery-attempt"] for a in attempts] == ["1", "2", "3"]
    assert receiver.notifications()[0]["resourceUrl"] == f"/communications/calls/{call_id}"
    assert retries == 2 and delivered == 1
    assert [a.headers["mediamute-delivery-attempt"] for a in receiver.attempts[3:]] == ["1"] * len(receiver.attempts[3:])
    assert api.hub.delivery_counters(call_id).retries == 2


async def test_a_hanging_receiver_holds_up_neither_the_answers_nor_the_mixer(server, http):
    async with CallbackReceiver(hang=True) as receiver:
        call_id = await create_call(http, callbackUri=receiver.url)
        a, b = await join_all(server, call_id, tones(440, 880))
        call = server.registry.get(call_id)
        try:
            await hear_for([a, b], 1.5)  # let the joins' DTLS handshakes settle
            await receiver.wait_for(lambda r: len(r.attempts) >= 1)  # the receiver holds the first POST
            ticks_before = call.clock.ticks
            audit_from = time.monotonic()
            for i in range(10):
                url = f"{CALLS}/{call_id}/participants/{b.participant_id}/mute"
                assert (await http.post(url, json={"clientContext": str(i)})).status_code == 200
                url = f"/ext/calls/{call_id}/participants/{b.participant_id}/unmute"
                assert (await http.post(url, json={})).status_code == 200
            await hear_for([a, b], 1.5)
            # all of that happened while the one POST hung: every answer came, and the mixer went on ticking and
            # mixing a (how late its ticks ran on this machine is `mediamute bench`'s figure, not this test's)
            assert len(receiver.attempts) == 1
            assert call.clock.ticks - ticks_before >= 70
            assert call.mixer.audit.frames_from(a.participant_id, audit_from) >= 70
            assert amplitude(b, 440, time.monotonic() - 0.5) == pytest.approx(A, rel=0.1)
            counters = server.hub.delivery_counters(call_id)
            assert counters.delivered_batches == 0 and counters.enqueued >= 21  # all queued, none lost, none sent
            enqueued = counters.enqueued
            # released, the receiver gets every queued notification, in order: the ten mutes and unmutes alternate
            receiver.release()
            await receiver.wait_for(lambda r: len(r.notifications()) >= enqueued)
            flips = [n["resourceData"][0]["isMuted"] for n in receiver.notifications()[-20:]]
            assert flips == [True, False] * 10
            assert (await http.delete(f"{CALLS}/{call_id}")).status_code == 204
            await receiver.wait_for(lambda r: r.notifications()[-1]["changeType"] == "deleted")
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
