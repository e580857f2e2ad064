"""Talking while muted: the hysteresis on crafted level sequences (media/talking.py), then the call's use of it on an
injected clock (calls/call.py): fed only while muted, a roster update on each change, cleared by unmute and leave."""

from __future__ import annotations

import pytest
from pyee import EventEmitter

from mediamute.calls.call import PARTICIPANT_LEFT, PARTICIPANT_UPDATED, Call, CallOptions
from mediamute.calls.model import Participant
from mediamute.media.talking import TalkingDetector, TalkingParams
from mediamute.sources import SilenceSource, ToneSource

from .helpers import CALLS, InjectedClock, call_with_callback, wait_until

PACKET = 0.02
LOUD, QUIET = -20.0, -60.0


def run(detector: TalkingDetector, levels: list[float], start: float = 0.0) -> list[tuple[float, bool]]:
    """Feed one level per 20 ms packet; returns (time, talking) at each change."""
    changes = []
    for i, level in enumerate(levels):
        at = start + i * PACKET
        if detector.feed(level, at):
            changes.append((round(at, 3), detector.talking))
    return changes


def test_talking_starts_after_start_s_of_speech_and_stops_after_stop_s_of_quiet():
    detector = TalkingDetector()  # -35 dBov, 0.2 s to start, 0.8 s to stop
    changes = run(detector, [QUIET] * 5 + [LOUD] * 30 + [QUIET] * 50)
    assert changes == [(0.3, True), (1.48, False)]  # loud from 0.1 s: talking at 0.3; last loud at 0.68, + 0.8 s
    assert detector.episodes == 1 and detector.talking_seconds == pytest.approx(1.18)


def test_one_quiet_packet_restarts_the_start_count_but_pauses_shorter_than_stop_s_keep_talking():
    detector = TalkingDetector()
    assert run(detector, [LOUD] * 9 + [QUIET] + [LOUD] * 9) == []  # 180 ms runs: never 200 ms unbroken
    detector = TalkingDetector()
    speech = [LOUD] * 15 + [QUIET] * 30 + [LOUD] * 15 + [QUIET] * 35  # a 0.6 s pause between phrases
    assert [talking for _, talking in run(detector, speech)] == [True]  # still talking through the pause
    assert detector.episodes == 1


def test_the_threshold_is_inclusive_and_just_below_is_quiet():
    params = TalkingParams(threshold_dbov=-35.0, start_s=0.2, stop_s=0.8)
    assert run(TalkingDetector(params), [-35.0] * 12) == [(0.2, True)]
    assert run(TalkingDetector(params), [-36.0] * 100) == []  # e.g. a faint pilot tone or room noise


def test_a_silent_participant_never_talks():
    detector = TalkingDetector()
    assert run(detector, [-127.0] * 500) == []
    assert detector.counters().levels == 500 and detector.episodes == 0


def test_poll_stops_an_episode_whose_packets_stopped_coming():
    detector = TalkingDetector()
    run(detector, [LOUD] * 20)  # talking since 0.2 s, last loud packet at 0.38 s
    assert detector.talking
    assert not detector.poll(0.38 + 0.79)
    assert detector.poll(0.38 + 0.8) and not detector.talking


def test_reset_ends_the_episode_and_forgets_the_run():
    detector = TalkingDetector()
    run(detector, [LOUD] * 9)
    assert not detector.reset(0.2)  # not talking yet: nothing to end
    assert run(detector, [LOUD] * 9, start=0.2) == []  # the run before the reset does not count
    run(detector, [LOUD] * 20, start=1.0)
    assert detector.talking and detector.reset(2.0) and not detector.talking
    assert detector.counters().since is None and detector.episodes == 1


# the call's use of it ---------------------------------------------------------------------------------------------
@pytest.fixture
def setup():
    clock = InjectedClock(100.0)
    events = EventEmitter()
    updates: list[tuple[str, bool, bool]] = []
    events.on(PARTICIPANT_UPDATED, lambda call, *ps: updates.extend((p.display_name, p.server_muted, p.talking.talking) for p in ps))
    call = Call(CallOptions(), events, clock=clock)  # never started: the test drives the clock and the ticks
    return call, clock, updates


def speak(call: Call, clock: InjectedClock, participant: Participant, level: float, seconds: float) -> None:
    for _ in range(round(seconds / PACKET)):
        clock.now += PACKET
        call.heard_while_muted(participant.id, level)


def test_a_muted_talker_is_flagged_once_and_cleared_by_the_unmute_update(setup):
    call, clock, updates = setup
    bob = call.join(Participant("Bob"), sink=None, media=None)
    speak(call, clock, bob, LOUD, 1.0)  # not muted: the gate passes his packets, nothing is read
    assert not bob.talking.talking and bob.talking.levels == 0
    call.mute(bob.id)
    speak(call, clock, bob, LOUD, 1.0)
    assert updates == [("Bob", True, False), ("Bob", True, True)]  # muted, then talking while muted
    sequence = bob.roster_sequence
    call.unmute(bob.id)
    assert updates[-1] == ("Bob", False, False)  # the unmute's update says he no longer talks while muted
    assert bob.roster_sequence == sequence + 1 and len(updates) == 3


