"""Decodes off the loop (rtc/decode_pool.py): a tick's receive-path decodes run on the encode pool's threads, and a
frame decoded there enters a mix only if its participant's gate is open, in the same epoch, when it comes back.

The unit tests drive a real Mixer with real receive paths (crafted RTP, real Opus, libopus decoding) on one injected
clock, and the real pool: a batch parked in front of the decodes holds them in flight while the test mutes. The
integration test is a mute storm over real WebRTC, checked on the contributor audit and on the audio."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import numpy as np
import pytest
from aiortc.rtp import RtpPacket

from mediamute.analysis import tone_amplitudes
from mediamute.media.gate import MuteGate
from mediamute.media.mixer import Mixer
from mediamute.rtc.codec import MonoOpusEncoder
from mediamute.rtc.decode_pool import TickDecoder
from mediamute.rtc.encode_pool import EncodePool, PoolBatch
from mediamute.rtc.opus import OpusDecoder
from mediamute.rtc.receive import ReceivePath
from mediamute.sources import ToneSource

from .helpers import A, InjectedClock, hear_for, join_all, leave_all, tones

T = 0.02
STORM_ACTIONS = 40
"""Mutes and unmutes in the storm (bounded by count; 2-5 ticks apart: about 3 s)."""


class Talker:
    """A participant whose real Opus packets (a tone) enter its own ReceivePath."""

    def __init__(self, name: str, hz: float, clock: InjectedClock, mixer: Mixer) -> None:
        self.name = name
        self.gate = MuteGate(clock=clock)
        self.path = ReceivePath(self.gate, clock=clock)
        self.encoder = MonoOpusEncoder()
        self.source = ToneSource(hz, A)
        self.seq = 0
        self.sent: list[bytes] = []
        mixer.add(name, self.gate, source=self.path)

    def send(self, source: ToneSource | None = None) -> bytes:
        payload = bytes(self.encoder.encode((source or self.source).next_frame(), self.seq * 960))
        packet = RtpPacket(payload_type=111, sequence_number=self.seq, timestamp=self.seq * 960, ssrc=7)
        packet.payload = payload
        self.path.add(packet)
        self.seq += 1
        self.sent.append(payload)
        return payload


class Room:
    def __init__(self, *talkers: tuple[str, float]) -> None:
        self.clock = InjectedClock(50.0)
        self.mixer = Mixer(clock=self.clock)
        self.talkers = {name: Talker(name, hz, self.clock, self.mixer) for name, hz in talkers}
        self.heard: list[np.ndarray] = []
        self.mixer.add("listener", MuteGate(), sink=lambda _tick, mix, _shared: self.heard.append(mix.copy()))

    def arrive(self) -> None:
        """Every talker's next packet arrives, 4 ms into the period."""
        self.clock.now += 0.004
        for talker in self.talkers.values():
            if talker.gate.is_open:
                talker.send()
            else:
                talker.path.add(RtpPacket(payload_type=111, sequence_number=talker.seq, timestamp=talker.seq * 960, ssrc=7))
                talker.seq += 1

    def tick_inline(self):
        self.arrive()
        self.clock.now += T - 0.004
        return self.mixer.tick(self.clock.now)

    def tick_offloaded(self, decoder: TickDecoder, between=lambda: None):
        """Begin the tick, run its decodes on the pool's threads, do `between()` while they are out, then finish."""
        self.arrive()
        self.clock.now += T - 0.004
        pending = self.mixer.begin_tick(self.clock.now)
        back = threading.Event()
        assert decoder.pool is not None
        blocker = Parked()
        decoder.pool.submit(blocker, lambda _b: None)  # holds the pool's only thread: the decodes wait behind it
        loop = asyncio.new_event_loop()
        try:
            async def run() -> None:
                decoder.run(pending.jobs, back.set)
                between()
                blocker.release.set()
                while not back.is_set():
                    await asyncio.sleep(0.001)
            loop.run_until_complete(asyncio.wait_for(run(), 5))
        finally:
            loop.close()
        return self.mixer.finish_tick(pending)


class Parked(PoolBatch):
    """One job that waits until the test releases it: the pool thread is busy, so what is queued behind is in flight."""

    def __init__(self) -> None:
        super().__init__([None])
        self.release = threading.Event()

    def run(self, lo: int, hi: int) -> int:
        self.release.wait(5)
        return 0


@pytest.fixture
def decoder():
    pool = EncodePool(1)
    try:
        yield TickDecoder(pool, min_jobs=1)
    finally:
        pool.close()


def test_an_offloaded_tick_mixes_exactly_what_an_inline_tick_mixes(decoder):
    inline, offloaded = Room(("a", 440), ("b", 660)), Room(("a", 440), ("b", 660))
    for _ in range(40):
        r1, r2 = inline.tick_inline(), offloaded.tick_offloaded(decoder)
        assert r1.contributors == r2.contributors and r1.concealed == r2.concealed and r1.recovered == r2.recovered
    assert len(inline.heard) == len(offloaded.heard) == 40
    assert all(np.array_equal(x, y) for x, y in zip(inline.heard, offloaded.heard))
    assert decoder.pooled_ticks == 40
    assert np.median(tone_amplitudes(offloaded.heard[10:], 440)) == pytest.approx(A, rel=0.1)


