"""No request, however malformed, gets a 5xx or a traceback: random bodies, content types and ids against every
JSON endpoint, each answer a success or a Graph error envelope."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import CALLS, admin_token

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["clientContext", "callbackUri", "mediamute", "participants", "muted", "targets",
                         "requestedModalities", "@odata.type", "subject", "x"]) | st.text(max_size=10),
        children, max_size=4),
    max_leaves=12,
)
RAW_BODIES = st.one_of(
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.just(b"{"),
    st.just(b'{"clientContext": "' + b"x" * 300 + b'"}'),
)
CONTENT_TYPES = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", "application/sdp", ""])
IDS = st.sampled_from(["{call}", "{app}", "nope", "%00", "x" * 300, "../../etc/passwd", "00000000-0000-0000-0000-000000000000"])
ROUTES = [
    ("POST", CALLS),
    ("POST", "/beta/communications/calls/{c}/participants/{p}/mute"),
    ("POST", "/v1.0/communications/calls/{c}/mute"),
    ("POST", "/v1.0/communications/calls/{c}/unmute"),
    ("POST", "/beta/communications/calls/{c}/participants/muteAll"),
    ("POST", "/ext/calls/{c}/participants/{p}/unmute"),
    ("POST", "/ext/calls/{c}/participants/{p}/selfMute"),
    ("POST", "/ext/calls/{c}/joinTokens"),
    ("POST", "/whip/{c}"),
    ("GET", "/v1.0/communications/calls/{c}/operations/{p}"),
    ("DELETE", "/v1.0/communications/calls/{c}/participants/{p}"),
    ("PATCH", "/v1.0/communications/calls/{c}"),
]


async def test_malformed_requests_never_get_a_server_error(api, api_http):
    created = (await api_http.post(CALLS, json={})).json()
    known = {"{call}": created["id"], "{app}": created["myParticipantId"]}

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(ROUTES), IDS, IDS, RAW_BODIES, CONTENT_TYPES)
    def examples(route, call_id, participant_id, body, content_type):
        cases.append((route, known.get(call_id, call_id), known.get(participant_id, participant_id), body, content_type))

    cases: list = []
    examples()
    # in-process: an exception the app did not turn into a response would raise here, not hide behind a 500
    async with api.client(admin_token(api)) as client:
        for (method, template), call_id, participant_id, body, content_type in cases:
            url = template.replace("{c}", call_id).replace("{p}", participant_id)
            request_headers = {"Content-Type": content_type} if content_type else {}
            response = await client.request(method, url, content=body, headers=request_headers)
            assert response.status_code < 500, (method, url, body, response.text)
            assert "Traceback" not in response.text
            if response.status_code >= 400:
                error = response.json()["error"]
                assert error["code"] and error["message"] and error["innerError"]["request-id"], response.text
    assert api.registry.get(created["id"]).clock.running  # the call survived all of it
