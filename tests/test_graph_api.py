"""The Graph calls API's behaviour: calls, roster, mute semantics, the application's own participant, self-unmute."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets

from .helpers import (
    A,
    CALLS,
    CallbackReceiver,
    amplitude,
    assert_graph_error,
    assert_tone_returns,
    assert_tone_stops,
    create_call,
    hear_for,
    join_all,
    join_without_media,
    leave_all,
    tones,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("prefix", ["/v1.0", "/beta"])
async def test_create_get_and_delete_a_call(api, api_http, prefix):
    http = api_http
    async with CallbackReceiver() as receiver:  # a live receiver: the hub delivers and closes at once
        response = await http.post(f"{prefix}/communications/calls", json={
            "@odata.type": "#microsoft.graph.call",
            "callbackUri": receiver.url,
            "requestedModalities": ["audio"],
            "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
            "subject": "standup",
        })
        assert response.status_code == 201, response.text
        call = response.json()
        assert call["@odata.type"] == "#microsoft.graph.call"
        assert call["state"] == "established"
        assert call["callbackUri"] == receiver.url
        assert call["requestedModalities"] == ["audio"]
        assert call["subject"] == "standup"
        assert call["@odata.context"] == f"{api.base_url}{prefix}/$metadata#communications/calls/$entity"
        got = (await http.get(f"{prefix}/communications/calls/{call['id']}")).json()
        assert got["id"] == call["id"] and got["myParticipantId"] == call["myParticipantId"]
        roster = (await http.get(f"{prefix}/communications/calls/{call['id']}/participants")).json()
        assert [p["id"] for p in roster["value"]] == [call["myParticipantId"]]
        assert roster["value"][0]["info"]["identity"]["application"]["displayName"] == "mediamute application"

        assert (await http.delete(f"{prefix}/communications/calls/{call['id']}")).status_code == 204
        ended = (await http.get(f"{prefix}/communications/calls/{call['id']}")).json()
        assert ended["state"] == "terminated"
        r = await http.post(f"{prefix}/communications/calls/{call['id']}/mute", json={})
        assert_graph_error(r, 409, message_part="terminated")
        assert_graph_error(await http.delete(f"{prefix}/communications/calls/{call['id']}"), 409)
        await receiver.wait_for(lambda r: any(n["changeType"] == "deleted" for n in r.notifications()))
    assert receiver.notifications()[-1]["resourceUrl"] == f"/communications/calls/{call['id']}"


async def test_call_end_closes_every_peer_connection(server, http, call_id):
    a, b = await join_all(server, call_id, tones(440, 880))
    try:
        assert (await http.delete(f"{CALLS}/{call_id}")).status_code == 204
        await wait_until(lambda: a.pc.connectionState == "closed" and b.pc.connectionState == "closed", timeout=10)
        call = server.registry.get(call_id)
        assert call.state == "terminated" and not call.clock.running and len(call.mixer) == 0
    finally:
        await leave_all([a, b])


async def test_roster_mute_twice_and_operations(api, api_http):
    http = api_http
    call_id = await create_call(http)
    call = api.registry.get(call_id)
    join_without_media(call, "Alice")
    bob = join_without_media(call, "Bob")
    roster = (await http.get(f"{CALLS}/{call_id}/participants")).json()["value"]
    names = {(p["info"]["identity"]["user"] or {}).get("displayName") for p in roster}
    assert {"Alice", "Bob"} <= names
    before = (await http.get(f"{CALLS}/{call_id}/participants/{bob.id}")).json()
    assert before["isMuted"] is False and before["mediaStreams"][0]["serverMuted"] is False
    assert before["@odata.context"].endswith(f"calls('{call_id}')/participants/$entity")

    first = await http.post(f"{CALLS}/{call_id}/participants/{bob.id}/mute", json={"clientContext": "one"})
    muted = (await http.get(f"{CALLS}/{call_id}/participants/{bob.id}")).json()
    assert muted["isMuted"] is True and muted["mediaStreams"][0]["serverMuted"] is True
    assert muted["rosterSequenceNumber"] > before["rosterSequenceNumber"]
    second = await http.post(f"{CALLS}/{call_id}/participants/{bob.id}/mute", json={"clientContext": "two"})
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] != second.json()["id"]
    assert second.json()["clientContext"] == "two" and second.json()["status"] == "completed"
    again = (await http.get(f"{CALLS}/{call_id}/participants/{bob.id}")).json()
    assert again["rosterSequenceNumber"] == muted["rosterSequenceNumber"]  # no roster change
    for response in (first, second):
        resolved = await http.get(response.headers["Location"])
        assert resolved.status_code == 200 and resolved.json()["id"] == response.json()["id"]
    assert_graph_error(await http.get(f"{CALLS}/{call_id}/operations/00000000-0000-0000-0000-000000000000"), 404)


async def test_peer_to_peer_call_refuses_participant_mute(api, api_http):
    http = api_http
    call_id = await create_call(http, targets=[{"identity": {"user": {"id": "u1", "displayName": "Ann"}}}])
    call = api.registry.get(call_id)
    join_without_media(call, "a")
    b = join_without_media(call, "b")
    error = assert_graph_error(await http.post(f"{CALLS}/{call_id}/participants/{b.id}/mute", json={}), 400)
    assert "group calls" in error["message"]
    assert call.participant(b.id).gate.is_open and not call.operations
    assert (await http.post(f"{CALLS}/{call_id}/mute", json={})).status_code == 200  # the app may mute itself


async def test_removing_a_participant_drops_its_media_at_once(server, http, call_id):
    a, b, c = await join_all(server, call_id, tones(440, 660, 880))
    try:
        await hear_for([a, b, c], 1.0)
        sent = time.monotonic()
        response = await http.delete(f"{CALLS}/{call_id}/participants/{b.participant_id}")
        removed_at = time.monotonic()
        assert response.status_code == 204
        call = server.registry.get(call_id)
        await hear_for([a, c], 0.8)
        assert call.mixer.audit.frames_from(b.participant_id, removed_at) == 0
        stopped = assert_tone_stops(a, 660, sent)
        assert_tone_stops(c, 660, sent)
        assert amplitude(a, 880, stopped) == pytest.approx(A, rel=0.1)
        await wait_until(lambda: b.pc.connectionState == "closed", timeout=10)
        assert_graph_error(await http.get(f"{CALLS}/{call_id}/participants/{b.participant_id}"), 404)
    finally:
        await leave_all([a, b, c])


async def test_the_applications_own_participant_is_mixed_and_gated(server, http):
    call_id = await create_call(http, mediamute={"appSource": "tone:1250"})
    a, b = await join_all(server, call_id, tones(440, 880))
    try:
        await hear_for([a, b], 1.0)
        assert amplitude(a, 1250, time.monotonic() - 0.5) == pytest.approx(A, rel=0.1)
        sent = time.monotonic()
        response = await http.post(f"{CALLS}/{call_id}/mute", json={"clientContext": "quiet"})
        assert response.status_code == 200
        assert response.json()["@odata.type"] == "#microsoft.graph.muteParticipantOperation"
        call = server.registry.get(call_id)
        assert call.mixer.audit.frames_from(call.app.id, call.operation(response.json()["id"]).completed_monotonic) == 0
        await hear_for([a, b], 0.8)
        for listener in (a, b):
            assert_tone_stops(listener, 1250, sent)
        unmute_sent = time.monotonic()
        response = await http.post(f"{CALLS}/{call_id}/unmute", json={"clientContext": "speak"})
        assert response.json()["@odata.type"] == "#microsoft.graph.unmuteParticipantOperation"
        await hear_for([a, b], 0.8)
        assert_tone_stops(a, 1250, sent, until=unmute_sent)  # silent all through the mute
        assert_tone_returns(a, 1250, unmute_sent)
        assert amplitude(b, 880, unmute_sent) < 0.03 * A  # b never hears itself
    finally:
        await leave_all([a, b])


@pytest.mark.parametrize("allow", [True, False])
async def test_self_unmute_respects_the_calls_policy(server, http, allow):
    call_id = await create_call(http, mediamute={"allowSelfUnmute": allow})
    a, b = await join_all(server, call_id, tones(440, 660))
    try:
        await http.post(f"{CALLS}/{call_id}/participants/{b.participant_id}/mute", json={})
        # someone else's session token never works, whatever the policy
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            r = await client.post(
                f"/ext/calls/{call_id}/participants/{b.participant_id}/selfUnmute",
                headers={"Authorization": f"Bearer {a.session_token}"},
            )
            assert_graph_error(r, 403, message_part="another participant")
        r = await http.post(f"/ext/calls/{call_id}/participants/{b.participant_id}/selfUnmute")
        assert_graph_error(r, 403, message_part="session token")  # an app token is not the participant
        sent = time.monotonic()
        response = await b.self_unmute()
        call = server.registry.get(call_id)
        if allow:
            assert response.status_code == 200, response.text
            assert response.json()["@odata.type"] == "#microsoft.graph.unmuteParticipantOperation"
            assert call.participant(b.participant_id).gate.is_open
            await hear_for([a], 0.8)
            assert_tone_returns(a, 660, sent)
        else:
            error = assert_graph_error(response, 403, message_part="allowSelfUnmute")
            assert error["code"] == "Forbidden"
            assert not call.participant(b.participant_id).gate.is_open
            await hear_for([a], 0.5)
            assert amplitude(a, 660, time.monotonic() - 0.4) < 0.03 * A
    finally:
        await leave_all([a, b])


async def test_self_mute_is_not_a_server_mute(api, api_http):
    call_id = await create_call(api_http)
    call = api.registry.get(call_id)
    a = join_without_media(call, "a")
    async with api.client(api.signing_key.session_token(call_id, a.id)) as client:  # what WHIP hands a joiner
        r = await client.post(f"/ext/calls/{call_id}/participants/{a.id}/selfMute", json={"muted": True})
    assert r.status_code == 200, r.text
    assert r.json()["isMuted"] is True and r.json()["mediaStreams"][0]["serverMuted"] is False
    assert call.participant(a.id).gate.is_open


async def test_mute_all_beta(api, api_http):
    http = api_http
    call_id = await create_call(http)
    call = api.registry.get(call_id)
    a, b, c = (join_without_media(call, name) for name in "abc")
    r = await http.post(
        f"/beta/communications/calls/{call_id}/participants/muteAll",
        json={"participants": [a.id, b.id], "clientContext": "all"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["@odata.type"] == "#microsoft.graph.commsOperation"
    assert [call.participant(p.id).server_muted for p in (a, b, c)] == [True, True, False]
    assert_graph_error(await http.post(f"{CALLS}/{call_id}/participants/muteAll", json={}), 405)


async def test_request_validation_uses_the_graph_envelope(api_http):
    http = api_http
    call_id = await create_call(http)
    r = await http.post(CALLS, json={"requestedModalities": ["video"]})
    assert_graph_error(r, 400, message_part="audio")
    r = await http.post(CALLS, json={"callbackUri": "http://example.com/cb"})
    assert_graph_error(r, 400, message_part="this machine")
    r = await http.post(CALLS, json={"mediamute": {"appSource": "nothing-like-this.wav"}})
    assert_graph_error(r, 400, message_part="appSource")
    r = await http.post(CALLS, json={"mediamute": {"unknownKnob": 1}})
    assert_graph_error(r, 400, message_part="unknownKnob")
    r = await http.post(CALLS, content="[]", headers={"Content-Type": "application/json"})
    assert_graph_error(r, 400)
    r = await http.post(f"{CALLS}/{call_id}/mute", content="clientContext=x", headers={"Content-Type": "text/plain"})
    assert_graph_error(r, 415, code="UnsupportedMediaType")
    r = await http.get(f"{CALLS}/{call_id}/participants/nope")
    assert_graph_error(r, 404)
    r = await http.post(f"/ext/calls/{call_id}/participants/x/selfMute", json={"muted": "yes"})
    assert_graph_error(r, 400)


async def test_openapi_and_offline_docs(api_http):
    http = api_http
    spec = (await http.get("/openapi.json")).json()
    for path in (
        "/v1.0/communications/calls/{call_id}/participants/{participant_id}/mute",
        "/beta/communications/calls/{call_id}/participants/{participant_id}/mute",
        "/v1.0/communications/calls/{call_id}/operations/{operation_id}",
        "/beta/communications/calls/{call_id}/participants/muteAll",
        "/whip/{call_id}",
    ):
        assert path in spec["paths"], path
    assert "MuteParticipantOperation" in spec["components"]["schemas"]
    docs = await http.get("/docs")
    assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    assert (await http.get("/swagger/swagger-ui-bundle.js")).status_code == 200


async def test_event_stream_carries_notifications_and_live_stats(server, http, call_id):
    a, b = await join_all(server, call_id, tones(440, 660))
    ws_url = server.base_url.replace("http", "ws") + f"/ext/calls/{call_id}/events?access_token={b.session_token}"
    try:
        async with websockets.connect(ws_url, open_timeout=5) as ws:
            snapshot = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert snapshot["type"] == "snapshot"
            assert {p["id"] for p in snapshot["participants"]} >= {a.participant_id, b.participant_id}
            await http.post(f"{CALLS}/{call_id}/participants/{b.participant_id}/mute", json={})
            notification = stats = None
            async with asyncio.timeout(5):
                while notification is None or stats is None or not stats["gate"]["droppedPackets"]:
                    message = json.loads(await ws.recv())
                    if message["type"] == "notification":
                        notification = message["body"]["value"][0]
                    elif message["type"] == "stats":
                        stats = next(p for p in message["body"]["participants"] if p["id"] == b.participant_id)
            assert notification["changeType"] == "updated"
            assert notification["resourceData"][0]["isMuted"] is True
            assert stats["serverMuted"] is True
            assert stats["receivedLevelDbov"] is not None  # b still talks: the RTP level header says how loud
        bad_url = server.base_url.replace("http", "ws") + f"/ext/calls/{call_id}/events?access_token=nope"
        async with websockets.connect(bad_url, open_timeout=5) as ws:
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert message["type"] == "error" and message["status"] == 401
            assert message["error"]["code"] == "InvalidAuthenticationToken"
    finally:
        await leave_all([a, b])
