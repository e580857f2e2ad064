"""The mute gate reaches into aiortc's RTCRtpReceiver. These tests fail loudly if that internal changes."""

import fractions

import aiortc
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from mediamute.media.gate import MuteGate
from mediamute.rtc.gate_adapter import (
    JITTER_BUFFER_ATTR,
    SUPPORTED_AIORTC,
    check_receiver_seam,
)


def test_aiortc_is_the_pinned_version():
    assert aiortc.__version__ == SUPPORTED_AIORTC, (
        f"aiortc {aiortc.__version__} is installed but the gate adapter was verified against {SUPPORTED_AIORTC}: "
        "re-check RTCRtpReceiver._handle_rtp_packet and update mediamute/rtc/gate_adapter.py"
    )


def test_receive_path_still_counts_statistics_before_the_jitter_buffer():
    check_receiver_seam()  # raises ReceiverSeamError with the reason if the seam moved


def test_sender_still_stamps_its_ssrc_and_sends_through_the_transport():
    from mediamute.rtc.sender_faults import check_sender_seam

    check_sender_seam()  # what the test-support SenderFaults rewrites


# --- the inline decoder (the gate, then an Opus decode at packet arrival, in place of aiortc's jitter buffer) ---

from mediamute.rtc.codec import encode_loop  # noqa: E402
from mediamute.rtc.gate_adapter import InlineDecoder, install_inline_decoder  # noqa: E402
from mediamute.sources import ToneSource  # noqa: E402


def opus_packet(seq: int, payload: bytes) -> RtpPacket:
    p = RtpPacket(payload_type=96, sequence_number=seq % 65536, timestamp=(seq * 960) % 2**32, ssrc=1)
    p.payload = payload
    p._data = payload  # aiortc's Opus depayload is the identity; the receiver sets _data before its jitter buffer
    return p


def test_receiver_depayloads_into_data_before_the_jitter_buffer():
    import inspect

    source = inspect.getsource(aiortc.RTCRtpReceiver._handle_rtp_packet)
    assert source.find("packet._data = depayload(") < source.find("self.__jitter_buffer.add(packet)")


async def test_inline_decoder_installs_into_a_real_receiver():
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("audio")
        assert type(getattr(transceiver.receiver, JITTER_BUFFER_ATTR)) is JitterBuffer  # what gets replaced
        inline = install_inline_decoder(transceiver.receiver, MuteGate(), lambda mono, arrived: None)
        assert getattr(transceiver.receiver, JITTER_BUFFER_ATTR) is inline
        assert install_inline_decoder(transceiver.receiver, MuteGate(), lambda m, a: None) is inline
    finally:
        await pc.close()


def test_inline_decoder_decodes_at_arrival_drops_late_packets_and_obeys_the_gate():
    payloads = encode_loop([ToneSource(440).next_frame() for _ in range(10)])
    heard: list[tuple[int, float]] = []
    gate = MuteGate()
    inline = InlineDecoder(gate, lambda mono, arrived: heard.append((mono.shape[0], arrived)), clock=lambda: 7.0)
    for seq in range(3):
        assert inline.add(opus_packet(seq, payloads[seq])) == (False, None)  # nothing for aiortc's decoder
    assert heard == [(960, 7.0)] * 3  # no prefetch: one frame per packet, at once
    inline.add(opus_packet(1, payloads[1]))  # older than the newest: dropped, not decoded
    assert inline.late == 1 and len(heard) == 3
    assert inline.sequence_counters.late == 1 and inline.sequence_counters.accepted == 3
    gate.close()
    inline.add(opus_packet(3, payloads[3]))
    assert len(heard) == 3 and gate.dropped_packets == 1  # closed: counted and dropped before decoding
    gate.open()
    inline.add(opus_packet(9, payloads[9]))  # after a gap: decoded at once, no stall
    assert len(heard) == 4


# --- the sender packetises pre-encoded av.Packets (how the mix reaches aiortc) ---


def test_sender_packs_an_av_packet_instead_of_encoding_it():
    import inspect

    import av
    from aiortc.codecs.opus import OpusEncoder
    from aiortc.rtcrtpsender import RTCRtpSender

    source = inspect.getsource(RTCRtpSender._next_encoded_frame)
    assert "isinstance(data, Frame)" in source and "self.__encoder.pack(data)" in source
    packet = av.Packet(b"\xfc\x01\x02")
    packet.pts = 4 * 960
    packet.time_base = fractions.Fraction(1, 48000)
    payloads, timestamp = OpusEncoder().pack(packet)
    assert payloads == [b"\xfc\x01\x02"] and timestamp == 4 * 960


# --- the lean send path of the mix (mediamute/rtc/rtp_send.py) and its test support (wire_tap.py) ---

def test_lean_send_path_still_finds_what_it_stands_in_for():
    from mediamute.rtc.rtp_send import check_send_seam

    check_send_seam()  # raises SendSeamError naming the aiortc/aioice internal that moved


def test_wire_tap_still_sees_packets_after_srtp():
    from mediamute.rtc.wire_tap import check_wire_tap_seam

    check_wire_tap_seam()


def test_lean_ntp_clock_is_aiortcs():
    import datetime

    from aiortc.clock import datetime_to_ntp

    from mediamute.rtc.rtp_send import ntp_time

    for wall in (1_700_000_000.25, 1_800_000_123.999999, 1_750_000_000.0):
        theirs = datetime_to_ntp(datetime.datetime.fromtimestamp(wall, datetime.timezone.utc))
        assert abs(ntp_time(wall) - theirs) < (1 << 32) // 100_000  # within 10 µs


def test_lean_header_template_is_aiortcs_serialized_header():
    """Patched with a packet's numbers, the template is byte for byte what aiortc's RtpPacket.serialize writes, with
    and without the abs-send-time extension negotiated."""
    import struct

    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
    from aiortc.rtp import HeaderExtensionsMap

    from mediamute.rtc.rtp_send import header_template

    mid = RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid")
    abs_send_time = RTCRtpHeaderExtensionParameters(id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time")
    for extensions in ([mid], [mid, abs_send_time]):
        extensions_map = HeaderExtensionsMap()
        extensions_map.configure(RTCRtpParameters(headerExtensions=extensions))
        header, at = header_template(111, 0xDEADBEEF, "0", extensions_map)
        assert (at >= 0) == (abs_send_time in extensions)
        struct.pack_into("!HI", header, 2, 4242, 123456789)
        if at >= 0:
            header[at : at + 3] = (0xABCDEF).to_bytes(3, "big")
        packet = RtpPacket(payload_type=111, marker=1, sequence_number=4242, timestamp=123456789, ssrc=0xDEADBEEF)
        packet.payload = b"\x01\x02\x03"
        packet.extensions.mid = "0"
        packet.extensions.abs_send_time = 0xABCDEF
        assert bytes(header) + b"\x01\x02\x03" == packet.serialize(extensions_map)