def test_a_muted_silent_participant_is_never_flagged(setup):
    call, clock, updates = setup
    carol = call.join(Participant("Carol"), sink=None, media=None)
    call.mute(carol.id)
    speak(call, clock, carol, -127.0, 3.0)
    assert updates == [("Carol", True, False)] and carol.talking.episodes == 0


def test_the_tick_stops_a_talker_whose_packets_stopped(setup):
    call, clock, updates = setup
    bob = call.join(Participant("Bob"), sink=None, media=None)
    call.mute(bob.id)
    speak(call, clock, bob, LOUD, 0.5)
    assert bob.talking.talking
    clock.now += 0.5
    call._tick(clock.now)  # the mixer tick polls the talkers
    assert bob.talking.talking
    clock.now += 0.4
    call._tick(clock.now)
    assert not bob.talking.talking and updates[-1] == ("Bob", True, False)


async def test_leaving_ends_the_episode_without_a_further_update(setup):
    call, clock, updates = setup
    left: list[str] = []
    call.events.on(PARTICIPANT_LEFT, lambda c, p: left.append(p.display_name))
    bob = call.join(Participant("Bob"), sink=None, media=None)
    call.mute(bob.id)
    speak(call, clock, bob, LOUD, 0.5)
    assert bob.talking.talking
    await call.remove(bob.id)  # his gate was closed already (muted): the leave still ends the episode
    assert left == ["Bob"] and not bob.talking.talking
    count = len(updates)
    speak(call, clock, bob, LOUD, 1.0)  # packets still in flight after the leave: not in the roster, not read
    assert len(updates) == count and not bob.talking.talking


# over real WebRTC: the levels aiortc's sender writes into each packet's header ------------------------------------
@pytest.mark.integration
async def test_a_muted_talker_is_flagged_and_a_muted_silent_participant_is_not(server, http):
    sources = [("Talker", ToneSource(440)), ("Silent", SilenceSource())]
    async with call_with_callback(server, http, sources) as (receiver, call_id, (talker, silent)):
        call = server.registry.get(call_id)

        def flagged(pid: str) -> list[bool]:
            return [
                p["mediamute"]["talkingWhileMuted"]
                for n in receiver.notifications() if n["resourceUrl"].endswith("/participants") and n["changeType"] == "updated"
                for p in n["resourceData"] if p["id"] == pid
            ]

        for p in (talker, silent):
            assert (await http.post(f"{CALLS}/{call_id}/participants/{p.participant_id}/mute", json={})).status_code == 200
        await receiver.wait_for(lambda r: True in flagged(talker.participant_id))
        levels_at_flag = call.participant(silent.participant_id).talking.levels
        # the silent one's packets keep coming and being read, for longer than it took to flag the talker
        await wait_until(lambda: call.participant(silent.participant_id).talking.levels > levels_at_flag + 50, timeout=10)
        stats = (await http.get(f"/ext/calls/{call_id}/stats", params={"limit": 0})).json()
        entries = {p["displayName"]: p for p in stats["participants"]}
        assert entries["Talker"]["talkingWhileMuted"]["talking"] is True and entries["Talker"]["talkingWhileMuted"]["episodes"] == 1
        assert entries["Silent"]["talkingWhileMuted"] == {**entries["Silent"]["talkingWhileMuted"], "talking": False, "episodes": 0}
        assert entries["Silent"]["talkingWhileMuted"]["levelsRead"] > 50  # read, and silent: -127 dBov
        # what the client's sender writes (rtc/audio_level.py: the level of the mono frame it encodes itself):
        # silence at -127, the tone (-15.2 dBFS) at -15
        assert entries["Silent"]["receivedLevelDbov"] == -127.0 and entries["Talker"]["receivedLevelDbov"] == -15.0
        assert True not in flagged(silent.participant_id)
        metrics = (await http.get("/metrics")).text
        assert f'mediamute_participant_talking_while_muted{{call_id="{call_id}",participant_id="{talker.participant_id}"}} 1.0' in metrics
        assert f'mediamute_participant_talking_while_muted{{call_id="{call_id}",participant_id="{silent.participant_id}"}} 0.0' in metrics
        # the unmute's own update ends it
        await http.post(f"/ext/calls/{call_id}/participants/{talker.participant_id}/unmute", json={})
        await receiver.wait_for(lambda r: len(flagged(talker.participant_id)) >= 4)
        assert flagged(talker.participant_id) == [False, False, True, False]  # joined, muted, talking, unmuted
