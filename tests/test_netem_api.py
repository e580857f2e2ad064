"""The network resource and WHIP's network parameter, in-process (no media): bad values are 400s naming the field,
a refused join creates nobody, and the right tokens may change a network. The success paths, with real media, are
in tests/test_network_integration.py."""

from __future__ import annotations

import pytest

from mediamute.api.network import PROFILE_SCHEMA
from mediamute.media.netem import PRESET_NAMES, PROFILE_FIELDS
from mediamute.tokens import ROLE_INITIATE

from .helpers import admin_token, assert_graph_error, create_call, join_without_media

OFFER = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


def network_path(call_id: str, participant_id: str) -> str:
    return f"/ext/calls/{call_id}/participants/{participant_id}/network"


@pytest.mark.parametrize(
    ("params", "headers", "says"),
    [
        ({"network": "satellite"}, {}, "network: unknown network preset 'satellite'"),
        ({"network": '{"uplink": {"loss": 1.5}}'}, {}, "network.uplink.loss: must be at most 1, got 1.5"),
        ({"network": '{"delayMs": 10'}, {}, "network: is not valid JSON"),
        ({}, {"Mediamute-Network": '{"jitterMs": -3}'}, "network.jitterMs: must be at least 0"),
        ({"network": "wifi"}, {"Mediamute-Network": "wifi"}, "not both"),
    ],
)
async def test_a_bad_network_at_join_is_a_400_naming_the_field_and_creates_nobody(api, api_http, params, headers, says):
    call_id = await create_call(api_http)
    response = await api_http.post(
        f"/whip/{call_id}", params={"displayName": "Eve", **params}, content=OFFER,
        headers={"Content-Type": "application/sdp", **headers},
    )
    assert_graph_error(response, 400, "BadRequest", says)
    assert [p.kind for p in api.registry.get(call_id).participants.values()] == ["application"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"uplink": {"loss": 2}}, "uplink.loss: must be at most 1, got 2"),
        ({"downlink": {"preset": "lossy", "reorderMs": 0}}, "downlink.reorderMs: must be at least 1"),
        ({"downlink": "satellite"}, "downlink: unknown network preset"),
        ({"both": "wifi"}, "both: not a direction"),
        ({"uplink": {"loss": 0.1}, "lossy": True}, "lossy: not a direction"),
        (["wifi"], "must be an object"),
    ],
)
async def test_a_bad_profile_is_a_400_naming_the_field(api, api_http, body, says):
    call_id = await create_call(api_http)
    bob = join_without_media(api.registry.get(call_id), "Bob")
    assert_graph_error(await api_http.put(network_path(call_id, bob.id), json=body), 400, "BadRequest", says)


async def test_the_body_must_be_json(api, api_http):
    call_id = await create_call(api_http)
    bob = join_without_media(api.registry.get(call_id), "Bob")
    path = network_path(call_id, bob.id)
    assert_graph_error(await api_http.put(path, content=b"{", headers={"Content-Type": "application/json"}), 400, message_part="not valid JSON")
    assert_graph_error(await api_http.put(path, content=b"wifi", headers={"Content-Type": "text/plain"}), 415)


async def test_only_participants_with_media_have_a_network(api, api_http):
    call_id = await create_call(api_http)
    call = api.registry.get(call_id)
    bob = join_without_media(call, "Bob")
    for response in (
        await api_http.get(network_path(call_id, call.app.id)),
        await api_http.put(network_path(call_id, call.app.id), json={"uplink": "wifi"}),
    ):
        assert_graph_error(response, 404, "itemNotFound", "application's own participant runs inside the server")
    assert_graph_error(await api_http.get(network_path(call_id, bob.id)), 404, "itemNotFound", "no media connection")
    assert_graph_error(await api_http.get(network_path(call_id, "nobody")), 404, "itemNotFound")
    assert_graph_error(await api_http.get(network_path("no-call", bob.id)), 404, "9997")


async def test_who_may_change_a_network(api, api_http):
    call_id = await create_call(api_http)
    call = api.registry.get(call_id)
    bob, carol = join_without_media(call, "Bob"), join_without_media(call, "Carol")
    key = api.signing_key
    body = {"uplink": "wifi"}
    cases = [
        (key.app_token([ROLE_INITIATE]), 403),  # an app without a participant-mute role
        (key.join_token(call_id), 403),
        (key.session_token(call_id, carol.id), 403),  # another participant's session
        (key.session_token(call_id, bob.id), 404),  # its own: allowed (404: Bob has no media here)
        (admin_token(api), 404),
    ]
    for token, status in cases:
        async with api.client(token) as http:
            assert (await http.put(network_path(call_id, bob.id), json=body)).status_code == status
    async with api.client(key.session_token(call_id, carol.id)) as http:  # any token of the call may read, as the stats
        assert (await http.get(network_path(call_id, bob.id))).status_code == 404


async def test_the_openapi_document_states_the_profile_table(api, api_http):
    document = (await api_http.get("/openapi.json")).json()
    profile = document["components"]["schemas"]["NetworkProfile"]
    assert profile == PROFILE_SCHEMA and profile["additionalProperties"] is False
    for field in PROFILE_FIELDS:
        assert (profile["properties"][field.wire]["minimum"], profile["properties"][field.wire]["maximum"]) == (field.minimum, field.maximum)
    whip = document["paths"]["/whip/{call_id}"]["post"]
    network = next(p for p in whip["parameters"] if p["name"] == "network")
    assert network["schema"]["enum"] == list(PRESET_NAMES)
    put = document["paths"]["/ext/calls/{call_id}/participants/{participant_id}/network"]["put"]
    assert set(put["responses"]) >= {"200", "400", "401", "403", "404", "409", "415"}
