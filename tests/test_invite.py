"""participants: invite — Graph's documented examples as contract tests (their requests verbatim, the shapes of their
responses and notifications), the limits and errors, and simulated participants in a real WebRTC call: heard,
muted like anyone (0 frames in the audit), removed."""

from __future__ import annotations

import time

import pytest

from mediamute.rtc.simulated import SimulatedParticipant

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
    leave_all,
    tones,
    wait_until,
)

# participant-invite (v1.0), example 1: one participant; its request verbatim
DOC_INVITE_ONE = {
    "participants": [
        {
            "@odata.type": "#microsoft.graph.invitationParticipantInfo",
            "replacesCallId": "a7ebfb2d-871e-419c-87af-27290b22e8db",
            "identity": {
                "@odata.type": "#microsoft.graph.identitySet",
                "user": {
                    "@odata.type": "#microsoft.graph.identity",
                    "id": "278405a3-f568-4b3e-b684-009193463064",
                    "identityProvider": "AAD",
                },
            },
        }
    ],
    "clientContext": "f2fa86af-3c51-4bc2-8fc0-475452d9764f",
}
# its response (the docs write "Running"; commsOperation's status values are lower case, see the README)
DOC_RESPONSE_ONE = {
    "@odata.type": "#microsoft.graph.inviteParticipantsOperation",
    "status": "running",
    "clientContext": "f2fa86af-3c51-4bc2-8fc0-475452d9764f",
    "resultInfo": None,
    "participants": [
        {
            "endpointType": None,
            "replacesCallId": "a7ebfb2d-871e-419c-87af-27290b22e8db",
            "identity": {
                "user": {
                    "@odata.type": "#microsoft.graph.identity",
                    "id": "278405a3-f568-4b3e-b684-009193463064",
                    "identityProvider": "AAD",
                },
                "application": None,
                "device": None,
                "phone": None,
            },
        }
    ],
}
# example 2: two participants (the docs' note asks for a group call)
DOC_INVITE_TWO = {
    "participants": [
        {
            "@odata.type": "#microsoft.graph.invitationParticipantInfo",
            "replacesCallId": "a7ebfb2d-871e-419c-87af-27290b22e8db",
            "identity": {
                "@odata.type": "#microsoft.graph.identitySet",
                "user": {
                    "@odata.type": "#microsoft.graph.identity",
                    "id": "7e1b4346-85a6-4bdd-abe3-d11c5d420efe",
                    "identityProvider": "AAD",
                },
            },
        },
        {
            "@odata.type": "#microsoft.graph.invitationParticipantInfo",
            "replacesCallId": "a7ebfb2d-871e-419c-87af-27290b22e8db",
            "identity": {
                "@odata.type": "#microsoft.graph.identitySet",
                "user": {
                    "@odata.type": "#microsoft.graph.identity",
                    "id": "1e126418-44a0-4a94-a6f8-0efe1ad71acb",
                    "identityProvider": "AAD",
                },
            },
        },
    ],
    "clientContext": "f2fa86af-3c51-4bc2-8fc0-475452d9764f",
}


