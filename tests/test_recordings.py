"""recordResponse's recording store (api/recordings.py): the WAV it serves, how long it keeps recordings (their
call's end plus a grace period), its bounds, its access tokens and its numbers on /metrics."""

from __future__ import annotations

import numpy as np
import pytest
from pyee import EventEmitter

from mediamute.analysis import spectrum_peak
from mediamute.api.recordings import RECORDING_AUDIENCE, RecordingCollector, RecordingStore, wav_bytes
from mediamute.calls.call import CALL_ENDED
from mediamute.sources import ToneSource
from mediamute.tokens import SigningKey

from .helpers import A, wait_until, wav_audio


class Ended:
    def __init__(self, call_id: str) -> None:
        self.id = call_id


def test_the_wav_is_16_khz_mono_pcm_of_what_was_recorded():
    tone = ToneSource(1000)
    audio = np.concatenate([tone.next_frame() for _ in range(50)])
    rate, samples = wav_audio(wav_bytes(audio))
    assert rate == 16_000 and samples.size == 16_000
    peak, level = spectrum_peak(samples[1600:-1600], rate=16_000)
    assert peak == pytest.approx(1000, abs=2) and level == pytest.approx(A, rel=0.02)
    assert wav_audio(wav_bytes(np.zeros(0, np.int16)))[1].size == 0  # an empty recording is an empty WAV


async def test_recordings_last_until_their_call_ended_plus_grace_and_stay_within_bounds():
    events, key = EventEmitter(), SigningKey.generate()
    store = RecordingStore(key, events, grace=0.05, max_count=2, max_bytes=10**6)
    frame = np.ones(960, np.int16)
    first, _ = store.keep("call-1", frame, "http://127.0.0.1:8080/")
    second, token = store.keep("call-2", frame, "http://127.0.0.1:8080")
    assert second.startswith("http://127.0.0.1:8080/ext/calls/call-2/recordings/")
    claims = key.decode(token, audiences=(RECORDING_AUDIENCE,))
    assert (claims["mm:kind"], claims["sub"], claims["mm:call"]) == ("recording", second.rsplit("/", 1)[-1], "call-2")
    store.keep("call-2", frame, "http://127.0.0.1:8080")
    assert first.rsplit("/", 1)[-1] not in store.recordings and store.counters.evicted == 1  # the oldest went
    store.keep("call-3", np.ones(10**6, np.int16), "http://127.0.0.1:8080")  # 2 MB: over the byte bound alone
    assert list(r.call_id for r in store.recordings.values()) == ["call-3"] and store.counters.evicted == 3

    store.keep("call-4", frame, "http://127.0.0.1:8080")
    store.keep("call-4", frame, "http://127.0.0.1:8080")  # (call-3's goes: two at most)
    events.emit(CALL_ENDED, Ended("call-4"))
    assert len(store.recordings) == 2  # kept through the grace period ...
    await wait_until(lambda: not store.recordings, timeout=2)  # ... then gone
    assert store.counters.expired == 2
    metrics = {m.name: m.samples[0].value for m in RecordingCollector(store).collect()}
    assert metrics == {"mediamute_recordings": 0, "mediamute_recordings_bytes": 0, "mediamute_recordings_kept": 6,
                       "mediamute_recordings_fetched": 0, "mediamute_recordings_evicted": 4, "mediamute_recordings_expired": 2}
    store.close()
