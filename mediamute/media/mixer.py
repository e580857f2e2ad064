"""The N-1 mixer: one per call, ticked every 20 ms by `MixClock`.

Each tick takes at most one frame from every participant's bounded inbox, sums the frames once, and gives each
listener `saturate_int16(total - own)`: O(N) work for N outputs of one frame each, never wrapping. Listeners who
contributed nothing this tick all hear the same frame (the saturated total), computed once and handed to each of
them as one array with `shared=True`, so the rtc layer can encode it once.

Participants with a receive path (`FrameSource`: the rtc layer's gate → jitter buffer → decoder) are pulled at the
start of each tick, one 20 ms frame each while their gate is open; the frame goes through the inbox like any pushed
frame and is mixed in the same tick, and the audit records which of those frames were concealed or rebuilt by FEC.
Frames pushed (`push`, e.g. the application's own source) wait in the inbox for the next tick.

A participant on hold (`hold`) leaves every mix without being muted: its gate stays as it is, its frames (pulled or
pushed) are refused at the inbox (counted as `held_frames`), and its own sink is handed the hold music instead of
its N-1 mix. That costs one attribute test per frame queued and per listener per tick: the tick stays O(N).

The sums are exact in float32 work buffers allocated once: a sum of up to 512 int16 frames is at most 2**24 in
magnitude, and float32 represents every integer up to 2**24. The N-1 mixes are one wrapping int16 subtraction from
the total, exact wherever the result fits; the samples where one may not (the total within the frames' peak of the
int16 limits) are redone in float32 and saturated (`Mixer._mix`). Per tick the mixer allocates only what it hands
out (the N-1 mixes and the shared mix). Standard library and numpy only.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

from .audio import FRAME_SAMPLES, FRAME_SECONDS, INT16_MAX, INT16_MIN, SILENT_FRAME, Frame
from .audit import ContributorAudit, TickRecord
from .gate import MuteGate


LOUD_COLUMNS = FRAME_SAMPLES // 8
"""Samples of a tick where an N-1 mix may clip above which all the N-1 mixes are redone in float32 (cheaper then
than fixing those columns one by one through fancy indexing)."""


FEW_FRAMES = 24
"""Below this many frames in a tick, every N-1 mix is made in float32 at once (three numpy calls): with few rows each
numpy call's fixed cost outweighs the passes the wrapping subtraction saves (bench/test_bench_mixer.py)."""
_EVERY_COLUMN = np.arange(FRAME_SAMPLES)


class MixTick(NamedTuple):
    """Which tick a sink is being handed a frame of: made once per tick, the same object for every sink."""

    seq: int
    """The tick's number (the `TickRecord.seq` of its audit record): counts ticks, skipped periods not included."""
    position: int
    """The tick's place on the 20 ms grid since the first tick, skipped periods included (media time)."""


class PulledFrame(NamedTuple):
    """One 20 ms frame a receive path hands the mixer at a tick."""

    frame: Frame
    arrived: float
    """Monotonic arrival of its packet (NaN when it has none: concealed), for the added-latency record."""
    recovered: bool = False
    """Rebuilt from the next packet's in-band FEC."""
    concealed: bool = False
    """Invented by packet-loss concealment."""


class FrameSource(Protocol):
    """A participant's receive path as the mixer sees it: pulled once per tick while the participant's gate is open."""

    def pull(self, at: float, now: float | None = None) -> PulledFrame | None:
        """The frame to mix at the tick due at `at`, run at `now`; None when there is nothing to play."""
        ...


class PendingPull(Protocol):
    """A pull prepared on the loop whose decodes may run on another thread (`FrameSource.prepare`)."""

    def run(self) -> None:
        """The decodes (decode, FEC recovery, concealment): any thread, touching only its source's decoder."""
        ...

    def complete(self) -> PulledFrame | None:
        """Back on the loop: the frame (None: nothing to play, or the source was reset while it was decoding)."""
        ...


class PreparedSource(FrameSource, Protocol):
    """A receive path whose tick work can be split: bookkeeping on the loop, decodes elsewhere."""

    def prepare(self, at: float, now: float) -> PendingPull | None:
        """On the loop, at the tick due at `at`: what to decode for it (None: nothing to play)."""
        ...


