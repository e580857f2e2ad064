import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mediamute.media.audio import FRAME_SAMPLES, SILENT_FRAME
from mediamute.media.gate import MuteGate
from mediamute.media.mixer import Mixer, MixTick, saturate_int16

frames_strategy = st.lists(
    arrays(np.int16, FRAME_SAMPLES, elements=st.integers(-32768, 32767)), min_size=1, max_size=12
)


def make_mixer(count, inbox=5, deliveries=None, clock=time.monotonic):
    """A mixer of `count` listeners; `heard[pid]` is the last frame each was handed, `deliveries` (if given) every
    (listener, tick seq, position, shared) the sinks were told."""
    mixer = Mixer(inbox_frames=inbox, clock=clock)
    heard: dict[str, np.ndarray] = {}
    gates = {}

    def sink_for(pid):
        def sink(tick: MixTick, frame: np.ndarray, shared: bool) -> None:
            heard[pid] = frame
            if deliveries is not None:
                deliveries.append((pid, tick.seq, tick.position, shared))

        return sink

    for i in range(count):
        pid = f"p{i}"
        gates[pid] = MuteGate()
        mixer.add(pid, gates[pid], sink=sink_for(pid))
    return mixer, heard, gates


def reference_mix(frames, listener):
    total = sum(f.astype(np.int64) for i, f in enumerate(frames) if i != listener)
    if isinstance(total, int):
        total = np.zeros(FRAME_SAMPLES, dtype=np.int64)
    return np.clip(total, -32768, 32767).astype(np.int16)


@settings(max_examples=60, deadline=None)
@given(frames_strategy)
def test_each_listener_hears_exactly_the_saturated_sum_of_the_others(frames):
    mixer, heard, _ = make_mixer(len(frames))
    for i, frame in enumerate(frames):
        mixer.push(f"p{i}", frame)
    record = mixer.tick()
    assert record.contributors == tuple(f"p{i}" for i in range(len(frames)))
    for i in range(len(frames)):
        assert heard[f"p{i}"].dtype == np.int16
        assert np.array_equal(heard[f"p{i}"], reference_mix(frames, i)), f"listener p{i}"


@given(st.integers(2, 40), st.sampled_from([-32768, 32767]))
def test_saturates_at_int16_limits_instead_of_wrapping(count, extreme):
    mixer, heard, _ = make_mixer(count + 1)
    for i in range(count):
        mixer.push(f"p{i}", np.full(FRAME_SAMPLES, extreme, dtype=np.int16))
    mixer.tick()
    # the silent listener hears all `count` loud frames: clipped at the limit, never the wrapped-around sign
    assert np.all(heard[f"p{count}"] == extreme)
    assert np.all(heard["p0"] == (extreme if count > 1 else 0))


def test_saturate_int16_clamps_both_ends():
    values = np.array([-70000, -32769, -32768, 0, 32767, 32768, 70000], dtype=np.int32)
    assert saturate_int16(values).tolist() == [-32768, -32768, -32768, 0, 32767, 32767, 32767]
    assert values[0] == -70000  # not in place unless asked


def test_saturate_int16_narrows_float32_sums_in_place_when_asked():
    sums = np.array([-70000.0, -32769.0, -1.0, 0.0, 32767.0, 32768.0, 70000.0], dtype=np.float32)
    narrowed = saturate_int16(sums, in_place=True)
    assert narrowed.dtype == np.int16
    assert narrowed.tolist() == [-32768, -32768, -1, 0, 32767, 32767, 32767]
    assert sums.tolist() == [-32768.0, -32768.0, -1.0, 0.0, 32767.0, 32767.0, 32767.0]  # the work buffer was clipped


def test_listeners_who_contributed_nothing_share_one_frame():
    deliveries: list = []
    mixer, heard, _ = make_mixer(6, deliveries=deliveries)
    mixer.push("p0", np.full(FRAME_SAMPLES, 100, dtype=np.int16))
    mixer.push("p1", np.full(FRAME_SAMPLES, 10, dtype=np.int16))
    mixer.tick()
    assert heard["p2"] is heard["p3"] is heard["p4"] is heard["p5"]  # one shared mix, not one per listener
    assert np.all(heard["p2"] == 110)
    assert np.all(heard["p0"] == 10) and np.all(heard["p1"] == 100)
    # each sink is told explicitly which it got: the shared mix, or its own
    assert {pid: shared for pid, _, _, shared in deliveries} == {
        "p0": False, "p1": False, "p2": True, "p3": True, "p4": True, "p5": True
    }


