"""calls/stats.py against a real Call (no HTTP, no WebRTC), and the API's serialisation of its records."""

import math

import numpy as np
import pytest
from pyee import EventEmitter

from mediamute.api.ext import call_stats_json, participant_stats_json
from mediamute.api.notifications import DeliveryCounters
from mediamute.calls.call import Call, CallOptions
from mediamute.calls.model import MediaSession, Participant
from mediamute.calls.stats import call_stats, participant_stats
from mediamute.media.audio import FRAME_SAMPLES
from mediamute.media.jitter import JitterCounters, JitterStats
from mediamute.media.outbound import OutboundCounters
from mediamute.media.sequence import SequenceCounters
from mediamute.media.telephone_event import ToneCounters

from .helpers import InjectedClock

AMPLITUDE = 8000.0


class LevelOnlySession:
    """The smallest MediaSession: a fixed received level, given sequence, jitter buffer and outbound numbers, no
    receive path to pull (frames are pushed by the test), and a close that is remembered."""

    frame_source = None

    def __init__(self, level_dbov: float | None, sequence: SequenceCounters | None = None,
                 jitter: JitterStats | None = None, outbound: OutboundCounters | None = None) -> None:
        self.received_audio_level_dbov = level_dbov
        self.sequence_counters = sequence
        self.network = None
        self.jitter = jitter
        self.outbound_counters = outbound
        self.closed = False

    def jitter_stats(self) -> JitterStats | None:
        return self.jitter

    async def close(self) -> None:
        self.closed = True


def tone() -> np.ndarray:
    return (AMPLITUDE * np.sin(2 * np.pi * 440 * np.arange(FRAME_SAMPLES) / 48000)).astype(np.int16)


@pytest.fixture
def clock() -> InjectedClock:
    return InjectedClock(10.0)


@pytest.fixture
def call(clock) -> Call:
    return Call(CallOptions(), EventEmitter(), clock=clock)  # never started: the test ticks the mixer by hand


def tick_at(call: Call, clock: InjectedClock, at: float) -> None:
    clock.now = at
    call.mixer.tick()  # deadline and mix time are both `at`


def join(call: Call, name: str, media: MediaSession | None = None) -> Participant:
    return call.join(Participant(name), sink=None, media=media)


def test_participant_stats_read_gate_media_and_mixer_slot(call, clock):
    alice = join(call, "alice", LevelOnlySession(-23.0))
    bob = join(call, "bob")
    call.mixer.push(alice.id, tone())
    tick_at(call, clock, 10.0)
    call.mute(bob.id)
    bob.gate.admit(120)
    bob.gate.admit(80)

    a, b = participant_stats(call, alice), participant_stats(call, bob)
    assert (a.display_name, a.kind, a.is_muted, a.server_muted) == ("alice", "remote", False, False)
    assert a.received_level_dbov == -23.0
    expected_dbfs = 20 * math.log10(AMPLITUDE / math.sqrt(2) / 32768)
    assert a.mixed_level_dbfs == pytest.approx(expected_dbfs, abs=0.1)
    assert a.mixer is not None and a.mixer.frames_mixed == 1
    assert b.server_muted and b.is_muted and not b.self_muted
    assert b.received_level_dbov is None  # no media session
    assert not b.gate.is_open and b.gate.closed_since is not None
    assert (b.gate.dropped_packets, b.gate.dropped_bytes) == (2, 200)


async def test_removed_participant_has_no_mixer_numbers_and_its_session_is_closed(call):
    session = LevelOnlySession(None)
    carol = join(call, "carol", session)
    await call.remove(carol.id)
    entry = participant_stats(call, carol)
    assert session.closed
    assert entry.mixer is None and entry.mixed_level_dbfs is None
    assert entry.received_level_dbov is None
    assert carol.id not in [p.id for p in call_stats(call).participants]


def test_call_stats_roster_and_audit_windows(call, clock):
    alice = join(call, "alice")
    for i in range(5):
        call.mixer.push(alice.id, tone())
        tick_at(call, clock, 20.0 + i * 0.02)
    stats = call_stats(call, audit_limit=3)
    assert stats.call_id == call.id and stats.state == "established"
    assert stats.roster_sequence == call.roster_sequence == 2  # the app, then alice
    assert [p.id for p in stats.participants] == [call.app.id, alice.id]
    assert [r.seq for r in stats.audit] == [2, 3, 4]
    assert all(alice.id in r.contributors for r in stats.audit)
    assert call_stats(call, audit_limit=0).audit == ()
    assert [r.seq for r in call_stats(call, audit_since=20.05).audit] == [3, 4]
    assert [r.seq for r in call_stats(call, audit_since=20.01, audit_limit=1).audit] == [4]
    clock.now = 20.13
    call.mixer.tick(20.12)  # due at 20.12, mixed 10 ms late: the audit window goes by the mix time
    late = call_stats(call, audit_since=20.125).audit
    assert [(r.seq, r.at, r.mixed_at) for r in late] == [(5, 20.12, 20.13)]
    assert stats.clock.ticks == 0  # the clock never ran; the mixer was ticked by hand