class PendingTick(NamedTuple):
    """A tick begun by `Mixer.begin_tick` whose pulls' decodes are out; `Mixer.finish_tick` mixes it."""

    at: float
    position: int
    pulled_at: float
    pulls: list[tuple[MixSlot, int, PendingPull]]
    """(slot, its gate's epoch when the pull was prepared, the pull), in join order."""
    concealed: list[str]
    recovered: list[str]
    """Of the sources pulled inline at `begin_tick` (those that cannot prepare)."""

    @property
    def jobs(self) -> list[PendingPull]:
        return [pull for _slot, _epoch, pull in self.pulls]


FrameSink = Callable[[MixTick, Frame, bool], None]
"""`sink(tick, frame, shared)`: the mix a listener hears at `tick`. `shared` is True when the listener contributed
nothing, so `frame` is the tick's one shared mix, the same array every such listener gets; False when it is the
listener's own N-1 mix. The frame must not be mutated. (Three arguments, not one object per listener: the tick
hands out N frames and must stay O(N) with a small constant.)"""


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
    held_frames: int
    """Decoded frames refused at the inbox (and queued ones discarded) while the participant was on hold."""
    discarded_in_flight: int = 0
    """Frames decoded on another thread and discarded on their return, because the participant's gate had closed
    (or closed and reopened) while they were decoding."""


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
        "source",
        "hold",
        "held_frames",
        "discarded_in_flight",
    )

    def __init__(
        self, participant_id: str, gate: MuteGate, inbox_frames: int, sink: FrameSink | None,
        source: FrameSource | None = None,
    ) -> None:
        self.participant_id = participant_id
        self.gate = gate
        self.inbox: deque[Frame] = deque(maxlen=inbox_frames)
        self.sink = sink
        self.source = source
        """The participant's receive path, pulled at each tick while its gate is open (None: frames are pushed)."""
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
        self.hold: Callable[[], Frame] | None = None
        """While the participant is on hold: what its sink hears each tick instead of its mix (the hold music)."""
        self.held_frames = 0
        self.discarded_in_flight = 0

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
            held_frames=self.held_frames,
            discarded_in_flight=self.discarded_in_flight,
        )


