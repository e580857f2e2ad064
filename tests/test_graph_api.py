"""The Graph calls API's behaviour: calls, roster, mute semantics, the application's own participant, self-unmute."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import numpy as np
import pytest
import websockets

from mediamute.analysis import first_time_above, last_time_above

from .conftest import create_call, join_all, leave_all, tones, wait_until
from .test_bad_input import assert_graph_error
from .test_call_integration import A, amplitude, hear_for, tone_track

pytestmark = pytest.mark.integration
G = "/v1.0/communications/calls"


@pytest.mark.parametrize("prefix", ["/v1.0", "/beta"])
async def test_create_get_and_delete_a_call(server, http, prefix):
    response = await http.post(f"{prefix}/communications/calls", json={
        "@odata.type": "#microsoft.graph.call",
        "callbackUri": "http://127.0.0.1:9/callback",
        "requestedModalities": ["audio"],
        "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
        "subject": "standup",
    })
    assert response.status_code == 201, response.text
    call = response.json()
    assert call["@odata.type"] == "#microsoft.graph.call"
    assert call["state"] == "established"
    assert call["callbackUri"] == "http://127.0.0.1:9/callback"
    assert call["requestedModalities"] == ["audio"]
    assert call["subject"] == "standup"
    assert call["@odata.context"] == f"{server.base_url}{prefix}/$metadata#communications/calls/$entity"
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


async def test_call_end_closes_every_peer_connection(server, http, call_id):
    a, b = await join_all(server, call_id, tones(440, 880))
    try:
        assert (await http.delete(f"{G}/{call_id}")).status_code == 204
        await wait_until(lambda: a.pc.connectionState == "closed" and b.pc.connectionState == "closed", timeout=10)
        call = server.registry.get(call_id)
        assert call.state == "terminated" and not call.clock.running and len(call.mixer) == 0
    finally:
        await leave_all([a, b])


async def test_roster_mute_twice_and_operations(server, http, call_id):
    alice, bob = await join_all(server, call_id, [("Alice", *tones(440)[0][1:]), ("Bob", *tones(660)[0][1:])])
    try:
        roster = (await http.get(f"{G}/{call_id}/participants")).json()["value"]
        names = {(p["info"]["identity"]["user"] or {}).get("displayName") for p in roster}
        assert {"Alice", "Bob"} <= names
        before = (await http.get(f"{G}/{call_id}/participants/{bob.participant_id}")).json()
        assert before["isMuted"] is False and before["mediaStreams"][0]["serverMuted"] is False
        assert before["@odata.context"].endswith(f"calls('{call_id}')/participants/$entity")

        first = await http.post(f"{G}/{call_id}/participants/{bob.participant_id}/mute", json={"clientContext": "one"})
        muted = (await http.get(f"{G}/{call_id}/participants/{bob.participant_id}")).json()
        assert muted["isMuted"] is True and muted["mediaStreams"][0]["serverMuted"] is True
        assert muted["rosterSequenceNumber"] > before["rosterSequenceNumber"]
        second = await http.post(f"{G}/{call_id}/participants/{bob.participant_id}/mute", json={"clientContext": "two"})
        assert first.status_code == second.status_code == 200
        assert first.json()["id"] != second.json()["id"]
        assert second.json()["clientContext"] == "two" and second.json()["status"] == "completed"
        again = (await http.get(f"{G}/{call_id}/participants/{bob.participant_id}")).json()
        assert again["rosterSequenceNumber"] == muted["rosterSequenceNumber"]  # no roster change
        for response in (first, second):
            resolved = await http.get(response.headers["Location"])
            assert resolved.status_code == 200 and resolved.json()["id"] == response.json()["id"]
        assert_graph_error(await http.get(f"{G}/{call_id}/operations/00000000-0000-0000-0000-000000000000"), 404)
    finally:
        await leave_all([alice, bob])


async def test_peer_to_peer_call_refuses_participant_mute(server, http):
    call_id = await create_call(http, targets=[{"identity": {"user": {"id": "u1", "displayName": "Ann"}}}])
    a, b = await join_all(server, call_id, tones(440, 880))
    try:
        error = assert_graph_error(
            await http.post(f"{G}/{call_id}/participants/{b.participant_id}/mute", json={}), 400
        )
        assert "group calls" in error["message"]
        call = server.registry.get(call_id)
        assert call.participant(b.participant_id).gate.is_open and not call.operations
        assert (await http.post(f"{G}/{call_id}/mute", json={})).status_code == 200  # the app may mute itself
    finally:
        await leave_all([a, b])


async def test_removing_a_participant_drops_its_media_at_once(server, http, call_id):
    a, b, c = await join_all(server, call_id, tones(440, 660, 880))
    try:
        await hear_for([a, b, c], 1.0)
        response = await http.delete(f"{G}/{call_id}/participants/{b.participant_id}")
        removed_at = time.monotonic()
        assert response.status_code == 204
        call = server.registry.get(call_id)
        await hear_for([a, c], 0.8)
        assert call.mixer.audit.frames_from(b.participant_id, removed_at) == 0
        assert amplitude(a, 660, removed_at + 0.25) < 0.03 * A
        assert amplitude(a, 880, removed_at + 0.25) == pytest.approx(A, rel=0.1)
        await wait_until(lambda: b.pc.connectionState == "closed", timeout=10)
        assert_graph_error(await http.get(f"{G}/{call_id}/participants/{b.participant_id}"), 404)
    finally:
        await leave_all([a, b, c])


async def test_the_applications_own_participant_is_mixed_and_gated(server, http):
    call_id = await create_call(http, mediamute={"appSource": "tone:1250"})
    a, b = await join_all(server, call_id, tones(440, 880))
    try:
        await hear_for([a, b], 1.0)
        assert amplitude(a, 1250, time.monotonic() - 0.5) == pytest.approx(A, rel=0.1)
        response = await http.post(f"{G}/{call_id}/mute", json={"clientContext": "quiet"})
        t_ok = time.monotonic()
        assert response.status_code == 200
        assert response.json()["@odata.type"] == "#microsoft.graph.muteParticipantOperation"
        call = server.registry.get(call_id)
        assert call.mixer.audit.frames_from(call.app.id, call.operation(response.json()["id"]).completed_monotonic) == 0
        await hear_for([a, b], 0.8)
        for listener in (a, b):
            times, amps = tone_track(listener, 1250)
            last = last_time_above(times, amps, 0.1 * A, t_ok - 1, np.inf)
            assert last is not None and last - t_ok < 0.2
        response = await http.post(f"{G}/{call_id}/unmute", json={"clientContext": "speak"})
        t_unmute = time.monotonic()
        assert response.json()["@odata.type"] == "#microsoft.graph.unmuteParticipantOperation"
        await hear_for([a, b], 0.8)
        times, amps = tone_track(a, 1250)
        back = first_time_above(times, amps, 0.5 * A, t_unmute)
        assert back is not None and back - t_unmute < 0.3
        assert amplitude(b, 880, t_unmute) < 0.03 * A  # b never hears itself
    finally:
        await leave_all([a, b])


@pytest.mark.parametrize("allow", [True, False])
async def test_self_unmute_respects_the_calls_policy(server, http, allow):
    call_id = await create_call(http, mediamute={"allowSelfUnmute": allow})
    a, b = await join_all(server, call_id, tones(440, 660))
    try:
        await http.post(f"{G}/{call_id}/participants/{b.participant_id}/mute", json={})
        # someone else's session token never works, whatever the policy
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            r = await client.post(
                f"/ext/calls/{call_id}/participants/{b.participant_id}/selfUnmute",
                headers={"Authorization": f"Bearer {a.session_token}"},
            )
            assert_graph_error(r, 403, message_part="another participant")
        r = await http.post(f"/ext/calls/{call_id}/participants/{b.participant_id}/selfUnmute")
        assert_graph_error(r, 403, message_part="session token")  # an app token is not the participant
        response = await b.self_unmute()
        call = server.registry.get(call_id)
        if allow:
            assert response.status_code == 200, response.text
            assert response.json()["@odata.type"] == "#microsoft.graph.unmuteParticipantOperation"
            assert call.participant(b.participant_id).gate.is_open
            t = time.monotonic()
            await hear_for([a], 0.8)
            times, amps = tone_track(a, 660)
            back = first_time_above(times, amps, 0.5 * A, t)
            assert back is not None and back - t < 0.3
        else:
            error = assert_graph_error(response, 403, message_part="allowSelfUnmute")
            assert error["code"] == "Forbidden"
            assert not call.participant(b.participant_id).gate.is_open
            await hear_for([a], 0.5)
            assert amplitude(a, 660, time.monotonic() - 0.4) < 0.03 * A
    finally:
        await leave_all([a, b])


async def test_self_mute_is_not_a_server_mute(server, http, call_id):
    (a,) = await join_all(server, call_id, tones(440))
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            r = await client.post(
                f"/ext/calls/{call_id}/participants/{a.participant_id}/selfMute",
                json={"muted": True},
                headers={"Authorization": f"Bearer {a.session_token}"},
            )
        assert r.status_code == 200, r.text
        assert r.json()["isMuted"] is True and r.json()["mediaStreams"][0]["serverMuted"] is False
        assert server.registry.get(call_id).participant(a.participant_id).gate.is_open
    finally:
        await leave_all([a])


async def test_mute_all_beta(server, http, call_id):
    a, b, c = await join_all(server, call_id, tones(440, 660, 880))
    try:
        r = await http.post(
            f"/beta/communications/calls/{call_id}/participants/muteAll",
            json={"participants": [a.participant_id, b.participant_id], "clientContext": "all"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["@odata.type"] == "#microsoft.graph.commsOperation"
        call = server.registry.get(call_id)
        assert [call.participant(p.participant_id).server_muted for p in (a, b, c)] == [True, True, False]
        assert_graph_error(await http.post(f"{G}/{call_id}/participants/muteAll", json={}), 405)
    finally:
        await leave_all([a, b, c])


async def test_request_validation_uses_the_graph_envelope(server, http, call_id):
    r = await http.post(G, json={"requestedModalities": ["video"]})
    assert_graph_error(r, 400, message_part="audio")
    r = await http.post(G, json={"callbackUri": "http://example.com/cb"})
    assert_graph_error(r, 400, message_part="this machine")
    r = await http.post(G, json={"mediamute": {"appSource": "nothing-like-this.wav"}})
    assert_graph_error(r, 400, message_part="appSource")
    r = await http.post(G, json={"mediamute": {"unknownKnob": 1}})
    assert_graph_error(r, 400, message_part="unknownKnob")
    r = await http.post(G, content="[]", headers={"Content-Type": "application/json"})
    assert_graph_error(r, 400)
    r = await http.post(f"{G}/{call_id}/mute", content="clientContext=x", headers={"Content-Type": "text/plain"})
    assert_graph_error(r, 415, code="UnsupportedMediaType")
    r = await http.get(f"{G}/{call_id}/participants/nope")
    assert_graph_error(r, 404)
    r = await http.post(f"/ext/calls/{call_id}/participants/x/selfMute", json={"muted": "yes"})
    assert_graph_error(r, 400)


async def test_openapi_and_offline_docs(http):
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
            await http.post(f"{G}/{call_id}/participants/{b.participant_id}/mute", json={})
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
