"""The two seed pages' examples as contract tests: their requests verbatim, their responses' shapes (ids aside)."""

from __future__ import annotations

import pytest

from mediamute.tokens import verify_callback

from .helpers import CALLS, CallbackReceiver, assert_contains, join_without_media

# seeds/001: participant: mute (v1.0)
SEED_MUTE_REQUEST = {"clientContext": "d45324c1-fcb5-430a-902c-f20af696537c"}
SEED_MUTE_RESPONSE = {
    "@odata.type": "#microsoft.graph.muteParticipantOperation",
    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#muteParticipantOperation",
    "id": "17e3b46c-f61d-4f4d-9635-c626ef18e6ad",
    "status": "completed",
    "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c",
}
SEED_NOTIFICATION = {
    "@odata.type": "#microsoft.graph.commsNotifications",
    "value": [
        {
            "@odata.type": "#microsoft.graph.commsNotification",
            "changeType": "updated",
            "resourceUrl": "/communications/calls/57dab8b1-894c-409a-b240-bd8beae78896/participants",
            "resourceData": [
                {
                    "@odata.type": "#microsoft.graph.participant",
                    "id": "2765eb15-01f8-47c6-b12b-c32111a4a86f",
                    "info": {
                        "identity": {"user": {"displayName": "Bob", "id": "5810cede-f3cc-42eb-b2c1-e9bd5d53ec96"}},
                        "region": "westus",
                        "languageId": "en-US",
                    },
                    "mediaStreams": [
                        {"mediaType": "audio", "label": "main-audio", "sourceId": "1", "direction": "sendReceive"}
                    ],
                    "isMuted": True,
                    "isInLobby": False,
                }
            ],
        }
    ],
}
# seeds/000: call: mute (beta draft); its response wraps the operation in "value" (a draft artefact, see README)
SEED_CALL_MUTE_REQUEST = {"clientContext": "Client Context value"}
SEED_CALL_MUTE_OPERATION = {
    "@odata.type": "#microsoft.graph.muteParticipantOperation",
    "id": "b4dc83be-83be-b4dc-be83-dcb4be83dcb4",
    "status": "String",
    "clientContext": "Client Context value",
    "resultInfo": {"@odata.type": "microsoft.graph.resultInfo"},
}

