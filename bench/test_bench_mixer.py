"""One mixer tick at N = 2 … 512, everyone contributing (the worst case): target ≤ 1 µs per participant, N ≥ 128.

Each round first queues one frame per participant (not timed), then times `Mixer.tick()` — which sums the
frames, narrows N-1 mixes with saturation, computes levels, hands every listener its mix and records the audit.
`few-talking` has two contributors and N-2 listeners of the one shared mix; `one-on-hold` is everyone talking
with one participant on hold (its frame refused at the inbox, its sink handed the music). `push` is one decoded
frame into an open inbox, what every received packet costs the mixer.
"""

import pytest

from mediamute.media.gate import MuteGate
from mediamute.media.mixer import Mixer

from conftest import distinct_frames

SIZES = [2, 8, 32, 128, 512]


def make_mixer(count: int) -> tuple[Mixer, list[str]]:
    mixer = Mixer(inbox_frames=5, audit_capacity=3000)
    ids = [f"p{i}" for i in range(count)]
    for pid in ids:
        mixer.add(pid, MuteGate(), sink=lambda tick, frame, shared: None)
    return mixer, ids


@pytest.mark.parametrize("n", SIZES)
def test_mixer_tick_all_talking(benchmark, n):
    mixer, ids = make_mixer(n)
    frames = distinct_frames(n)
    push = mixer.push

    def fill():
        for pid, frame in zip(ids, frames):
            push(pid, frame)

    benchmark.extra_info["participants"] = n
    benchmark.pedantic(mixer.tick, setup=fill, rounds=max(200, 20000 // n), iterations=1, warmup_rounds=5)
    assert len(mixer.audit.latest(1)[0].contributors) == n


@pytest.mark.parametrize("n", [16, 128])
def test_mixer_tick_few_talking(benchmark, n):
    mixer, ids = make_mixer(n)
    frames = distinct_frames(2)

    def fill():
        mixer.push(ids[0], frames[0])
        mixer.push(ids[1], frames[1])

    benchmark.extra_info["participants"] = n
    benchmark.pedantic(mixer.tick, setup=fill, rounds=2000, iterations=1, warmup_rounds=5)
    assert len(mixer.audit.latest(1)[0].contributors) == 2


@pytest.mark.parametrize("n", [16, 128])
def test_mixer_tick_one_on_hold(benchmark, n):
    mixer, ids = make_mixer(n)
    frames = distinct_frames(n)
    music = distinct_frames(1)[0]
    mixer.hold(ids[1], lambda: music)
    push = mixer.push

    def fill():
        for pid, frame in zip(ids, frames):
            push(pid, frame)

    benchmark.extra_info["participants"] = n
    benchmark.pedantic(mixer.tick, setup=fill, rounds=2000, iterations=1, warmup_rounds=5)
    assert len(mixer.audit.latest(1)[0].contributors) == n - 1


def test_mixer_push_open_gate(benchmark):
    """One decoded frame into an open participant's inbox (what every received packet costs the mixer)."""
    mixer, ids = make_mixer(16)
    frame = distinct_frames(1)[0]
    push = mixer.push

    def push_and_drain() -> None:
        push(ids[0], frame)
        mixer.slot(ids[0]).inbox.clear()  # keep the inbox from filling: the push alone is what counts

    benchmark.pedantic(push_and_drain, rounds=20000, iterations=1, warmup_rounds=50)
    assert mixer.slot(ids[0]).frames_in >= 20000
