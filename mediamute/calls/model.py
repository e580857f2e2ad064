"""The call model's records: participants and operations. No HTTP, no aiortc."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, Protocol

from ..media.gate import MuteGate
from ..media.jitter import JitterStats
from ..media.mixer import FrameSource
from ..media.netem import NetworkSpec, NetworkState, ReceptionReport
from ..media.outbound import OutboundCounters
from ..media.sequence import SequenceCounters
from ..media.talking import TalkingDetector
from ..media.telephone_event import ToneCounters
from ..sources import AudioSource

ParticipantKind = Literal["remote", "application"]
OperationKind = Literal[
    "muteParticipant",
    "unmuteParticipant",
    "comms",
    "playPrompt",
    "record",
    "cancelMediaProcessing",
    "subscribeToTone",
    "sendDtmfTones",
    "startHoldMusic",
    "stopHoldMusic",
    "inviteParticipants",
]
"""Graph's operation types without the `Operation` suffix (`record` is `recordOperation`)."""
OperationStatus = Literal["notStarted", "running", "completed", "failed"]


def new_id() -> str:
    return str(uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class MediaSession(Protocol):
    """What the call model and its readers use of a participant's media connection (the rtc layer's peer)."""

    @property
    def received_audio_level_dbov(self) -> float | None:
        """The sender's own level (RFC 6464 header, dBov) on its latest packet, muted or not; None before any."""
        ...

    @property
    def sequence_counters(self) -> SequenceCounters | None:
        """What RTP sequence validation accepted and dropped (by reason) of the packets the gate let through; None
        before the media path is set up. The live counters: readers copy what they keep."""
        ...

    @property
    def network(self) -> NetworkState | None:
        """Both directions of the participant's network: profiles (perfect unless set) and impairment counters;
        None before the media path is set up."""
        ...

    def set_network(self, spec: NetworkSpec) -> NetworkState:
        """Impair the participant's network as `spec` says (a direction it leaves out is unchanged), from the next
        datagram on."""
        ...

    async def reception(self) -> tuple[ReceptionReport | None, ReceptionReport | None]:
        """What RTCP says: (the uplink as the server's receiver measured it, the downlink as the participant's
        receiver reports told the server); None where nothing is known yet."""
        ...

    @property
    def frame_source(self) -> FrameSource | None:
        """The receive path the call's mixer pulls one frame from per tick (None: the session pushes, or no audio)."""
        ...

    def jitter_stats(self) -> JitterStats | None:
        """The jitter buffer's counters, depth, delays and jitter now (a copy); None before the media path is set up."""
        ...

    @property
    def outbound_counters(self) -> OutboundCounters | None:
        """How the participant's mix is sent to it (the send path) and what was sent and dropped; None without an
        outbound stream."""
        ...

    async def close(self) -> None:
        """End the connection (the call has dropped the participant's media already)."""
        ...


class ToneSession(MediaSession, Protocol):
    """A media session that reads the participant's DTMF (the rtc layer's peer). Optional: a session without these
    members (a simulated participant, a test double) is one that sends no tones."""

    @property
    def tone_counters(self) -> ToneCounters | None:
        """The participant's telephone-event (DTMF) packets and what they were (presses, repeats, drops); None
        before the media path is set up. The live counters: readers copy what they keep."""
        ...

    @property
    def tone_formats(self) -> list[int]:
        """Clock rates of the telephone-event formats negotiated with the participant (empty: it cannot send DTMF)."""
        ...


@dataclass(eq=False)
class Participant:
    """A call member. Server mute is the state of its gate; self mute is what its client says of itself."""

    display_name: str
    kind: ParticipantKind = "remote"
    id: str = field(default_factory=new_id)
    user_id: str = field(default_factory=new_id)
    gate: MuteGate = field(default_factory=MuteGate)
    joined_at: datetime = field(default_factory=utc_now)
    self_muted: bool = False
    roster_sequence: int = 0
    media: MediaSession | None = None
    source: AudioSource | None = None
    """For the application's own participant: what it plays into the mix (the call's IVR queue)."""
    region: str | None = None
    language_id: str | None = None
    identity: dict[str, Any] | None = None
    """An invited participant's identitySet as Graph JSON (the `user`, `phone` or `guest` it was invited as), shown
    as its `info.identity`; None for the others, whose identity is made from `display_name` and `user_id`."""
    hidden: bool = False
    """Invited with `hidden`: in the mix, addressable by id, but left out of the roster (list, roster updates)."""
    talking: TalkingDetector = field(default_factory=TalkingDetector)
    """Talking while muted: fed the levels of the packets its closed gate drops (`Call.heard_while_muted`)."""
    on_hold: bool = False
    """Held by startHoldMusic: out of everyone's mix, hearing only its music (its gate is untouched)."""

    @property
    def server_muted(self) -> bool:
        return not self.gate.is_open

    @property
    def is_muted(self) -> bool:
        """Graph's isMuted: true if muted by the client or by the server."""
        return self.self_muted or self.server_muted


@dataclass(frozen=True, slots=True)
class ToneInfo:
    """A key press as Graph's `toneInfo` tells it (sequence id, tone name), and who pressed it (mediamute's own)."""

    sequence_id: int
    """Increasing per call, from 1: the order of the presses under a subscribeToTone."""
    tone: str
    participant_id: str
    server_muted: bool
    """Whether the participant was server-muted when it pressed (its tones are still read: README, DTMF)."""


@dataclass
class Operation:
    """An action's operation, resolvable at its Location. Most complete at once (mute: answered `completed`); a
    media action (playPrompt, recordResponse, hold music, invite, ...) is answered `running` and finished later by
    `Call.finish`, which emits the event that sends Graph's completing notification. A refused action raises a
    domain error instead and records no operation."""

    kind: OperationKind
    participant_id: str
    client_context: str | None
    id: str = field(default_factory=new_id)
    status: OperationStatus = "completed"
    result_code: int = 200
    result_subcode: int = 0
    result_message: str = ""
    created_at: datetime = field(default_factory=utc_now)
    completed_monotonic: float = 0.0
    """When it reached `completed` or `failed`, on the call's clock (0.0 while it runs)."""
    completion_reason: str | None = None
    """Graph's `completionReason` where the operation type has one (e.g. `completedSuccessfully`)."""
    details: dict[str, Any] = field(default_factory=dict)
    """The operation type's own properties, by their Graph names (`recordingLocation`, `participants`, ...)."""
    answered_running: bool = False
    """It was answered `notStarted`/`running`, so its end is notified (Graph sends no notification otherwise)."""

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed")
