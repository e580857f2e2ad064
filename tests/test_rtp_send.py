"""The lean send path of the mix, held to aiortc's own sender on the wire: the same bytes for the same packet, RTCP
sender reports that count what was sent, continuous numbering across the shared/own encoder switch, the datagram
path someone else wraps, and the fall back to aiortc's sender when its internals are not as verified."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.rtp import RtcpPacket, RtcpSrPacket, RtpPacket

from mediamute.analysis import tone_amplitudes
from mediamute.client import whip_join
from mediamute.rtc import rtp_send
from mediamute.rtc.encoding import HOLD_TICKS
from mediamute.rtc.ice import rtc_configuration
from mediamute.rtc.opus import OpusDecoder
from mediamute.rtc.peer import ParticipantPeer
from mediamute.rtc.rtp_send import SENDER_EXTENSIONS_MAP, check_send_seam
from mediamute.rtc.tracks import SourceTrack
from mediamute.rtc.wire_tap import WireTap
from mediamute.sources import AudioSource, SilenceSource, ToneSource

from .helpers import A, CALLS, join_all, leave_all, wait_until

pytestmark = pytest.mark.integration


class TappedListener:
    """A real aiortc participant whose received RTP and RTCP are recorded after SRTP, and whose audio is decoded."""

    def __init__(self, name: str, source: AudioSource | None = None) -> None:
        self.name = name
        self.pc = RTCPeerConnection(rtc_configuration())
        transceiver = self.pc.addTransceiver(SourceTrack(source or SilenceSource()), direction="sendrecv")
        self.tap = WireTap(transceiver.receiver.transport)
        self.participant_id = ""

    async def join(self, http, call_id: str, network: str | None = None) -> "TappedListener":
        params = {"network": network} if network is not None else None
        self.participant_id = (await whip_join(self.pc, http, call_id, self.name, params=params)).participant_id
        return self

    @property
    def heard(self) -> list[tuple[float, np.ndarray]]:
        """(monotonic arrival, decoded mono frame) of every RTP packet the tap saw, in arrival order: on loopback
        nothing is lost or reordered, so one libopus decoder over the tapped payloads is what the listener heard."""
        wall_to_monotonic = time.monotonic() - time.time()
        decoder = OpusDecoder()
        out = []
        for datagram in list(self.tap.datagrams):
            if datagram.kind == "rtp" and (mono := decoder.decode(RtpPacket.parse(datagram.data).payload)) is not None:
                out.append((datagram.at + wall_to_monotonic, mono))
        return out

    def heard_since(self, start: float) -> list[np.ndarray]:
        return [mono for at, mono in self.heard if at >= start]

    async def close(self) -> None:
        await self.pc.close()


def server_peer(server, call_id: str, participant_id: str) -> ParticipantPeer:
    peer = server.registry.get(call_id).participants[participant_id].media
    assert isinstance(peer, ParticipantPeer)
    return peer


def sender_of(peer: ParticipantPeer) -> RTCRtpSender:
    return peer._audio_transceiver().sender


def parse(data: bytes, sender: RTCRtpSender) -> RtpPacket:
    return RtpPacket.parse(data, getattr(sender, SENDER_EXTENSIONS_MAP))


def masked(data: bytes, abs_send_time_at: int) -> bytes:
    """The packet with what differs between two streams of one packet zeroed: sequence number, timestamp, SSRC and
    the abs-send-time value (the send time)."""
    out = bytearray(data)
    out[2:12] = bytes(10)
    if abs_send_time_at >= 0:
        out[abs_send_time_at : abs_send_time_at + 3] = bytes(3)
    return bytes(out)


def sender_reports(listener: TappedListener, ssrc: int) -> int:
    """RTCP SRs of `ssrc` (after its first RTP packet) the listener has received so far."""
    return sum(1 for d in list(listener.tap.datagrams) if d.kind == "rtcp" for r in RtcpPacket.parse(d.data)
               if isinstance(r, RtcpSrPacket) and r.ssrc == ssrc and r.sender_info.packet_count)


def assert_sender_reports_count_what_arrived(listener: TappedListener, ssrc: int) -> int:
    """Every RTCP SR of `ssrc` the listener received counts exactly the RTP packets and payload octets of that SSRC
    that reached it before the SR (loopback, one socket: arrival order is send order), and carries the RTP timestamp
    of the last of them. Returns how many SRs were checked."""
    packets = octets = 0
    last_timestamp = None
    checked = 0
    for datagram in listener.tap.datagrams:
        if datagram.kind == "rtp":
            packet = RtpPacket.parse(datagram.data)
            if packet.ssrc == ssrc:
                packets, octets, last_timestamp = packets + 1, octets + len(packet.payload), packet.timestamp
            continue
        for report in RtcpPacket.parse(datagram.data):
            if isinstance(report, RtcpSrPacket) and report.ssrc == ssrc and report.sender_info.packet_count:
                info = report.sender_info
                assert (info.packet_count, info.octet_count) == (packets, octets), listener.name
                assert info.rtp_timestamp == last_timestamp, listener.name
                checked += 1
    return checked


async def test_lean_and_aiortc_senders_put_the_same_bytes_on_the_wire_and_report_them(server, http, call_id):
    """Two muted listeners hear the one shared packet per tick: one through the lean path, one through aiortc's own
    sender. The same packet leaves both ways as the same bytes (header, extensions, payload), but for the numbers
    that belong to each stream; and each stream's RTCP sender reports count exactly what arrived."""
    (talker,) = await join_all(server, call_id, [("talker", ToneSource(440))])
    lean = await TappedListener("lean").join(http, call_id)
    server.settings.lean_send = False  # the next join takes aiortc's own sender
    try:
        plain = await TappedListener("aiortc").join(http, call_id)
    finally:
        server.settings.lean_send = True
    try:
        for listener in (lean, plain):
            response = await http.post(f"{CALLS}/{call_id}/participants/{listener.participant_id}/mute", json={})
            assert response.status_code == 200, response.text
        lean_peer, plain_peer = server_peer(server, call_id, lean.participant_id), server_peer(server, call_id, plain.participant_id)
        await wait_until(lambda: lean_peer.outlet.path == "lean", 10)
        await wait_until(lambda: len(lean.tap.rtp()) > HOLD_TICKS + 150 and len(plain.tap.rtp()) > HOLD_TICKS + 150, 20)
        assert plain_peer.outlet.path == "aiortc"

        lean_sender, plain_sender = sender_of(lean_peer), sender_of(plain_peer)
        stats = await lean_sender.getStats()
        outbound = next(s for s in stats.values() if s.type == "outbound-rtp")
        assert outbound.packetsSent == lean_peer.outlet.counters().packets  # aiortc's own stats stay true

        at = lean_peer.outlet.lean._abs_send_time_at  # -1: aiortc negotiates abs-send-time for video only
        by_payload = {parse(d, plain_sender).payload: d for d in plain.tap.rtp()}
        matched = 0
        for data in lean.tap.rtp():
            twin = by_payload.get(parse(data, lean_sender).payload)
            if twin is not None:
                assert masked(data, at) == masked(twin, at)
                matched += 1
        assert matched > 100, f"only {matched} shared packets found on both paths"

        # the fields the mask hid: this stream's SSRC, numbering and send time
        packets = [parse(d, lean_sender) for d in lean.tap.rtp()]
        assert {p.ssrc for p in packets} == {lean_sender._ssrc}
        assert all((b.sequence_number - a.sequence_number) % 65536 == 1 for a, b in zip(packets, packets[1:]))
        plain_type = parse(plain.tap.rtp()[0], plain_sender).payload_type
        assert all(p.marker == 1 and p.payload_type == plain_type for p in packets)
        assert {p.extensions.mid for p in packets} == {getattr(lean_sender, rtp_send.SENDER_MID)} != {None}
        tapped = [d for d in lean.tap.datagrams if d.kind == "rtp"]
        for datagram, packet in zip(tapped[-50:], packets[-50:]) if at >= 0 else ():  # 6.18 fixed-point s mod 64
            sent = packet.extensions.abs_send_time / (1 << 18)
            arrived = (datagram.at + rtp_send.NTP_EPOCH_OFFSET) % 64
            assert abs((arrived - sent + 32) % 64 - 32) < 1.0

        await wait_until(lambda: sender_reports(lean, lean_sender._ssrc) >= 2 and sender_reports(plain, plain_sender._ssrc) >= 2, 10)
        assert assert_sender_reports_count_what_arrived(lean, lean_sender._ssrc) >= 2
        assert assert_sender_reports_count_what_arrived(plain, plain_sender._ssrc) >= 2

        settled = time.monotonic() - 2.0
        for listener in (lean, plain):  # both hear the talker at unity gain
            assert float(np.median(tone_amplitudes(listener.heard_since(settled), 440))) == pytest.approx(A, rel=0.1)
    finally:
        await leave_all([talker])
        await asyncio.gather(lean.close(), plain.close())