def test_the_wire_shape_of_the_stats_is_the_api_contract(call, clock):
    sequence = SequenceCounters(accepted=7, duplicates=1, jumps_pending=3, ssrcs_pending=4, restarts=5, ssrc_changes=6,
                                misordered=2)
    jitter = JitterStats(JitterCounters(packets=6, late=1, recovered=2, concealed=3, single_losses=4, single_recovered=2,
                                        burst_losses=1), depth=2, target_delay=0.04,
                         delay_p50=0.03, delay_p95=0.05, jitter=0.006, playing=True)
    outbound = OutboundCounters("lean", packets=50, payload_bytes=4000, dropped_not_connected=2, dropped_overflow=0, dropped_errors=1)
    alice = join(call, "alice", LevelOnlySession(-30.0, sequence, jitter, outbound))
    call.mixer.push(alice.id, tone())
    tick_at(call, clock, 30.0)
    record = call_stats(call)
    sequence.duplicates += 100  # the record holds a copy: later packets do not change what was read
    body = call_stats_json(record, DeliveryCounters(enqueued=4, posts=2))
    assert list(body) == [
        "callId", "state", "monotonicNow", "rosterSequenceNumber", "clock", "callbacks", "faults", "participants", "audit"
    ]
    assert body["monotonicNow"] == record.monotonic_now
    assert body["clock"] == {"ticks": 0, "late_ticks": 0, "max_lateness": 0.0}
    assert body["callbacks"]["enqueued"] == 4 and body["callbacks"]["posts"] == 2
    assert call_stats_json(record, None)["callbacks"] is None
    assert body["faults"] is None  # no faults on request for this call
    entry = next(p for p in body["participants"] if p["id"] == alice.id)
    assert list(entry) == [
        "id", "displayName", "kind", "isMuted", "serverMuted", "selfMuted", "gate", "receivedLevelDbov",
        "mixedLevelDbfs", "mixer", "rtp", "network", "jitterBuffer", "talkingWhileMuted", "tones", "outbound",
    ]
    assert entry["talkingWhileMuted"] == {"talking": False, "since": None, "episodes": 0, "talkingSeconds": 0.0, "levelsRead": 0}
    assert entry["tones"] is None  # a session that is no ToneSession sends no tones
    assert entry["rtp"] == {
        "accepted": 7, "duplicates": 1, "jumps_pending": 3, "ssrcs_pending": 4, "restarts": 5,
        "ssrc_changes": 6, "misordered": 2, "dropped": 8,
    }
    assert entry["network"] is None  # a session that reports no network (tests/test_netem_api.py: one that does)
    assert entry["jitterBuffer"] == {
        "packets": 6, "fec_packets": 0, "late": 1, "duplicates": 0, "reordered": 0, "overflow": 0, "timestamp_jumps": 0, "restarts": 0,
        "decoded": 0, "recovered": 2, "concealed": 3, "accelerated": 0, "skipped": 0, "flushed": 0, "malformed": 0,
        "single_losses": 4, "single_recovered": 2, "burst_losses": 1, "depth": 2, "target_delay": 0.04, "delay_p50": 0.03, "delay_p95": 0.05, "jitter": 0.006, "playing": True,
    }
    assert entry["outbound"] == {
        "path": "lean", "packets": 50, "payload_bytes": 4000, "dropped_not_connected": 2, "dropped_overflow": 0,
        "dropped_errors": 1, "dropped": 3,
    }
    app_entry = next(p for p in body["participants"] if p["id"] == call.app.id)
    assert app_entry["rtp"] is None and app_entry["jitterBuffer"] is None and app_entry["outbound"] is None
    assert list(entry["gate"]) == ["open", "passedPackets", "droppedPackets", "droppedBytes", "closedSince"]
    assert entry["receivedLevelDbov"] == -30.0
    assert entry["mixer"]["participant_id"] == alice.id and entry["mixer"]["frames_mixed"] == 1
    assert body["audit"] == [
        {"seq": 0, "at": 30.0, "mixedAt": 30.0, "contributors": [alice.id], "levels": [pytest.approx(AMPLITUDE / math.sqrt(2), rel=0.01)],
         "concealed": [], "recovered": []}
    ]
    removed = participant_stats(call, Participant("never joined"))
    assert "mixer" not in participant_stats_json(removed)
    assert record.tick_durations.count == record.clock.ticks == 0


class ToneReadingSession(LevelOnlySession):
    """A MediaSession that also reads DTMF (a `ToneSession`)."""

    def __init__(self, tones: ToneCounters) -> None:
        super().__init__(-20.0)
        self.tone_counters = tones
        self.tone_formats = [48000, 8000]


def test_the_wire_shape_of_a_participants_tones_and_talking(call, clock):
    tones = ToneCounters(packets=30, presses=2, repeats=25, empty=1, late=1, unsupported=1, malformed=1)
    alice = join(call, "alice", ToneReadingSession(tones))
    call.mute(alice.id)
    for at in (31.0, 31.125, 31.25, 31.375):
        clock.now = at
        call.heard_while_muted(alice.id, -20.0)
    entry = participant_stats_json(participant_stats(call, alice))
    tones.presses += 1  # a copy was read
    assert entry["tones"] == {
        "packets": 30, "presses": 2, "repeats": 25, "empty": 1, "late": 1, "unsupported": 1, "malformed": 1,
        "dropped": 4, "formats": [48000, 8000],
    }
    assert entry["talkingWhileMuted"] == {"talking": True, "since": 31.25, "episodes": 1, "talkingSeconds": 0.0, "levelsRead": 4}

