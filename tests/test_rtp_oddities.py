"""Odd RTP numbering (a far jump, a restart, a new SSRC, duplicates, misorder) never silences a participant.

In process: crafted RTP packets with real Opus payloads go through the server's real receive path (a connected
`ParticipantPeer`: aiortc's RTP parse, router, RTCRtpReceiver statistics, depayload, then the gate, the sequence
validator and the inline decoder) into a real Mixer, whose listener mix is checked by FFT and its audit.
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
from mediamute.rtc.codec import MonoOpusDecoder, encode_loop
from mediamute.rtc.gate_adapter import InlineDecoder
from mediamute.rtc.ice import rtc_configuration
from mediamute.rtc.peer import ParticipantPeer
from mediamute.rtc.sender_faults import SenderFaults
from mediamute.sources import ToneSource

from .helpers import A, amplitude, hear_for, join_all, leave_all, least_heard, tones, wait_until



class ReceivePath:
    """A server ParticipantPeer connected to a silent client; crafted RTP enters where SRTP hands it over."""

    def __init__(self, peer: ParticipantPeer, client: RTCPeerConnection, payload_type: int, ssrc: int) -> None:
        self.peer, self.client, self.payload_type, self.ssrc = peer, client, payload_type, ssrc
        self.mixer = peer.mixer
        self.heard: list[np.ndarray] = []
        self.mixer.add("listener", MuteGate(), sink=lambda _tick, mix, _shared: self.heard.append(mix.copy()))
        self.payloads = encode_loop([ToneSource(440).next_frame() for _ in range(50)])
        self.sent = 0
        reference = MonoOpusDecoder()
        decoded = [mono for payload in self.payloads * 2 for mono in reference.decode(payload)]
        self.level = float(np.median(tone_amplitudes(decoded[50:], 440)))
        """The 440 Hz amplitude of these payloads decoded in order, without the receive path (Opus's own loss)."""

    @property
    def decoder(self) -> InlineDecoder:
        assert self.peer.inline_decoder is not None
        return self.peer.inline_decoder

    async def send(self, seqs, ssrc: int | None = None) -> list[bool]:
        """Each packet through the real receive path, then one mixer tick: was the participant in that mix?"""
        transport = self.peer.pc.getReceivers()[0].transport
        mixed = []
        for seq in seqs:
            packet = RtpPacket(
                payload_type=self.payload_type, sequence_number=seq % RTP_SEQ_MOD, timestamp=0, ssrc=ssrc or self.ssrc
            )
            packet.payload = self.payloads[self.sent % len(self.payloads)]
            self.sent += 1
            await transport._handle_rtp_data(packet.serialize(), arrival_time_ms=0)
            mixed.append("p" in self.mixer.tick().contributors)
        return mixed


@pytest.fixture
async def receive_path() -> AsyncIterator[ReceivePath]:
    mixer = Mixer()
    gate = MuteGate()
    mixer.add("p", gate)
    peer = ParticipantPeer("p", gate, mixer)
    client = RTCPeerConnection(rtc_configuration())
    client.addTransceiver("audio", direction="sendrecv")  # no track: the client itself sends no RTP
    try:
        await client.setLocalDescription(await client.createOffer())
        answer = await peer.accept(client.localDescription.sdp)
        await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await wait_until(lambda: peer.pc.connectionState == "connected" and client.connectionState == "connected", 10)
        opus = next(c for c in SessionDescription.parse(answer).media[0].rtp.codecs if c.mimeType == "audio/opus")
        path = ReceivePath(peer, client, opus.payloadType, client.getSenders()[0]._ssrc)
        await path.send(range(0, 5))  # warm the Opus decoder
        yield path
    finally:
        await client.close()
        await peer.close()


async def test_one_packet_jumping_far_ahead_costs_only_that_packet(receive_path):
    """The defect: the old decoder took the odd packet as the newest, so all later real packets were 'late'."""
    path = receive_path
    assert await path.send([5 + 30000]) == [False]
    assert all(await path.send(range(5, 55)))  # the real stream: in every mix
    heard = tone_amplitudes(path.heard[-50:], 440)
    assert np.median(heard) == pytest.approx(path.level, rel=0.05)
    counters = path.decoder.sequence_counters
    assert counters.jumps_pending == 1 and counters.restarts == 0 and counters.late == 0


async def test_restart_and_ssrc_change_are_back_in_the_mix_by_the_second_packet(receive_path):
    path = receive_path
    assert await path.send(range(40000, 40010)) == [False] + [True] * 9  # the sender renumbered: a restart
    # a new SSRC whose numbers are "behind" the old stream's (the old decoder dropped them as late for minutes)
    assert await path.send(range(20000, 20010), ssrc=0x5EED) == [False] + [True] * 9
    counters = path.decoder.sequence_counters
    assert (counters.restarts, counters.ssrc_changes, counters.dropped) == (1, 1, 2)
    assert np.median(tone_amplitudes(path.heard[-8:], 440)) == pytest.approx(path.level, rel=0.05)


async def test_duplicates_and_misordered_packets_are_dropped_and_counted(receive_path):
    path = receive_path
    assert await path.send([5, 6, 6, 8, 7, 9, 3]) == [True, True, False, True, False, True, False]
    counters = path.decoder.sequence_counters
    assert (counters.duplicates, counters.late) == (1, 2) and path.decoder.late == 2


async def test_the_gate_drops_before_validation(receive_path):
    path = receive_path
    path.peer.gate.close()
    before = path.decoder.sequence_counters.accepted
    assert await path.send([5 + 30000, 5 + 30001, 5, 6]) == [False] * 4
    assert path.decoder.sequence_counters.accepted == before and path.decoder.sequence_counters.dropped == 0
    assert path.peer.gate.dropped_packets == 4
    path.peer.gate.open()
    assert await path.send([7, 8]) == [True, True]


# --- end to end: a real sender misbehaves mid-call --------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.parametrize("fault", ["jump", "ssrc"])
async def test_a_sender_that_jumps_or_changes_ssrc_is_back_in_every_mix_at_once(server, call_id, fault):
    a, b, c = await join_all(server, call_id, tones(440, 660, 880))
    call = server.registry.get(call_id)
    decoder = call.participant(b.participant_id).media.inline_decoder
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
