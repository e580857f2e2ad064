"""The impairment reaches into aioice and aiortc (rtc/impairment.py). These tests fail loudly if the two attributes
it replaces stop carrying the datagrams, and check it installs on and comes off a real peer connection's objects."""

import aioice
import aiortc
import pytest
from aiortc import RTCPeerConnection

from mediamute.media.netem import parse_network
from mediamute.rtc.ice import configure_ice, rtc_configuration
from mediamute.rtc.impairment import (
    SUPPORTED_AIOICE,
    SUPPORTED_AIORTC,
    ParticipantNetwork,
    attach_network,
    check_impairment_seam,
    is_media,
)


def test_aioice_and_aiortc_still_pass_datagrams_where_the_impairment_sits():
    assert (aiortc.__version__, aioice.__version__) == (SUPPORTED_AIORTC, SUPPORTED_AIOICE)
    check_impairment_seam()  # raises ImpairmentSeamError with the reason if a seam moved


@pytest.mark.parametrize(
    ("first", "media"),
    [(0, False), (1, False), (3, False), (20, False), (22, False), (63, False), (64, False), (127, False),
     (128, True), (144, True), (191, True), (192, False), (255, False)],
)
def test_only_srtp_and_srtcp_are_media(first, media):
    """RFC 7983: 0-3 STUN, 20-63 DTLS, 128-191 RTP/RTCP (here SRTP/SRTCP)."""
    assert is_media(bytes([first]) + b"rest") is media


def test_an_empty_datagram_is_not_media():
    assert not is_media(b"")


async def test_the_hooks_go_on_a_real_connection_only_while_impaired():
    configure_ice(None)
    pc = RTCPeerConnection(rtc_configuration())
    try:
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        network = attach_network(pc)
        assert isinstance(network, ParticipantNetwork)
        ice = pc.getTransceivers()[0].receiver.transport.transport
        connection = ice._connection
        assert "data_received" not in vars(connection) and ice._send == connection.send  # perfect: nothing installed
        state = network.apply(parse_network({"uplink": "lossy"}))
        assert vars(connection)["data_received"] == network._uplink_hook and ice._send == connection.send
        assert state.uplink.engaged and not state.downlink.engaged
        network.apply(parse_network({"downlink": {"delayMs": 30}}))
        assert ice._send == network._downlink_hook
        network.apply(parse_network("perfect"))  # nothing in flight: both come off at once
        assert "data_received" not in vars(connection) and ice._send == connection.send
        assert not network.state().uplink.engaged and not network.state().downlink.engaged
        network.apply(parse_network("wifi"))
        await network.close()  # leaving takes them off too
        assert "data_received" not in vars(connection) and ice._send == connection.send
    finally:
        await pc.close()