def assert_has(expected, ours, path="$"):
    """Every property the docs show is in ours, with the same value (objects compared property by property)."""
    if isinstance(expected, dict):
        assert isinstance(ours, dict), f"{path}: expected an object, got {ours!r}"
        for key, value in expected.items():
            assert key in ours, f"{path}.{key} missing from {sorted(ours)}"
            assert_has(value, ours[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(ours, list) and len(ours) == len(expected), f"{path}: {ours!r}"
        for i, (a, b) in enumerate(zip(expected, ours)):
            assert_has(a, b, f"{path}[{i}]")
    else:
        assert ours == expected, f"{path}: {ours!r} != {expected!r}"


def changes(receiver: CallbackReceiver, call_id: str) -> list[tuple[str, str]]:
    """(changeType, what) of every notification about `call_id`: call, participants or operation."""
    out = []
    for n in receiver.notifications():
        url = n["resourceUrl"]
        if f"/calls/{call_id}" not in url:
            continue
        what = "operation" if "/operations/" in url else "participants" if url.endswith("/participants") else "call"
        out.append((n["changeType"], what))
    return out


def invite(identity: dict, **extension: object) -> dict:
    body: dict = {"participants": [{"identity": identity}]}
    if extension:
        body["participants"][0]["mediamute"] = extension
    return body


USER = {"user": {"id": "5810cede-f3cc-42eb-b2c1-e9bd5d53ec96", "displayName": "Bob"}}


# the docs' examples -------------------------------------------------------------------------------------------
async def test_invite_one_participant_as_documented(api, api_http):
    async with CallbackReceiver() as receiver:
        call_id = await create_call(api_http, callbackUri=receiver.url)
        t_request = time.monotonic()
        response = await api_http.post(f"{CALLS}/{call_id}/participants/invite", json=DOC_INVITE_ONE)
        assert response.status_code == 200, response.text
        body = response.json()
        assert_has(DOC_RESPONSE_ONE, body)
        assert body["status"].lower() == "running"  # the docs' "Running", in the resource type's spelling
        invitee_id = body["participants"][0]["participantId"]  # ours: the id the invitee will have, known at once
        location = response.headers["Location"]
        assert location.endswith(f"/v1.0/communications/calls/{call_id}/operations/{body['id']}")
        assert (await api_http.get(location)).json() == body | {"@odata.context": body["@odata.context"]}
        assert (await api_http.get(f"{CALLS}/{call_id}/participants/{invitee_id}")).status_code == 404  # ringing

        await receiver.wait_for(lambda r: ("updated", "participants") in changes(r, call_id)[1:])
        joined_after = time.monotonic() - t_request
        assert changes(receiver, call_id) == [("updated", "call"), ("deleted", "operation"), ("updated", "participants")]
        completed, roster = receiver.notifications()[1:]
        # notification - operation completed: the operation's path, its final state, the invitees
        assert completed["resourceUrl"] == f"/communications/calls/{call_id}/operations/{body['id']}"
        assert_has(
            {
                "@odata.type": "#microsoft.graph.inviteParticipantsOperation",
                "participants": [
                    {
                        "@odata.type": "#microsoft.graph.invitationParticipantInfo",
                        "identity": {
                            "@odata.type": "#microsoft.graph.identitySet",
                            "user": {
                                "@odata.type": "#microsoft.graph.identity",
                                "id": "278405a3-f568-4b3e-b684-009193463064",
                                "identityProvider": "AAD",
                            },
                        },
                    }
                ],
                "status": "completed",
                "clientContext": "f2fa86af-3c51-4bc2-8fc0-475452d9764f",
                "id": body["id"],
            },
            completed["resourceData"],
        )
        # notification - roster updated with the participant added, as the identity it was invited as
        (newcomer,) = roster["resourceData"]
        assert_has(
            {
                "@odata.type": "#microsoft.graph.participant",
                "id": invitee_id,
                "info": {
                    "@odata.type": "#microsoft.graph.participantInfo",
                    "identity": {
                        "@odata.type": "#microsoft.graph.identitySet",
                        "user": {"id": "278405a3-f568-4b3e-b684-009193463064", "identityProvider": "AAD"},
                    },
                    "endpointType": "default",
                },
                "mediaStreams": [{"mediaType": "audio", "sourceId": "1", "direction": "sendReceive", "serverMuted": False}],
                "isMuted": False,
                "isInLobby": False,
            },
            newcomer,
        )
        # it rang for the default ring delay, then it is a roster member like any other
        assert joined_after >= 1.4
        listed = (await api_http.get(f"{CALLS}/{call_id}/participants")).json()["value"]
        assert invitee_id in [p["id"] for p in listed]
        assert (await api_http.get(location)).json()["status"] == "completed"
        assert (await api_http.delete(f"{CALLS}/{call_id}")).status_code == 204


async def test_invite_two_participants_join_in_one_roster_update(api, api_http):
    async with CallbackReceiver() as receiver:
        call_id = await create_call(api_http, callbackUri=receiver.url)
        response = await api_http.post(f"{CALLS}/{call_id}/participants/invite", json=DOC_INVITE_TWO)
        assert response.status_code == 200, response.text
        echoed = response.json()["participants"]
        assert [p["identity"]["user"]["id"] for p in echoed] == [
            "7e1b4346-85a6-4bdd-abe3-d11c5d420efe", "1e126418-44a0-4a94-a6f8-0efe1ad71acb"
        ]
        await receiver.wait_for(lambda r: ("updated", "participants") in changes(r, call_id)[1:])
        assert changes(receiver, call_id) == [("updated", "call"), ("deleted", "operation"), ("updated", "participants")]
        roster = receiver.notifications()[-1]["resourceData"]
        assert [p["id"] for p in roster] == [p["participantId"] for p in echoed]
        # the sample voices in turn: two invitees, two different sources, two loops encoded
        assert api.app.state.mediamute.invitations.loops.encoded == 2


async def test_invite_replacing_a_peer_to_peer_call_ends_it(api, api_http):
    async with CallbackReceiver() as receiver:
        p2p = await create_call(api_http, callbackUri=receiver.url, targets=[{"identity": USER}])
        group = await create_call(api_http, callbackUri=receiver.url, chatInfo={"threadId": "19:meeting"})
        body = {  # the docs' example 3, naming a peer-to-peer call of ours, with a second invitee Graph ignores
            "participants": [
                {
                    "@odata.type": "#microsoft.graph.invitationParticipantInfo",
                    "replacesCallId": p2p,
                    "identity": {"@odata.type": "#microsoft.graph.identitySet", "user": USER["user"]},
                    "mediamute": {"ringDelaySeconds": 0.1, "source": "silence"},
                },
                {"identity": {"user": {"id": "ignored"}}},
            ],
            "clientContext": "f2fa86af-3c51-4bc2-8fc0-475452d9764f",
        }
        response = await api_http.post(f"{CALLS}/{group}/participants/invite", json=body)
        assert response.status_code == 200, response.text
        assert [p["identity"]["user"]["id"] for p in response.json()["participants"]] == [USER["user"]["id"]]
        await receiver.wait_for(lambda r: ("deleted", "call") in changes(r, p2p))
        # the invitee joined the group call, and the peer-to-peer call ended (each call's callbacks are in order;
        # two calls' are not ordered with each other)
        assert changes(receiver, group)[1:] == [("deleted", "operation"), ("updated", "participants")]
        assert changes(receiver, p2p) == [("updated", "call"), ("deleted", "call")]
        assert (await api_http.get(f"{CALLS}/{p2p}")).json()["state"] == "terminated"
        assert len((await api_http.get(f"{CALLS}/{group}/participants")).json()["value"]) == 2


# limits and errors --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "case, status, message",
    [
        ("two invitees in a peer-to-peer call", 400, "only supported for group calls"),
        ("an application", 400, "more than one bot"),
        ("no identity", 400, "exactly one of user, phone, guest"),
        ("a user and a phone", 400, "exactly one of user, phone, guest"),
        ("a user without id", 400, "identity.user.id is required"),
        ("a bad phone number", 400, "phone number"),
        ("an unknown source", 400, "participants.0.mediamute.source"),
        ("an unknown extension property", 400, "participants.0.mediamute.volume"),
        ("a negative ring delay", 400, "ringDelaySeconds"),
        ("audio routing groups", 400, "audio routing groups"),
        ("no invitees", 400, "participants"),
        ("a clientContext too long", 400, "clientContext"),
        ("this call replacing itself", 400, "replace itself"),
        ("a participantId in use", 409, "already in this call"),
        ("a participantId given twice", 400, "given twice"),
        ("an unknown call", 404, "Call not found"),
        ("an ended call", 409, "terminated"),
    ],
)
async def test_invite_refusals(api, api_http, case, status, message):
    call_id = await create_call(api_http)
    call = api.registry.get(call_id)
    one = invite(USER)
    body = {
        "two invitees in a peer-to-peer call": {"participants": one["participants"] * 2},
        "an application": invite({"application": {"id": "bot"}}),
        "no identity": invite({}),
        "a user and a phone": invite(USER | {"phone": {"id": "+15550100"}}),
        "a user without id": invite({"user": {"displayName": "Bob"}}),
        "a bad phone number": invite({"phone": {"id": "call me"}}),
        "an unknown source": invite(USER, source="../../etc/passwd"),
        "an unknown extension property": invite(USER, volume=11),
        "a negative ring delay": invite(USER, ringDelaySeconds=-1),
        "audio routing groups": {"participants": [{"identity": USER, "removeFromDefaultAudioRoutingGroup": True}]},
        "no invitees": {"participants": []},
        "a clientContext too long": one | {"clientContext": "x" * 257},
        "this call replacing itself": {"participants": [{"identity": USER, "replacesCallId": call_id}]},
        "a participantId in use": {"participants": [{"identity": USER, "participantId": call.app.id}]},
        "a participantId given twice": {"participants": [{"identity": USER, "participantId": "p-1"}] * 2},
    }.get(case, one)
    if case == "two invitees in a peer-to-peer call":
        call_id = await create_call(api_http, targets=[{"identity": USER}])
    elif case == "an unknown call":
        call_id = "9c2c0a1e-0000-4000-8000-000000000000"
    elif case == "an ended call":
        await api_http.delete(f"{CALLS}/{call_id}")
    response = await api_http.post(f"{CALLS}/{call_id}/participants/invite", json=body)
    assert_graph_error(response, status, message_part=message)
    if call_id in api.registry.calls:
        assert not api.registry.get(call_id).operations  # nothing was begun


# behaviour ------------------------------------------------------------------------------------------------------
async def test_a_phone_invitee_leaves_after_its_duration_and_a_hidden_one_stays_off_the_roster(api, api_http):
    async with CallbackReceiver() as receiver:
        call_id = await create_call(api_http, callbackUri=receiver.url)
        phone = invite({"phone": {"id": "+15550100"}}, ringDelaySeconds=0, durationSeconds=0.5, source="tone:440")
        phone["participants"].append({"identity": {"guest": {"displayName": "Ghost"}}, "hidden": True, "participantId": "ghost-1"})
        phone["mediamute"] = {"ringDelaySeconds": 0, "source": "silence"}  # the request's defaults; the invitee's win
        response = await api_http.post(f"{CALLS}/{call_id}/participants/invite", json=phone)
        assert response.status_code == 200, response.text
        phone_id = response.json()["participants"][0]["participantId"]
        await receiver.wait_for(lambda r: ("deleted", "participants") in changes(r, call_id))
        kinds = changes(receiver, call_id)
        assert kinds == [("updated", "call"), ("deleted", "operation"), ("updated", "participants"), ("deleted", "participants")]
        joined, left = (n["resourceData"] for n in receiver.notifications()[2:4])
        # the roster shows the phone (its number as id and name) and not the hidden guest
        assert [p["id"] for p in joined] == [phone_id]
        assert joined[0]["info"]["identity"]["phone"]["id"] == "+15550100"
        assert left[0]["id"] == phone_id and left[0]["removedState"]["reason"] == "left"
        call = api.registry.get(call_id)
        assert phone_id not in call.participants and "ghost-1" in call.participants
        listed = (await api_http.get(f"{CALLS}/{call_id}/participants")).json()["value"]
        assert "ghost-1" not in [p["id"] for p in listed]
        # a hidden participant is still addressable by id: read and mute it
        assert (await api_http.get(f"{CALLS}/{call_id}/participants/ghost-1")).json()["info"]["identity"]["guest"]["displayName"] == "Ghost"
        muted = await api_http.post(f"{CALLS}/{call_id}/participants/ghost-1/mute", json={})
        assert muted.status_code == 200 and not call.participant("ghost-1").gate.is_open


async def test_the_operation_fails_if_the_call_ends_while_the_invitees_ring(api, api_http):
    async with CallbackReceiver() as receiver:
        call_id = await create_call(api_http, callbackUri=receiver.url)
        response = await api_http.post(f"{CALLS}/{call_id}/participants/invite", json=invite(USER, ringDelaySeconds=30))
        operation_id = response.json()["id"]
        assert (await api_http.delete(f"{CALLS}/{call_id}")).status_code == 204
        await receiver.wait_for(lambda r: ("deleted", "call") in changes(r, call_id))
        assert changes(receiver, call_id) == [("updated", "call"), ("deleted", "operation"), ("deleted", "call")]
        failed = receiver.notifications()[1]["resourceData"]
        assert failed["id"] == operation_id and failed["status"] == "failed" and failed["resultInfo"]["code"] == 500
        operation = await api_http.get(f"{CALLS}/{call_id}/operations/{operation_id}")
        assert operation.json()["status"] == "failed"  # and nobody joined: no roster update above


async def test_thirty_invitees_share_one_encoded_loop_and_each_takes_the_receive_path(api, api_http):
    call_id = await create_call(api_http)
    body = {
        "participants": [{"identity": {"user": {"id": f"talker-{i}"}}} for i in range(30)],
        "mediamute": {"ringDelaySeconds": 0, "source": "tone:440"},
    }
    response = await api_http.post(f"{CALLS}/{call_id}/participants/invite", json=body)
    assert response.status_code == 200, response.text
    call = api.registry.get(call_id)
    await wait_until(lambda: len(call.participants) == 31, timeout=10)
    invitees = [p for p in call.participants.values() if p.kind == "remote"]
    assert all(isinstance(p.media, SimulatedParticipant) for p in invitees)
    assert api.app.state.mediamute.invitations.loops.encoded == 1
    await wait_until(lambda: all(p.gate.passed_packets >= 10 for p in invitees), timeout=10)
    # every stream is a real RTP stream of its own, validated like a WebRTC participant's
    assert len({p.media.ssrc for p in invitees}) == 30
    assert all(p.media.sequence_counters.accepted >= 10 and p.media.sequence_counters.dropped == 0 for p in invitees)
    assert all(p.media.received_audio_level_dbov == pytest.approx(-15, abs=1) for p in invitees)  # 8000 peak: -15 dBov
    # made inside the server, an invitee's packets cross no network: there is none to read or impair
    network = await api_http.get(f"/ext/calls/{call_id}/participants/{invitees[0].id}/network")
    assert_graph_error(network, 404, message_part="no network")
    # one pacing clock feeds them all: ticks mix all thirty at once
    ids = {p.id for p in invitees}
    assert max(len(ids.intersection(record.contributors)) for record in call.mixer.audit.latest(25)) == 30


# a real call ----------------------------------------------------------------------------------------------------
@pytest.mark.integration
async def test_an_invited_participant_is_heard_muted_and_removed_over_webrtc(server, http):
    async with CallbackReceiver() as receiver:
        call_id = await create_call(http, callbackUri=receiver.url)
        (alice,) = await join_all(server, call_id, tones(440))
        call = server.registry.get(call_id)
        try:
            response = await http.post(
                f"{CALLS}/{call_id}/participants/invite",
                json=invite({"user": {"id": "bob-1", "displayName": "Bob"}}, ringDelaySeconds=0.2, source="tone:660"),
            )
            assert response.status_code == 200, response.text
            bob_id = response.json()["participants"][0]["participantId"]
            await wait_until(lambda: bob_id in call.participants, timeout=10)
            bob = call.participant(bob_id)
            await hear_for(alice, 1.5)
            assert amplitude(alice, 660, time.monotonic() - 0.8) == pytest.approx(A, rel=0.1)  # heard at unity gain

            # a Graph mute of the simulated participant: its gate drops its packets, no frame of it is mixed
            sent = time.monotonic()
            muted = await http.post(f"{CALLS}/{call_id}/participants/{bob_id}/mute", json={"clientContext": "m"})
            assert muted.status_code == 200 and not bob.gate.is_open
            muted_at = call.operation(muted.json()["id"]).completed_monotonic
            dropped = bob.gate.dropped_packets
            await hear_for(alice, 1.0)
            assert_tone_stops(alice, 660, sent)
            assert call.mixer.audit.frames_from(bob_id, muted_at) == 0
            assert call.mixer.audit.frames_from(alice.participant_id, muted_at) > 30
            assert bob.gate.dropped_packets > dropped + 30  # it keeps sending; the gate drops
            # and like any muted talker, it shows as talking while muted (from its packets' RFC 6464 level)
            await receiver.wait_for(lambda r: any(
                isinstance(n["resourceData"], list) and n["resourceData"][0].get("mediamute", {}).get("talkingWhileMuted")
                for n in r.notifications()
            ))

            unmuted_sent = time.monotonic()
            assert (await http.post(f"/ext/calls/{call_id}/participants/{bob_id}/unmute", json={})).status_code == 200
            await hear_for(alice, 1.0)
            assert_tone_returns(alice, 660, unmuted_sent)

            deleted_sent = time.monotonic()
            assert (await http.delete(f"{CALLS}/{call_id}/participants/{bob_id}")).status_code == 204
            assert bob_id not in call.mixer
            await hear_for(alice, 0.8)
            assert_tone_stops(alice, 660, deleted_sent)
            assert server.app.state.mediamute.invitations.senders.__len__() == 0  # it stopped sending
            assert (await http.delete(f"{CALLS}/{call_id}")).status_code == 204
            await receiver.wait_for(lambda r: ("deleted", "call") in changes(r, call_id))
        finally:
            await leave_all([alice])

    assert changes(receiver, call_id) == [
        ("updated", "call"),  # established
        ("updated", "participants"),  # Alice joined
        ("deleted", "operation"),  # the invitation completed ...
        ("updated", "participants"),  # ... then Bob joined
        ("updated", "participants"),  # Bob server-muted
        ("updated", "participants"),  # Bob talks while muted (his tone goes on)
        ("updated", "participants"),  # Bob unmuted (which ends talking while muted)
        ("deleted", "participants"),  # Bob removed
        ("deleted", "call"),
    ]
    notes = receiver.notifications()
    assert [p["id"] for p in notes[3]["resourceData"]] == [bob_id]
    muted, talking, unmuted = (n["resourceData"][0] for n in notes[4:7])
    assert muted["mediaStreams"][0]["serverMuted"] is True and muted["mediamute"] == {"talkingWhileMuted": False}
    assert talking["isMuted"] is True and talking["mediamute"] == {"talkingWhileMuted": True}
    assert unmuted["isMuted"] is False and unmuted["mediamute"] == {"talkingWhileMuted": False}
