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
