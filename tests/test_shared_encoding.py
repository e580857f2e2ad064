"""Listeners who hear the identical mix share one encoded stream: on the counters, on the packets, on the audio."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from mediamute.analysis import tone_amplitudes
from mediamute.media.audio import FRAME_SAMPLES
from mediamute.media.gate import MuteGate
from mediamute.media.mixer import Mixer
from mediamute.rtc.encoding import HOLD_TICKS, MixEncoding
from mediamute.sources import ToneSource

from .helpers import join_all, leave_all, tones

A = 8000


def mixer_with_listeners(count: int) -> tuple[Mixer, MixEncoding, dict[str, list]]:
    """A bare mixer whose sinks encode through one MixEncoding, as the server's peers do."""
    mixer = Mixer()
    encoding = MixEncoding()
    sent: dict[str, list] = {}
    for i in range(count):
        pid = f"p{i}"
        sent[pid] = []
        mixer.add(pid, MuteGate(), sink=encoding.listener(sent[pid].append))
    return mixer, encoding, sent


def tick(mixer: Mixer, encoding: MixEncoding, at: float | None = None) -> None:
    """One tick as the call runs it: the mixer hands out the mixes, then the encoding encodes and sends them."""
    mixer.tick(at)
    encoding.tick_done()


def test_non_contributors_get_the_same_packet_and_contributors_their_own():
    mixer, encoding, sent = mixer_with_listeners(4)
    tone = ToneSource(440, A)
    for k in range(10):
        mixer.push("p0", tone.next_frame())
        tick(mixer, encoding, 50.0 + 0.02 * k)  # on the 20 ms grid, however busy the machine is
    c = encoding.counters()
    assert (c.ticks, c.shared, c.own, c.shared_deliveries) == (10, 10, 10, 30)  # 2 encodes a tick, not 4
    assert sent["p1"][-1] is sent["p2"][-1] is sent["p3"][-1]
    assert sent["p0"][-1] is not sent["p1"][-1]
    assert [p.pts for p in sent["p1"]] == [t * FRAME_SAMPLES for t in range(10)]  # continuous RTP timestamps


def test_packets_carry_the_grid_position_the_mixer_tells_the_sink_gaps_included():
    mixer, encoding, sent = mixer_with_listeners(2)
    tone = ToneSource(440, A)
    for at in (50.0, 50.02, 50.04, 50.2, 50.22):  # the clock skipped 7 periods before the fourth tick
        mixer.push("p0", tone.next_frame())
        tick(mixer, encoding, at)
    positions = [0, 1, 2, 10, 11]
    assert [p.pts for p in sent["p0"]] == [t * FRAME_SAMPLES for t in positions]  # its own stream
    assert [p.pts for p in sent["p1"]] == [t * FRAME_SAMPLES for t in positions]  # the shared stream
    assert encoding.counters().ticks == 5  # counted once a tick, from the tick the sinks are told


def test_a_listener_who_stops_talking_keeps_its_own_stream_for_a_while():
    mixer, encoding, sent = mixer_with_listeners(3)
    mixer.push("p0", ToneSource(440, A).next_frame())
    tick(mixer, encoding)
    for _ in range(HOLD_TICKS):  # p0 is silent now but stays on its own encoder: no flip on a short gap
        tick(mixer, encoding)
        assert sent["p0"][-1] is not sent["p1"][-1]
    tick(mixer, encoding)
    assert sent["p0"][-1] is sent["p1"][-1]  # then it joins the shared stream


def test_mixer_records_arrival_to_mix_latency():
    now = [10.0]
    mixer = Mixer(clock=lambda: now[0])
    mixer.add("a", MuteGate())
    mixer.push("a", np.zeros(FRAME_SAMPLES, np.int16), arrived=9.0)  # queued before recording: no time
    mixer.record_latency(True)
    mixer.push("a", np.zeros(FRAME_SAMPLES, np.int16), arrived=9.99)
    mixer.tick()
    mixer.tick()
    assert list(mixer.added_latency) == [pytest.approx(0.01)]  # the untimed frame is skipped, the timed one kept
    assert all(not math.isnan(x) for x in mixer.added_latency)


@pytest.mark.integration
async def test_muted_listeners_share_one_stream_and_hear_the_talker_at_unity_gain(server, http, call_id):
    talker, *others = await join_all(server, call_id, tones(440, 660, 880, 1100))
    call = server.registry.get(call_id)
    try:
        for p in others:
            response = await http.post(f"/v1.0/communications/calls/{call_id}/participants/{p.participant_id}/mute", json={})
            assert response.status_code == 200, response.text

        async def hear(frames: int) -> None:
            targets = [len(p.recording) + frames for p in (talker, *others)]
            for p, target in zip((talker, *others), targets):
                await p.recording.wait_for(target, timeout=10)

        await hear(HOLD_TICKS + 10)  # the muted listeners leave their own streams after HOLD_TICKS
        before = call.encoding.counters()
        settled = time.monotonic()
        await hear(75)
        after = call.encoding.counters()
        ticks = after.ticks - before.ticks
        # two encodes a tick: the talker's own mix, and one shared mix for the three muted listeners
        assert ticks > 50
        assert after.shared - before.shared == pytest.approx(ticks, abs=1)
        assert after.own - before.own == pytest.approx(ticks, abs=1)
        assert after.shared_deliveries - before.shared_deliveries == pytest.approx(3 * ticks, abs=3)

        for p in others:  # each hears the talker, from the one shared stream, at the amplitude it was sent
            _, frames = p.recording.window(settled)
            assert frames
            assert float(np.median(tone_amplitudes(frames, 440))) == pytest.approx(A, rel=0.1), p.display_name
            for muted in (660, 880, 1100):
                assert float(np.median(tone_amplitudes(frames, muted))) < 0.03 * A
        _, frames = talker.recording.window(settled)
        assert float(np.median(tone_amplitudes(frames, 440))) < 0.03 * A  # N-1: not itself, not the muted
        assert float(np.median(tone_amplitudes(frames, 660))) < 0.03 * A
    finally:
        await leave_all([talker, *others])
