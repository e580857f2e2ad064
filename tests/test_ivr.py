"""The IVR queue on its own (calls/ivr.py): prompts, tones and recordings frame by frame on an injected clock, the
queue's order, cancel as Graph reports it, the recording timers and stop tones. No HTTP, no WebRTC: a listener's
mixer sink hears exactly what the application plays, and the recording is exactly the application's N-1 mix."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from mediamute.calls import MediaConflict, Operation
from mediamute.calls.call import OPERATION_FINISHED, TONE_RECEIVED
from mediamute.calls.ivr import (
    BEEP_MS,
    Clip,
    MAX_QUEUED,
    ReadyMedia,
    RecordSettings,
    SpeechDetector,
)
from mediamute.analysis import tone_amplitude
from mediamute.dtmf import dtmf_segments, dtmf_sequence
from mediamute.media.audio import FRAME_SAMPLES, FRAME_SECONDS, SAMPLE_RATE
from mediamute.sources import ToneSource

from .helpers import ArrivingMedia, InjectedClock, domain_call, listening

BEEP_FRAMES = BEEP_MS * SAMPLE_RATE // 1000 // FRAME_SAMPLES


def frames_of(value: int, count: int) -> np.ndarray:
    return np.full(count * FRAME_SAMPLES, value, dtype=np.int16)


class Store:
    """The recording store the API would give: keeps what it is handed."""

    def __init__(self) -> None:
        self.kept: list[np.ndarray] = []

    def __call__(self, audio: np.ndarray) -> tuple[str, str]:
        self.kept.append(audio)
        return f"http://127.0.0.1:1/ext/calls/c/recordings/{len(self.kept)}", f"token-{len(self.kept)}"


def setup(**options):
    clock = InjectedClock()
    call = domain_call(clock, **options)
    finished: list[Operation] = []
    call.events.on(OPERATION_FINISHED, lambda _call, operation: finished.append(operation))
    return call, clock, finished


def run(call, clock, ticks: int) -> None:
    for _ in range(ticks):
        call._tick(clock.advance())


def values(heard: list[np.ndarray]) -> list[int]:
    """What a listener heard, tick by tick, for frames of one constant value."""
    assert all(np.all(f == f[0]) for f in heard)
    return [int(f[0]) for f in heard]


def test_prompts_play_in_order_without_gaps_and_complete_on_the_tick_after_their_last_frame():
    call, clock, finished = setup()
    _, heard = listening(call, "Alice")
    first = call.ivr.play_prompt([ReadyMedia(frames_of(100, 3)), ReadyMedia(frames_of(200, 2))], "one")
    second = call.ivr.play_prompt([ReadyMedia(frames_of(300, 2))], "two")
    assert (first.status, first.answered_running, second.status) == ("running", True, "running")
    run(call, clock, 4)
    assert values(heard) == [100, 100, 100, 200]
    assert not finished
    run(call, clock, 1)
    assert not finished  # the last frame of `first` is being mixed in this tick
    run(call, clock, 1)
    assert finished == [first] and values(heard)[-1] == 300  # `second` starts in the tick `first` ends: no gap
    assert (first.status, first.result_code, first.result_subcode) == ("completed", 200, 0)
    assert (first.result_message, first.completion_reason) == ("Action completed successfully.", "completedSuccessfully")
    run(call, clock, 3)
    assert values(heard) == [100, 100, 100, 200, 200, 300, 300, 0, 0]  # then the base source: silence
    assert finished == [first, second] and first.completed_monotonic < second.completed_monotonic


def test_a_prompt_keeps_its_wall_clock_duration_when_the_clock_skips_periods():
    call, clock, finished = setup()
    _, heard = listening(call, "Alice")
    operation = call.ivr.play_prompt([ReadyMedia(np.repeat(np.arange(10, dtype=np.int16), FRAME_SAMPLES))], None)
    run(call, clock, 2)
    call._tick(clock.advance(5 * FRAME_SECONDS))  # the loop stalled: the clock resynchronised, 4 periods skipped
    run(call, clock, 1)
    call._tick(clock.advance(1.5 * FRAME_SECONDS))  # two late ticks, half a period each: one period more, owed
    assert not finished
    call._tick(clock.advance(1.5 * FRAME_SECONDS))
    assert finished == [operation]  # the tick its 200 ms of wall time ended (the last frame was owed)
    run(call, clock, 1)
    assert values(heard) == [0, 1, 2, 7, 8, 9, 0]  # frames 3-6 fell in the stall


def test_a_prompt_waits_for_its_media_and_a_muted_application_plays_on_unheard():
    call, clock, finished = setup(app_source=ToneSource(1000, amplitude=50))
    _, heard = listening(call, "Alice")
    pending = ArrivingMedia()
    operation = call.ivr.play_prompt([pending], None)
    run(call, clock, 3)
    assert all(np.abs(f).max() <= 50 and np.abs(f).max() > 0 for f in heard)  # the base source while waiting
    pending.audio = frames_of(700, 4)
    run(call, clock, 1)
    assert values(heard[-1:]) == [700]
    call.mute(call.app.id)
    run(call, clock, 4)
    assert values(heard[-4:]) == [0, 0, 0, 0]  # the gate drops the application's frames: nobody hears the rest
    assert finished == [operation] and operation.status == "completed"  # ... and the prompt ran its course


def test_dtmf_tones_are_played_into_the_mix_sample_for_sample():
    call, clock, finished = setup()
    _, heard = listening(call, "Alice")
    operation = call.ivr.send_dtmf_tones(dtmf_segments(["tone1", "pound", "b"], gap_ms=70), "keys")
    run(call, clock, 17)  # 3 x 100 ms of tone and 2 x 70 ms of pause: 440 ms, 22 frames
    assert not finished
    run(call, clock, 6)
    assert finished == [operation] and operation.completion_reason == "completedSuccessfully"
    expected = dtmf_sequence(["tone1", "pound", "b"], gap_ms=70)
    played = np.concatenate(heard[:22])
    assert np.array_equal(played[: expected.size], expected) and not played[expected.size :].any()
    assert tone_amplitude(played[:4800].astype(np.float64), 697) > 3000  # tone1 = 697 + 1209 Hz


def test_media_that_cannot_be_read_fails_its_operation_and_the_queue_goes_on():
    call, clock, finished = setup()
    _, heard = listening(call, "Alice")
    broken, later = ArrivingMedia(), ArrivingMedia()
    broken.error = ValueError("http://127.0.0.1:9/x.wav: HTTP 404 (200 expected)")
    failing = call.ivr.play_prompt([broken, later], "c")
    next_one = call.ivr.play_prompt([ReadyMedia(frames_of(5, 1))], None)
    run(call, clock, 1)
    assert finished == [failing] and failing.status == "failed" and failing.result_code == 400
    assert "could not be played" in failing.result_message and "HTTP 404" in failing.result_message
    assert later.cancelled  # the failed operation's other prompts are not read on
    assert values(heard) == [5]  # the next operation played in that same tick
    run(call, clock, 1)
    assert finished == [failing, next_one]


def test_cancel_ends_the_running_and_queued_operations_as_graph_reports_them():
    call, clock, finished = setup()
    _, heard = listening(call, "Alice")
    waiting = ArrivingMedia()
    prompt = call.ivr.play_prompt([ReadyMedia(frames_of(100, 50)), waiting], "p")
    tones = call.ivr.send_dtmf_tones([frames_of(200, 5)], "t")
    store = Store()
    record = call.ivr.record_response(RecordSettings(), store, "r")
    run(call, clock, 2)
    cancel = call.ivr.cancel("c")
    assert finished == [prompt, tones, record]  # every cancelled one is notified before the answer
    assert (prompt.status, prompt.result_code, prompt.result_subcode, prompt.completion_reason) == (
        "failed", 400, 8508, "mediaOperationCanceled")
    assert prompt.result_message == "Action failed, the operation was cancelled." and waiting.cancelled
    assert (tones.status, tones.completion_reason) == ("completed", "mediaOperationCanceled")  # Graph's sendDtmfTones
    assert (record.status, record.result_code, record.result_subcode, record.completion_reason) == (
        "failed", 400, 8508, "operationCanceled")
    assert record.details == {"recordingLocation": "", "recordingAccessToken": ""} and not store.kept
    assert (cancel.kind, cancel.status, cancel.answered_running) == ("cancelMediaProcessing", "completed", False)
    run(call, clock, 2)
    assert values(heard) == [100, 100, 0, 0]  # nothing more of them
    assert call.ivr.cancel(None).status == "completed"  # nothing to cancel is no error


def test_a_recording_is_the_mix_the_application_hears_after_its_prompt_and_beep():
    call, clock, finished = setup()
    alice, heard = listening(call, "Alice")
    bob, _ = listening(call, "Bob")
    call.mute(bob.id)
    store = Store()
    operation = call.ivr.record_response(
        RecordSettings(prompt=ReadyMedia(frames_of(300, 2)), max_record_duration=1), store, "ctx"
    )
    speak = ToneSource(440, amplitude=3000)  # Alice talks all along; Bob talks too, server-muted
    for tick in range(2 + BEEP_FRAMES + 49):
        call.mixer.push(alice.id, speak.next_frame())
        call.mixer.push(bob.id, frames_of(9000, 1))
        call._tick(clock.advance())
    assert not finished
    assert values(heard[:2]) == [300, 300]  # Alice hears the prompt, then the beep
    assert np.abs(heard[2]).max() > 7000 and np.abs(heard[2 + BEEP_FRAMES]).max() == 0
    call.mixer.push(alice.id, speak.next_frame())
    call._tick(clock.advance())
    assert finished == [operation]
    assert (operation.status, operation.result_code, operation.result_subcode) == ("completed", 200, 8515)
    assert operation.result_message == "Action completed, max record duration reached."
    assert operation.completion_reason == "maxRecordDurationReached"
    assert operation.details == {"recordingLocation": "http://127.0.0.1:1/ext/calls/c/recordings/1", "recordingAccessToken": "token-1"}
    (audio,) = store.kept
    assert audio.size == 50 * FRAME_SAMPLES  # one second, from the first tick after the beep
    reference = ToneSource(440, amplitude=3000)
    for _ in range(2 + BEEP_FRAMES):
        reference.next_frame()
    expected = np.concatenate([reference.next_frame() for _ in range(50)])
    assert np.array_equal(audio, expected)  # exactly Alice: not the prompt, not the beep, not the muted Bob
    assert call.mixer.slot(call.app.id).sink is None  # the recorder is detached


@pytest.mark.parametrize(
    "talk, ends_after, status, reason",
    [
        ("never", 2 * 50, "failed", "initialSilenceTimeout"),
        ("then pause", 30 + 1 * 50, "completed", "maxSilenceTimeout"),
        ("murmur", 2 * 50, "failed", "initialSilenceTimeout"),
    ],
)
def test_the_recording_timers_count_media_frames(talk, ends_after, status, reason):
    call, clock, finished = setup()
    alice, _ = listening(call, "Alice")
    store = Store()
    settings = RecordSettings(play_beep=False, initial_silence_timeout=2, max_silence_timeout=1, max_record_duration=120)
    operation = call.ivr.record_response(settings, store, None)
    loud, soft = ToneSource(500, amplitude=2000), ToneSource(500, amplitude=200)  # -27 dBFS; -47 dBFS
    for tick in range(ends_after + 5):
        if talk == "then pause":
            # 30 loud frames start speech; then a soft one (between the thresholds: not a pause, hysteresis) at
            # 31, then silence: the pause starts at frame 32... so it is reached 1 s after frame 31
            frame = loud.next_frame() if tick < 30 else soft.next_frame() if tick == 30 else None
        else:
            frame = soft.next_frame() if talk == "murmur" else None  # -47 dBFS never starts speech
        if frame is not None:
            call.mixer.push(alice.id, frame)
        call._tick(clock.advance())
        if finished:
            break
    frames = tick + 1
    assert finished == [operation] and (operation.status, operation.completion_reason) == (status, reason)
    expected = ends_after + (1 if talk == "then pause" else 0)
    assert frames == expected
    if status == "failed":
        assert (operation.result_code, operation.details["recordingLocation"]) == (400, "") and not store.kept
    else:
        assert (operation.result_code, operation.result_subcode) == (200, 0) and store.kept[0].size == frames * FRAME_SAMPLES


@pytest.mark.parametrize("samples", [100, 960, 2500])
def test_a_clip_pads_its_end_once_and_loops_seamlessly(samples):
    audio = np.arange(1, samples + 1, dtype=np.int16)
    once, frames = Clip(audio), []
    while (frame := once.next_frame()) is not None:
        frames.append(frame)
    played = np.concatenate(frames)
    assert played.size == -(-samples // FRAME_SAMPLES) * FRAME_SAMPLES
    assert np.array_equal(played[:samples], audio) and not played[samples:].any()
    looping = Clip(audio, loop=True)
    assert np.array_equal(np.concatenate([looping.looping_frame() for _ in range(7)]), np.resize(audio, 7 * FRAME_SAMPLES))


def test_a_recording_keeps_wall_time_when_the_clock_skips_periods():
    call, clock, finished = setup()
    alice, _ = listening(call, "Alice")
    store = Store()
    operation = call.ivr.record_response(RecordSettings(play_beep=False, max_record_duration=1), store, None)
    tone = ToneSource(440, amplitude=3000)
    for _ in range(10):
        call.mixer.push(alice.id, tone.next_frame())
        call._tick(clock.advance())
    call.mixer.push(alice.id, tone.next_frame())
    call._tick(clock.advance(31 * FRAME_SECONDS))  # the loop stalled: 30 periods skipped, heard by nobody
    run(call, clock, 8)
    assert not finished
    run(call, clock, 1)
    assert finished == [operation] and operation.completion_reason == "maxRecordDurationReached"  # 1 s of wall time
    (audio,) = store.kept
    frames = audio.reshape(-1, FRAME_SAMPLES)
    assert len(frames) == 50 and frames[:10].any(axis=1).all()  # Alice before the stall ...
    assert not frames[10:40].any()  # ... the 30 skipped periods as silence ...
    assert frames[40].any() and not frames[41:].any()  # ... then her frame of the tick after it (then she stopped)


def test_speech_detection_has_hysteresis():
    detector = SpeechDetector()
    loud, between = np.full(FRAME_SAMPLES, 400, np.int16), np.full(FRAME_SAMPLES, 150, np.int16)  # -38 / -46.8 dBFS
    for _ in range(2):
        detector.push(loud)
    detector.push(between)  # a dip before speech has started resets the run
    for _ in range(2):
        detector.push(loud)
    assert not detector.speech_started
    detector.push(loud)
    assert detector.speech_started
    detector.push(between)  # after: above the lower threshold, still speech
    assert detector.pause_frames == 0
    detector.push(np.zeros(FRAME_SAMPLES, np.int16))
    detector.push(np.zeros(FRAME_SAMPLES, np.int16))
    assert detector.pause_frames == 2
    detector.push(between)
    assert detector.pause_frames == 0


def test_a_stop_tone_ends_the_recording_and_other_tones_do_not():
    call, clock, finished = setup()
    other, _, _ = setup()
    alice, _ = listening(call, "Alice")
    store = Store()
    operation = call.ivr.record_response(RecordSettings(play_beep=False, stop_tones=frozenset({"pound", "star"})), store, None)
    call.events.emit(TONE_RECEIVED, call, alice, "pound")  # before the recording runs: ignored (nobody listens yet)
    run(call, clock, 10)
    call.events.emit(TONE_RECEIVED, call, alice, "tone1")  # not a stop tone
    call.events.emit(TONE_RECEIVED, other, alice, "pound")  # another call's
    assert not finished
    call.events.emit(TONE_RECEIVED, call, alice, "pound")
    assert finished == [operation] and operation.completion_reason == "stopToneDetected"
    assert (operation.status, operation.result_code, operation.result_subcode) == ("completed", 200, 0)
    assert store.kept[0].size == 10 * FRAME_SAMPLES
    assert not call.events.listeners(TONE_RECEIVED)  # unsubscribed with the recording


def test_barge_in_cancels_what_plays_and_records_at_once():
    call, clock, finished = setup()
    prompt = call.ivr.play_prompt([ReadyMedia(frames_of(100, 100))], None)
    run(call, clock, 3)
    record = call.ivr.record_response(RecordSettings(play_beep=False, barge_in_allowed=True, max_record_duration=1), Store(), None)
    assert finished == [prompt] and prompt.completion_reason == "mediaOperationCanceled"
    run(call, clock, 51)
    assert finished == [prompt, record] and record.completion_reason == "maxRecordDurationReached"  # 1 s of silence


def test_the_queue_is_bounded_and_the_call_end_fails_and_clears_it():
    call, clock, finished = setup()
    waiting = ArrivingMedia()
    first = call.ivr.play_prompt([waiting], None)
    for _ in range(MAX_QUEUED - 2):
        call.ivr.send_dtmf_tones([frames_of(1, 1)], None)
    record = call.ivr.record_response(RecordSettings(play_beep=False, stop_tones=frozenset({"pound"})), Store(), None)
    with pytest.raises(MediaConflict, match="queue is full"):
        call.ivr.play_prompt([ReadyMedia(frames_of(1, 1))], None)
    asyncio.run(call.end())
    assert first.status == record.status == "failed" and first.result_code == 500
    assert waiting.cancelled and not call.ivr.items
    assert len(finished) == MAX_QUEUED and not call.events.listeners(TONE_RECEIVED)
