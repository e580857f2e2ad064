"""Schemathesis hooks for mediamute's API run (loaded through SCHEMATHESIS_HOOKS by tests/test_openapi_conformance.py).

A WHIP body is SDP, which schemathesis cannot make: positive cases send a real offer aiortc made (audio, host
candidates on 127.0.0.1), so a schema-valid join really joins."""

from __future__ import annotations

import asyncio

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
