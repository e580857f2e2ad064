"""Tones: `call: subscribeToTone` against Graph's documented example, the tone notification's shape, and DTMF from a
real aiortc peer (`CallParticipant.send_dtmf`) over real WebRTC to a real callback receiver: in order, numbered,
never in the mix, read from a server-muted participant too, with the gate's counters still true."""

from __future__ import annotations

import asyncio
import json
import struct
import time

import numpy as np
import pytest
import websockets
from aiortc.rtp import is_rtcp

from mediamute.analysis import sustained, tone_amplitudes
from mediamute.client import CallParticipant
from mediamute.media.telephone_event import parse_reports
from mediamute.sources import SilenceSource, ToneSource

from .helpers import (
    A,
    CALLS,
    CallbackReceiver,
    admin_token,
    assert_graph_error,
    call_with_callback,
    hear_for,
    join_without_media,
    wait_until,
)
from .test_graph_contract import assert_contains

# Graph's call-subscribetotone page (v1.0): its request, its response (ids aside) and its tone notification
DOC_REQUEST = {"clientContext": "fd1c7836-4d84-4e24-b6aa-23188688cc54"}
DOC_RESPONSE = {
    "@odata.type": "#microsoft.graph.subscribeToToneOperation",
    "clientContext": "fd1c7836-4d84-4e24-b6aa-23188688cc54",
    "id": "0fe0623f-d628-42ed-b4bd-8ac290072cc5",
    "status": "completed",
}
DOC_NOTIFICATION = {
    "@odata.type": "#microsoft.graph.commsNotifications",
    "value": [
        {
            "@odata.type": "#microsoft.graph.commsNotification",
            "changeType": "updated",
            "resourceUrl": "/communications/calls/57dab8b1-894c-409a-b240-bd8beae78896",
            "resourceData": {
                "@odata.type": "#microsoft.graph.call",
                "state": "established",
                "toneInfo": {"@odata.type": "#microsoft.graph.toneInfo", "sequenceId": 1, "tone": "tone1"},
            },
        }
    ],
}
DTMF_ROWS = (697, 770, 852, 941)
DTMF_COLUMNS = (1209, 1336, 1477, 1633)
REFERENCE_HZ = (1100, 1900, 2500)
"""Between and beyond the DTMF frequencies: a click (broadband) reaches them as much as the DTMF ones, a key does not."""


