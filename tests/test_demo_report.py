"""The demo report's judgement on recorded data: leaks and server-side times come from the contributor audit,
judged on when each mix was made (not on the tick's deadline), so a tick that runs late across an unmute or a
mute is filed on the right side of the edge. Also the action table and the one notification summary."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest

from mediamute.demo.callbacks import CallbackSink, summarize
from mediamute.demo.model import ActionResult, DemoRun
from mediamute.demo.report import analyse, build_report, run_audit
from mediamute.demo.runner import ACTIONS
from mediamute.demo.scenario import ActionName, Scenario
from mediamute.media.audit import TickRecord

PERIOD = 0.02
START = 100.0
ALICE, BOB = "alice-id", "bob-id"
# Bob's mute: sent at 101.000, the gate closes at 101.004, the answer is back at 101.006; his self-unmute the same
# a second later. Everything is monotonic seconds, the clock the server's mixer and operations use.
MUTE_SENT, MUTE_CLOSED, MUTE_ANSWERED = 101.000, 101.004, 101.006
UNMUTE_SENT, UNMUTE_OPENED, UNMUTE_ANSWERED = 102.000, 102.004, 102.006
ON_TIME = 0.001
"""How long after its deadline a tick normally takes its frames."""
LATE_UNMUTE_TICK = 100  # deadline 102.000 (before the gate re-opens), frames taken at 102.015 (after it)
LATE_MUTE_TICK = 50  # deadline 101.000 (before the gate closes), frames taken at 101.012 (after it)
LATE = {LATE_UNMUTE_TICK: 0.015, LATE_MUTE_TICK: 0.012}
"""Lateness (s) of the ticks that run late across an edge."""


def _scenario() -> Scenario:
    return Scenario.model_validate(
        {
            "duration": 3,
            "participants": [{"name": "Alice", "source": "silence"}, {"name": "Bob", "source": "silence"}],
            "actions": [
                {"at": 1.0, "action": "mute", "participant": "Bob"},
                {"at": 2.0, "action": "self-unmute", "participant": "Bob"},
            ],
        }
    )


def _ticks(late: dict[int, float], bob_in_late_mute_tick: bool = False) -> list[TickRecord]:
    """150 ticks of 20 ms, those in `late` taking their frames that long after their deadline; Bob is in every
    mix made while his gate is open (and, if asked, in the late tick that took its frames just after the gate
    closed: a real leak)."""
    records = []
    for seq in range(150):
        at = START + seq * PERIOD
        mixed_at = at + late.get(seq, ON_TIME)
        bob_open = not (MUTE_CLOSED <= mixed_at < UNMUTE_OPENED)
        contributors = (ALICE, BOB) if bob_open or (seq == LATE_MUTE_TICK and bob_in_late_mute_tick) else (ALICE,)
        records.append(
            TickRecord(seq=seq, at=at, mixed_at=mixed_at, contributors=contributors, levels=(1000.0,) * len(contributors))
        )
    return records


def _run(ticks: list[TickRecord]) -> DemoRun:
    scenario = _scenario()
    mute, unmute = scenario.actions
    return DemoRun(
        scenario=scenario,
        call_id="call",
        app_id="app-id",
        app_name=scenario.call.app_name,
        t0=START,
        ended_at=START + scenario.duration,
        ids={"Alice": ALICE, "Bob": BOB},
        participants={},
        ticks=ticks,
        actions=[
            ActionResult(mute, "Bob", MUTE_SENT, MUTE_ANSWERED, 200, completed_server=MUTE_CLOSED),
            ActionResult(unmute, "Bob", UNMUTE_SENT, UNMUTE_ANSWERED, 200, completed_server=UNMUTE_OPENED),
        ],
        sink=CallbackSink(),
        final_stats={},
        late_ticks=sum(1 for t in ticks if t.mixed_at - t.at > PERIOD / 2),
        clock_ticks=len(ticks),
    )


def _filed_by_deadline(ticks: list[TickRecord]) -> int:
    """What judging on the deadline would count as leaked: the trap these records set."""
    return sum(1 for t in ticks if MUTE_CLOSED <= t.at < UNMUTE_OPENED and BOB in t.contributors)


def test_a_tick_run_late_across_the_unmute_is_not_a_leak():
    ticks = _ticks(LATE)
    late = ticks[LATE_UNMUTE_TICK]
    assert late.at < UNMUTE_OPENED < late.mixed_at and BOB in late.contributors
    assert _filed_by_deadline(ticks) == 1  # the old report's false leak is in these records
    report = build_report(_run(ticks), analyse(_run(ticks)), max_mute_ms=250)
    (bob,) = report["mutes"]
    assert bob["leakedFrames"] == 0 and report["leakedFramesTotal"] == 0
    assert bob["serverUnmuteMs"] == pytest.approx((late.mixed_at - UNMUTE_SENT) * 1000, abs=0.05)  # the late mix


def test_a_tick_run_late_across_the_mute_is_judged_on_its_mix():
    ticks = _ticks(LATE)
    late = ticks[LATE_MUTE_TICK]
    assert late.at < MUTE_CLOSED < late.mixed_at and BOB not in late.contributors
    run = _run(ticks)
    (bob,) = build_report(run, analyse(run), max_mute_ms=250)["mutes"]
    assert bob["leakedFrames"] == 0
    # the first mix without Bob is the late one, made 12 ms after the request; not the next tick's 21 ms
    assert bob["serverMuteMs"] == pytest.approx((late.mixed_at - MUTE_SENT) * 1000, abs=0.05)


def test_a_muted_frame_in_a_tick_run_late_across_the_mute_is_a_leak():
    ticks = _ticks({LATE_MUTE_TICK: LATE[LATE_MUTE_TICK]}, bob_in_late_mute_tick=True)
    late = ticks[LATE_MUTE_TICK]
    assert late.at < MUTE_CLOSED < late.mixed_at and BOB in late.contributors  # by its deadline, it would hide
    run = _run(ticks)
    report = build_report(run, analyse(run), max_mute_ms=250)
    assert report["mutes"][0]["leakedFrames"] == 1 and report["leakedFramesTotal"] == 1
    assert report["ok"] is False and "1 frames of a muted participant were mixed" in report["verdict"]


def test_the_report_audit_keeps_every_tick_of_a_long_run():
    ticks = [
        TickRecord(seq=i, at=i * PERIOD, mixed_at=i * PERIOD + ON_TIME, contributors=(ALICE,), levels=(1.0,))
        for i in range(5000)  # more than the mixer's own ring holds
    ]
    run = _run(ticks)
    audit = run_audit(run)
    assert len(audit) == 5000 and next(iter(audit)) is ticks[0]


def test_every_scenario_action_has_a_handler():
    assert set(ACTIONS) == set(get_args(ActionName))


def test_one_summary_for_participant_and_call_notifications():
    participant = {
        "changeType": "updated",
        "resourceData": [
            {
                "info": {"identity": {"user": {"displayName": "Bob"}}},
                "isMuted": True,
                "mediaStreams": [{"serverMuted": True}],
            },
            {"info": {"identity": {"application": {"displayName": "Contoso bot"}}}, "isMuted": False, "mediaStreams": []},
        ],
    }
    assert summarize(participant) == "Bob isMuted=True serverMuted=True; Contoso bot isMuted=False serverMuted=None"
    assert summarize({"resourceData": {"state": "terminated"}}) == "call state=terminated"
    assert summarize({}) == ""


def test_heard_silence_counts_the_frame_at_the_mute_that_ends_a_run_begun_before_it():
    from mediamute.demo.report import _heard_silence

    times = 101.0 + PERIOD * (np.arange(20) - 10) + 0.002  # frames played 2 ms after each 20 ms mark
    amps = np.where(np.arange(20) <= 10, 400.0, 5.0)  # heard up to the frame played 2 ms after the mute request
    assert _heard_silence(times, amps, 400.0, MUTE_SENT, 102.0) == pytest.approx(MUTE_SENT + PERIOD + 0.002)
    amps[9] = 5.0  # the run before the request is broken: the frame at +2 ms alone is a one-frame click
    assert _heard_silence(times, amps, 400.0, MUTE_SENT, 102.0) == pytest.approx(MUTE_SENT + 0.002)
