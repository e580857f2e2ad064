"""Every endpoint × {no token, wrong role, delegated token, good token}, plus expired/forged/malformed tokens."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from aiortc import RTCPeerConnection

from mediamute.calls.ivr import ReadyMedia
from mediamute.rtc.ice import rtc_configuration
from mediamute.settings import ServerSettings
from mediamute.tokens import (
    ROLE_ACCESS_MEDIA,
    ROLE_INITIATE,
    ROLE_INITIATE_GROUP_CALL,
    ROLE_JOIN_GROUP_CALL,
    ROLE_JOIN_GROUP_CALL_AS_GUEST,
    SEED_ROLE_SPELLINGS,
    SigningKey,
)

from .helpers import CALLS as G, InProcessMediamute, assert_graph_error, join_without_media
CREATE = [ROLE_INITIATE, ROLE_INITIATE_GROUP_CALL]
JOIN = [ROLE_JOIN_GROUP_CALL, ROLE_JOIN_GROUP_CALL_AS_GUEST]
SELF = [ROLE_INITIATE, ROLE_ACCESS_MEDIA]
IVR = [ROLE_INITIATE, ROLE_ACCESS_MEDIA]  # playPrompt, cancelMediaProcessing, sendDtmfTones
MEDIA = [ROLE_ACCESS_MEDIA]  # recordResponse, subscribeToTone
# a role each endpoint does not accept (None: every calls role is accepted there)
OTHER = {
    "create": ROLE_JOIN_GROUP_CALL, "join": ROLE_INITIATE, "self": ROLE_JOIN_GROUP_CALL, "mint": ROLE_ACCESS_MEDIA,
    "ivr": ROLE_JOIN_GROUP_CALL, "media": ROLE_INITIATE, "invite": ROLE_INITIATE,
}
INVITE_BODY = {"participants": [{"identity": {"user": {"id": "u-1"}}, "mediamute": {"source": "silence", "ringDelaySeconds": 0}}]}

# name, method, path (with {call}, {participant}, {app}, {operation}), body, accepted roles group, success status
ENDPOINTS = [
    ("create call", "POST", G, {}, "create", 201),
    ("get call", "GET", G + "/{call}", None, "read", 200),
    ("delete call", "DELETE", G + "/{call}", None, "create", 204),
    ("list participants", "GET", G + "/{call}/participants", None, "read", 200),
    ("get participant", "GET", G + "/{call}/participants/{app}", None, "read", 200),
    ("delete participant", "DELETE", G + "/{call}/participants/{participant}", None, "join", 204),
    ("participant mute", "POST", G + "/{call}/participants/{app}/mute", {"clientContext": "c"}, "join", 200),
    ("call mute", "POST", G + "/{call}/mute", {"clientContext": "c"}, "self", 200),
    ("call unmute", "POST", G + "/{call}/unmute", {"clientContext": "c"}, "self", 200),
    ("subscribe to tone", "POST", G + "/{call}/subscribeToTone", {"clientContext": "c"}, "media", 200),
    ("subscribe to tone (beta)", "POST", "/beta/communications/calls/{call}/subscribeToTone", {}, "media", 200),
    ("get operation", "GET", G + "/{call}/operations/{operation}", None, "read", 200),
    ("mute all (beta)", "POST", "/beta/communications/calls/{call}/participants/muteAll", {}, "join", 200),
    ("invite participants", "POST", G + "/{call}/participants/invite", INVITE_BODY, "invite", 200),
    ("play prompt", "POST", G + "/{call}/playPrompt", {"prompts": [{"mediaInfo": {"uri": "prompt.wav"}}]}, "ivr", 200),
    ("record response", "POST", G + "/{call}/recordResponse", {}, "media", 200),
    ("cancel media processing", "POST", G + "/{call}/cancelMediaProcessing", {}, "ivr", 200),
    ("send DTMF tones", "POST", G + "/{call}/sendDtmfTones", {"tones": ["tone1"]}, "ivr", 200),
    ("start hold music", "POST", G + "/{call}/participants/{participant}/startHoldMusic", {}, "join", 202),
    ("stop hold music", "POST", G + "/{call}/participants/{held}/stopHoldMusic", {}, "join", 202),
    ("unmute participant (ext)", "POST", "/ext/calls/{call}/participants/{app}/unmute", {}, "join", 200),
    ("stats (ext)", "GET", "/ext/calls/{call}/stats", None, "read", 200),
    ("join token (ext)", "POST", "/ext/calls/{call}/joinTokens", None, "mint", 200),
]
GROUPS = {
    "create": CREATE, "join": JOIN, "self": SELF, "mint": CREATE + JOIN, "read": CREATE + JOIN + [ROLE_ACCESS_MEDIA],
    "ivr": IVR, "media": MEDIA, "invite": [ROLE_INITIATE_GROUP_CALL],
}


async def prepare(api: InProcessMediamute, http: httpx.AsyncClient, path: str) -> str:
    created = (await http.post(G, json={})).json()
    call_id, app_id = created["id"], created["myParticipantId"]
    participant_id = "none"
    if "{participant}" in path:  # a roster member to remove: the permission check needs no media
        participant_id = join_without_media(api.registry.get(call_id), "tone-440").id
    operation_id = "none"
    if "{operation}" in path:
        operation_id = (await http.post(f"{G}/{call_id}/mute", json={})).json()["id"]
    held_id = "none"
    if "{held}" in path:  # a roster member on hold, to take off it
        call = api.registry.get(call_id)
        held_id = join_without_media(call, "on hold").id
        call.hold.start(held_id, ReadyMedia(np.zeros(960, np.int16)), None)
    return path.format(call=call_id, app=app_id, participant=participant_id, operation=operation_id, held=held_id)


SEED_SPELLING = {documented: seed for seed, documented in SEED_ROLE_SPELLINGS.items()}


@pytest.mark.parametrize("variant", ["none", "wrong role", "delegated", "good", "good (seed spelling)", "good (other case)"])
@pytest.mark.parametrize("name, method, path, body, group, success", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
async def test_endpoint_permissions(api, api_http, name, method, path, body, group, success, variant):
    url = await prepare(api, api_http, path)
    key = api.signing_key
    tokens = {
        "none": None,
        "wrong role": key.app_token([OTHER.get(group, "User.Read.All")]),
        "delegated": key.delegated_token("Calls.Initiate.All Calls.JoinGroupCalls.All"),
        "good": key.app_token([GROUPS[group][-1]]),  # the least obvious accepted role of the group
        # the seed page's plural spelling of a role (where it has one), and a role in another letter case
        "good (seed spelling)": key.app_token(
            [SEED_SPELLING[r] for r in GROUPS[group] if r in SEED_SPELLING][-1:] or [GROUPS[group][-1]]
        ),
        "good (other case)": key.app_token([GROUPS[group][-1].upper()]),
    }
    async with api.client(tokens[variant]) as client:
        response = await client.request(method, url, json=body) if body is not None else await client.request(method, url)
    if variant == "none":
        error = assert_graph_error(response, 401, code="InvalidAuthenticationToken")
        assert response.headers["www-authenticate"] == "Bearer"
        assert "empty" in error["message"]
    elif variant in ("wrong role", "delegated"):
        error = assert_graph_error(response, 403, code="Authorization_RequestDenied")
        if variant == "delegated":
            assert "Delegated permissions are not supported" in error["message"]
    else:
        assert response.status_code == success, response.text


async def test_whip_join_needs_an_app_or_join_token(server, http, call_id):
    pc = RTCPeerConnection(rtc_configuration())
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    await pc.close()
    key = server.signing_key
    other_call = (await http.post(G, json={})).json()["id"]

    async def join(token):
        headers = {"Content-Type": "application/sdp"} | ({"Authorization": f"Bearer {token}"} if token else {})
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            return await client.post(f"/whip/{call_id}", content=offer, headers=headers)

    assert_graph_error(await join(None), 401)
    assert_graph_error(await join(key.delegated_token()), 403)
    assert_graph_error(await join(key.join_token(other_call)), 403, message_part="another call")
    minted = (await http.post(f"/ext/calls/{call_id}/joinTokens")).json()
    assert minted["whipUrl"].endswith(f"/whip/{call_id}")
    response = await join(minted["token"])
    assert response.status_code == 201, response.text
    session = response.headers["Mediamute-Session-Token"]
    assert_graph_error(await join(session), 403, message_part="session token")
    # a session token acts for its participant only: it cannot mute others through Graph
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10, headers={"Authorization": f"Bearer {session}"}) as c:
        r = await c.post(f"{G}/{call_id}/mute", json={})
        assert_graph_error(r, 403, message_part="application token")
        r = await c.delete(response.headers["Location"])
        assert r.status_code == 200


@pytest.mark.parametrize(
    "token, message",
    [
        ("not-a-jwt", "validation failure"),
        ("eyJhbGciOiJub25lIn0.eyJyb2xlcyI6WyJDYWxscy5Jbml0aWF0ZS5BbGwiXX0.", "validation failure"),
        ("forged", "validation failure"),
        ("expired", "expired"),
    ],
)
async def test_bad_tokens_are_401(api, token, message):
    if token == "forged":  # right shape, right claims, signed by another key
        token = SigningKey.generate().app_token([ROLE_INITIATE])
    elif token == "expired":
        token = api.signing_key.app_token([ROLE_INITIATE], lifetime=-10)
    async with api.client() as client:
        response = await client.post(G, json={}, headers={"Authorization": f"Bearer {token}"})
        assert_graph_error(response, 401, code="InvalidAuthenticationToken", message_part=message)
        response = await client.post(G, json={}, headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert_graph_error(response, 401, message_part="Bearer")


async def test_no_auth_mode_accepts_anyone(api):
    async with InProcessMediamute(ServerSettings(auth=False, ephemeral_key=True, log_level="warning")) as open_api:
        async with open_api.client() as client:
            assert (await client.post(G, json={})).status_code == 201
    async with api.client() as client:  # the same request where auth is on
        assert_graph_error(await client.post(G, json={}), 401)
