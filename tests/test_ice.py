import aioice.ice
import pytest

from mediamute.rtc.ice import configure_ice, parse_ice_addresses, rtc_configuration


def test_default_offers_loopback_only():
    configure_ice(None)
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]


def test_explicit_list_and_auto():
    try:
        configure_ice("127.0.0.1,::1")
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1", "::1"]
        assert configure_ice("auto") is None
        assert "127.0.0.1" not in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)
    finally:
        configure_ice(None)


def test_bad_address_is_rejected_precisely():
    with pytest.raises(ValueError, match="'eth0' is not an IP address"):
        parse_ice_addresses("eth0")


def test_no_public_stun_by_default():
    assert rtc_configuration().iceServers == []
    assert [s.urls for s in rtc_configuration(["stun:127.0.0.1:3478"]).iceServers] == ["stun:127.0.0.1:3478"]


async def test_gathered_candidates_are_loopback_only():
    from aiortc import RTCPeerConnection

    configure_ice(None)
    pc = RTCPeerConnection(rtc_configuration())
    try:
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        candidates = [line for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate")]
        assert candidates
        assert all(" 127.0.0.1 " in line for line in candidates), candidates
    finally:
        await pc.close()


# --- the datagram guard at aioice's StunProtocol -----------------------------------------------------------------

import asyncio  # noqa: E402
import logging  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402

import aioice  # noqa: E402

from mediamute.rtc import ice as mm_ice  # noqa: E402
from mediamute.rtc.ice import DATAGRAM_GUARD, SUPPORTED_AIOICE, DatagramGuard, check_ice_seam  # noqa: E402


def malformed_stun() -> bytes:
    """A Binding request whose PRIORITY attribute is 1 byte long: aioice's `unpack("!I")` raises struct.error."""
    attribute = struct.pack("!HH", 0x0024, 1) + b"\x00\x00\x00\x00"
    return struct.pack("!HHI12s", 0x0001, len(attribute), 0x2112A442, b"0123456789ab") + attribute


def test_aioice_is_the_verified_version_and_its_datagram_path_is_unchanged():
    assert aioice.__version__ == SUPPORTED_AIOICE
    check_ice_seam()  # raises IceSeamError with the reason if aioice's internals moved


def test_the_root_cause_aioice_lets_struct_error_escape_its_datagram_callback():
    with pytest.raises(struct.error):
        aioice.stun.parse_message(malformed_stun())


def test_guard_logs_one_line_per_source_per_interval(caplog):
    now = [0.0]
    guard = DatagramGuard(interval=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="mediamute.rtc.ice"):
        for _ in range(100):
            guard.refuse(("10.0.0.1", 5000), "a malformed", struct.error("unpack requires a buffer"))
        guard.refuse(("10.0.0.2", 5000), "an empty")
        now[0] = 10.0
        guard.refuse(("10.0.0.1", 5000), "a malformed", struct.error("again"))
    assert guard.counters().dropped == 102 and guard.counters().empty == 1
    assert guard.log_lines == 3 and len(caplog.records) == 3
    assert "99 more from it" in caplog.records[-1].getMessage()


def test_guard_forgets_sources_when_flooded():
    now = [0.0]
    guard = DatagramGuard(interval=10.0, max_sources=8, clock=lambda: now[0])
    for port in range(100):
        guard.refuse(("10.0.0.1", port), "an empty")
    assert len(guard.limiter) <= 8 and guard.log_lines == 100  # each new source logged once; memory bounded


async def test_malformed_and_empty_datagrams_at_a_real_ice_port_are_counted_not_raised(caplog):
    configure_ice(None)
    connection = aioice.Connection(ice_controlling=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        await connection.gather_candidates()
        port = connection.local_candidates[0].port
        before = DATAGRAM_GUARD.counters()
        queued_before = connection._queue.qsize()
        with caplog.at_level(logging.DEBUG):
            for _ in range(20):
                sock.sendto(malformed_stun(), ("127.0.0.1", port))
            sock.sendto(b"", ("127.0.0.1", port))
            async with asyncio.timeout(5):
                while DATAGRAM_GUARD.counters().dropped < before.dropped + 21:
                    await asyncio.sleep(0.01)  # datagrams arrive on the loop; nothing else announces them
        after = DATAGRAM_GUARD.counters()
        assert (after.malformed - before.malformed, after.empty - before.empty) == (20, 1)
        assert connection._queue.qsize() == queued_before  # the empty one never reached aiortc's DTLS reader
        assert not [r for r in caplog.records if r.exc_info or "Exception in callback" in r.getMessage()]
        assert len([r for r in caplog.records if r.name == mm_ice.log.name]) <= 2  # one line per source per interval
    finally:
        sock.close()
        await connection.close()
