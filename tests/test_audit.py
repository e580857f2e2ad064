"""The contributor audit judges a tick on when it mixed, not on its deadline: a tick runs up to a period late, and a
mute or an unmute landing between its deadline and its run must be filed on the side of it where the mix was made.

Every clock here is injected, so "late" is exact and nothing depends on the machine's speed.
"""

from __future__ import annotations

import asyncio

import numpy as np
from pyee import EventEmitter

from mediamute.calls.call import Call, CallOptions
from mediamute.calls.model import Participant
from mediamute.media.audio import FRAME_SAMPLES
from mediamute.media.gate import MuteGate
from mediamute.media.audit import TickRecord
from mediamute.media.mixer import Mixer

LOUD = np.full(FRAME_SAMPLES, 1000, dtype=np.int16)


def mixer_on(now: list[float]) -> tuple[Mixer, MuteGate, dict[str, bool]]:
    """A mixer on the injected clock `now[0]`, with a speaker (gate returned) and a listener; `heard` says
    whether the listener's last mix had the speaker in it (non-silent)."""
    mixer = Mixer(clock=lambda: now[0])
    gate = MuteGate(clock=lambda: now[0])
    heard: dict[str, bool] = {}
    mixer.add("speaker", gate)
    mixer.add("listener", MuteGate(), sink=lambda tick, frame, shared: heard.__setitem__("speaker", bool(frame.any())))
    return mixer, gate, heard


def test_a_tick_due_before_an_unmute_but_run_after_it_mixes_the_speaker_and_is_filed_after_the_unmute():
    now = [10.0]
    mixer, gate, heard = mixer_on(now)
    gate.close()
    muted_at = now[0]
    mixer.tick(at=10.0)
    deadline = 10.02
    now[0] = 10.025  # the deadline has passed; the loop has not run the tick yet
    gate.open()
    unmuted_at = now[0]
    mixer.push("speaker", LOUD)  # the re-opened speaker's first frame
    now[0] = 10.03
    record = mixer.tick(at=deadline)  # 10 ms late: within a period, so the clock did not resynchronise

    assert (record.at, record.mixed_at) == (deadline, 10.03)
    assert record.at < unmuted_at < record.mixed_at
    assert record.contributors == ("speaker",) and heard["speaker"]  # the unmuted speaker is in this mix
    # ... which was made after the unmute: nothing was mixed while muted, and this is the first tick with it
    assert mixer.audit.frames_from("speaker", muted_at, unmuted_at) == 0
    first, _ = list(mixer.audit)
    assert mixer.audit.between(muted_at, unmuted_at) == [first] and first.contributors == ()
    assert mixer.audit.first_with("speaker", unmuted_at) is record
    assert mixer.audit.frames_from("speaker", unmuted_at) == 1


def test_a_tick_due_before_a_mute_but_run_after_it_mixes_nothing_of_the_speaker_and_is_filed_after_the_mute():
    now = [20.0]
    mixer, gate, heard = mixer_on(now)
    mixer.push("speaker", LOUD)
    mixer.tick(at=20.0)
    for _ in range(3):
        mixer.push("speaker", LOUD)  # queued for the next ticks
    deadline = 20.02
    now[0] = 20.025
    gate.close()  # flushes the queued frames before it returns
    muted_at = now[0]
    now[0] = 20.035
    record = mixer.tick(at=deadline)

    assert record.at < muted_at < record.mixed_at
    assert record.contributors == () and not heard["speaker"]  # the flushed frames were not mixed
    assert mixer.slot("speaker").flushed == 3
    # the audit agrees: no tick that mixed after the mute has the speaker, and this one is the first without it
    assert mixer.audit.frames_from("speaker", muted_at) == 0
    assert mixer.audit.first_without("speaker", muted_at) is record
    assert mixer.audit.between(muted_at) == [record]


def test_without_a_deadline_a_tick_mixes_and_is_due_at_the_same_instant():
    now = [3.5]
    mixer, _, _ = mixer_on(now)
    record = mixer.tick()
    assert record.at == record.mixed_at == 3.5


async def late_tick_in_a_call(operate, before=None) -> tuple[Call, Participant, float, TickRecord]:
    """A call on an injected clock whose MixClock runs its first tick 10 ms after its deadline, with `operate`
    (a mute or unmute of the speaker) landing between the two; `before` runs at 100.0, before the clock starts.
    Returns the call, the speaker, the operation's completion time and the first tick's audit record."""
    now = [100.0]
    call = Call(CallOptions(), EventEmitter(), clock=lambda: now[0])
    speaker = Participant(display_name="speaker")
    call.join(speaker, sink=None, media=None)
    if before is not None:
        before(call, speaker)
    first_tick = asyncio.Event()
    call.tick_listeners.append(lambda deadline: first_tick.set())
    call.start()
    try:
        await asyncio.sleep(0)  # the clock has taken its first deadline (100.02) and sleeps until it
        now[0] = 100.025  # the loop is late: the deadline has passed, the tick has not run
        done = operate(call, speaker).completed_monotonic
        now[0] = 100.03
        async with asyncio.timeout(5):
            await first_tick.wait()
        record = next(iter(call.mixer.audit))
    finally:
        await call.end()
    return call, speaker, done, record


async def test_a_call_tick_run_late_across_an_unmute_is_filed_after_the_unmute():
    muted: list[float] = []

    def mute(call: Call, speaker: Participant) -> None:
        muted.append(call.mute(speaker.id).completed_monotonic)  # on the call's clock

    def unmute(call: Call, speaker: Participant):
        operation = call.unmute(speaker.id)
        call.mixer.push(speaker.id, LOUD)  # its first frame after the gate re-opened
        return operation

    call, speaker, unmuted_at, record = await late_tick_in_a_call(unmute, before=mute)
    assert muted == [100.0] and unmuted_at == 100.025
    assert record.at == 100.02 and record.mixed_at == 100.03  # the MixClock's deadline, the mixer's run time
    assert speaker.id in record.contributors
    assert record.at < unmuted_at < record.mixed_at
    assert call.mixer.audit.frames_from(speaker.id, muted[0], unmuted_at) == 0  # not counted as mixed while muted
    assert call.mixer.audit.first_with(speaker.id, unmuted_at) is record


async def test_a_call_tick_run_late_across_a_mute_is_filed_after_the_mute_without_the_speaker():
    slots = []

    def mute(call: Call, speaker: Participant):
        slots.append(call.mixer.slot(speaker.id))
        call.mixer.push(speaker.id, LOUD)
        call.mixer.push(speaker.id, LOUD)
        return call.mute(speaker.id)

    call, speaker, muted_at, record = await late_tick_in_a_call(mute)
    assert record.at < muted_at < record.mixed_at
    assert speaker.id not in record.contributors and call.app.id in record.contributors
    assert slots[0].flushed == 2 and slots[0].frames_mixed == 0
    assert call.mixer.audit.frames_from(speaker.id, muted_at) == 0
    assert call.mixer.audit.first_without(speaker.id, muted_at) is record
