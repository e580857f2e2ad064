"""Bad input gets a precise 4xx in Graph's error shape, and the call goes on for everyone else."""

from __future__ import annotations

import time

import pytest
from aiortc import RTCPeerConnection

from .helpers import A, amplitude, assert_graph_error, hear_for, join_all, leave_all, tones

pytestmark = pytest.mark.integration


async def video_only_offer() -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("video")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


async def test_bad_requests_are_refused_precisely_and_the_call_goes_on(server, http, call_id):
    a, b = await join_all(server, call_id, tones(440, 880))
    call = server.registry.get(call_id)
    try:
        video_offer = await video_only_offer()  # made before measuring: the test's own peer connection costs CPU
        await hear_for([a, b], 1.0)
        t0 = time.monotonic()
        sdp_headers = {"Content-Type": "application/sdp"}

        r = await http.post(f"/whip/{call_id}", content="this is not sdp", headers=sdp_headers)
        assert_graph_error(r, 400, message_part="not an SDP offer")
        r = await http.post(f"/whip/{call_id}", content="v=0\r\no=broken\r\nm=audio x\r\n", headers=sdp_headers)
        assert_graph_error(r, 400, message_part="SDP")
        r = await http.post(f"/whip/{call_id}", content=video_offer, headers=sdp_headers)
        assert_graph_error(r, 400, message_part="no audio section")
        r = await http.post(f"/whip/{call_id}", content=b"\xff\xfe\x00", headers=sdp_headers)
        assert_graph_error(r, 400, message_part="UTF-8")
        r = await http.post(f"/whip/{call_id}", json={"sdp": "v=0"})
        assert_graph_error(r, 415, message_part="application/sdp")
        r = await http.post("/whip/00000000-0000-0000-0000-000000000000", content="v=0\r\n", headers=sdp_headers)
        assert_graph_error(r, 404, code="9997", message_part="Call not found")
        r = await http.delete(f"/whip/{call_id}/not-a-participant")
        assert_graph_error(r, 404, message_part="not found")
        r = await http.patch(f"/whip/{call_id}/{a.participant_id}", content="a=candidate", headers=sdp_headers)
        assert_graph_error(r, 405)

        mute = f"/v1.0/communications/calls/{call_id}/participants"
        r = await http.post(f"{mute}/unknown/mute", json={})
        assert_graph_error(r, 404, message_part="not found")
        r = await http.post(
            f"{mute}/{a.participant_id}/mute", content="{not json", headers={"Content-Type": "application/json"}
        )
        assert_graph_error(r, 400, message_part="not valid JSON")
        r = await http.post(f"{mute}/{a.participant_id}/mute", json={"clientContext": "x" * 257})
        assert_graph_error(r, 400, message_part="256")
        r = await http.post(f"{mute}/{a.participant_id}/mute", json={"clientContext": 42})
        assert_graph_error(r, 400, message_part="string")
        r = await http.get("/v1.0/communications/calls/nope/operations/nope")
        assert_graph_error(r, 404, code="9997")
        r = await http.put(f"/v1.0/communications/calls/{call_id}", json={})
        assert_graph_error(r, 405)
        r = await http.get("/v1.0/no/such/path", headers={"client-request-id": "abc-123"})
        error = assert_graph_error(r, 404)
        assert error["innerError"]["client-request-id"] == "abc-123"

        # nobody was muted by any of that, and the two tones still flow both ways
        assert all(p.gate.is_open for p in call.participants.values())
        await hear_for([a, b], 1.0)
        for listener, freq in ((a, 880), (b, 440)):
            assert amplitude(listener, freq, time.monotonic() - 0.6) == pytest.approx(A, rel=0.1)
        # both were mixed all through the bad requests (a second of each heard after them)
        assert call.mixer.audit.frames_from(a.participant_id, t0) > 50
        assert call.mixer.audit.frames_from(b.participant_id, t0) > 50
        assert set(call.participants) == {call.app.id, a.participant_id, b.participant_id}
    finally:
        await leave_all([a, b])