@pytest.mark.parametrize("reopen", [False, True], ids=["muted", "muted-and-unmuted"])
def test_a_frame_decoded_while_its_gate_closed_never_reaches_a_mix(decoder, reopen):
    room = Room(("a", 440), ("b", 660))
    a = room.talkers["a"]
    for _ in range(10):
        room.tick_offloaded(decoder)
    assert "a" in room.mixer.audit.last().contributors

    def mute_while_decoding() -> None:
        a.gate.close()  # what Call.mute does, on the loop, while a's frame is being decoded on the pool's thread
        if reopen:
            a.gate.open()

    heard_before = len(room.heard)
    record = room.tick_offloaded(decoder, between=mute_while_decoding)
    assert "a" not in record.contributors and "b" in record.contributors
    assert room.mixer.slot("a").counters().discarded_in_flight == 1
    assert a.path.stale_decodes == 1
    assert tone_amplitudes(room.heard[heard_before:], 440)[0] < 0.02 * A  # b alone
    assert tone_amplitudes(room.heard[heard_before:], 660)[0] == pytest.approx(A, rel=0.15)

    room.talkers["b"].gate.close()  # the listener hears a alone from here
    a.gate.open()
    unmuted_at = room.clock.now
    sent_before = len(a.sent)
    a.source, a.encoder = ToneSource(880, A), MonoOpusEncoder()  # a new sentence: nothing of the 440 Hz may return
    after: list[np.ndarray] = []
    for _ in range(15):
        record = room.tick_offloaded(decoder)
        assert record.mixed_at > unmuted_at
        if "a" in record.contributors:
            after.append(room.heard[-1])
    assert len(after) >= 10, "a is heard again after the unmute"
    # exactly the fresh packets from a reset decoder: nothing decoded before the mute, nor the frame in flight
    fresh = OpusDecoder()
    for i, mix in enumerate(after):
        assert np.array_equal(mix, fresh.decode(a.sent[sent_before + i])), i
    assert np.median(tone_amplitudes(after, 880)) == pytest.approx(A, rel=0.15)


@pytest.mark.integration
async def test_a_mute_storm_over_webrtc_never_mixes_a_frame_of_a_closed_gate(server, http, call_id):
    """Four talkers, decodes forced onto the pool (from one decode a tick); three of them are muted
    and unmuted at random every 2-5 ticks through the API, 40 times. No tick mixed after a mute's gate closed and
    before its unmute reopened it may hold that participant (the contributor audit, every record); afterwards
    the fourth hears everyone again at the level each sent."""
    frequencies = (440, 660, 880, 1100)
    participants = await join_all(server, call_id, tones(*frequencies))
    call = server.registry.get(call_id)
    call.encoding._decoder.min_jobs = 1
    records = []
    unsubscribe = server.subscribe_audit(call_id, records.append)
    closed: dict[str, list[list[float]]] = {}
    rng = random.Random(13)
    try:
        await hear_for(participants, 0.5)
        pooled = call.encoding.counters().decode_pooled_ticks
        stormed = participants[:3]
        muted: set[str] = set()
        for _ in range(STORM_ACTIONS):
            p = rng.choice(stormed)
            pid = p.participant_id
            if pid in muted:
                r = await http.post(f"/ext/calls/{call_id}/participants/{pid}/unmute")
                assert r.status_code == 200, r.text
                closed[pid][-1][1] = call.operations[r.json()["id"]].completed_monotonic
                muted.discard(pid)
            else:
                r = await http.post(f"/v1.0/communications/calls/{call_id}/participants/{pid}/mute", json={})
                assert r.status_code == 200, r.text
                closed.setdefault(pid, []).append([call.operations[r.json()["id"]].completed_monotonic, float("inf")])
                muted.add(pid)
            await asyncio.sleep(rng.uniform(2, 5) * T)
        for pid in list(muted):
            r = await http.post(f"/ext/calls/{call_id}/participants/{pid}/unmute")
            closed[pid][-1][1] = call.operations[r.json()["id"]].completed_monotonic
        settled = time.monotonic()
        await hear_for(participants, 1.0)
        assert call.encoding.counters().decode_pooled_ticks - pooled > 50  # the storm's ticks decoded on the pool
        assert sum(len(spans) for spans in closed.values()) >= STORM_ACTIONS // 3
        for pid, spans in closed.items():
            for closed_at, reopened_at in spans:
                leaked = [r.seq for r in records if closed_at < r.mixed_at < reopened_at and pid in r.contributors]
                assert not leaked, (pid, closed_at, leaked)
        listener = participants[3]
        _, frames = listener.recording.window(settled + 0.3)
        for hz in frequencies[:3]:
            assert float(np.median(tone_amplitudes(frames, hz))) == pytest.approx(A, rel=0.15), hz
    finally:
        unsubscribe()
        await leave_all(participants)
