"""The send path of one listener's mix, per tick of 16 packets, over a real DTLS-SRTP connection on loopback.

- lean: `LeanRtpSender.send` — header patch, SRTP protect, one datagram write (rtc/rtp_send.py);
- aiortc: what `RTCRtpSender._run_rtp` does per packet for a pre-encoded packet (pack it, build an `RtpPacket`,
  its extensions with the NTP clock, serialize, `await RTCDtlsTransport._send_rtp` → SRTP → aioice → sendto), run
  without its task switch: aiortc's real path also wakes one coroutine per packet through the track's queue, which
  the server profile counts separately (bench/RESULTS.md).

Each round sends 16 packets (one per listener of an N = 16 call); the loop runs between rounds so the receiving
peer drains its socket. Divide by 16 for one packet.
"""

from __future__ import annotations

import asyncio

import av
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription, clock
from aiortc.codecs import get_encoder
from aiortc.rtp import RtpPacket

from mediamute.rtc.codec import TIME_BASE, encode_loop
from mediamute.rtc.ice import rtc_configuration
from mediamute.rtc.rtp_send import SENDER_EXTENSIONS_MAP, SENDER_MID, SENDER_STARTED, LeanRtpSender
from mediamute.rtc.tracks import MixTrack
from mediamute.sources import ToneSource

PACKETS = 16


@pytest.fixture
def connection():
    """Two aiortc peers connected over loopback (one pair per benchmark: an SRTP stream never reuses a packet index);
    the first one's audio transceiver sends to the second."""
    loop = asyncio.new_event_loop()

    async def connect():
        sender, receiver = RTCPeerConnection(rtc_configuration()), RTCPeerConnection(rtc_configuration())
        transceiver = sender.addTransceiver(MixTrack(), direction="sendrecv")
        receiver.addTransceiver("audio", direction="sendrecv")
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(RTCSessionDescription(receiver.localDescription.sdp, "answer"))
        async with asyncio.timeout(20):
            while not getattr(transceiver.sender, SENDER_STARTED, False):
                await asyncio.sleep(0.01)
        return sender, receiver, transceiver

    sender, receiver, transceiver = loop.run_until_complete(connect())
    yield loop, transceiver
    async def close() -> None:
        await asyncio.gather(sender.close(), receiver.close())

    loop.run_until_complete(close())
    loop.close()


@pytest.fixture(scope="module")
def payloads() -> list[bytes]:
    return encode_loop([ToneSource(440, 8000).next_frame() for _ in range(PACKETS)])


def drain(loop: asyncio.AbstractEventLoop):
    loop.run_until_complete(asyncio.sleep(0.002))  # the receiving peer reads what the round sent
    return (), {}


def test_send_tick_lean(benchmark, connection, payloads):
    loop, transceiver = connection

    async def attach() -> LeanRtpSender:
        return LeanRtpSender.attach(transceiver)

    lean = loop.run_until_complete(attach())
    pts = iter(range(0, 10**12, 960))

    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1
        for payload in payloads:
            lean.send(payload, next(pts))

    benchmark.pedantic(tick, setup=lambda: drain(loop), rounds=300, iterations=1)
    assert ticks >= 1 and lean.packets == ticks * PACKETS and lean.dropped_errors == 0  # (one round under --benchmark-disable)


def test_send_tick_aiortc_packetizer(benchmark, connection, payloads):
    loop, transceiver = connection
    sender = transceiver.sender
    dtls = sender.transport
    codec = transceiver._codecs[0]
    encoder = get_encoder(codec)
    extensions_map, mid = getattr(sender, SENDER_EXTENSIONS_MAP), getattr(sender, SENDER_MID)
    state = {"seq": 0, "pts": 0}

    def send_one(payload: bytes) -> None:
        packet_in = av.Packet(payload)
        packet_in.pts, packet_in.time_base = state["pts"], TIME_BASE
        chunks, timestamp = encoder.pack(packet_in)
        packet = RtpPacket(payload_type=codec.payloadType, sequence_number=state["seq"], timestamp=timestamp)
        packet.ssrc = sender._ssrc
        packet.payload = chunks[0]
        packet.marker = 1
        packet.extensions.abs_send_time = (clock.current_ntp_time() >> 14) & 0x00FFFFFF
        packet.extensions.mid = mid
        coroutine = dtls._send_rtp(packet.serialize(extensions_map))
        try:
            coroutine.send(None)  # it never suspends: SRTP, then aioice's sendto chain down to transport.sendto
        except StopIteration:
            pass
        clock.current_ntp_time()  # aiortc stamps the sender report's NTP time after each send
        state["seq"] = (state["seq"] + 1) % 65536
        state["pts"] += 960

    def tick() -> None:
        for payload in payloads:
            send_one(payload)

    benchmark.pedantic(tick, setup=lambda: drain(loop), rounds=300, iterations=1)
