"""Hold music on its own (calls/hold.py): one participant of a call on hold at a time, out of every mix and
hearing only its music, from the tick after the request (or after its music arrived), with the roster update and
the operation's end in that order; the errors Graph leaves to us. Injected clock, the mixer ticked by the test."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from mediamute.calls import MediaConflict, NotSupportedForCall, ParticipantNotFound
from mediamute.calls.call import OPERATION_FINISHED, PARTICIPANT_UPDATED
from mediamute.calls.ivr import ReadyMedia
from mediamute.media.audio import FRAME_SAMPLES

from .helpers import ArrivingMedia, InjectedClock, domain_call, listening

MUSIC = np.arange(3 * FRAME_SAMPLES, dtype=np.int16) % 1000


def setup():
    clock = InjectedClock()
    call = domain_call(clock)
    events: list[tuple[str, object]] = []
    call.events.on(OPERATION_FINISHED, lambda _call, op: events.append(("finished", op)))
    call.events.on(PARTICIPANT_UPDATED, lambda _call, *ps: events.append(("updated", ps[0].on_hold)))
    people = {name: listening(call, name) for name in ("Alice", "Bob", "Carol")}
    return call, clock, events, people


def talk_and_tick(call, clock, people, ticks=1):
    """Everyone sends a frame of its own value (Alice 1, Bob 10, Carol 100), then the call ticks."""
    for _ in range(ticks):
        for value, (participant, _) in zip((1, 10, 100), people.values()):
            call.mixer.push(participant.id, np.full(FRAME_SAMPLES, value, dtype=np.int16))
        call._tick(clock.advance())


def test_a_held_participant_is_in_no_mix_hears_only_its_music_and_comes_back():
    call, clock, events, people = setup()
    bob, bob_heard = people["Bob"]
    _, alice_heard = people["Alice"]
    start = call.hold.start(bob.id, ReadyMedia(MUSIC), "hold")
    assert start.status == "running" and not bob.on_hold
    talk_and_tick(call, clock, people)  # the tick after the request still mixes Bob; the hold applies after it
    assert alice_heard[-1][0] == 110
    assert events == [("updated", True), ("finished", start)]  # roster first, then the operation's end
    assert bob.on_hold and start.status == "completed" and start.result_message == "Action completed successfully."
    held_from = start.completed_monotonic
    talk_and_tick(call, clock, people, ticks=4)
    assert [f[0] for f in alice_heard[-4:]] == [100] * 4  # Carol only: Bob is out of Alice's mix ...
    assert np.array_equal(np.concatenate(bob_heard[-4:]), np.concatenate([MUSIC, MUSIC[:FRAME_SAMPLES]]))  # music, looped
    assert not bob.server_muted and bob.gate.is_open  # ... and not muted

    stop = call.hold.stop(bob.id, "back")
    talk_and_tick(call, clock, people)
    assert events[-2:] == [("updated", False), ("finished", stop)] and not bob.on_hold
    released_at = stop.completed_monotonic
    talk_and_tick(call, clock, people)
    assert alice_heard[-1][0] == 110 and bob_heard[-1][0] == 101  # back in the mix, hearing it again
    # the audit: no mix after the hold completed, up to the one in which it was released, took a frame of Bob
    # (on this clock a tick and the operation it precedes share a time: "after" is (held_from, released_at])
    audit, eps = call.mixer.audit, 1e-9
    assert len(audit.between(held_from + eps, released_at + eps)) == 5
    assert audit.frames_from(bob.id, held_from + eps, released_at + eps) == 0
    assert audit.frames_from(bob.id, released_at + eps) == 1


def test_one_participant_on_hold_at_a_time_and_the_errors_graph_leaves_to_us():
    call, clock, _, people = setup()
    bob, carol = people["Bob"][0], people["Carol"][0]
    call.hold.start(bob.id, ReadyMedia(MUSIC), None)
    with pytest.raises(MediaConflict, match="already on hold"):
        call.hold.start(bob.id, ReadyMedia(MUSIC), None)
    with pytest.raises(MediaConflict, match="only one participant of a call can be on hold"):
        call.hold.start(carol.id, ReadyMedia(MUSIC), None)
    with pytest.raises(MediaConflict, match="not on hold"):
        call.hold.stop(carol.id, None)
    with pytest.raises(NotSupportedForCall, match="application"):
        call.hold.start(call.app.id, ReadyMedia(MUSIC), None)
    with pytest.raises(ParticipantNotFound):
        call.hold.start("nobody", ReadyMedia(MUSIC), None)
    call.hold.stop(bob.id, None)
    with pytest.raises(MediaConflict, match="already being taken off hold"):
        call.hold.stop(bob.id, None)
    talk_and_tick(call, clock, people)
    assert call.hold.start(carol.id, ReadyMedia(MUSIC), None).status == "running"  # the one place is free again


def test_custom_music_holds_from_its_arrival_and_a_failed_one_leaves_the_participant_in_the_call():
    call, clock, events, people = setup()
    bob, _ = people["Bob"]
    music = ArrivingMedia()
    start = call.hold.start(bob.id, music, None)
    talk_and_tick(call, clock, people, ticks=3)
    assert start.status == "running" and not bob.on_hold and call.mixer.audit.last().contributors.count(bob.id) == 1
    music.error = ValueError("http://127.0.0.1:9/hold.wav: HTTP 404 (200 expected)")
    talk_and_tick(call, clock, people)
    assert (start.status, start.result_code) == ("failed", 400) and "HTTP 404" in start.result_message
    assert not bob.on_hold and events == [("finished", start)]  # no roster change
    talk_and_tick(call, clock, people)
    assert bob.id in call.mixer.audit.last().contributors

    pending = ArrivingMedia()
    again = call.hold.start(bob.id, pending, None)
    stop = call.hold.stop(bob.id, None)  # before the music arrived: the start never takes effect
    talk_and_tick(call, clock, people)
    assert (again.status, again.result_subcode) == ("failed", 8508) and pending.cancelled
    assert stop.status == "completed" and not bob.on_hold


def test_a_held_participant_that_leaves_frees_the_place():
    call, clock, _, people = setup()
    bob, carol = people["Bob"][0], people["Carol"][0]
    call.hold.start(bob.id, ReadyMedia(MUSIC), None)
    talk_and_tick(call, clock, people)
    stop = call.hold.stop(bob.id, None)
    asyncio.run(call.remove(bob.id))
    del people["Bob"]
    talk_and_tick(call, clock, people)
    assert (stop.status, stop.result_code) == ("failed", 404)
    assert call.hold.start(carol.id, ReadyMedia(MUSIC), None).status == "running"
