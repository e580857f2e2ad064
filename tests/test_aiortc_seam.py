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


def test_sender_still_takes_each_packets_audio_level_from_its_encoded_frame():
    from mediamute.rtc.audio_level import check_level_seam

    check_level_seam()  # what gives pre-encoded packets their RFC 6464 level header


def test_sender_still_stamps_its_ssrc_and_sends_through_the_transport():
    from mediamute.rtc.sender_faults import check_sender_seam

    check_sender_seam()  # what the test-support SenderFaults rewrites


# --- the receive path (the gate, sequence validation, the jitter buffer, libopus) in place of aiortc's buffer ---

from mediamute.rtc.codec import encode_loop  # noqa: E402
from mediamute.rtc.gate_adapter import install_receive_path  # noqa: E402
from mediamute.rtc.receive import ReceivePath  # noqa: E402
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


async def test_receive_path_installs_into_a_real_receiver():
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("audio")
        assert type(getattr(transceiver.receiver, JITTER_BUFFER_ATTR)) is JitterBuffer  # what gets replaced
        path = install_receive_path(transceiver.receiver, ReceivePath(MuteGate()))
        assert getattr(transceiver.receiver, JITTER_BUFFER_ATTR) is path
        assert install_receive_path(transceiver.receiver, ReceivePath(MuteGate())) is path
    finally:
        await pc.close()


def test_receive_path_returns_nothing_to_aiortcs_decoder_and_obeys_the_gate():
    payloads = encode_loop([ToneSource(440).next_frame() for _ in range(10)])
    gate = MuteGate()
    path = ReceivePath(gate, clock=lambda: 7.0)
    for seq in range(3):
        assert path.add(opus_packet(seq, payloads[seq])) == (False, None)  # nothing for aiortc's decoder thread
    assert path.buffer.depth == 3 and path.sequence_counters.accepted == 3
    gate.close()
    assert path.add(opus_packet(3, payloads[3])) == (False, None)
    assert gate.dropped_packets == 1 and path.sequence_counters.accepted == 3  # dropped before validation
    assert path.buffer.depth == 0 and path.pull(7.0) is None  # the close flushed what was held


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