def saturate_int16(sums: np.ndarray, in_place: bool = False) -> np.ndarray:
    """Clamp exact sums (float32 or any wider dtype) to the int16 range and narrow them: loud mixes clip, they
    never wrap around. `in_place` clips `sums` itself (a work buffer) rather than a new array."""
    return np.clip(sums, INT16_MIN, INT16_MAX, out=sums if in_place else None).astype(np.int16)


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
        self._order: list[MixSlot] = []
        """The slots in join order, rebuilt (never mutated) on add and remove: what a tick iterates."""
        self._sourced: list[MixSlot] = []
        """The slots with a receive path to pull, in join order (rebuilt with `_order`)."""
        self._clock = clock
        """Monotonic seconds: when a tick takes its frames (`TickRecord.mixed_at`), and latency ends. The `MixClock`
        that ticks this mixer must read the same clock, so deadlines and mix times are on one timeline."""
        self._frames = np.zeros((8, FRAME_SAMPLES), dtype=np.float32)
        self._narrow = np.zeros((8, FRAME_SAMPLES), dtype=np.int16)
        self.added_latency: deque[float] | None = None
        """Seconds from a frame's packet arrival to the end of the tick that mixed it (while recording)."""

    def record_latency(self, on: bool = True, capacity: int = 100_000) -> None:
        """Start (or stop) recording arrival → mixed latency for frames pushed with an `arrived` time."""
        self.added_latency = deque(maxlen=capacity) if on else None
        for slot in self._slots.values():
            slot.arrivals = deque([math.nan] * len(slot.inbox), maxlen=self.inbox_frames)

    # membership -------------------------------------------------------------------------------------------
    def add(
        self, participant_id: str, gate: MuteGate, sink: FrameSink | None = None, source: FrameSource | None = None
    ) -> MixSlot:
        if participant_id in self._slots:
            raise ValueError(f"participant {participant_id!r} is already in the mixer")
        slot = MixSlot(participant_id, gate, self.inbox_frames, sink, source)
        gate.on_close(lambda _gate: slot.flush())
        self._slots[participant_id] = slot
        self._reorder()
        return slot

    def _reorder(self) -> None:
        self._order = list(self._slots.values())
        self._sourced = [slot for slot in self._order if slot.source is not None]

    def remove(self, participant_id: str) -> MixSlot | None:
        slot = self._slots.pop(participant_id, None)
        if slot is not None:
            self._reorder()
            slot.flush()
            slot.sink = None
        return slot

    def set_sink(self, participant_id: str, sink: FrameSink | None) -> None:
        """Where the participant's mix goes from the next tick on (None: nowhere), e.g. a recorder of what it hears."""
        self._slots[participant_id].sink = sink

    def hold(self, participant_id: str, music: Callable[[], Frame]) -> None:
        """Put a participant on hold: from the next tick its frames enter no mix (its queued ones are discarded, new
        ones refused, both counted in `held_frames`) and its sink hears `music()` instead of its N-1 mix. Its gate
        is untouched: hold is not a mute, and on `release` it is mixed again as its gate allows."""
        slot = self._slots[participant_id]
        slot.hold = music
        slot.held_frames += len(slot.inbox)
        slot.inbox.clear()
        slot.arrivals.clear()
        slot.backlog_ticks = 0

    def release(self, participant_id: str) -> bool:
        """Take a participant off hold (False if it was not held, or is not in the mixer): mixed again from the
        next frame it sends, and its sink hears its N-1 mix again from the next tick."""
        slot = self._slots.get(participant_id)
        if slot is None or slot.hold is None:
            return False
        slot.hold = None
        return True

    def slot(self, participant_id: str) -> MixSlot:
        return self._slots[participant_id]

    def __contains__(self, participant_id: object) -> bool:
        return participant_id in self._slots

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def slots(self) -> list[MixSlot]:
        return list(self._order)

    # input --------------------------------------------------------------------------------------------------
    def push(self, participant_id: str, frame: Frame, arrived: float = math.nan) -> bool:
        """Queue a decoded 20 ms frame; refused (and counted) while the participant's gate is closed.

        `arrived` (monotonic) is when its packet reached the server, for the added-latency record.
        """
        slot = self._slots.get(participant_id)
        if slot is None:
            return False
        return self._queue(slot, frame, arrived)

    def _queue(self, slot: MixSlot, frame: Frame, arrived: float) -> bool:
        if not slot.gate.is_open:
            slot.discarded_closed += 1
            return False
        if slot.hold is not None:
            slot.held_frames += 1
            return False
        if len(slot.inbox) == self.inbox_frames:
            slot.inbox_overflow += 1  # deque(maxlen) drops the oldest on append
        slot.inbox.append(frame)
        if self.added_latency is not None:
            slot.arrivals.append(arrived)
        slot.frames_in += 1
        return True

    # the tick -----------------------------------------------------------------------------------------------
    def tick(self, at: float | None = None) -> TickRecord:
        """Mix one 20 ms frame for every listener and record who contributed.

        `at` is the tick's scheduled deadline (its media time, from `MixClock`); the tick may run up to a period
        after it. The mixer's own clock says when the tick actually took its frames (`TickRecord.mixed_at`): that is
        the time that orders a tick against a mute or an unmute. Without `at`, the deadline is that same time.
        """
        mixed_at = self._clock()
        if at is None:
            at = mixed_at
        position = self._advance_position(at)
        concealed, recovered = self._pull(self._sourced, at, mixed_at)
        return self._mix_tick(at, position, mixed_at, concealed, recovered)

    def begin_tick(self, at: float | None = None) -> PendingTick:
        """The first half of a tick whose decodes run elsewhere (on the loop): every open participant's receive
        path does its bookkeeping now and hands back what to decode, noted with its gate's epoch. Run the
        `PendingTick.jobs` (any thread), then `finish_tick` on the loop; no other tick may begin in between."""
        now = self._clock()
        if at is None:
            at = now
        position = self._advance_position(at)
        pulls: list[tuple[MixSlot, int, PendingPull]] = []
        concealed: list[str] = []
        recovered: list[str] = []
        for slot in self._sourced:
            gate = slot.gate
            if not gate.is_open:
                continue
            source = slot.source
            prepare = getattr(source, "prepare", None)
            if prepare is None:  # a source that cannot split its pull is pulled here, on the loop, as by `tick`
                assert source is not None
                self._admit(slot, source.pull(at, now), concealed, recovered)
                continue
            pending = prepare(at, now)
            if pending is not None:
                pulls.append((slot, gate.epoch, pending))
        return PendingTick(at, position, now, pulls, concealed, recovered)

    def finish_tick(self, pending: PendingTick) -> TickRecord:
        """The second half (on the loop, once every job of `pending` ran): each decoded frame enters its inbox only
        if its participant is still in the mixer with its gate open in the epoch its pull was prepared in — a mute
        (or a mute and an unmute) while it was decoding discards it, counted in `discarded_in_flight`. Then the
        tick mixes as `tick` does; its `mixed_at` is now, after any mute that came while the decodes were out."""
        mixed_at = self._clock()
        concealed, recovered = pending.concealed, pending.recovered
        for slot, epoch, pull in pending.pulls:
            pulled = pull.complete()  # always: it hands the receive path back its decoder
            gate = slot.gate
            if gate.epoch != epoch or not gate.is_open or self._slots.get(slot.participant_id) is not slot:
                slot.discarded_in_flight += 1  # (its receive path, reset meanwhile, may have dropped it itself)
                continue
            self._admit(slot, pulled, concealed, recovered)
        return self._mix_tick(pending.at, pending.position, mixed_at, tuple(concealed), tuple(recovered))

    def _mix_tick(
        self, at: float, position: int, mixed_at: float, concealed: tuple[str, ...], recovered: tuple[str, ...]
    ) -> TickRecord:
        """Take, mix, hand out and audit one tick whose pulls are in the inboxes."""
        slots = self._order
        arrivals: list[float] | None = [] if self.added_latency is not None else None
        contributors, taken = self._take_frames(slots, arrivals)
        shared, own, levels = self._mix(taken)
        rows = list(own) if own is not None else []  # one view per contributor, made in one call

        mix_tick = MixTick(self.ticks, position)
        for slot in slots:
            row = slot.row
            if row >= 0:
                slot.frames_mixed += 1
                slot.last_level = levels[row]
            sink = slot.sink
            if sink is not None:
                if slot.hold is not None:
                    sink(mix_tick, slot.hold(), False)
                elif row < 0:
                    sink(mix_tick, shared, True)
                else:
                    sink(mix_tick, rows[row], False)

        record = TickRecord(
            seq=self.ticks,
            at=at,
            mixed_at=mixed_at,
            contributors=tuple(contributors),
            levels=levels,
            concealed=concealed,
            recovered=recovered,
        )
        self.ticks += 1
        self.audit.append(record)
        if arrivals is not None:
            self._record_latency(arrivals)
        return record

    def _pull(self, slots: list[MixSlot], at: float, now: float) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Pull one frame from every open participant's receive path into its inbox; who was concealed / recovered."""
        concealed: list[str] = []
        recovered: list[str] = []
        for slot in slots:
            if slot.gate.is_open:
                self._admit(slot, slot.source.pull(at, now), concealed, recovered)  # type: ignore[union-attr]
        return tuple(concealed), tuple(recovered)

    def _admit(self, slot: MixSlot, pulled: PulledFrame | None, concealed: list[str], recovered: list[str]) -> None:
        """A pulled frame into its inbox (refused while on hold), noting whether it was concealed or recovered."""
        if pulled is None or not self._queue(slot, pulled.frame, pulled.arrived):
            return
        if pulled.concealed:
            concealed.append(slot.participant_id)
        elif pulled.recovered:
            recovered.append(slot.participant_id)

    def _advance_position(self, at: float) -> int:
        """The tick's grid position from its deadline: one more than the last, or more if periods were skipped."""
        if self._origin is None:
            self._origin = at
        self.position = max(self.position + (self.ticks > 0), round((at - self._origin) / FRAME_SECONDS))
        return self.position

    def _take_frames(self, slots: list[MixSlot], arrivals: list[float] | None) -> tuple[list[str], list[Frame]]:
        """Take the oldest frame of every non-empty inbox (noting each slot's row) and count the underruns; who
        contributed, and their frames in row order.

        With `arrivals` (latency recording), each taken frame's arrival time is appended to it, NaN if unknown.
        """
        contributors: list[str] = []
        taken: list[Frame] = []
        for slot in slots:
            inbox = slot.inbox
            if inbox:
                slot.row = len(taken)
                taken.append(inbox.popleft())
                contributors.append(slot.participant_id)
                if arrivals is not None:
                    arrivals.append(slot.arrivals.popleft() if slot.arrivals else math.nan)
                if inbox:
                    self._note_backlog(slot)
                elif slot.backlog_ticks:
                    slot.backlog_ticks = 0
            else:
                slot.row = -1
                slot.last_level = 0.0
                if slot.gate.is_open and slot.hold is None:
                    slot.underruns += 1
        return contributors, taken

    def _note_backlog(self, slot: MixSlot) -> None:
        """A frame still waits after this tick's: once that backlog has stood `trim_after_ticks`, drop one frame.

        A standing backlog (after a burst from the network) would add 20 ms of latency per frame for the rest of
        the call; a brief one (jitter) drains by itself and is left alone.
        """
        slot.backlog_ticks += 1
        if slot.backlog_ticks == self.trim_after_ticks:
            slot.inbox.popleft()
            if slot.arrivals:
                slot.arrivals.popleft()
            slot.trimmed += 1
            slot.backlog_ticks = 0

    def _mix(self, taken: list[Frame]) -> tuple[Frame, np.ndarray | None, tuple[float, ...]]:
        """The shared mix (everyone), each contributor's N-1 mix (row by row, None if nobody contributed) and
        each contributor's RMS level, from the frames taken this tick.

        Five passes over the (N, 960) frames: gather them as int16, widen to float32, sum (exact), the levels (one
        dot product per row), and the N-1 mixes as one wrapping int16 subtraction `total - frame` straight into the
        array handed out. Wrapping is exact wherever the true value fits in int16 (the arithmetic is modulo 2**16),
        and it can only fail to fit at a sample where the total is within the frames' peak of the int16 limits:
        those few columns (none in most ticks) are redone exactly in float32 and saturated.
        """
        count = len(taken)
        if count == 0:
            return SILENT_FRAME, None, ()
        if count > self._frames.shape[0]:
            rows = max(count, 2 * self._frames.shape[0])
            self._frames = np.zeros((rows, FRAME_SAMPLES), dtype=np.float32)
            self._narrow = np.zeros((rows, FRAME_SAMPLES), dtype=np.int16)
        narrow = self._narrow[:count]
        np.concatenate(taken, out=narrow.reshape(-1), casting="unsafe")
        frames = self._frames[:count]
        np.copyto(frames, narrow, casting="unsafe")
        total = np.add.reduce(frames, axis=0)
        levels = tuple(np.sqrt(np.vecdot(frames, frames) / FRAME_SAMPLES).tolist())
        if count < FEW_FRAMES:  # a few frames: fewer numpy calls beat fewer passes
            at_risk = _EVERY_COLUMN
        else:
            at_risk = np.flatnonzero((total > INT16_MAX + float(narrow.min())) | (total < INT16_MIN + float(narrow.max())))
        if at_risk.size > LOUD_COLUMNS:  # few frames, or a loud tick: every N-1 mix in float32, in place, saturated
            np.subtract(total, frames, out=frames)
            np.clip(frames, INT16_MIN, INT16_MAX, out=frames)
            own = frames.astype(np.int16)
        else:
            own = np.subtract(total.astype(np.int32).astype(np.int16), narrow)  # wraps: exact where it fits
            if at_risk.size:  # redo the few columns that may clip exactly, and saturate them
                exact = total[at_risk] - frames[:, at_risk]
                np.clip(exact, INT16_MIN, INT16_MAX, out=exact)
                own[:, at_risk] = exact
        return saturate_int16(total, in_place=True), own, levels

    def _record_latency(self, arrivals: list[float]) -> None:
        """Arrival → now for every frame this tick mixed that had an arrival time (NaN: none)."""
        if self.added_latency is not None:
            done = self._clock()
            self.added_latency.extend(done - t for t in arrivals if t == t)
