"""A real group call over WebRTC on loopback: N-1 mixing, server mute, unmute, counters, audit, RTCP, latency."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from mediamute.analysis import marker_latencies, marker_onsets
from mediamute.client import CallParticipant
from mediamute.media.audio import FRAME_SECONDS
from mediamute.sources import MarkerSource, ToneSource

from .helpers import (
    A,
    admin_token,
    amplitude,
    assert_tone_returns,
    assert_tone_stops,
    hear_for,
    join_all,
    leave_all,
    tones,
    wait_until,
)

pytestmark = pytest.mark.integration


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
        audit = call.mixer.audit
        t_mute_sent = time.monotonic()
        response = await http.post(
            f"/v1.0/communications/calls/{call_id}/participants/{b.participant_id}/mute",
            json={"clientContext": "d45324c1-fcb5-430a-902c-f20af696537c"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "completed"
        assert not gate_b.is_open  # closed before the response was sent
        operation_id = response.json()["id"]
        muted_at = call.operation(operation_id).completed_monotonic
        dropped_at_mute = gate_b.dropped_packets
        # b was in the mix up to the mute, and no tick after the mute's answer has it
        assert any(b.participant_id in r.contributors for r in audit.between(t_mute_sent - 0.5, muted_at))
        await hear_for([a, c], 1.0)
        stopped = {listener: assert_tone_stops(listener, 660, t_mute_sent) for listener in (a, c)}
        # the other tones are unchanged once it stopped
        assert amplitude(c, 440, stopped[c]) == pytest.approx(before_440_at_c, rel=0.05)
        assert amplitude(a, 880, stopped[a]) == pytest.approx(before_880_at_a, rel=0.05)
        # the gate dropped b's packets (b keeps streaming) and the audit shows no frame of b after the mute
        assert gate_b.dropped_packets > dropped_at_mute + 30
        assert audit.first_with(b.participant_id, muted_at) is None
        assert audit.frames_from(b.participant_id, muted_at) == 0
        assert audit.frames_from(a.participant_id, muted_at) > 30
        stats = (await http.get(f"/ext/calls/{call_id}/stats", params={"since": muted_at})).json()
        assert stats["audit"] and all(b.participant_id not in r["contributors"] for r in stats["audit"])

        # unmute: the tone comes back after the request (not before), and the gate stops dropping
        t_unmute_sent = time.monotonic()
        response = await http.post(f"/ext/calls/{call_id}/participants/{b.participant_id}/unmute", json={})
        assert response.status_code == 200, response.text
        unmuted_at = call.operation(response.json()["id"]).completed_monotonic
        dropped_at_unmute = gate_b.dropped_packets
        await hear_for([a, c], 1.0)
        for listener in (a, c):
            assert_tone_stops(listener, 660, t_mute_sent, until=t_unmute_sent)  # silent all through the mute
            assert_tone_returns(listener, 660, t_unmute_sent)
        assert audit.frames_from(b.participant_id, muted_at, unmuted_at) == 0
        assert audit.first_with(b.participant_id, unmuted_at) is not None
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
    call = server.registry.get(call_id)

    def latencies(start: float, end: float) -> list[float]:
        """Send-to-mixed delay of every marker burst sent in [start, end) (a burst the mute cut is not paired): the
        speaker's level in each tick's audit record, so what a mute could disturb (the speaker's receive path on the
        server) is measured without the listener's own jitter buffer, which a loaded machine moves on its own."""
        records = call.mixer.audit.between(start)
        times = np.array([r.mixed_at for r in records])
        levels = np.array([r.level_of(speaker.participant_id) * np.sqrt(2) for r in records])  # RMS → amplitude
        onsets = marker_onsets(times, levels, 0.25 * A)
        sent = [t for t in speaker.marker_times if start <= t < end]
        return marker_latencies(sent, onsets)

    try:
        await hear_for([listener], 4.5)  # the first second or two carry the joins' start-up transient
        before = latencies(time.monotonic() - 3.0, np.inf)
        mute_url = f"/v1.0/communications/calls/{call_id}/participants/{speaker.participant_id}/mute"
        response = await http.post(mute_url, json={})
        assert response.status_code == 200
        muted_at = call.operation(response.json()["id"]).completed_monotonic
        await hear_for([listener], 0.1)  # a short mute: five frames at the listener
        response = await http.post(f"/ext/calls/{call_id}/participants/{speaker.participant_id}/unmute", json={})
        assert response.status_code == 200
        t_unmute = time.monotonic()
        unmuted_at = call.operation(response.json()["id"]).completed_monotonic
        # the mute happened: ticks ran between the two answers and none of them mixed the speaker
        audit = call.mixer.audit
        assert audit.between(muted_at, unmuted_at) and audit.frames_from(speaker.participant_id, muted_at, unmuted_at) == 0
        await hear_for([listener], 3.5)
        after = latencies(t_unmute, np.inf)
        assert len(before) >= 4 and len(after) >= 4
        # nothing stalled or queued up on re-open: the latency after the mute is the latency before it, within one
        # 20 ms frame (the unit latency moves in here: a jitter buffer holds whole frames). A relative comparison
        # in frames, not a budget: the latency figure itself is `mediamute bench`'s mouth-to-ear
        shift_in_frames = (np.median(after) - np.median(before)) / FRAME_SECONDS
        assert abs(shift_in_frames) < 1.25, (before, after)
    finally:
        await leave_all([speaker, listener])


async def test_a_vanished_participant_is_removed_without_disturbing_the_others(server, http, call_id):
    a, b, c = await join_all(server, call_id, tones(440, 660, 880))
    call = server.registry.get(call_id)
    try:
        await hear_for([a, b, c], 1.0)
        t_vanish = time.monotonic()
        await b.vanish()  # no DELETE: the peer connection just goes away
        await wait_until(lambda: b.participant_id not in call.participants, timeout=15)
        await hear_for([a, c], 1.0)
        # the others were mixed all along: a second of each since the vanish, as c and a heard
        assert call.mixer.audit.frames_from(a.participant_id, t_vanish) >= 50
        assert call.mixer.audit.frames_from(c.participant_id, t_vanish) >= 50
        assert amplitude(a, 880, time.monotonic() - 0.6) == pytest.approx(A, rel=0.1)
        assert amplitude(c, 440, time.monotonic() - 0.6) == pytest.approx(A, rel=0.1)
        assert amplitude(a, 660, time.monotonic() - 0.6) < 0.03 * A
        assert call.mixer.audit.frames_from(b.participant_id, time.monotonic() - 0.5) == 0
        assert b.participant_id not in call.mixer
        listed = (await http.get(f"/v1.0/communications/calls/{call_id}/participants")).json()["value"]
        assert b.participant_id not in [p["id"] for p in listed]
    finally:
        await leave_all([a, c])
