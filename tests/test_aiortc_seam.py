"""The mute gate reaches into aiortc's RTCRtpReceiver. These tests fail loudly if that internal changes."""

import fractions

import pytest

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


# --- DTMF: telephone-event negotiated, kept out of the decoder by the ToneTap, sent by DtmfSender ---

from mediamute.media.telephone_event import EventReport  # noqa: E402
from mediamute.rtc.dtmf import ToneTap, check_dtmf_seam, install_tone_tap, register_telephone_event  # noqa: E402
from mediamute.rtc.peer import ParticipantPeer  # noqa: E402


def test_dtmf_seam_holds():
    check_dtmf_seam()  # negotiation from CODECS, the receiver's seam, the sender's numbering and transport


async def client_offer() -> str:
    register_telephone_event()
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    await pc.close()
    return offer


def move_rtpmaps_first(sdp: str, name: str) -> str:
    """The offer with the rtpmap lines of codec `name` moved before the others (aiortc reads codecs in that order)."""
    lines = sdp.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("a=rtpmap:"))
    moving = [line for line in lines if line.startswith("a=rtpmap:") and f" {name}/" in line]
    rest = [line for line in lines if line not in moving]
    return "\r\n".join(rest[:first] + moving + rest[first:]) + "\r\n"


def keep_only_8khz_events(sdp: str) -> str:
    """Firefox's offer: telephone-event/8000 only (the 48 kHz one gone from the m-line, its rtpmap and fmtp)."""
    pt = next(line.split(":")[1].split()[0] for line in sdp.splitlines() if "telephone-event/48000" in line)
    kept = []
    for line in sdp.splitlines():
        if line.startswith(("a=rtpmap:" + pt + " ", "a=fmtp:" + pt + " ")):
            continue
        if line.startswith("m=audio"):
            line = " ".join(word for word in line.split(" ") if word != pt)
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"


def answer_codecs(sdp: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in sdp.splitlines() if line.startswith("a=rtpmap:")]


@pytest.mark.parametrize(
    "shape, formats",
    [("as aiortc offers", [48000, 8000]), ("events listed first", [48000, 8000]), ("8 kHz events only", [8000])],
)
async def test_the_server_answers_telephone_event_and_sends_with_its_voice_codec(shape, formats):
    offer = await client_offer()
    if shape == "events listed first":
        offer = move_rtpmaps_first(offer, "telephone-event")
    elif shape == "8 kHz events only":
        offer = keep_only_8khz_events(offer)
    peer = ParticipantPeer("p", MuteGate())
    try:
        answer = await peer.accept(offer)
        codecs = answer_codecs(answer)
        assert codecs[0] == "opus/48000/2", codecs  # aiortc sends with the first: never the events
        assert [c for c in codecs if c.startswith("telephone-event")] == [f"telephone-event/{rate}" for rate in formats]
        assert peer.tone_formats == formats
        assert "urn:ietf:params:rtp-hdrext:ssrc-audio-level" in answer  # the level talking-while-muted reads
        transceiver = peer.pc.getTransceivers()[0]
        assert isinstance(getattr(transceiver.receiver, JITTER_BUFFER_ATTR), ToneTap)
    finally:
        await peer.close()


async def test_the_tone_tap_keeps_events_from_the_gate_and_the_decoder():
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("audio")
        register_telephone_event()
        transceiver._codecs = list(aiortc.codecs.CODECS["audio"])  # as negotiation leaves them
        gate = MuteGate()
        path = install_receive_path(transceiver.receiver, ReceivePath(gate))
        presses = []
        tap = install_tone_tap(transceiver, presses.append, "p")
        assert getattr(transceiver.receiver, JITTER_BUFFER_ATTR) is tap and tap.inner is path
        assert install_tone_tap(transceiver, presses.append, "p") is tap  # once
        opus = encode_loop([ToneSource(440).next_frame() for _ in range(3)])
        assert tap.add(opus_packet(0, opus[0])) == (False, None)
        event = RtpPacket(payload_type=110, sequence_number=1, timestamp=0, ssrc=1)
        event.marker = 1
        event.payload = event._data = EventReport(1, False, 10, 960).pack()
        for seq in range(1, 6):
            event.sequence_number = seq
            assert tap.add(event) == (False, None)
        garbage = RtpPacket(payload_type=126, sequence_number=6, timestamp=0, ssrc=1)
        garbage.payload = garbage._data = b"\x01\x02\x03"
        tap.add(garbage)
        assert tap.add(opus_packet(7, opus[1])) == (False, None)
        assert [p.tone for p in presses] == ["tone1"]
        assert path.buffer.counters.packets == 2 and path.malformed == 0  # only the Opus packets reached the buffer
        assert gate.passed_packets == 2 and gate.dropped_packets == 0  # the gate never saw the events
        assert (tap.counters.packets, tap.counters.presses, tap.counters.repeats, tap.counters.malformed) == (6, 1, 4, 1)
    finally:
        await pc.close()
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
