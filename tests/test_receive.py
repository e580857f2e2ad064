"""The receive path without aiortc (as a simulated participant would use it): crafted RTP packets with real Opus
payloads → gate → sequence validation → jitter buffer → libopus, pulled by a real Mixer on one injected clock; what
the mixer takes in is checked on the audio (tone level per frame) and on the contributor audit."""

from __future__ import annotations

import numpy as np
import pytest
from aiortc.rtp import RtpPacket

from mediamute.analysis import tone_amplitudes
from mediamute.media.gate import MuteGate
from mediamute.media.jitter import JitterBufferSettings
from mediamute.media.mixer import Mixer
from mediamute.rtc.codec import MonoOpusEncoder
from mediamute.rtc.opus import OpusDecoder, has_lbrr
from mediamute.rtc.receive import ReceivePath
from mediamute.sources import AudioSource, SyllableToneSource, ToneSource

from .helpers import InjectedClock

T = 0.02


class Path:
    """A participant "p" whose packets enter a ReceivePath; a listener's sink keeps what the mixer makes of them."""

    def __init__(self, settings: JitterBufferSettings | None = None) -> None:
        self.clock = InjectedClock(50.0)
        self.gate = MuteGate(clock=self.clock)
        self.path = ReceivePath(self.gate, settings, clock=self.clock)
        self.mixer = Mixer(clock=self.clock)
        self.mixer.add("p", self.gate, source=self.path)
        self.heard: list[np.ndarray] = []
        self.mixer.add("listener", MuteGate(), sink=lambda _tick, mix, _shared: self.heard.append(mix.copy()))
        self.records = []
        self.encoder = MonoOpusEncoder()

    def packets(self, source: AudioSource, first: int, count: int) -> dict[int, bytes]:
        out = {}
        for seq in range(first, first + count):
            packet = self.encoder.encode(source.next_frame(), seq * 960)
            assert packet is not None
            out[seq] = bytes(packet)
        return out

    def play(self, payloads: dict[int, bytes], arrivals: dict[int, float], until: float) -> None:
        """Packets arrive at their times (a missing one is lost); the mixer ticks every 20 ms, 10 ms into a period."""
        events = sorted((t, seq) for seq, t in arrivals.items())
        i = 0
        at = self.clock.now + 0.01
        while at < until:
            while i < len(events) and events[i][0] <= at:
                self.clock.now, seq = events[i]
                packet = RtpPacket(payload_type=111, sequence_number=seq % 65536, timestamp=(seq * 960) % 2**32, ssrc=7)
                packet.payload = payloads[seq]
                self.path.add(packet)
                i += 1
            self.clock.now = at
            self.records.append(self.mixer.tick(at))
            at += T


def on_time(first: int, count: int, start: float) -> dict[int, float]:
    return {seq: start + (seq - first) * T + 0.004 for seq in range(first, first + count)}


def test_loss_and_reordering_reach_the_mix_as_a_continuous_tone():
    p = Path(JitterBufferSettings(min_delay=0.03))
    payloads = p.packets(SyllableToneSource(440), 0, 300)
    arrivals = on_time(0, 300, p.clock.now)
    lost = {seq for seq in range(20, 300, 10)}  # every tenth packet lost
    swapped = list(range(25, 300, 10))  # and every tenth overtaken by the next one
    for seq in swapped:
        arrivals[seq], arrivals[seq + 1] = arrivals[seq + 1] + 0.001, arrivals[seq + 1]
    for seq in lost:
        del arrivals[seq]
    p.play(payloads, arrivals, until=p.clock.now + 6.0)

    counters = p.path.buffer.counters
    expected_fec = sum(1 for seq in lost if has_lbrr(payloads[seq + 1]))
    assert counters.recovered == expected_fec and expected_fec >= 0.7 * len(lost)
    assert counters.concealed == len(lost) - expected_fec  # the rest concealed, one frame each
    assert counters.reordered == len(swapped) and counters.late == 0  # every overtaken packet played in order
    # the audit names the invented and rebuilt frames, tick by tick
    assert sum("p" in r.recovered for r in p.records) == counters.recovered
    assert sum("p" in r.concealed for r in p.records) == counters.concealed
    # the audio the listener gets: the 440 Hz tone at its level in (nearly) every frame, from the first to the last
    frames = p.heard[3:]
    assert len(frames) >= 290
    amplitudes = tone_amplitudes(frames, 440)
    assert np.median(amplitudes) == pytest.approx(8000, rel=0.05)
    assert np.percentile(amplitudes, 5) > 0.6 * 8000  # no dropout: the lost frames are rebuilt or concealed


def test_mute_flushes_and_unmute_plays_fresh_audio_only():
    p = Path(JitterBufferSettings(min_delay=0.06))  # three packets held at any time
    start = p.clock.now
    before = p.packets(ToneSource(440), 0, 50)
    p.play(before, on_time(0, 50, start), until=start + 0.5)  # 25 packets in, ~22 played
    assert p.path.buffer.depth >= 2
    muted_at = p.clock.now
    p.gate.close()  # what Call.mute does; its listeners run now
    assert p.path.buffer.depth == 0 and p.path.buffer.counters.flushed >= 2
    p.play(before, {seq: t for seq, t in on_time(0, 50, start).items() if t >= muted_at}, until=start + 1.0)
    after_mute = [r for r in p.records if r.mixed_at > muted_at]
    assert after_mute and not any("p" in r.contributors for r in after_mute)  # not a frame, not a concealment
    assert p.gate.dropped_packets >= 24

    # unmute: the sender now sends 880 Hz; nothing of the 440 Hz before the mute may come back
    p.gate.open()
    unmuted_at = p.clock.now
    fresh = p.packets(ToneSource(880), 50, 50)
    p.play(fresh, on_time(50, 50, unmuted_at), until=unmuted_at + 1.0)
    heard_again = [i for i, r in enumerate(p.records) if r.mixed_at > unmuted_at and "p" in r.contributors]
    first = heard_again[0]
    assert p.records[first].mixed_at - unmuted_at >= 0.06  # the first fresh packet, after its 60 ms prebuffer
    mixes = p.heard[first:]
    # exactly the fresh packets, decoded from a reset decoder: nothing held, decoded or remembered from before
    fresh_decoder = OpusDecoder()
    for i in range(10):
        assert np.array_equal(mixes[i], fresh_decoder.decode(fresh[50 + i])), i
    assert np.median(tone_amplitudes(mixes, 880)) == pytest.approx(8000, rel=0.05)
    assert not any("p" in r.concealed for r in p.records if r.mixed_at > muted_at)


def test_garbage_payloads_are_counted_and_the_stream_goes_on():
    p = Path()
    payloads = p.packets(ToneSource(440), 0, 60)
    payloads[20] = b""  # not an Opus packet
    payloads[30] = bytes([0x7B, 0x00])  # a code-3 packet without frames
    p.play(payloads, on_time(0, 60, p.clock.now), until=p.clock.now + 1.2)
    assert p.path.malformed == 2 and p.path.jitter_stats().counters.malformed == 2
    assert np.median(tone_amplitudes(p.heard[5:], 440)) == pytest.approx(8000, rel=0.05)
