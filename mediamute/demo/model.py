"""What a demo run leaves behind (the actions as performed, the audit records, the recordings) and the mute
windows the report reads from it; shared by the runner, the report and the timeline.

Every time here is `time.monotonic()` in the demo's one process and event loop, the clock the server's mixer
and operations use too, so request times, gate changes and tick times compare directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..calls.stats import ParticipantStats
from ..client import CallParticipant
from ..media.audit import TickRecord
from .callbacks import CallbackSink
from .scenario import ActionSpec, Scenario


@dataclass
class ActionResult:
    spec: ActionSpec
    target: str
    """Who the action acts on: a participant's name or the application's."""
    sent_at: float
    """Monotonic time the demo sent the request (or started the action)."""
    answered_at: float
    """Monotonic time the answer came back (or the action finished)."""
    status: int | None
    """The HTTP status, or None for an action that is not a request (a participant's join or leave)."""
    body: Any = None
    completed_server: float | None = None
    """Monotonic time the server completed the operation (the gate changed), when there is one."""

    @property
    def ok(self) -> bool:
        return self.status is None or 200 <= self.status < 300


REPAIRS = ("recovered", "concealed")
"""How the server's receive path met a lost packet, as the audit records it: rebuilt by FEC, or concealed."""


@dataclass
class DemoRun:
    """Everything a finished run leaves behind for the report."""

    scenario: Scenario
    call_id: str
    app_id: str
    app_name: str
    t0: float
    ended_at: float
    ids: dict[str, str]
    participants: dict[str, CallParticipant]
    ticks: list[TickRecord]
    """Every contributor-audit record of the run, oldest first."""
    actions: list[ActionResult]
    sink: CallbackSink
    final_stats: dict[str, ParticipantStats]
    late_ticks: int
    clock_ticks: int
    wall_seconds: float = 0.0

    def name_of(self, participant_id: str) -> str:
        if participant_id == self.app_id:
            return self.app_name
        return next((n for n, i in self.ids.items() if i == participant_id), participant_id[:8])

    def repaired_ticks(self) -> dict[str, dict[str, list[int]]]:
        """Per participant id, the indexes (in `ticks`) of the ticks whose frame of it the server's receive path
        rebuilt by FEC ("recovered") or concealed ("concealed"): what every listener got in place of its lost
        packets."""
        found: dict[str, dict[str, list[int]]] = {}
        for i, record in enumerate(self.ticks):
            for kind in REPAIRS:
                for pid in getattr(record, kind):
                    found.setdefault(pid, {k: [] for k in REPAIRS})[kind].append(i)
        return found

    def pilot_of(self, name: str) -> float:
        """The pilot tone (Hz) that tags `name`'s voice."""
        if name == self.app_name:
            return self.scenario.call.app_pilot_hz
        return next(p.pilot_hz for p in self.scenario.participants if p.name == name) or 0.0


@dataclass
class MuteWindow:
    """One successful mute of a speaker, up to its unmute (if any), and what the report found in it."""

    speaker: str
    speaker_id: str
    pilot_hz: float
    mute: ActionResult
    unmute: ActionResult | None
    end: float
    """Monotonic end of the window: the unmute's answer, or the end of the run."""
    server_mute_ms: float | None = None
    """From sending the mute to the first mix made without the speaker."""
    server_unmute_ms: float | None = None
    """From sending the unmute to the first mix made with the speaker again."""
    leaked_frames: int = 0
    """Mixes made while the speaker's gate was closed that still had a frame of it (must be 0)."""
    heard_ms: dict[str, float | None] = field(default_factory=dict)
    unmute_heard_ms: dict[str, float | None] = field(default_factory=dict)
