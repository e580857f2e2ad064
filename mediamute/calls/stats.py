"""A call's live numbers as typed records: per participant what the server receives, mixes and drops of it, and
for the call its clock and its contributor audit. Built from the domain alone; the API serialises them."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from ..media.audio import dbfs
from ..media.audit import TickRecord
from ..media.clock import ClockCounters, HistogramSnapshot
from ..media.gate import GateCounters
from ..media.jitter import JitterStats
from ..media.mixer import SlotCounters
from ..media.netem import NetworkState
from ..media.outbound import OutboundCounters
from ..media.sequence import SequenceCounters
from ..media.talking import TalkingCounters
from ..media.telephone_event import ToneCounters
from .call import Call, CallState
from .model import Participant, ParticipantKind

DEFAULT_AUDIT_LIMIT = 200


@dataclass(frozen=True, slots=True)
class ParticipantStats:
    """One participant now: its mute state, its gate's counters, the level it sends and the level it is mixed at."""

    id: str
    display_name: str
    kind: ParticipantKind
    is_muted: bool
    server_muted: bool
    self_muted: bool
    gate: GateCounters
    received_level_dbov: float | None
    """What the sender's RTP level header says (dropped packets included); None without media or before a packet."""
    mixed_level_dbfs: float | None
    """The level of its latest mixed frame; None once it has no mixer slot."""
    mixer: SlotCounters | None
    """Its mixer slot's counters; None once it has no slot."""
    rtp: SequenceCounters | None
    """A copy of its media session's RTP sequence validation counters; None without media (or before it is set up)."""
    network: NetworkState | None
    """Its network's profiles and impairment counters, per direction; None without media (or before it is set up)."""
    talking: TalkingCounters
    """Talking while muted: its detector's state and what it has seen of the levels its closed gate dropped."""
    tones: ToneCounters | None
    """A copy of its DTMF (telephone-event) counters; None without media (or before it is set up)."""
    tone_formats: tuple[int, ...] = ()
    """Clock rates of the telephone-event formats negotiated with it (empty: it cannot send DTMF)."""
    jitter: JitterStats | None = None
    """Its jitter buffer now (counters, depth, target and actual delay, RFC 3550 jitter); None without media."""
    outbound: OutboundCounters | None = None
    """How its mix is sent to it and what was sent and dropped; None without media."""


@dataclass(frozen=True, slots=True)
class CallStats:
    """A call now: state, roster sequence, clock counters, every participant's numbers, and audit records."""

    call_id: str
    state: CallState
    monotonic_now: float
    """The server's monotonic time when these numbers were read (the audit's time base)."""
    roster_sequence: int
    clock: ClockCounters
    tick_durations: HistogramSnapshot
    """How long each tick's mix took, bucketed by the clock (count equals `clock.ticks`)."""
    participants: tuple[ParticipantStats, ...]
    audit: tuple[TickRecord, ...]


def participant_stats(call: Call, participant: Participant) -> ParticipantStats:
    """Read one participant's numbers from its gate, its media session and its slot in the call's mixer."""
    media = participant.media
    slot = call.mixer.slot(participant.id) if participant.id in call.mixer else None
    sequence = media.sequence_counters if media is not None else None
    # a session that is no `ToneSession` (a simulated participant, a test double) sends no tones
    tones = getattr(media, "tone_counters", None)
    return ParticipantStats(
        id=participant.id,
        display_name=participant.display_name,
        kind=participant.kind,
        is_muted=participant.is_muted,
        server_muted=participant.server_muted,
        self_muted=participant.self_muted,
        gate=participant.gate.counters(),
        received_level_dbov=media.received_audio_level_dbov if media is not None else None,
        mixed_level_dbfs=dbfs(slot.last_level) if slot is not None else None,
        mixer=slot.counters() if slot is not None else None,
        rtp=replace(sequence) if sequence is not None else None,
        network=media.network if media is not None else None,
        jitter=media.jitter_stats() if media is not None else None,
        talking=participant.talking.counters(),
        tones=replace(tones) if tones is not None else None,
        tone_formats=tuple(getattr(media, "tone_formats", ())),
        outbound=media.outbound_counters if media is not None else None,
    )


def audit_records(call: Call, since: float | None = None, limit: int = DEFAULT_AUDIT_LIMIT) -> tuple[TickRecord, ...]:
    """The newest `limit` audit records; with `since`, those of ticks that mixed at or after it, capped at the
    newest `limit` (there a `limit` of 0 caps nothing)."""
    audit = call.mixer.audit
    records = audit.between(since) if since is not None else audit.latest(limit)
    return tuple(records[-limit:])


def call_stats(call: Call, audit_since: float | None = None, audit_limit: int = DEFAULT_AUDIT_LIMIT) -> CallStats:
    """Read a call's numbers: the clock, every participant in the roster, and the audit window asked for."""
    return CallStats(
        call_id=call.id,
        state=call.state,
        monotonic_now=time.monotonic(),
        roster_sequence=call.roster_sequence,
        clock=call.clock.counters(),
        tick_durations=call.clock.tick_durations(),
        participants=tuple(participant_stats(call, p) for p in call.participants.values()),
        audit=audit_records(call, audit_since, audit_limit),
    )