async def test_numbering_stays_continuous_across_the_shared_and_own_streams(server, http, call_id):
    """A talker who is muted moves from its own encoder to the shared one after HOLD_TICKS, and back when unmuted
    (the tick's encodes running on the encode pool's threads):
    on the wire its sequence numbers go up by one per packet and its timestamps by 960 (more only where the clock
    skipped periods or a tick's encodes were dropped for falling behind), whichever encoder made the packet; and it
    hears the other talker all along."""
    others = await join_all(server, call_id, [("other", ToneSource(660)), ("third", ToneSource(880))])
    listener = await TappedListener("switcher", ToneSource(440)).join(http, call_id)
    call = server.registry.get(call_id)
    try:
        peer = server_peer(server, call_id, listener.participant_id)
        await wait_until(lambda: peer.outlet.path == "lean" and len(listener.tap.rtp()) > 20, 10)
        start = time.monotonic()
        late_before = call.clock.late_ticks + call.encoding.counters().dropped_ticks
        first = len(listener.tap.rtp()) - 1  # the packets from here on are checked against the clock's counters
        own_before = call.encoding.counters().own
        pooled_before = call.encoding.counters().pooled_ticks
        if server.encode_pool is not None:
            server.encode_pool.min_jobs = 2  # the two talkers' own mixes go to the pool's threads
        shared_before = call.encoding.counters().shared_deliveries
        url = f"{CALLS}/{call_id}/participants/{listener.participant_id}/mute"
        assert (await http.post(url, json={})).status_code == 200
        await wait_until(lambda: call.encoding.counters().shared_deliveries - shared_before > 20, 10)
        response = await http.post(f"/ext/calls/{call_id}/participants/{listener.participant_id}/unmute", json={})
        assert response.status_code == 200
        own_at_unmute = call.encoding.counters().own
        await wait_until(lambda: call.encoding.counters().own - own_at_unmute > 100, 10)  # own stream again, 1 s
        late = call.clock.late_ticks + call.encoding.counters().dropped_ticks - late_before

        sender = sender_of(peer)
        packets = [parse(d, sender) for d in listener.tap.rtp()[first:]]
        assert call.encoding.counters().own > own_before
        if server.encode_pool is not None:
            assert call.encoding.counters().pooled_ticks - pooled_before > 50
        steps = [((b.sequence_number - a.sequence_number) % 65536, (b.timestamp - a.timestamp) % 2**32)
                 for a, b in zip(packets, packets[1:])]
        assert all(seq == 1 for seq, _ in steps)
        assert all(ts % 960 == 0 and ts > 0 for _, ts in steps)
        skips = sum(1 for _, ts in steps if ts != 960)
        assert skips <= late, f"{skips} timestamp gaps but the clock resynchronised or the encodes fell behind only {late} times"
        heard = listener.heard_since(start)
        assert len(heard) > 50
        assert float(np.median(tone_amplitudes(heard, 660))) == pytest.approx(A, rel=0.1)
    finally:
        await leave_all(others)
        await listener.close()


