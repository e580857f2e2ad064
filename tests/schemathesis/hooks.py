"""Schemathesis hooks for mediamute's API run (loaded through SCHEMATHESIS_HOOKS by tests/test_openapi_conformance.py).

A WHIP body is SDP, which schemathesis cannot make: positive cases send a real offer aiortc made (audio, host
candidates on 127.0.0.1), so a schema-valid join really joins. The run's load stays bounded: invitations are cut
to two short-lived invitees (`before_call`), and a call created to exercise the fault spec ends at once
(`after_call`), since every live call runs its own 20 ms mixer clock; such a call's API faults refuse with 429 only."""

from __future__ import annotations

import asyncio

import httpx
import schemathesis
from aiortc import RTCConfiguration, RTCPeerConnection
from hypothesis import strategies as st


async def _offer() -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


OFFER = asyncio.run(_offer()).encode()

schemathesis.openapi.media_type("application/sdp", st.just(OFFER))

INVITE = "/participants/invite"
RUN_INVITEES = 2
"""Invitees per invite in this run: each is a simulated talker (an Opus decode every 20 ms), and the run invites
into live calls it created, so bodies are cut to two invitees who leave after half a second (schemathesis
revalidates the changed body, so a case that became valid is held to the positive checks)."""


@schemathesis.hook
def before_call(context, case, kwargs):
    body = case.body
    if case.method == "POST" and case.path.endswith("/communications/calls"):
        only_429s(body)
    if not case.path.endswith(INVITE) or not isinstance(body, dict) or not isinstance(body.get("participants"), list):
        return
    body["participants"] = body["participants"][:RUN_INVITEES]
    for invitee in body["participants"]:
        if not isinstance(invitee, dict):
            continue
        if invitee.get("mediamute") is None:
            invitee["mediamute"] = {}
        if isinstance(invitee["mediamute"], dict) and invitee["mediamute"].get("durationSeconds") is None:
            invitee["mediamute"]["durationSeconds"] = 0.5


def only_429s(body) -> None:
    """A call created with API faults refuses requests on its paths; an injected 503 is a server error to the
    not_a_server_error check, so this run's fault specs refuse with 429 only (tests/test_faults.py covers 503)."""
    extension = body.get("mediamute") if isinstance(body, dict) else None
    faults = extension.get("faults") if isinstance(extension, dict) else None
    if isinstance(faults, dict) and isinstance(faults.get("api"), dict):
        faults["api"]["statuses"] = [429]


@schemathesis.hook
def after_call(context, case, response):
    body = case.body
    if case.method != "POST" or not case.path.endswith("/communications/calls") or response.status_code != 201:
        return
    if not (isinstance(body, dict) and isinstance(body.get("mediamute"), dict) and "faults" in body["mediamute"]):
        return
    call_url = f"{response.request.url.rstrip('/')}/{response.json()['id']}"
    headers = {"Authorization": response.request.headers.get("Authorization", "")}
    for _ in range(3):  # the call's own API faults may refuse its DELETE too (429/503); one with rate 1 stays
        if httpx.delete(call_url, headers=headers, timeout=10).status_code not in (429, 503):
            return
