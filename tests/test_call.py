"""The call domain on its own (no HTTP, no WebRTC): roster, mute semantics, events in order, errors, and the mute
promise on the contributor audit, on an injected clock with the mixer ticked by hand (the MixClock is not started)."""

from __future__ import annotations

import numpy as np
import pytest
from pyee import EventEmitter

from mediamute.calls import (
    Call,
    Operation,
    CallOptions,
    CallTerminated,
    NotSupportedForCall,
    Participant,
    ParticipantNotFound,
    PolicyForbids,
)
from mediamute.media.audio import FRAME_SAMPLES

from .helpers import InjectedClock

EVENTS = (
    "participant_joined",
    "participant_updated",
    "participant_left",
    "operation_completed",
    "operation_finished",
    "call_ended",
)


class Recorder:
    """Every event a call emits, in order, as (name, payload after the call)."""

    def __init__(self, events: EventEmitter) -> None:
        self.seen: list[tuple[str, tuple]] = []
        for name in EVENTS:
            events.on(name, lambda call, *payload, _name=name: self.seen.append((_name, payload)))

    def names(self) -> list[str]:
        return [name for name, _ in self.seen]


def make_call(clock: InjectedClock | None = None, **options: object) -> tuple[Call, Recorder]:
    events = EventEmitter()
    recorder = Recorder(events)
    return Call(CallOptions(**options), events, clock=clock or InjectedClock()), recorder


def listener(heard: list[np.ndarray]):
    """A mixer sink that keeps what its listener hears, tick by tick."""
    return lambda tick, mix, shared: heard.append(mix)


def frame(value: int) -> np.ndarray:
    return np.full(FRAME_SAMPLES, value, dtype=np.int16)


def join(call: Call, name: str, sink=None) -> Participant:
    return call.join(Participant(display_name=name), sink=sink, media=None)


def test_join_mute_unmute_remove_emit_events_in_order_with_rising_roster_numbers():
    call, seen = make_call()
    alice, bob = join(call, "Alice"), join(call, "Bob")
    assert set(call.participants) == {call.app.id, alice.id, bob.id}
    assert call.app.roster_sequence < alice.roster_sequence < bob.roster_sequence

    muted = call.mute(bob.id, "one")
    after_mute = bob.roster_sequence
    again = call.mute(bob.id, "two")  # already muted: a new operation, no roster change, no update event
    assert bob.roster_sequence == after_mute
    unmuted = call.unmute(bob.id)
    assert bob.roster_sequence > after_mute and bob.server_muted is False

    assert seen.names() == [
        "participant_joined",
        "participant_joined",
        "participant_updated",
        "operation_completed",
        "operation_completed",
        "participant_updated",
        "operation_completed",
    ]
    assert seen.seen[0][1] == (alice,) and seen.seen[1][1] == (bob,)
    assert seen.seen[2][1] == (bob,) and seen.seen[3][1] == (muted,)
    assert [op.kind for op in (muted, again, unmuted)] == ["muteParticipant", "muteParticipant", "unmuteParticipant"]
    assert [op.client_context for op in (muted, again, unmuted)] == ["one", "two", None]
    assert all(op.status == "completed" and call.operation(op.id) is op for op in (muted, again, unmuted))
    assert muted.completed_monotonic == again.completed_monotonic == unmuted.completed_monotonic == 100.0  # injected


async def test_remove_and_end():
    call, seen = make_call()
    alice, bob = join(call, "Alice"), join(call, "Bob")
    before = bob.roster_sequence
    assert await call.remove(bob.id) is bob
    assert bob.id not in call.participants and bob.id not in call.mixer
    assert not bob.gate.is_open  # nothing of a removed participant may be mixed, even if packets still arrive
    assert bob.roster_sequence > before
    assert seen.seen[-1] == ("participant_left", (bob,))
    with pytest.raises(ParticipantNotFound):
        await call.remove(bob.id)
    with pytest.raises(NotSupportedForCall):
        await call.remove(call.app.id)

    await call.end()
    assert call.state == "terminated" and call.terminated and len(call.mixer) == 0
    assert seen.names()[-1] == "call_ended"
    await call.end()  # idempotent: no second event
    assert seen.names().count("call_ended") == 1
    for action in (lambda: call.mute(alice.id), lambda: call.unmute(alice.id), lambda: call.mute_all([]),
                   lambda: call.set_self_muted(alice.id, True), lambda: join(call, "Late")):
        with pytest.raises(CallTerminated):
            action()


def test_mute_all_self_mute_and_policies():
    call, seen = make_call(allow_self_unmute=False)
    a, b, c = (join(call, name) for name in "abc")
    listed = call.mute_all([a.id, b.id], "all")
    assert [p.server_muted for p in (a, b, c)] == [True, True, False] and not call.app.server_muted
    assert listed.kind == "comms" and seen.seen[-2] == ("participant_updated", (a, b))
    call.mute_all([])  # none listed: every remote participant, never the application's own
    assert c.server_muted and not call.app.server_muted
    with pytest.raises(ParticipantNotFound):
        call.mute_all(["nobody"])

    with pytest.raises(PolicyForbids):
        call.self_unmute(a.id)
    assert a.server_muted
    call.unmute(a.id)  # the application may always lift it
    assert not a.server_muted

    sequence = b.roster_sequence
    assert call.set_self_muted(b.id, True) is b
    assert b.self_muted and b.is_muted and b.roster_sequence > sequence
    call.unmute(b.id)
    assert b.is_muted and not b.server_muted and b.gate.is_open  # self mute is the client's, not the gate's
    updates = seen.names().count("participant_updated")
    call.set_self_muted(b.id, True)  # no change: no event
    assert seen.names().count("participant_updated") == updates

    with pytest.raises(ParticipantNotFound):
        call.mute("nobody")
    with pytest.raises(ParticipantNotFound):
        call.set_self_muted("nobody", True)