async def test_a_wrapped_datagram_path_still_sees_every_lean_packet_in_order(server, http, call_id):
    """Something that wraps the ICE transport's send after SRTP (as downlink impairment does) gets every packet of
    the lean path, in order, and the listener still hears the mix."""
    (talker,) = await join_all(server, call_id, [("talker", ToneSource(440))])
    listener = await TappedListener("listener").join(http, call_id)
    try:
        peer = server_peer(server, call_id, listener.participant_id)
        await wait_until(lambda: peer.outlet.path == "lean", 10)
        ice = sender_of(peer).transport.transport
        plain_send = ice._send
        wrapped: list[bytes] = []

        async def counting_send(data: bytes) -> None:
            wrapped.append(data)
            await plain_send(data)

        ice._send = counting_send
        sent_before = peer.outlet.counters().packets
        arrived_before = len(listener.tap.rtp())
        await wait_until(lambda: len(wrapped) > 100, 10)
        ice._send = plain_send
        rtp_wrapped = [d for d in wrapped if 128 <= d[0] < 192 and not 192 <= d[1] <= 223]
        assert peer.outlet.counters().packets - sent_before >= len(rtp_wrapped) > 90
        packets = [parse(d, sender_of(peer)) for d in listener.tap.rtp()[arrived_before:]]
        assert all((b.sequence_number - a.sequence_number) % 65536 == 1 for a, b in zip(packets, packets[1:]))
        assert float(np.median(tone_amplitudes([m for _, m in listener.heard[-50:]], 440))) == pytest.approx(A, rel=0.1)
    finally:
        await leave_all([talker])
        await listener.close()


