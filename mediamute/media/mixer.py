"""The N-1 mixer: one per call, ticked every 20 ms by `MixClock`.

Each tick takes at most one frame from every participant's bounded inbox, sums the frames once in int32, and
gives each listener `saturate_int16(total - own)`: O(N) work for N outputs of one frame each, never wrapping.
Listeners who contributed nothing this tick all hear the same frame (the saturated total), so it is computed once,
and it is the very same array object for all of them (`Mixer.shared_frame`): the rtc layer encodes it once.

The arithmetic runs in float32 work buffers allocated once: sums of up to 512 int16 frames are exact in float32
(|sum| < 2**24), and one float32 copy serves the sum, the N-1 differences and the levels. Per tick the mixer
allocates only what it hands out (the N-1 mixes and the shared mix). Standard library and numpy only.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .audio import FRAME_SAMPLES, FRAME_SECONDS, INT16_MAX, INT16_MIN, SILENT_FRAME, Frame
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
        "arrivals",
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
        self.arrivals: deque[float] = deque(maxlen=inbox_frames)
        """When each queued frame's packet arrived, in step with `inbox` (only while latency is recorded)."""

    def flush(self) -> int:
        """Discard every frame waiting in the inbox (on mute): they must not reach a later mix."""
        count = len(self.inbox)
        self.inbox.clear()
        self.arrivals.clear()
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
        self.position = 0
        """The current tick's place on the 20 ms grid since the first tick, skipped periods included: a late clock
        that resynchronises skips periods, and media timestamps must show that gap rather than hide it."""
        self._origin: float | None = None
        self._slots: dict[str, MixSlot] = {}
        self._clock = clock
        self._frames = np.zeros((8, FRAME_SAMPLES), dtype=np.float32)
        self._work = np.zeros((8, FRAME_SAMPLES), dtype=np.float32)
        self.shared_frame: Frame = SILENT_FRAME
        """What every listener who contributed nothing hears this tick: one array object, handed to each of them."""
        self.added_latency: deque[float] | None = None
        """Seconds from a frame's packet arrival to the end of the tick that mixed it (while recording)."""

    def record_latency(self, on: bool = True, capacity: int = 100_000) -> None:
        """Start (or stop) recording arrival → mixed latency for frames pushed with an `arrived` time."""
        self.added_latency = deque(maxlen=capacity) if on else None
        for slot in self._slots.values():
            slot.arrivals = deque([math.nan] * len(slot.inbox), maxlen=self.inbox_frames)

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
    def push(self, participant_id: str, frame: Frame, arrived: float = math.nan) -> bool:
        """Queue a decoded 20 ms frame; refused (and counted) while the participant's gate is closed.

        `arrived` (monotonic) is when its packet reached the server, for the added-latency record.
        """
        slot = self._slots.get(participant_id)
        if slot is None:
            return False
        if not slot.gate.is_open:
            slot.discarded_closed += 1
            return False
        if len(slot.inbox) == self.inbox_frames:
            slot.inbox_overflow += 1  # deque(maxlen) drops the oldest on append
        slot.inbox.append(frame)
        if self.added_latency is not None:
            slot.arrivals.append(arrived)
        slot.frames_in += 1
        return True

    # the tick -----------------------------------------------------------------------------------------------
    def _buffers(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        if count > self._frames.shape[0]:
            rows = max(count, 2 * self._frames.shape[0])
            self._frames = np.zeros((rows, FRAME_SAMPLES), dtype=np.float32)
            self._work = np.zeros((rows, FRAME_SAMPLES), dtype=np.float32)
        return self._frames, self._work

    def tick(self, at: float | None = None) -> TickRecord:
        """Mix one 20 ms frame for every listener and record who contributed."""
        now = self._clock() if at is None else at
        if self._origin is None:
            self._origin = now
        self.position = max(self.position + (self.ticks > 0), round((now - self._origin) / FRAME_SECONDS))
        slots = list(self._slots.values())
        recording = self.added_latency is not None
        trim_after = self.trim_after_ticks

        contributors: list[MixSlot] = []
        taken: list[Frame] = []
        arrivals: list[float] = []
        for slot in slots:
            inbox = slot.inbox
            if inbox:
                slot.row = len(taken)
                taken.append(inbox.popleft())
                contributors.append(slot)
                if recording:
                    arrivals.append(slot.arrivals.popleft() if slot.arrivals else math.nan)
                if inbox:
                    # A standing backlog (after a burst from the network) would add 20 ms of latency per frame
                    # for the rest of the call: once it has stood for a while, drop one frame.
                    slot.backlog_ticks += 1
                    if slot.backlog_ticks == trim_after:
                        inbox.popleft()
                        if slot.arrivals:
                            slot.arrivals.popleft()
                        slot.trimmed += 1
                        slot.backlog_ticks = 0
                else:
                    slot.backlog_ticks = 0
            else:
                slot.row = -1
                slot.last_level = 0.0
                if slot.gate.is_open:
                    slot.underruns += 1

        count = len(taken)
        levels: tuple[float, ...] = ()
        own: np.ndarray | None = None
        if count == 0:
            shared = SILENT_FRAME
        else:
            frames_buf, work_buf = self._buffers(count)
            frames = frames_buf[:count]
            np.concatenate(taken, out=frames.reshape(-1), casting="unsafe")
            total = frames.sum(axis=0)
            shared = np.clip(total, INT16_MIN, INT16_MAX).astype(np.int16)
            work = work_buf[:count]
            np.subtract(total, frames, out=work)
            np.clip(work, INT16_MIN, INT16_MAX, out=work)
            own = work.astype(np.int16)
            levels = tuple(np.sqrt(np.einsum("ij,ij->i", frames, frames) / FRAME_SAMPLES).tolist())
        self.shared_frame = shared

        for slot, level in zip(contributors, levels):
            slot.frames_mixed += 1
            slot.last_level = level
        for slot in slots:
            sink = slot.sink
            if sink is not None:
                sink(own[slot.row] if own is not None and slot.row >= 0 else shared)

        record = TickRecord(
            seq=self.ticks,
            at=now,
            contributors=tuple(s.participant_id for s in contributors),
            levels=levels,
        )
        self.ticks += 1
        self.audit.append(record)
        if recording and self.added_latency is not None:
            done = self._clock()
            self.added_latency.extend(done - t for t in arrivals if t == t)  # NaN: no arrival time
        return record