def test_self_unmute_allowed_by_default():
    call, _ = make_call()
    a = join(call, "a")
    call.mute(a.id)
    operation = call.self_unmute(a.id)
    assert operation.kind == "unmuteParticipant" and a.gate.is_open


def test_peer_to_peer_refuses_participant_mute_but_not_the_apps_own():
    call, seen = make_call(peer_to_peer=True)
    a = join(call, "a")
    with pytest.raises(NotSupportedForCall):
        call.mute(a.id)
    with pytest.raises(NotSupportedForCall):
        call.mute_all([])
    assert a.gate.is_open and not call.operations and "operation_completed" not in seen.names()
    call.mute(call.app.id)
    assert call.app.server_muted


def test_when_mute_returns_the_gate_is_closed_and_the_inbox_flushed():
    """Frames queued before the mute never reach a mix: the first tick after mute() returns excludes the muted
    participant, the other participant's frames go on, and unmute lets the next pushed frame in."""
    heard: list[np.ndarray] = []
    clock = InjectedClock()  # the mixer is ticked by hand at injected times: the call's MixClock never starts
    call, _ = make_call(clock, inbox_frames=5)
    a = join(call, "a", sink=listener(heard))
    b = join(call, "b")
    for _ in range(3):
        call.mixer.push(a.id, frame(1000))
        call.mixer.push(b.id, frame(2000))
    record = call.mixer.tick(clock.advance())
    assert set(record.contributors) == {a.id, b.id}
    assert heard[-1][0] == 2000  # a hears b (N-1)

    clock.advance(0.005)
    operation = call.mute(b.id)
    assert operation.completed_monotonic == clock.now  # the operation is timed on the call's clock
    assert not b.gate.is_open
    assert call.mixer.slot(b.id).counters().inbox_depth == 0  # flushed before mute() returned
    assert call.mixer.push(b.id, frame(2000)) is False  # refused while closed
    ticks = [call.mixer.tick(clock.advance()) for _ in range(3)]
    audit = call.mixer.audit
    # the last tick before the mute's answer mixed b; the first one after it, and every later one, did not
    assert [r for r in audit if r.mixed_at < operation.completed_monotonic][-1].contributors == (a.id, b.id)
    assert audit.first_with(b.id, operation.completed_monotonic) is None
    assert all(b.id not in r.contributors for r in ticks)
    assert a.id in ticks[0].contributors and a.id in ticks[1].contributors  # a's queued frames go on
    assert all(not f.any() for f in heard[-3:])  # a hears nothing of b
    assert call.operation(operation.id) is operation

    clock.advance(0.005)
    unmuted = call.unmute(b.id)
    assert call.mixer.push(b.id, frame(2000)) is True
    back = call.mixer.tick(clock.advance())
    assert audit.first_with(b.id, unmuted.completed_monotonic) is back
    assert b.id in back.contributors and heard[-1][0] == 2000


def test_the_apps_own_participant_is_gated_like_anyone():
    heard: list[np.ndarray] = []
    clock = InjectedClock()
    call, _ = make_call(clock)
    a = join(call, "a", sink=listener(heard))
    call.mixer.push(call.app.id, frame(500))
    assert call.app.id in call.mixer.tick(clock.advance()).contributors and heard[-1][0] == 500
    call.mixer.push(call.app.id, frame(500))
    call.mute(call.app.id)  # the queued frame goes with the mute
    assert call.app.id not in call.mixer.tick(clock.advance()).contributors and not heard[-1].any()
    assert a.id in call.participants and call.app.server_muted


def test_a_running_operation_ends_once_with_its_result_and_one_event():
    clock = InjectedClock()
    call, recorder = make_call(clock)
    operation = call.begin(Operation("playPrompt", call.app.id, "ctx"))
    assert operation.status == "running" and not operation.finished and operation.answered_running
    assert call.operation(operation.id) is operation  # resolvable while it runs
    assert "operation_finished" not in recorder.names()

    clock.advance(1.5)
    call.finish(operation, completion_reason="completedSuccessfully")
    assert (operation.status, operation.result_code, operation.result_subcode) == ("completed", 200, 0)
    assert operation.completed_monotonic == clock.now and operation.completion_reason == "completedSuccessfully"
    # a second end (e.g. a cancel racing the prompt's natural end) changes nothing and emits nothing
    call.finish(operation, "failed", 400, 8508, "cancelled")
    assert operation.status == "completed" and recorder.names().count("operation_finished") == 1
    assert recorder.seen[-1] == ("operation_finished", (operation,))


def test_ending_a_call_fails_its_running_operations_before_the_call_ends():
    import asyncio

    call, recorder = make_call()
    running = call.begin(Operation("record", call.app.id, None))
    done = call.mute(call.app.id)
    asyncio.run(call.end())
    assert running.status == "failed" and running.result_code == 500
    assert done.status == "completed"  # answered completed: untouched
    names = recorder.names()
    assert names.index("operation_finished") < names.index("call_ended")
