"""A real group call over WebRTC on loopback: N-1 mixing, server mute, unmute, counters, audit, RTCP, latency."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from mediamute.analysis import first_time_above, last_time_above, marker_latencies, marker_onsets, tone_amplitudes
from mediamute.client import CallParticipant
from mediamute.sources import MarkerSource, ToneSource

from .conftest import admin_token, join_all, leave_all, tones, wait_until

pytestmark = pytest.mark.integration

A = 8000  # ToneSource's default amplitude
FRAMES_PER_SECOND = 50


def amplitude(p: CallParticipant, freq: float, start: float, end: float = np.inf) -> float:
    _, frames = p.recording.window(start, end)
    assert frames, f"{p.display_name} heard nothing in the window"
    return float(np.median(tone_amplitudes(frames, freq)))


def tone_track(p: CallParticipant, freq: float) -> tuple[np.ndarray, np.ndarray]:
    times, frames = p.recording.window()
    return times, tone_amplitudes(frames, freq)


async def hear_for(participants, seconds: float) -> None:
    """Wait (on frame arrival events) until every participant has heard `seconds` more audio."""
    targets = [len(p.recording) + int(seconds * FRAMES_PER_SECOND) for p in participants]
    await asyncio.gather(*(p.recording.wait_for(t, timeout=seconds + 5) for p, t in zip(participants, targets)))


async def rtcp_reported_loss(p: CallParticipant, after: float) -> int:
    """packetsLost of the server's latest RTCP receiver report about `p`'s audio, waiting for one newer than `after`."""
    sender = p.pc.getSenders()[0]
    async with asyncio.timeout(6):
        while True:
            stats = await sender.getStats()
            remote = [s for s in stats.values() if s.type == "remote-inbound-rtp"]
            if remote and remote[0].timestamp.timestamp() > after:
                return remote[0].packetsLost
            await asyncio.sleep(0.1)  # RTCP reports come every 0.5-1.5 s; nothing signals them


async def test_three_tones_mute_and_unmute(server, http, call_id):
    a, b, c = await join_all(server, call_id, tones(440, 660, 880))
    call = server.registry.get(call_id)
    gate_b = call.participant(b.participant_id).gate
    try:
        await hear_for([a, b, c], 1.5)
        steady = time.monotonic() - 0.6

        # N-1: each hears the two others at the sent amplitude, and not itself
        for listener, own, others in ((a, 440, (660, 880)), (b, 660, (440, 880)), (c, 880, (440, 660))):
            for freq in others:
                assert amplitude(listener, freq, steady) == pytest.approx(A, rel=0.1), (listener.display_name, freq)
            assert amplitude(listener, own, steady) < 0.03 * A
        assert gate_b.dropped_packets == 0
        before_440_at_c = amplitude(c, 440, steady)
        before_880_at_a = amplitude(a, 880, steady)

        # mute the 660 Hz participant, exactly as Graph does
        response = await http.post(
            f"/v1.0/communications/calls/{call_id}/participants/{b.participant_id}/mute",
            json={"clientContext": "d45324c1-fcb5-430a-902c-f20af696537c"},
        )
        t_ok = time.monotonic()
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "completed"
        assert not gate_b.is_open  # closed before the response was sent
        operation_id = response.json()["id"]
        muted_at = call.operation(operation_id).completed_monotonic
        dropped_at_mute = gate_b.dropped_packets

        await hear_for([a, c], 1.0)
        for listener in (a, c):
            times, amps = tone_track(listener, 660)
            last_heard = last_time_above(times, amps, 0.1 * A, t_ok - 1.0, np.inf)
            assert last_heard is not None and last_heard - t_ok < 0.2, "660 Hz still heard 200 ms after the 200 OK"
            assert amplitude(listener, 660, t_ok + 0.2) < 0.03 * A
        # the other tones are unchanged
        assert amplitude(c, 440, t_ok + 0.3) == pytest.approx(before_440_at_c, rel=0.05)
        assert amplitude(a, 880, t_ok + 0.3) == pytest.approx(before_880_at_a, rel=0.05)
        # the gate dropped b's packets (b keeps streaming) and the audit shows no frame of b after the mute
        assert gate_b.dropped_packets > dropped_at_mute + 30
        assert call.mixer.audit.frames_from(b.participant_id, muted_at) == 0
        assert call.mixer.audit.frames_from(a.participant_id, muted_at) > 30
        stats = (await http.get(f"/ext/calls/{call_id}/stats", params={"since": muted_at})).json()
        assert stats["audit"] and all(b.participant_id not in r["contributors"] for r in stats["audit"])

        # unmute: the tone is back within 300 ms, and the gate stops dropping
        response = await http.post(f"/ext/calls/{call_id}/participants/{b.participant_id}/unmute", json={})
        t_unmute = time.monotonic()
        assert response.status_code == 200, response.text
        dropped_at_unmute = gate_b.dropped_packets
        await hear_for([a, c], 1.0)
        for listener in (a, c):
            times, amps = tone_track(listener, 660)
            back = first_time_above(times, amps, 0.5 * A, t_unmute)
            assert back is not None and back - t_unmute < 0.3, "660 Hz not back within 300 ms of unmute"
            assert amplitude(listener, 660, t_unmute + 0.4) == pytest.approx(A, rel=0.1)
        assert gate_b.dropped_packets == dropped_at_unmute

        # RTCP: the server reports no loss for b, though it dropped every packet while muted
        assert await rtcp_reported_loss(b, after=time.time()) == 0
        server_stats = await call.participant(b.participant_id).media.pc.getReceivers()[0].getStats()
        inbound = [s for s in server_stats.values() if s.type == "inbound-rtp"]
        assert inbound and inbound[0].packetsLost == 0
        assert inbound[0].packetsReceived >= gate_b.passed_packets + gate_b.dropped_packets - 5
    finally:
        await leave_all([a, b, c])


async def test_latency_is_unchanged_after_a_short_mute(server, http, call_id):
    token = admin_token(server)
    speaker = CallParticipant(
        server.base_url, call_id, MarkerSource(1000, period_frames=25), display_name="markers", token=token
    )
    listener = CallParticipant(server.base_url, call_id, ToneSource(440), display_name="listener", token=token)
    await asyncio.gather(speaker.join(), listener.join())

    def latencies(start: float, end: float) -> list[float]:
        """Send-to-heard delay of every marker burst sent in [start, end) (a burst the mute cut is not paired)."""
        times, frames = listener.recording.window(start, np.inf)
        onsets = marker_onsets(times, tone_amplitudes(frames, 1000), 0.25 * A)
        sent = [t for t in speaker.marker_times if start <= t < end]
        return marker_latencies(sent, onsets)

    try:
        await hear_for([listener], 4.5)  # the first second or two carry the joins' start-up transient
        before = latencies(time.monotonic() - 3.0, np.inf)
        mute_url = f"/v1.0/communications/calls/{call_id}/participants/{speaker.participant_id}/mute"
        assert (await http.post(mute_url, json={})).status_code == 200
        t_mute = time.monotonic()
        await hear_for([listener], 0.1)
        assert time.monotonic() - t_mute < 0.3
        response = await http.post(f"/ext/calls/{call_id}/participants/{speaker.participant_id}/unmute", json={})
        assert response.status_code == 200
        t_unmute = time.monotonic()
        await hear_for([listener], 3.5)
        after = latencies(t_unmute, np.inf)
        assert len(before) >= 4 and len(after) >= 4
        # same latency as before the mute (within one 20 ms frame): nothing stalled or queued up on re-open
        assert abs(np.median(after) - np.median(before)) < 0.025, (before, after)
    finally:
        await leave_all([speaker, listener])


async def test_a_vanished_participant_is_removed_without_disturbing_the_others(server, http, call_id):
    a, b, c = await join_all(server, call_id, tones(440, 660, 880))
    call = server.registry.get(call_id)
    try:
        await hear_for([a, b, c], 1.0)
        late_before = call.clock.late_ticks
        t_vanish = time.monotonic()
        await b.vanish()  # no DELETE: the peer connection just goes away
        await wait_until(lambda: b.participant_id not in call.participants, timeout=15)
        await hear_for([a, c], 1.0)
        assert call.clock.late_ticks == late_before
        assert amplitude(a, 880, time.monotonic() - 0.6) == pytest.approx(A, rel=0.1)
        assert amplitude(c, 440, time.monotonic() - 0.6) == pytest.approx(A, rel=0.1)
        assert amplitude(a, 660, time.monotonic() - 0.6) < 0.03 * A
        assert call.mixer.audit.frames_from(b.participant_id, time.monotonic() - 0.5) == 0
        assert b.participant_id not in call.mixer
        listed = (await http.get(f"/v1.0/communications/calls/{call_id}/participants")).json()["value"]
        assert b.participant_id not in [p["id"] for p in listed]
        assert time.monotonic() - t_vanish < 15
    finally:
        await leave_all([a, c])