def test_sinks_are_told_the_tick_and_its_grid_position():
    deliveries: list = []
    mixer, _, _ = make_mixer(2, deliveries=deliveries)
    for at in (5.0, 5.02, 5.1):  # the third tick comes after three skipped periods
        mixer.push("p0", np.full(FRAME_SAMPLES, 7, dtype=np.int16))
        mixer.tick(at=at)
    assert deliveries == [
        ("p0", 0, 0, False), ("p1", 0, 0, True),
        ("p0", 1, 1, False), ("p1", 1, 1, True),
        ("p0", 2, 5, False), ("p1", 2, 5, True),
    ]
    assert [r.seq for r in mixer.audit] == [0, 1, 2]  # the tick a sink is told is its audit record's seq


@pytest.mark.parametrize("count", [2, 8, 128, 512])
def test_large_calls_mix_correctly(count):
    rng = np.random.default_rng(count)
    frames = [rng.integers(-300, 300, FRAME_SAMPLES).astype(np.int16) for _ in range(count)]
    mixer, heard, _ = make_mixer(count)
    for i, frame in enumerate(frames):
        mixer.push(f"p{i}", frame)
    mixer.tick()
    total = np.sum(np.stack(frames).astype(np.int64), axis=0)
    for i in (0, count // 2, count - 1):
        expected = np.clip(total - frames[i], -32768, 32767)
        assert np.array_equal(heard[f"p{i}"], expected)


@pytest.mark.parametrize("count, amplitude", [(64, 300), (64, 4000), (128, 2000), (200, 6000)])
def test_every_n1_mix_is_exact_whether_none_few_or_most_samples_clip(count, amplitude):
    """The N-1 mixes are a wrapping int16 subtraction, redone in float32 only where one may clip: quiet (nothing at
    risk), a few clipping samples (fixed column by column) and loud (most samples at risk: all redone) must all
    equal the saturated exact sum, for every listener, with the levels of the frames themselves."""
    rng = np.random.default_rng(amplitude)
    frames = [rng.integers(-amplitude, amplitude, FRAME_SAMPLES).astype(np.int16) for _ in range(count)]
    mixer, heard, _ = make_mixer(count)
    for i, frame in enumerate(frames):
        mixer.push(f"p{i}", frame)
    record = mixer.tick()
    stack = np.stack(frames).astype(np.int64)
    expected = np.clip(stack.sum(axis=0) - stack, -32768, 32767)
    for i in range(count):
        assert np.array_equal(heard[f"p{i}"], expected[i]), f"listener p{i}"
    assert np.allclose(record.levels, np.sqrt((stack.astype(np.float64) ** 2).mean(axis=1)), rtol=1e-5)


def test_inbox_is_bounded_drop_oldest_and_counts_overflow():
    mixer, heard, _ = make_mixer(2, inbox=3)
    for value in range(1, 6):  # 5 frames into an inbox of 3: frames 1 and 2 are dropped
        mixer.push("p0", np.full(FRAME_SAMPLES, value, dtype=np.int16))
    slot = mixer.slot("p0")
    assert slot.counters().inbox_overflow == 2
    assert slot.counters().inbox_depth == 3
    mixer.tick()
    assert np.all(heard["p1"] == 3)


def test_underrun_is_silence_and_counted_only_for_open_gates():
    deliveries: list = []
    mixer, heard, gates = make_mixer(3, deliveries=deliveries)
    gates["p2"].close()
    record = mixer.tick()
    assert record.contributors == ()
    assert heard["p0"] is SILENT_FRAME
    assert [shared for *_, shared in deliveries] == [True, True, True]  # silence is the shared mix of nobody
    assert mixer.slot("p0").underruns == 1 and mixer.slot("p1").underruns == 1
    assert mixer.slot("p2").underruns == 0  # a muted participant is not "late"


def test_closing_the_gate_flushes_the_inbox_and_refuses_new_frames():
    mixer, heard, gates = make_mixer(2)
    for _ in range(3):
        mixer.push("p0", np.full(FRAME_SAMPLES, 1000, dtype=np.int16))
    gates["p0"].close()
    assert mixer.push("p0", np.full(FRAME_SAMPLES, 1000, dtype=np.int16)) is False
    record = mixer.tick()
    assert "p0" not in record.contributors
    assert not heard["p1"].any()
    counters = mixer.slot("p0").counters()
    assert (counters.flushed, counters.discarded_closed, counters.inbox_depth) == (3, 1, 0)


def test_standing_backlog_is_trimmed_to_bound_latency():
    mixer, _, _ = make_mixer(1)
    mixer.trim_after_ticks = 4
    frame = np.ones(FRAME_SAMPLES, dtype=np.int16)
    mixer.push("p0", frame)
    for _ in range(4):  # one frame in, one out per tick, with one extra always waiting
        mixer.push("p0", frame)
        mixer.tick()
    slot = mixer.slot("p0")
    assert slot.trimmed == 1
    assert len(slot.inbox) == 0


def test_audit_records_contributors_and_levels_per_tick():
    now = [1.0]  # a punctual clock: each tick mixes at its deadline
    mixer, _, gates = make_mixer(3, clock=lambda: now[0])
    mixer.push("p0", np.full(FRAME_SAMPLES, 1000, dtype=np.int16))
    mixer.push("p1", np.full(FRAME_SAMPLES, -500, dtype=np.int16))
    first = mixer.tick(at=1.0)
    gates["p0"].close()
    mixer.push("p1", np.full(FRAME_SAMPLES, -500, dtype=np.int16))
    now[0] = 1.02
    second = mixer.tick(at=1.02)
    assert (first.at, first.mixed_at, second.at, second.mixed_at) == (1.0, 1.0, 1.02, 1.02)
    assert first.contributors == ("p0", "p1") and first.level_of("p0") == pytest.approx(1000)
    assert first.heard_by("p0") == ("p1",)
    assert second.contributors == ("p1",)
    assert mixer.audit.frames_from("p0", 1.01) == 0
    assert mixer.audit.frames_from("p0", 0.0) == 1
    assert mixer.audit.first_without("p0", 0.0) is second


def test_removed_participant_is_no_longer_mixed():
    mixer, heard, _ = make_mixer(2)
    mixer.push("p0", np.full(FRAME_SAMPLES, 5, dtype=np.int16))
    mixer.remove("p0")
    assert mixer.push("p0", np.full(FRAME_SAMPLES, 5, dtype=np.int16)) is False
    assert mixer.tick().contributors == ()
    assert "p0" not in mixer


def test_position_counts_periods_on_the_grid_including_skipped_ones():
    mixer, _, _ = make_mixer(1)
    positions = []
    for at in (10.0, 10.02, 10.04, 10.56, 10.58):  # the clock stalled ~0.5 s, then resynchronised
        mixer.tick(at=at)
        positions.append(mixer.position)
    assert positions == [0, 1, 2, 28, 29]  # media time shows the gap (ticks just count 5)
    assert mixer.ticks == 5


def test_a_held_participant_leaves_every_mix_and_its_sink_hears_only_the_music():
    deliveries: list = []
    mixer, heard, gates = make_mixer(3, deliveries=deliveries)
    music = np.full(FRAME_SAMPLES, 777, dtype=np.int16)
    values = {"p0": 100, "p1": 20, "p2": 3}

    def send_all():
        for pid, value in values.items():
            mixer.push(pid, np.full(FRAME_SAMPLES, value, dtype=np.int16))

    send_all()
    mixer.push("p1", np.full(FRAME_SAMPLES, 20, dtype=np.int16))  # one more queued: hold discards it too
    mixer.hold("p1", lambda: music)
    for _ in range(3):
        send_all()
        deliveries.clear()
        record = mixer.tick()
        assert record.contributors == ("p0", "p2")  # the audit: p1 is in no mix while held
        assert np.all(heard["p0"] == 3) and np.all(heard["p2"] == 100)  # each other's voice, never p1's
        assert heard["p1"] is music  # only the music, as its own stream (not the shared mix)
        assert [d for d in deliveries if d[0] == "p1"] == [("p1", record.seq, mixer.position, False)]
    slot = mixer.slot("p1").counters()
    assert (slot.held_frames, slot.frames_mixed, slot.underruns, slot.flushed) == (5, 0, 0, 0)
    assert gates["p1"].is_open  # hold is not a mute

    assert mixer.release("p1") and not mixer.release("p1")
    send_all()
    record = mixer.tick()
    assert record.contributors == ("p0", "p1", "p2")
    assert np.all(heard["p1"] == 103) and np.all(heard["p0"] == 23)  # back in the mix, and hearing it again


def test_a_held_and_muted_participant_is_still_muted_after_release():
    mixer, heard, gates = make_mixer(2)
    mixer.hold("p1", lambda: SILENT_FRAME)
    gates["p1"].close()
    mixer.release("p1")
    assert mixer.push("p1", np.full(FRAME_SAMPLES, 9, dtype=np.int16)) is False
    assert mixer.slot("p1").discarded_closed == 1 and mixer.slot("p1").held_frames == 0  # the gate decides first
    assert mixer.tick().contributors == ()