def key_heard(frames: list[np.ndarray], keys: str) -> np.ndarray:
    """Per frame: is one of `keys` sounding, i.e. its row and column frequencies both well above the reference?"""
    reference = np.max(np.stack([tone_amplitudes(frames, f) for f in REFERENCE_HZ]), axis=0)
    heard = np.zeros(len(frames), dtype=bool)
    for key in keys:
        code = "123A456B789C*0#D".index(key)
        dual = np.minimum(tone_amplitudes(frames, DTMF_ROWS[code // 4]), tone_amplitudes(frames, DTMF_COLUMNS[code % 4]))
        heard |= (dual > 0.02 * A) & (dual > 3 * reference)
    return heard


def tone_notifications(receiver: CallbackReceiver) -> list[dict]:
    return [n for n in receiver.notifications() if "toneInfo" in (n.get("resourceData") or {}) and "id" not in n["resourceData"]]


# the API, in process ----------------------------------------------------------------------------------------------
async def test_subscribe_to_tone_answers_as_the_documentation_shows(api, api_http):
    call_id = (await api_http.post(CALLS, json={})).json()["id"]
    response = await api_http.post(f"{CALLS}/{call_id}/subscribeToTone", json=DOC_REQUEST, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_contains(DOC_RESPONSE, body)
    assert body["@odata.context"] == f"{api.base_url}/v1.0/$metadata#subscribeToToneOperation"
    assert response.headers["Location"] == f"{api.base_url}/v1.0/communications/calls/{call_id}/operations/{body['id']}"
    resolved = (await api_http.get(response.headers["Location"])).json()
    assert {k: resolved[k] for k in DOC_RESPONSE if k != "id"} == {k: DOC_RESPONSE[k] for k in DOC_RESPONSE if k != "id"}
    beta = await api_http.post(f"/beta/communications/calls/{call_id}/subscribeToTone", json={})
    assert beta.status_code == 200 and beta.json()["status"] == "completed" and beta.json()["clientContext"] is None
    call = (await api_http.get(f"{CALLS}/{call_id}")).json()
    assert call["toneInfo"] is None  # no key pressed yet


async def test_subscribe_to_tone_refuses_what_graph_refuses(api, api_http):
    call_id = (await api_http.post(CALLS, json={})).json()["id"]
    assert_graph_error(await api_http.post(f"{CALLS}/{call_id}/subscribeToTone", json={"clientContext": "x" * 257}), 400)
    assert_graph_error(await api_http.post(f"{CALLS}/nope/subscribeToTone", json={}), 404)
    await api_http.delete(f"{CALLS}/{call_id}")
    assert_graph_error(await api_http.post(f"{CALLS}/{call_id}/subscribeToTone", json={}), 409)


async def test_a_key_press_is_notified_as_graph_shows_once_subscribed_and_only_then(api, api_http):
    async with CallbackReceiver() as receiver:
        call_id = (await api_http.post(CALLS, json={"callbackUri": receiver.url})).json()["id"]
        call = api.registry.get(call_id)
        bob = join_without_media(call, "Bob")
        assert call.receive_tone(bob.id, "tone9") is None  # no subscription: not numbered, not notified
        await api_http.post(f"{CALLS}/{call_id}/subscribeToTone", json=DOC_REQUEST)
        info = call.receive_tone(bob.id, "tone1")
        assert (info.sequence_id, info.tone, info.participant_id, info.server_muted) == (1, "tone1", bob.id, False)
        await api_http.post(f"{CALLS}/{call_id}/participants/{bob.id}/mute", json={})
        call.receive_tone(bob.id, "pound")  # a muted participant's tones are still read
        await receiver.wait_for(lambda r: len(tone_notifications(r)) == 2)
        first, second = tone_notifications(receiver)
        expected = DOC_NOTIFICATION["value"][0] | {"resourceUrl": f"/communications/calls/{call_id}"}
        assert_contains(expected, first)
        assert set(first["resourceData"]) == {"@odata.type", "state", "toneInfo", "mediamute"}  # Graph's, plus ours
        assert first["resourceData"]["mediamute"] == {"participantId": bob.id, "serverMuted": False}
        assert second["resourceData"]["toneInfo"] == {"@odata.type": "#microsoft.graph.toneInfo", "sequenceId": 2, "tone": "pound"}
        assert second["resourceData"]["mediamute"] == {"participantId": bob.id, "serverMuted": True}
        got = (await api_http.get(f"{CALLS}/{call_id}")).json()["toneInfo"]
        assert got == {"@odata.type": "#microsoft.graph.toneInfo", "sequenceId": 2, "tone": "pound"}  # the latest
        await api_http.delete(f"{CALLS}/{call_id}")
        await receiver.wait_for(lambda r: any(n["changeType"] == "deleted" for n in r.notifications()))
    assert [n["resourceData"]["toneInfo"]["tone"] for n in tone_notifications(receiver)] == ["tone1", "pound"]


# DTMF over real WebRTC --------------------------------------------------------------------------------------------
class WireRecorder:
    """Every RTP packet a client's transport sends, as the network sees it (below the DTMF sender, before SRTP)."""

    def __init__(self, participant: CallParticipant) -> None:
        transport = participant.pc.getSenders()[0].transport
        self.ssrc = participant.pc.getSenders()[0]._ssrc
        self.packets: list[tuple[int, int, bool, int, bytes]] = []  # (seq, timestamp, marker, payload type, payload)
        self._send = transport._send_rtp
        transport._send_rtp = self._send_rtp

    async def _send_rtp(self, data: bytes) -> None:
        if not is_rtcp(data) and len(data) >= 12:
            first, second, seq, timestamp, ssrc = struct.unpack_from("!BBHII", data)
            if ssrc == self.ssrc:
                extension = 4 + 4 * struct.unpack_from("!H", data, 14)[0] if first & 0x10 else 0
                payload = data[12 + 4 * (first & 0x0F) + extension :]
                self.packets.append((seq, timestamp, bool(second & 0x80), second & 0x7F, payload))
        await self._send(data)


async def server_receive_stats(server, call_id: str, participant_id: str) -> dict:
    """aiortc's receive statistics of one participant's stream on the server (what RTCP reports)."""
    peer = server.registry.get(call_id).participant(participant_id).media
    report = await peer.pc.getTransceivers()[0].receiver.getStats()
    return next(s for s in report.values() if s.type == "inbound-rtp").__dict__


def assert_counters_true(server, call_id: str, participant_id: str, stats: dict) -> None:
    """Every packet aiortc counted as received went to exactly one place: passed by the gate, dropped by it, or
    read as DTMF (read right after the statistics, with no await between: nothing arrives in between)."""
    participant = server.registry.get(call_id).participant(participant_id)
    gate, tones = participant.gate, participant.media.tone_counters
    assert stats["packetsReceived"] == gate.passed_packets + gate.dropped_packets + tones.packets, (stats, gate.counters(), tones)


async def test_dtmf_from_a_real_peer_reaches_the_callback_in_order_and_never_the_mix(server, http):
    token = admin_token(server)
    async with call_with_callback(server, http, [("Alice", ToneSource(440)), ("Bob", SilenceSource())]) as (receiver, call_id, (alice, bob)):
        events_url = server.base_url.replace("http", "ws") + f"/ext/calls/{call_id}/events?access_token={token}"
        streamed: list[dict] = []
        async with websockets.connect(events_url, open_timeout=5) as ws:
            reader = asyncio.get_running_loop().create_task(collect_tones(ws, streamed))
            try:
                wire = WireRecorder(alice)
                await hear_for(bob, 0.5)
                # before any subscription: read (stream, counters), not notified
                before_subscribing = await alice.send_dtmf("9", duration_ms=60, gap_ms=40)
                await wait_until(lambda: len(streamed) == 1, timeout=5)
                r = await http.post(f"{CALLS}/{call_id}/subscribeToTone", json={"clientContext": "dtmf-test"})
                assert r.status_code == 200 and r.json()["status"] == "completed"
                started = time.monotonic()
                sent = await alice.send_dtmf("147#", duration_ms=100, gap_ms=70)
                ended = time.monotonic()
                await receiver.wait_for(lambda r: len(tone_notifications(r)) == 4)
                notes = tone_notifications(receiver)
                assert [n["resourceData"]["toneInfo"]["tone"] for n in notes] == ["tone1", "tone4", "tone7", "pound"]
                assert [n["resourceData"]["toneInfo"]["sequenceId"] for n in notes] == [1, 2, 3, 4]
                assert {n["resourceData"]["mediamute"]["participantId"] for n in notes} == {alice.participant_id}
                await wait_until(lambda: len(streamed) == 5, timeout=5)
                assert [(m["tone"], m["sequenceId"]) for m in streamed] == [
                    ("tone9", None), ("tone1", 1), ("tone4", 2), ("tone7", 3), ("pound", 4)
                ]

                # on the wire: what RFC 4733 asks of a sender (the packets, as the network saw them)
                assert_rfc_4733_on_the_wire(wire, sent, "147#")

                # the server: one press per key press, the events never decoded, its counters true
                await hear_for(bob, 0.5)
                entry = next(p for p in (await http.get(f"/ext/calls/{call_id}/stats", params={"limit": 0})).json()["participants"]
                             if p["id"] == alice.participant_id)
                assert entry["tones"]["presses"] == 5 and entry["tones"]["dropped"] == 0
                assert entry["tones"]["packets"] == len(before_subscribing) + len(sent) and entry["tones"]["formats"] == [48000, 8000]
                assert entry["rtp"]["dropped"] == 0  # the audio around the events is in order and complete
                stats = await server_receive_stats(server, call_id, alice.participant_id)
                assert_counters_true(server, call_id, alice.participant_id, stats)
                assert stats["packetsLost"] == 0  # events took the audio stream's next numbers: no gap
                path = server.registry.get(call_id).participant(alice.participant_id).media.receive_path
                assert path.decoder.errors == 0 and path.malformed == 0  # not one event packet reached the decoder
                assert path.buffer.counters.packets == path.sequence_counters.accepted  # every accepted one was Opus

                # Bob heard Alice's 440 Hz, and none of the keys: a key would sound its two DTMF frequencies for its
                # 100 ms (5 frames). (A late tick on a loaded machine costs a frame of 440 Hz and makes a click, which
                # is broadband: load, not a key; the exact proof that no event reached the mix is the decoder's.)
                _, frames = bob.recording.window(started - 0.2, ended + 0.2)
                assert len(frames) > 25  # at least half a second of what Bob heard while the keys went
                assert float(np.median(tone_amplitudes(frames, 440))) > 0.9 * A
                assert not sustained(key_heard(frames, "9147#"), 0.5, min_run=3).any()
            finally:
                reader.cancel()


async def collect_tones(ws, into: list[dict]) -> None:
    try:
        async for raw in ws:
            message = json.loads(raw)
            if message.get("type") == "tone":
                into.append(message)
    except websockets.ConnectionClosed:
        pass


def assert_rfc_4733_on_the_wire(wire: WireRecorder, sent, keys: str) -> None:
    packets = wire.packets
    seqs = [p[0] for p in packets]
    assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:])), "one numbering for audio and events, gapless"
    events = [p for p in packets if p[3] == sent[0].payload_type]
    audio = [p for p in packets if p[3] != sent[0].payload_type]
    assert [(p[0], p[1], p[2], p[4]) for p in events[-len(sent):]] == [(s.sequence_number, s.timestamp, s.marker, s.payload) for s in sent]
    assert {s.ssrc for s in sent} == {wire.ssrc}  # the audio stream's SSRC
    presses: dict[int, list] = {}
    for packet in events[-len(sent):]:
        presses.setdefault(packet[1], []).append(packet)
    assert len(presses) == len(keys)  # one timestamp per press
    for (start, packets_of_press), key in zip(presses.items(), keys):
        reports = [parse_reports(p[4])[0] for p in packets_of_press]
        assert {r.event for r in reports} == {"0123456789*#ABCD".index(key)}
        assert [p[2] for p in packets_of_press] == [True] + [False] * (len(packets_of_press) - 1)  # marker on the first
        assert [r.end for r in reports][-3:] == [True] * 3 and not any(r.end for r in reports[:-3])  # E three times
        durations = [r.duration for r in reports]
        assert durations == sorted(durations) and durations[0] > 0 and durations[-1] == 100 * 48
        # its timestamp is the audio stream's clock when it began (its first packet leaves one update later): the
        # audio packet sent just before that first packet is within a few 20 ms frames of it
        first_seq = packets_of_press[0][0]
        before = [p for p in audio if (first_seq - p[0]) % 65536 < 1000][-1]
        offset = (start - before[1] + 2**31) % 2**32 - 2**31
        assert abs(offset) <= 3 * 960, (start, before[1], offset)


async def test_a_server_muted_participants_tones_are_read_and_its_audio_still_dropped(server, http):
    async with call_with_callback(server, http, [("Alice", ToneSource(440)), ("Bob", SilenceSource())]) as (receiver, call_id, (alice, bob)):
        await http.post(f"{CALLS}/{call_id}/subscribeToTone", json={})
        await hear_for(bob, 0.5)
        r = await http.post(f"{CALLS}/{call_id}/participants/{alice.participant_id}/mute", json={})
        assert r.status_code == 200
        muted_at = time.monotonic()
        gate = server.registry.get(call_id).participant(alice.participant_id).gate
        passed = gate.passed_packets
        await alice.send_dtmf("*0", duration_ms=100, gap_ms=70)
        await receiver.wait_for(lambda r: len(tone_notifications(r)) == 2)
        notes = tone_notifications(receiver)
        assert [n["resourceData"]["toneInfo"]["tone"] for n in notes] == ["star", "tone0"]
        assert all(n["resourceData"]["mediamute"] == {"participantId": alice.participant_id, "serverMuted": True} for n in notes)
        await hear_for(bob, 0.3)
        assert gate.passed_packets == passed and gate.dropped_packets > 25  # every audio packet dropped
        stats = await server_receive_stats(server, call_id, alice.participant_id)
        assert_counters_true(server, call_id, alice.participant_id, stats)
        call = server.registry.get(call_id)
        assert call.mixer.audit.frames_from(alice.participant_id, muted_at) == 0  # nothing of Alice mixed
        _, frames = bob.recording.window(muted_at + 0.3)
        assert float(np.median(tone_amplitudes(frames, 440))) < 0.03 * A
        assert not sustained(key_heard(frames, "*0"), 0.5, min_run=3).any()


async def test_send_dtmf_refuses_bad_keys_before_sending(server, http):
    call_id = (await http.post(CALLS, json={})).json()["id"]
    alice = CallParticipant(server.base_url, call_id, SilenceSource(), "Alice", token=admin_token(server))
    await alice.join()
    try:
        with pytest.raises(ValueError, match="not a DTMF key"):
            await alice.send_dtmf("12X")
        with pytest.raises(ValueError, match="40 to 6000 ms"):
            await alice.send_dtmf("1", duration_ms=10)
        assert alice._dtmf is not None and not alice._dtmf.sent  # nothing went out
    finally:
        await alice.leave()


def test_the_key_check_hears_a_real_dtmf_tone_and_not_a_click():
    """What the end-to-end tests rely on to say "no key was heard": it does hear one, and not a click."""
    t = np.arange(960 * 10) / 48000
    voice = 8000 * np.sin(2 * np.pi * 440 * t)
    key_4 = voice + 2000 * (np.sin(2 * np.pi * 770 * t) + np.sin(2 * np.pi * 1209 * t))
    click = voice.copy()
    click[4800:4810] = 30000
    frames = lambda x: [x[i : i + 960].astype(np.int16) for i in range(0, x.size, 960)]  # noqa: E731
    assert key_heard(frames(key_4), "4").all() and not key_heard(frames(key_4), "3").any()  # 3: another column
    assert not key_heard(frames(click), "147#*0").any() and not key_heard(frames(voice), "147#").any()
