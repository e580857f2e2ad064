"""The N-1 mixer: one per call, ticked every 20 ms by `MixClock`.

Each tick takes at most one frame from every participant's bounded inbox, sums the frames once in int32, and
gives each listener `saturate_int16(total - own)`: O(N) work for N outputs of one frame each, never wrapping.
Listeners who contributed nothing this tick all hear the same frame (the saturated total), so it is computed once.
Standard library and numpy only.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .audio import FRAME_SAMPLES, INT16_MAX, INT16_MIN, SILENT_FRAME, Frame
from .audit import ContributorAudit, TickRecord
from .gate import MuteGate

FrameSink = Callable[[Frame], None]
"""Receives the mix a listener hears this tick. Must not keep a reference it then mutates."""


@dataclass(frozen=True, slots=True)
class SlotCounters:
    participant_id: str
    frames_in: int
    frames_mixed: int
    inbox_overflow: int
    underruns: int
    flushed: int
    discarded_closed: int
    trimmed: int
    inbox_depth: int


class MixSlot:
    """A participant's place in the mixer: its gate, its inbox, where its N-1 mix goes, and its counters."""

    __slots__ = (
        "participant_id",
        "gate",
        "inbox",
        "sink",
        "frames_in",
        "frames_mixed",
        "inbox_overflow",
        "underruns",
        "flushed",
        "discarded_closed",
        "last_level",
        "row",
        "trimmed",
        "backlog_ticks",
    )

    def __init__(self, participant_id: str, gate: MuteGate, inbox_frames: int, sink: FrameSink | None) -> None:
        self.participant_id = participant_id
        self.gate = gate
        self.inbox: deque[Frame] = deque(maxlen=inbox_frames)
        self.sink = sink
        self.frames_in = 0
        self.frames_mixed = 0
        self.inbox_overflow = 0
        self.underruns = 0
        self.flushed = 0
        self.discarded_closed = 0
        self.last_level = 0.0
        self.trimmed = 0
        self.backlog_ticks = 0
        self.row = -1
        """Index of this slot's frame in the current tick's stack, or -1 if it contributed nothing."""

    def flush(self) -> int:
        """Discard every frame waiting in the inbox (on mute): they must not reach a later mix."""
        count = len(self.inbox)
        self.inbox.clear()
        self.flushed += count
        return count

    def counters(self) -> SlotCounters:
        return SlotCounters(
            participant_id=self.participant_id,
            frames_in=self.frames_in,
            frames_mixed=self.frames_mixed,
            inbox_overflow=self.inbox_overflow,
            underruns=self.underruns,
            flushed=self.flushed,
            discarded_closed=self.discarded_closed,
            trimmed=self.trimmed,
            inbox_depth=len(self.inbox),
        )


def saturate_int16(values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Clamp int32 sums to the int16 range and narrow them: loud mixes clip, they never wrap around."""
    clipped = np.clip(values, INT16_MIN, INT16_MAX)
    if out is None:
        return clipped.astype(np.int16)
    out[...] = clipped
    return out


class Mixer:
    """Holds every participant's inbox and produces each listener's N-1 mix, tick by tick."""

    def __init__(
        self,
        inbox_frames: int = 5,
        audit_capacity: int = 3000,
        clock: Callable[[], float] = time.monotonic,
        trim_after_ticks: int = 25,
    ) -> None:
        if inbox_frames < 1:
            raise ValueError("inbox_frames must be at least 1")
        self.inbox_frames = inbox_frames
        self.trim_after_ticks = trim_after_ticks
        """A frame that has waited behind another for this many ticks in a row is dropped (0: never)."""
        self.audit = ContributorAudit(audit_capacity)
        self.ticks = 0
        self._slots: dict[str, MixSlot] = {}
        self._clock = clock
        self._stack = np.zeros((8, FRAME_SAMPLES), dtype=np.int16)

    # membership -------------------------------------------------------------------------------------------
    def add(self, participant_id: str, gate: MuteGate, sink: FrameSink | None = None) -> MixSlot:
        if participant_id in self._slots:
            raise ValueError(f"participant {participant_id!r} is already in the mixer")
        slot = MixSlot(participant_id, gate, self.inbox_frames, sink)
        gate.on_close(lambda _gate: slot.flush())
        self._slots[participant_id] = slot
        return slot

    def remove(self, participant_id: str) -> MixSlot | None:
        slot = self._slots.pop(participant_id, None)
        if slot is not None:
            slot.flush()
            slot.sink = None
        return slot

    def slot(self, participant_id: str) -> MixSlot:
        return self._slots[participant_id]

    def __contains__(self, participant_id: object) -> bool:
        return participant_id in self._slots

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def slots(self) -> list[MixSlot]:
        return list(self._slots.values())

    # input --------------------------------------------------------------------------------------------------
    def push(self, participant_id: str, frame: Frame) -> bool:
        """Queue a decoded 20 ms frame; refused (and counted) while the participant's gate is closed."""
        slot = self._slots.get(participant_id)
        if slot is None:
            return False
        if not slot.gate.is_open:
            slot.discarded_closed += 1
            return False
        if len(slot.inbox) == self.inbox_frames:
            slot.inbox_overflow += 1  # deque(maxlen) drops the oldest on append
        slot.inbox.append(frame)
        slot.frames_in += 1
        return True

    # the tick -----------------------------------------------------------------------------------------------
    def tick(self, at: float | None = None) -> TickRecord:
        """Mix one 20 ms frame for every listener and record who contributed."""
        now = self._clock() if at is None else at
        slots = list(self._slots.values())
        if len(slots) > self._stack.shape[0]:
            self._stack = np.zeros((max(len(slots), 2 * self._stack.shape[0]), FRAME_SAMPLES), dtype=np.int16)

        contributors: list[MixSlot] = []
        stack = self._stack
        for slot in slots:
            if slot.inbox:
                slot.row = len(contributors)
                stack[slot.row] = slot.inbox.popleft()
                contributors.append(slot)
                if slot.inbox:
                    # A standing backlog (after a burst from the jitter buffer) would add 20 ms of latency per
                    # frame for the rest of the call: once it has stood for a while, drop one frame.
                    slot.backlog_ticks += 1
                    if slot.backlog_ticks == self.trim_after_ticks:
                        slot.inbox.popleft()
                        slot.trimmed += 1
                        slot.backlog_ticks = 0
                else:
                    slot.backlog_ticks = 0
            else:
                slot.row = -1
                slot.last_level = 0.0
                if slot.gate.is_open:
                    slot.underruns += 1

        count = len(contributors)
        levels: tuple[float, ...] = ()
        if count == 0:
            shared = SILENT_FRAME
            own: np.ndarray | None = None
        else:
            frames = stack[:count]
            total = frames.sum(axis=0, dtype=np.int32)
            shared = saturate_int16(total)
            own = saturate_int16(total[np.newaxis, :] - frames)
            wide = frames.astype(np.float64)
            levels = tuple(np.sqrt(np.einsum("ij,ij->i", wide, wide) / FRAME_SAMPLES).tolist())

        for index, slot in enumerate(contributors):
            slot.frames_mixed += 1
            slot.last_level = levels[index]
        for slot in slots:
            if slot.sink is None:
                continue
            if own is not None and slot.row >= 0:
                slot.sink(own[slot.row])
            else:
                slot.sink(shared)

        record = TickRecord(
            seq=self.ticks,
            at=now,
            contributors=tuple(s.participant_id for s in contributors),
            levels=levels,
        )
        self.ticks += 1
        self.audit.append(record)
        return record
