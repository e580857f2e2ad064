"""The mute gate reaches into aiortc's RTCRtpReceiver. These tests fail loudly if that internal changes."""

import fractions

import aiortc
import pytest
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from mediamute.media.gate import MuteGate
from mediamute.rtc.gate_adapter import (
    JITTER_BUFFER_ATTR,
    SUPPORTED_AIORTC,
    GatedJitterBuffer,
    check_receiver_seam,
    install_gate,
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


async def test_gate_installs_into_a_real_receiver():
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("audio")
        original = getattr(transceiver.receiver, JITTER_BUFFER_ATTR)
        assert type(original) is JitterBuffer
        gate = MuteGate()
        gated = install_gate(transceiver.receiver, gate)
        assert getattr(transceiver.receiver, JITTER_BUFFER_ATTR) is gated
        assert gated.capacity == original.capacity and gated._prefetch == original._prefetch
        assert install_gate(transceiver.receiver, gate) is gated  # idempotent
    finally:
        await pc.close()


def packet(seq: int) -> RtpPacket:
    p = RtpPacket(payload_type=111, sequence_number=seq % 65536, timestamp=(seq * 960) % 2**32, ssrc=1)
    p.payload = b"\xfc" + bytes(40)
    p._data = p.payload
    return p


def feed(buffer, seqs):
    return [seq for seq in seqs if buffer.add(packet(seq))[1] is not None]


def test_closed_gate_keeps_packets_out_of_the_jitter_buffer():
    gate = MuteGate()
    buffer = GatedJitterBuffer(gate, capacity=16, prefetch=4)
    assert feed(buffer, range(0, 10)) == [4, 5, 6, 7, 8, 9]  # after the 4-packet prefetch, one frame per packet
    gate.close()
    assert feed(buffer, range(10, 20)) == []
    assert all(p is None or p.sequence_number < 10 for p in buffer._packets)
    assert gate.dropped_packets == 10 and gate.passed_packets == 10


@pytest.mark.parametrize("reset, expected_first_frame_after", [(True, 4), (False, None)])
def test_reopen_reset_avoids_the_jitter_buffer_stall(reset, expected_first_frame_after):
    gate = MuteGate()
    buffer = GatedJitterBuffer(gate, capacity=16, prefetch=4, reset_on_open=reset)
    feed(buffer, range(0, 10))
    gate.close()
    feed(buffer, range(10, 15))  # a 100 ms mute: five packets dropped
    gate.open()
    out = feed(buffer, range(15, 21))
    if reset:
        # like a fresh stream: the prefetch fills, then one frame per packet
        assert len(out) == 6 - expected_first_frame_after
        assert buffer.resets == 1
    else:
        # aiortc waits for the packets the gate dropped: nothing comes out at all
        assert out == []


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
