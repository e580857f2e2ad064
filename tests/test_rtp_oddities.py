"""Odd RTP numbering (a far jump, a restart, a new SSRC, duplicates, misorder) never silences a participant.

In process: crafted RTP packets with real Opus payloads go through the server's real receive path (a connected
`ParticipantPeer`: aiortc's RTP parse, router, RTCRtpReceiver statistics, depayload, then the gate, the sequence
validator, the jitter buffer and the decoder) into a real Mixer that pulls it, on one injected clock (a packet every
20 ms, a tick 5 ms after it), whose listener mix is checked by FFT and its audit.
End to end: a real participant's sender jumps its numbering, or changes SSRC, mid-call over real WebRTC.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtpPacket
from aiortc.sdp import SessionDescription

from mediamute.analysis import tone_amplitudes
from mediamute.media.gate import MuteGate
from mediamute.media.mixer import Mixer
from mediamute.media.sequence import RTP_SEQ_MOD
from mediamute.rtc.codec import encode_loop
from mediamute.rtc.ice import rtc_configuration
from mediamute.rtc.opus import OpusDecoder
from mediamute.rtc.peer import ParticipantPeer
from mediamute.rtc.receive import ReceivePath
from mediamute.rtc.sender_faults import SenderFaults
from mediamute.sources import ToneSource

from .helpers import A, InjectedClock, amplitude, hear_for, join_all, leave_all, least_heard, tones, wait_until



class CraftedPath:
    """A server ParticipantPeer connected to a silent client; crafted RTP enters where SRTP hands it over."""

    def __init__(self, peer: ParticipantPeer, client: RTCPeerConnection, payload_type: int, ssrc: int,
                 clock: InjectedClock) -> None:
        self.peer, self.client, self.payload_type, self.ssrc, self.clock = peer, client, payload_type, ssrc, clock
        self.mixer = Mixer(clock=clock)
        self.mixer.add("p", peer.gate, source=peer.frame_source)
        self.heard: list[np.ndarray] = []
        self.mixer.add("listener", MuteGate(), sink=lambda _tick, mix, _shared: self.heard.append(mix.copy()))
        self.payloads = encode_loop([ToneSource(440).next_frame() for _ in range(50)])
        self.sent = 0
        reference = OpusDecoder()
        decoded = [reference.decode(payload) for payload in self.payloads * 2]
        self.level = float(np.median(tone_amplitudes(decoded[50:], 440)))
        """The 440 Hz amplitude of these payloads decoded in order, without the receive path (Opus's own loss)."""

    @property
    def path(self) -> ReceivePath:
        assert self.peer.receive_path is not None
        return self.peer.receive_path

    async def send(self, seqs, ssrc: int | None = None) -> list[str]:
        """One packet per 20 ms through the real receive path, a tick 5 ms after each: was the participant in that
        tick's mix ("heard"), in it by concealment ("concealed"), or not ("absent")?"""
        transport = self.peer.pc.getReceivers()[0].transport
        out = []
        for seq in seqs:
            self.clock.now += 0.015
            packet = RtpPacket(
                payload_type=self.payload_type, sequence_number=seq % RTP_SEQ_MOD,
                timestamp=(seq * 960) % (1 << 32), ssrc=ssrc or self.ssrc,
            )
            packet.payload = self.payloads[self.sent % len(self.payloads)]
            self.sent += 1
            await transport._handle_rtp_data(packet.serialize(), arrival_time_ms=0)
            self.clock.now += 0.005
            record = self.mixer.tick(self.clock.now)
            out.append("concealed" if "p" in record.concealed else "heard" if "p" in record.contributors else "absent")
        return out


@pytest.fixture
async def receive_path() -> AsyncIterator[CraftedPath]:
    clock = InjectedClock(100.0)
    peer = ParticipantPeer("p", MuteGate(), clock=clock)
    client = RTCPeerConnection(rtc_configuration())
    client.addTransceiver("audio", direction="sendrecv")  # no track: the client itself sends no RTP
    try:
        await client.setLocalDescription(await client.createOffer())
        answer = await peer.accept(client.localDescription.sdp)
        await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await wait_until(lambda: peer.pc.connectionState == "connected" and client.connectionState == "connected", 10)
        opus = next(c for c in SessionDescription.parse(answer).media[0].rtp.codecs if c.mimeType == "audio/opus")
        path = CraftedPath(peer, client, opus.payloadType, client.getSenders()[0]._ssrc, clock)
        await path.send(range(0, 5))  # warm the Opus decoder
        yield path
    finally:
        await client.close()
        await peer.close()


def test_the_answer_asks_for_in_band_fec():
    from mediamute.rtc.sdp import with_opus_fec

    offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n"
    assert "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\n" in with_opus_fec(offer)
    chrome = "v=0\na=rtpmap:111 opus/48000/2\na=fmtp:111 minptime=10;useinbandfec=1\na=fmtp:0 x=1\n"
    assert with_opus_fec(chrome) == chrome
    plain = "v=0\na=rtpmap:111 OPUS/48000/2\na=fmtp:111 minptime=10\n"
    assert "a=fmtp:111 minptime=10;useinbandfec=1\n" in with_opus_fec(plain)


async def test_the_servers_answer_carries_useinbandfec(receive_path):
    answer = receive_path.peer.pc.localDescription.sdp
    opus = next(c for c in SessionDescription.parse(answer).media[0].rtp.codecs if c.mimeType == "audio/opus")
    assert opus.parameters.get("useinbandfec") == 1


async def test_one_packet_jumping_far_ahead_costs_only_that_packet(receive_path):
    """The defect: the old decoder took the odd packet as the newest, so all later real packets were 'late'."""
    path = receive_path
    assert await path.send([5 + 30000]) == ["concealed"]  # its slot: the buffer waits for 5, concealing
    assert await path.send(range(5, 55)) == ["heard"] * 50  # the real stream: in every mix
    heard = tone_amplitudes(path.heard[-50:], 440)
    assert np.median(heard) == pytest.approx(path.level, rel=0.05)
    counters = path.path.sequence_counters
    assert counters.jumps_pending == 1 and counters.restarts == 0 and path.path.buffer.counters.late == 0


async def test_restart_and_ssrc_change_are_back_in_the_mix_by_the_second_packet(receive_path):
    path = receive_path
    restart = await path.send(range(40000, 40010))  # the sender renumbered: a restart
    assert restart[0] != "heard" and restart[2:] == ["heard"] * 8
    # a new SSRC whose numbers are "behind" the old stream's (the old decoder dropped them as late for minutes)
    change = await path.send(range(20000, 20010), ssrc=0x5EED)
    assert change[0] != "heard" and change[2:] == ["heard"] * 8
    counters = path.path.sequence_counters
    assert (counters.restarts, counters.ssrc_changes, counters.dropped) == (1, 1, 2)
    assert path.path.buffer.counters.restarts == 2
    assert np.median(tone_amplitudes(path.heard[-8:], 440)) == pytest.approx(path.level, rel=0.05)


async def test_duplicates_are_dropped_and_a_misordered_packet_reaches_the_buffer(receive_path):
    path = receive_path
    await path.send([5, 6, 6, 8, 7, 9, 3])
    counters = path.path.sequence_counters
    assert (counters.duplicates, counters.misordered) == (2, 1)  # 6 twice, 3 seen in the warm-up; 7 behind 8
    buffer = path.path.buffer.counters
    assert buffer.late + buffer.reordered == 1  # 7: in time to be played in order, or counted late


async def test_the_gate_drops_before_validation(receive_path):
    path = receive_path
    path.peer.gate.close()
    before = path.path.sequence_counters.accepted
    assert await path.send([5 + 30000, 5 + 30001, 5, 6]) == ["absent"] * 4  # nothing mixed, nothing concealed
    assert path.path.sequence_counters.accepted == before and path.path.sequence_counters.dropped == 0
    assert path.peer.gate.dropped_packets == 4
    path.peer.gate.open()
    assert await path.send([7, 8]) == ["heard", "heard"]  # the first fresh packet anchors at once (target 0)


# --- end to end: a real sender misbehaves mid-call --------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.parametrize("fault", ["jump", "ssrc"])
async def test_a_sender_that_jumps_or_changes_ssrc_is_back_in_every_mix_at_once(server, call_id, fault):
    a, b, c = await join_all(server, call_id, tones(440, 660, 880))
    call = server.registry.get(call_id)
    decoder = call.participant(b.participant_id).media.receive_path
    try:
        await hear_for([a, b, c], 1.0)
        faults = SenderFaults(b.pc.getSenders()[0])
        counters = decoder.sequence_counters
        dropped_before, accepted_before = counters.dropped, counters.accepted
        t_fault = time.monotonic()
        if fault == "jump":
            # the sender restarts its numbering 20000 ahead. Further than 2**15 is not deterministic end to end: the
            # sender's own libsrtp then refuses some packets ("index too old"), depending on its start number
            faults.jump(20000)
        else:
            # a new SSRC whose numbers are 20000 "behind": the old decoder dropped all of them as late
            faults.change_ssrc(0x5EED5EED, seq_by=RTP_SEQ_MOD - 20000)
        await wait_until(lambda: counters.accepted >= accepted_before + 25, 5)
        await hear_for([a, b, c], 1.0)

        # back within 3 packets: at most two of b's packets were refused because of the fault
        assert counters.dropped - dropped_before <= 2
        assert (counters.restarts, counters.ssrc_changes) == ((1, 0) if fault == "jump" else (0, 1))
        assert faults.last_sent_seq is not None  # the server follows the sender's new numbering (a packet in flight)
        assert (faults.last_sent_seq - decoder.sequence.max_seq) % RTP_SEQ_MOD < 5
        # the contributor audit: b is in the mix of nearly every tick from 3 packets after the fault on
        after = call.mixer.audit.between(t_fault + 0.1, time.monotonic() - 0.1)
        with_b = sum(b.participant_id in r.contributors for r in after)
        assert len(after) > 30 and with_b >= len(after) - 3, (with_b, len(after))
        # the audio: a and c hear b's 660 Hz at full level after the fault, and everyone else's tone throughout
        heard_from = t_fault + 0.3  # the listeners' playout runs ~100-200 ms behind the server's ticks
        assert amplitude(a, 660, heard_from) == pytest.approx(A, rel=0.1)
        assert amplitude(c, 660, heard_from) == pytest.approx(A, rel=0.1)
        for listener, freq in ((a, 880), (b, 440), (b, 880), (c, 440)):
            assert least_heard(listener, freq, t_fault - 0.5, time.monotonic()) > 0.8 * A, (listener.display_name, freq)
    finally:
        await leave_all([a, b, c])
