"""The mixes' encoders keep unity gain; the encode pool runs a tick's encodes on other threads and still sends every
listener its packets in tick order, the exact audio, one tick at a time."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from mediamute.analysis import tone_amplitudes
from mediamute.media.audio import FRAME_SAMPLES
from mediamute.media.gate import MuteGate
from mediamute.media.mixer import Mixer
from mediamute.rtc.opus import OpusDecoder
from mediamute.rtc.encode_pool import INLINE_BELOW, MAX_WAITING, EncodePool, TickBatch, TickEncoder
from mediamute.rtc.encoding import MixEncoding
from mediamute.rtc.mix_encoder import (
    MIX_ENCODER_KINDS,
    EncodedMix,
    PyAVMixEncoder,
    libopus_available,
    mix_encoder_factory,
)
from mediamute.sources import ToneSource

from .helpers import A, hear_for, join_all, leave_all, tones


def two_tone_mix(frames: int) -> list[np.ndarray]:
    a, b = ToneSource(660, A), ToneSource(880, A)
    return [(a.next_frame().astype(np.int32) + b.next_frame()).clip(-32768, 32767).astype(np.int16) for _ in range(frames)]


def decoded(payloads: list[bytes]) -> list[np.ndarray]:
    decoder = OpusDecoder()
    return [frame for payload in payloads if (frame := decoder.decode(payload)) is not None]


@pytest.mark.parametrize("kind", MIX_ENCODER_KINDS)
def test_the_mix_encoder_keeps_unity_gain(kind):
    """The case that made complexity 10 the rule: 660 + 880 Hz come back at the amplitude they were mixed at."""
    if kind == "libopus" and not libopus_available():
        pytest.skip("opuslib-next or the system's libopus0 is not installed")
    encoder = mix_encoder_factory(kind)()
    mixes = [encoder.encode(frame, k * FRAME_SAMPLES) for k, frame in enumerate(two_tone_mix(150))]
    assert all(isinstance(m, EncodedMix) for m in mixes) and [m.pts for m in mixes] == [k * 960 for k in range(150)]
    heard = decoded([m.payload for m in mixes])[25:]  # past the encoder's start-up
    for hz in (660, 880):
        assert float(np.median(tone_amplitudes(heard, hz))) == pytest.approx(A, rel=0.02), hz


class WatchedEncoder:
    """A real mix encoder that records which thread ran each encode and counts any time two threads share it;
    `hold` (when set) makes an encode wait until released, to stand for a slow machine."""

    def __init__(self) -> None:
        self.real = PyAVMixEncoder()
        self.busy = threading.Lock()
        self.threads: set[str] = set()
        self.overlaps = 0
        self.hold: threading.Event | None = None

    def encode(self, mono: np.ndarray, pts: int) -> EncodedMix:
        if not self.busy.acquire(blocking=False):
            self.overlaps += 1
            self.busy.acquire()
        try:
            self.threads.add(threading.current_thread().name)
            if self.hold is not None:
                self.hold.wait(10)
            return self.real.encode(mono, pts)
        finally:
            self.busy.release()


@pytest.fixture
def pool():
    encode_pool = EncodePool(2)
    yield encode_pool
    encode_pool.close()


def tick_batch(encoders: list[WatchedEncoder], frame: np.ndarray, position: int, out: list[list[EncodedMix]]) -> TickBatch:
    batch = TickBatch()
    for k, encoder in enumerate(encoders):
        batch.deliveries.append((out[k].append, batch.add_job(encoder, frame, position * FRAME_SAMPLES)))
    return batch


async def test_pooled_ticks_keep_each_listeners_order_and_audio(pool):
    """200 ticks of 8 listeners' encodes on two threads: each encoder only ever on one thread at a time, each
    listener's packets in tick order, and the tone decodes at unity gain from them."""
    encoders = [WatchedEncoder() for _ in range(8)]
    out: list[list[EncodedMix]] = [[] for _ in encoders]
    runner = TickEncoder(pool)
    tone = ToneSource(440, A)
    for position in range(200):
        runner.run(tick_batch(encoders, tone.next_frame(), position, out))
        if position % 2:  # every other tick waits behind the one before it
            async with asyncio.timeout(10):
                await runner.idle()
    assert (runner.pooled_ticks, runner.dropped_ticks, runner.inline_ticks) == (200, 0, 0)
    assert sum(e.overlaps for e in encoders) == 0
    assert set().union(*(e.threads for e in encoders)) <= {"mm-encode-0", "mm-encode-1"}
    for packets in out:
        positions = [m.pts // FRAME_SAMPLES for m in packets]
        assert positions == list(range(200))
        assert float(np.median(tone_amplitudes(decoded([m.payload for m in packets])[25:], 440))) == pytest.approx(A, rel=0.02)


async def test_a_tick_waits_for_the_one_before_and_the_oldest_waiting_tick_is_dropped_when_too_far_behind(pool):
    encoders = [WatchedEncoder() for _ in range(INLINE_BELOW)]
    out: list[list[EncodedMix]] = [[] for _ in encoders]
    runner = TickEncoder(pool)
    held = threading.Event()
    for e in encoders:
        e.hold = held  # every encode stalls until released (a busy machine): the first tick runs, the rest wait
    frame = ToneSource(440, A).next_frame()
    runner.run(tick_batch(encoders, frame, 0, out))
    for position in range(1, 2 + MAX_WAITING):  # one more than may wait: the oldest waiting one is dropped
        runner.run(tick_batch(encoders, frame, position, out))
    assert all(packets == [] for packets in out)  # nothing is sent while the first tick runs
    assert runner.dropped_ticks == 1
    held.set()
    async with asyncio.timeout(10):
        await runner.idle()
    expected = [0, *range(2, 2 + MAX_WAITING)]  # tick 1 was the oldest waiting when tick 1 + MAX_WAITING came
    assert all([m.pts // FRAME_SAMPLES for m in packets] == expected for packets in out)


def test_a_small_tick_is_encoded_on_the_loop_when_nothing_waits(pool):
    encoders = [WatchedEncoder() for _ in range(INLINE_BELOW - 1)]
    out: list[list[EncodedMix]] = [[] for _ in encoders]
    runner = TickEncoder(pool)
    runner.run(tick_batch(encoders, ToneSource(440, A).next_frame(), 0, out))  # no loop needed: it is inline
    assert runner.inline_ticks == 1 and all(len(packets) == 1 for packets in out)
    assert {t for e in encoders for t in e.threads} == {threading.current_thread().name}


@pytest.mark.integration
async def test_a_call_encodes_on_the_pool_and_everyone_hears_the_others_at_unity_gain(server, http, call_id):
    """Four talkers: four own mixes a tick, encoded on the server's pool threads (from four encodes a tick on, for
    this test); each hears the other three at the amplitude they sent and not itself."""
    assert server.encode_pool is not None and server.encode_pool.threads >= 1
    server.encode_pool.min_jobs = 4
    frequencies = (440, 660, 880, 1100)
    participants = await join_all(server, call_id, tones(*frequencies))
    call = server.registry.get(call_id)
    try:
        await hear_for(participants, 0.5)
        settled = time.monotonic()
        pooled = call.encoding.counters().pooled_ticks
        await hear_for(participants, 1.5)
        assert call.encoding.counters().pooled_ticks - pooled > 50
        for p, own in zip(participants, frequencies):
            _, frames = p.recording.window(settled)
            for hz in frequencies:
                level = float(np.median(tone_amplitudes(frames, hz)))
                if hz == own:
                    assert level < 0.03 * A, (p.display_name, hz)
                else:
                    assert level == pytest.approx(A, rel=0.1), (p.display_name, hz)
    finally:
        await leave_all(participants)


def test_a_server_has_one_encode_thread_per_core_unless_told(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    pool = EncodePool.for_cores(None)
    try:
        assert pool is not None and pool.threads == 4
    finally:
        pool.close()
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert EncodePool.for_cores(None) is None  # one core: the loop encodes
    assert EncodePool.for_cores(0) is None


def test_an_unknown_or_missing_mix_encoder_is_refused_at_once():
    with pytest.raises(ValueError, match="mix encoder must be one of pyav, libopus"):
        mix_encoder_factory("mp3")
    if not libopus_available():
        with pytest.raises(RuntimeError, match="libopus"):
            mix_encoder_factory("libopus")


def test_the_encoding_without_a_pool_sends_at_the_end_of_the_tick():
    mixer, encoding = Mixer(), MixEncoding()
    sent: list[EncodedMix] = []
    mixer.add("a", MuteGate(), sink=encoding.listener(sent.append))
    mixer.push("a", ToneSource(440, A).next_frame())
    mixer.tick(10.0)
    assert sent == []  # the sinks only noted what to encode
    encoding.tick_done()
    assert len(sent) == 1 and encoding.counters().inline_ticks == 1