async def test_participant_mute_seed(api, api_http):
    http = api_http
    async with CallbackReceiver() as receiver:
        created = await http.post(CALLS, json={"callbackUri": receiver.url})
        call_id = created.json()["id"]
        # Bob as WHIP would seat him (?displayName=Bob&region=westus; languageId defaults to en-US), minus the media
        bob = join_without_media(api.registry.get(call_id), "Bob", region="westus", language_id="en-US")
        response = await http.post(
            f"/v1.0/communications/calls/{call_id}/participants/{bob.id}/mute",
            json=SEED_MUTE_REQUEST,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        ours_context = body["@odata.context"]
        assert ours_context == f"{api.base_url}/v1.0/$metadata#muteParticipantOperation"
        assert_contains(SEED_MUTE_RESPONSE, body | {"@odata.context": SEED_MUTE_RESPONSE["@odata.context"]})
        location = response.headers["Location"]
        assert location == f"{api.base_url}/v1.0/communications/calls/{call_id}/operations/{body['id']}"
        resolved = await http.get(location)
        assert resolved.status_code == 200
        assert {k: resolved.json()[k] for k in ("@odata.type", "id", "status", "clientContext")} == {
            k: body[k] for k in ("@odata.type", "id", "status", "clientContext")
        }

        def muted_update(r: CallbackReceiver) -> bool:
            return any(
                n["changeType"] == "updated" and n["resourceUrl"].endswith("/participants")
                and any(p["isMuted"] for p in n["resourceData"])
                for n in r.notifications()
            )

        await receiver.wait_for(muted_update)
        delivery = next(d for d in receiver.accepted if '"isMuted":true' in d.body.decode())
        payload = delivery.json
        assert len(payload["value"]) == 1
        expected = SEED_NOTIFICATION | {
            "value": [SEED_NOTIFICATION["value"][0] | {"resourceUrl": f"/communications/calls/{call_id}/participants"}]
        }
        assert_contains(expected, payload)
        participant = payload["value"][0]["resourceData"][0]
        assert participant["id"] == bob.id
        assert participant["mediaStreams"][0]["serverMuted"] is True
        # the callback is signed: its bearer token verifies with the public key and binds this exact body
        jwks = (await http.get("/ext/keys")).json()
        token = delivery.headers["authorization"].removeprefix("Bearer ")
        assert verify_callback(token, delivery.body, receiver.url, jwks)["mm:kind"] == "callback"
        assert (await http.delete(f"{CALLS}/{call_id}")).status_code == 204  # delivered before the receiver closes
        await receiver.wait_for(lambda r: r.notifications()[-1]["changeType"] == "deleted")


@pytest.mark.parametrize("prefix", ["/beta", "/v1.0"])
async def test_call_mute_seed(api, api_http, prefix):
    http = api_http
    call_id = (await http.post(f"{prefix}/communications/calls", json={})).json()["id"]
    response = await http.post(
        f"{prefix}/communications/calls/{call_id}/mute",
        content=b'{\n  "clientContext": "Client Context value"\n}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200
    body = response.json()
    # the seed's placeholder status "String" is a real status here: the mute completed synchronously
    assert body["status"] == "completed"
    assert_contains(
        SEED_CALL_MUTE_OPERATION,
        body,
        placeholders=("$.status", "$.resultInfo.@odata.type"),
    )
    assert body["resultInfo"]["@odata.type"] == "#microsoft.graph.resultInfo"
    assert response.headers["Location"].endswith(f"{prefix}/communications/calls/{call_id}/operations/{body['id']}")
    call = api.registry.get(call_id)
    assert call.app.server_muted  # the application's own participant is gated


async def test_a_running_operation_resolves_while_it_runs_and_its_end_is_notified_as_graph_does(api, api_http):
    """The lifecycle every media action (playPrompt, recordResponse, hold music, invite) shares: answered `running`
    with a null resultInfo, resolvable at its Location, then one `deleted` notification on the operation's path
    carrying its final state (`@odata.id` = that path, resultInfo 200/0), after which GET shows it completed."""
    from mediamute.calls import Operation

    call_id = (await api_http.post(CALLS, json={})).json()["id"]
    call = api.registry.get(call_id)
    heard: list[dict] = []
    api.hub.subscribe(call_id, heard.append)
    operation = call.begin(Operation("playPrompt", call.app.id, "ctx-1"))
    running = (await api_http.get(f"{CALLS}/{call_id}/operations/{operation.id}")).json()
    assert running["@odata.type"] == "#microsoft.graph.playPromptOperation"
    assert (running["status"], running["resultInfo"], running["clientContext"]) == ("running", None, "ctx-1")
    assert "completionReason" not in running  # absent until the prompt ended
    assert not heard

    call.finish(operation, completion_reason="completedSuccessfully")
    (message,) = heard
    (notification,) = message["body"]["value"]
    path = f"/communications/calls/{call_id}/operations/{operation.id}"
    assert (notification["changeType"], notification["resourceUrl"]) == ("deleted", path)
    data = notification["resourceData"]
    assert data["@odata.type"] == "#microsoft.graph.playPromptOperation" and data["@odata.id"] == path
    assert (data["id"], data["status"], data["clientContext"]) == (operation.id, "completed", "ctx-1")
    assert (data["resultInfo"]["code"], data["resultInfo"]["subcode"]) == (200, 0)
    assert data["completionReason"] == "completedSuccessfully"
    done = (await api_http.get(f"{CALLS}/{call_id}/operations/{operation.id}")).json()
    assert done["status"] == "completed" and "@odata.id" not in done


async def test_operation_types_carry_their_own_properties(api, api_http):
    from mediamute.calls import Operation

    call_id = (await api_http.post(CALLS, json={})).json()["id"]
    call = api.registry.get(call_id)
    record = call.begin(Operation("record", call.app.id, None))
    call.finish(record, completion_reason="maxRecordDurationReached", subcode=8515,
                recordingLocation="http://127.0.0.1:1/r.wav", recordingAccessToken="t", notAProperty=1)
    body = (await api_http.get(f"{CALLS}/{call_id}/operations/{record.id}")).json()
    assert body["@odata.type"] == "#microsoft.graph.recordOperation"
    assert (body["recordingLocation"], body["recordingAccessToken"]) == ("http://127.0.0.1:1/r.wav", "t")
    assert body["completionReason"] == "maxRecordDurationReached" and body["resultInfo"]["subcode"] == 8515
    assert "notAProperty" not in body  # details only fill the properties the type defines
