"""Unauthenticated garbage at the server's ICE ports while a call runs: counted drops, no traceback, audio intact.

A seeded generator sends random, STUN-shaped (valid header, attributes of every known type with random lengths),
DTLS-shaped, RTP/RTCP-shaped and empty datagrams, from several source ports, to every ICE UDP port the server
offered, bounded in count and time, yielding to the event loop between small bursts.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
import time

import pytest
from aioice.stun import ATTRIBUTES, COOKIE

from mediamute.client import CallParticipant
from mediamute.rtc.ice import DATAGRAM_GUARD

from .helpers import A, amplitude, join_all, leave_all, tones

pytestmark = pytest.mark.integration

DATAGRAMS = 3000
BURST = 40
SOURCES = 4
ATTRIBUTE_TYPES = [entry[0] for entry in ATTRIBUTES]


def stun_shaped(rng: random.Random) -> bytes:
    body = b""
    for _ in range(rng.randrange(0, 6)):
        length = rng.choice([0, 1, 2, 3, 4, 5, 7, 8, 12, 20, rng.randrange(0, 300)])
        value = rng.randbytes(length)
        body += struct.pack("!HH", rng.choice(ATTRIBUTE_TYPES + [rng.getrandbits(16)]), length) + value
        body += b"\x00" * (-length % 4) if rng.random() < 0.8 else b""
    declared = len(body) if rng.random() < 0.8 else rng.getrandbits(16)
    message_type = rng.choice([0x0001, 0x0101, 0x0111, 0x0011, 0x0003, rng.getrandbits(14)])
    cookie = COOKIE if rng.random() < 0.9 else rng.getrandbits(32)
    return struct.pack("!HHI12s", message_type, declared, cookie, rng.randbytes(12)) + body


def dtls_shaped(rng: random.Random) -> bytes:
    body = rng.randbytes(rng.randrange(0, 200))
    declared = len(body) if rng.random() < 0.7 else rng.getrandbits(16)
    version = rng.choice([0xFEFD, 0xFEFF, rng.getrandbits(16)])
    header = struct.pack("!BHH", rng.randrange(20, 64), version, rng.randrange(0, 3)) + rng.randbytes(6)
    return header + struct.pack("!H", declared) + body


def rtp_shaped(rng: random.Random) -> bytes:
    payload_type = rng.choice([111, 96, 0, rng.randrange(200, 207), rng.randrange(0, 128)])
    header = struct.pack("!BBHII", rng.randrange(0x80, 0xC0), payload_type, rng.getrandbits(16), rng.getrandbits(32), rng.getrandbits(32))
    return header + rng.randbytes(rng.randrange(0, 300))


def datagram(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.05:
        return b""
    if kind < 0.2:
        return rng.randbytes(rng.randrange(1, 1200))
    if kind < 0.6:
        return stun_shaped(rng)
    if kind < 0.8:
        return dtls_shaped(rng)
    return rtp_shaped(rng)


def server_ice_ports(participants: list[CallParticipant]) -> list[int]:
    """The UDP ports of the host candidates the server offered in its answers (public SDP, nothing internal)."""
    ports = set()
    for p in participants:
        for line in p.pc.remoteDescription.sdp.splitlines():
            if line.startswith("a=candidate:") and " udp " in line.lower():
                fields = line.split()
                ports.add(int(fields[5]))
    return sorted(ports)


async def fuzz(ports: list[int], seed: int) -> int:
    """Send DATAGRAMS datagrams round-robin over the ports from SOURCES sockets; at most 10 s; returns the empties."""
    rng = random.Random(seed)
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(SOURCES)]
    empties = 0
    try:
        for s in sockets:
            s.setblocking(False)
            s.bind(("127.0.0.1", 0))
        async with asyncio.timeout(10):
            for i in range(DATAGRAMS):
                data = datagram(rng)
                empties += not data
                try:
                    sockets[i % SOURCES].sendto(data, ("127.0.0.1", ports[i % len(ports)]))
                except BlockingIOError:
                    pass  # the socket buffer is full: that datagram is not sent, like any lost UDP datagram
                if i % BURST == BURST - 1:
                    await asyncio.sleep(0.03)  # ~2.3 s in all; let the call's clock and receivers run between bursts
    finally:
        for s in sockets:
            s.close()
    return empties


async def test_garbage_at_the_ice_ports_is_dropped_while_the_call_goes_on(server, call_id, caplog):
    caplog.set_level(logging.WARNING)  # aiortc reports a dead transport or sender with a traceback at WARNING
    caplog.set_level(logging.DEBUG, logger="aioice")
    caplog.set_level(logging.DEBUG, logger="asyncio")
    participants = await join_all(server, call_id, tones(440, 660, 880))
    a, b, c = participants
    call = server.registry.get(call_id)
    try:
        await asyncio.gather(*(p.wait_for_frames(50, timeout=10) for p in participants))
        ports = server_ice_ports(participants)
        assert len(ports) == 3, ports
        before = DATAGRAM_GUARD.counters()
        late_before = call.clock.counters().late_ticks
        t0 = time.monotonic()
        empties = await fuzz(ports, seed=20261202)
        t1 = time.monotonic()
        await asyncio.gather(*(p.recording.wait_for(len(p.recording) + 25, timeout=5) for p in participants))  # t1 + 0.5 s heard
        after = DATAGRAM_GUARD.counters()

        # nothing escaped as a traceback, and what was refused was counted
        escaped = [r for r in caplog.records if r.exc_info or "Exception in callback" in r.getMessage() or "Traceback" in r.getMessage()]
        assert not escaped, escaped[0].getMessage()
        assert after.empty - before.empty == empties > 0
        assert after.malformed > before.malformed
        guard_lines = [r for r in caplog.records if r.name == "mediamute.rtc.ice"]
        assert len(guard_lines) <= SOURCES  # one line per source address per 10 s interval, whatever the flood

        # the call: every connection up, everyone in the mix of (nearly) every tick of the fuzz, tones intact. The
        # flood keeps the server's loop busy, so a packet may be read after its tick: the receive path then conceals
        # that frame (counted, in the audit) rather than leave a gap: seen up to 1 in 10 under this flood on a shared
        # 2-core machine, so at most 15 %
        assert all(p.pc.connectionState == "connected" for p in participants)
        ticks = call.mixer.audit.between(t0, t1)
        for p in participants:
            assert sum(p.participant_id in r.contributors for r in ticks) >= len(ticks) - 5, p.display_name
            assert sum(p.participant_id in r.concealed for r in ticks) <= 0.15 * len(ticks), p.display_name
        for listener, others in ((a, (660, 880)), (b, (440, 880)), (c, (440, 660))):
            for freq in others:
                assert amplitude(listener, freq, t0 + 0.2, t1 + 0.2) == pytest.approx(A, rel=0.1), (listener.display_name, freq)
        # late ticks are not asserted: on a shared 2-core machine they cannot be attributed to the fuzz
        print(f"fuzz: {DATAGRAMS} datagrams in {t1 - t0:.2f} s, late ticks {call.clock.counters().late_ticks - late_before}")
    finally:
        await leave_all(participants)