async def test_a_listener_impaired_from_its_join_keeps_the_lean_path_through_its_downlink_impairment(server, http, call_id):
    """A listener that joins on an impaired network has the downlink hook on its ICE transport before the sender
    starts: the lean path still stands in for aiortc's sender (the hook says what it wraps), and every mix packet
    goes through the impairment, in order, heard at unity gain."""
    (talker,) = await join_all(server, call_id, [("talker", ToneSource(440))])
    network = '{"downlink": {"delayMs": 15, "jitterMs": 3, "jitterCorrelation": 0.5}}'
    listener = await TappedListener("listener", SilenceSource()).join(http, call_id, network=network)
    try:
        peer = server_peer(server, call_id, listener.participant_id)
        await wait_until(lambda: peer.outlet.path == "lean" and len(listener.tap.rtp()) > 100, 10)
        assert peer.outlet.counters().path == "lean"
        state = peer.network
        assert state is not None and state.downlink.counters.datagrams >= peer.outlet.counters().packets > 100
        packets = [parse(d, sender_of(peer)) for d in listener.tap.rtp()[-100:]]
        assert all((b.sequence_number - a.sequence_number) % 65536 == 1 for a, b in zip(packets, packets[1:]))
        assert float(np.median(tone_amplitudes([m for _, m in listener.heard[-50:]], 440))) == pytest.approx(A, rel=0.1)
    finally:
        await leave_all([talker])
        await listener.close()


async def test_the_mix_falls_back_to_aiortcs_sender_when_its_internals_moved(server, http, call_id, monkeypatch, caplog):
    """aiortc's sender as if a new version had changed it (same behaviour, other code): the seam check refuses the
    lean path with a log line, and the mix goes out through aiortc's sender, heard at unity gain."""
    original = RTCRtpSender._run_rtp

    async def changed_run_rtp(self, codec):  # an aiortc whose sender loop reads differently
        # (the level seam still holds, as the clients' senders need: enc_frame = await self._next_encoded_frame(codec)
        # and its enc_frame.audio_level, inside the original)
        await original(self, codec)

    monkeypatch.setattr(RTCRtpSender, "_run_rtp", changed_run_rtp)
    monkeypatch.setattr(rtp_send, "_seam_verdict", None)  # checked again, once, in this process
    with pytest.raises(rtp_send.SendSeamError, match="RTCRtpSender._run_rtp changed"):
        check_send_seam()
    caplog.set_level(logging.WARNING, logger="mediamute.rtc.rtp_send")
    talker, listener = await join_all(server, call_id, [("talker", ToneSource(440)), ("listener", SilenceSource())])
    try:
        peer = server_peer(server, call_id, listener.participant_id)
        assert peer.outlet.path == "aiortc" and peer.outlet.lean is None
        assert any("lean RTP send path unavailable" in r.getMessage() for r in caplog.records)
        await listener.wait_for_frames(len(listener.recording) + 100, timeout=10)
        _, frames = listener.recording.window(time.monotonic() - 1.0)
        assert float(np.median(tone_amplitudes(frames, 440))) == pytest.approx(A, rel=0.1)
        assert peer.outlet.counters().path == "aiortc" and peer.outlet.counters().packets > 50
    finally:
        await leave_all([talker, listener])
