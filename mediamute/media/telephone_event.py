"""RFC 4733 telephone-event (DTMF) in RTP: the payload, the receiver's rule that turns packets into key presses,
and the sender's packet plan. Standard library only: it runs for every event packet a participant sends.

One key press is many packets. Every packet of one event carries the RTP timestamp of the event's start, and a
duration (in timestamp units) that grows with each update; the first packet has the RTP marker bit, the last one
the E (end) bit and is sent three times (§2.5.1.4), and every packet, retransmissions included, takes a new
sequence number. A press longer than the 16-bit duration field (0xFFFF units: 1.365 s at 48 kHz) goes on in a new
*segment* with a new timestamp and no marker (§2.5.1.3). So, on the receiving side (`ToneReceiver`):

- a report whose start timestamp was already seen is a repeat (an update, a redundant end, a retransmission): it
  never makes a second press;
- a new start timestamp is a new press, unless it continues the current unfinished event as its next segment
  (same event, no marker, about 0xFFFF units later);
- a new start timestamp *before* the newest press seen is late (its press would come out of order): dropped;
- a zero-duration report of an event not yet seen says nothing yet (§2.5.1.2 forbids sending one): ignored;
- event codes other than the DTMF keys (0-15) and flash (16) are not tones: dropped.

A press is reported on its first usable packet, not at its end: what a listener (recordResponse's stop tones, a
subscribeToTone bot) wants is to know at once that a key went down.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

REPORT_BYTES = 4
"""One event report: event (8 bits), E, R, volume (6 bits), duration (16 bits)."""
MAX_DURATION = 0xFFFF
"""The largest duration one report (one segment) can carry, in timestamp units."""
TIMESTAMP_MOD = 1 << 32
MAX_VOLUME = 63
"""Volume is the tone's power, 0 to -63 dBm0, sent as its magnitude."""
DEFAULT_VOLUME = 10
"""What browsers' RTCDTMFSender sends (-10 dBm0)."""

TONE_NAMES: tuple[str, ...] = (
    "tone0", "tone1", "tone2", "tone3", "tone4", "tone5", "tone6", "tone7", "tone8", "tone9",
    "star", "pound", "a", "b", "c", "d", "flash",
)
"""Graph's toneInfo `tone` names, indexed by RFC 4733 event code (§3.2: 0-9, 10 '*', 11 '#', 12-15 A-D, 16 flash)."""
KEYS = "0123456789*#ABCD"
"""The DTMF keys by event code (what RTCDTMFSender.insertDTMF takes; flash has no key)."""
PAUSE = ","
"""In a key string, a two-second pause (as RTCDTMFSender reads it)."""
PAUSE_MS = 2000


class MalformedEvent(ValueError):
    """A telephone-event payload that is not a whole number of 4-byte reports."""


def event_code(key: str) -> int:
    """The RFC 4733 event code of a DTMF key (`0`-`9`, `*`, `#`, `A`-`D` in either case)."""
    code = KEYS.find(key.upper()) if len(key) == 1 else -1
    if code < 0:
        raise ValueError(f"{key!r} is not a DTMF key (0-9, *, #, A-D)")
    return code


def tone_name(event: int) -> str | None:
    """Graph's tone name for an event code, or None for an event that is not a DTMF tone or flash."""
    return TONE_NAMES[event] if 0 <= event < len(TONE_NAMES) else None


@dataclass(frozen=True, slots=True)
class EventReport:
    """One 4-byte telephone-event report."""

    event: int
    end: bool
    volume: int
    duration: int

    def pack(self) -> bytes:
        if not (0 <= self.event <= 255 and 0 <= self.volume <= MAX_VOLUME and 0 <= self.duration <= MAX_DURATION):
            raise ValueError(f"event report out of range: {self}")
        return struct.pack("!BBH", self.event, (0x80 if self.end else 0) | self.volume, self.duration)


def parse_reports(payload: bytes) -> list[EventReport]:
    """The reports of one payload (usually one; §2.5.1.5 lets a sender pack several). The R bit is ignored."""
    if not payload or len(payload) % REPORT_BYTES:
        raise MalformedEvent(f"a telephone-event payload is a multiple of {REPORT_BYTES} bytes, not {len(payload)}")
    reports = []
    for offset in range(0, len(payload), REPORT_BYTES):
        event, flags, duration = struct.unpack_from("!BBH", payload, offset)
        reports.append(EventReport(event, bool(flags & 0x80), flags & 0x3F, duration))
    return reports


def _ahead(a: int, b: int) -> int:
    """How far RTP timestamp `a` is after `b` (negative: before), in serial-number arithmetic (RFC 1982)."""
    diff = (a - b) % TIMESTAMP_MOD
    return diff - TIMESTAMP_MOD if diff >= TIMESTAMP_MOD // 2 else diff


@dataclass(frozen=True, slots=True)
class KeyPress:
    """A key press, reported when its first usable packet arrives."""

    tone: str
    """Graph's tone name (`tone1`, `star`, `pound`, `a`, `flash`, ...)."""
    event: int
    ssrc: int
    timestamp: int
    """The RTP timestamp of the press's start."""
    volume: int
    """-dBm0, as sent."""


@dataclass(slots=True)
class ToneCounters:
    """Telephone-event packets from one participant, and what their reports were. Every report lands in exactly one
    of presses, repeats, empty, late and unsupported; a malformed packet has no report."""

    packets: int = 0
    presses: int = 0
    repeats: int = 0
    """Reports of an event already reported: updates, redundant end packets, retransmissions, further segments."""
    empty: int = 0
    """Zero-duration reports of an event not reported yet (ignored, as §2.5.1.2 says none is sent)."""
    late: int = 0
    """Reports of an event that started before the newest press seen, never seen before: dropped (out of order)."""
    unsupported: int = 0
    """Reports of events that are not DTMF tones or flash (e.g. RFC 4734 modem events): dropped."""
    malformed: int = 0
    """Packets whose payload is not a whole number of reports: dropped."""

    @property
    def dropped(self) -> int:
        """Reports and packets that made no press and were not repeats (empty, late, unsupported, malformed)."""
        return self.empty + self.late + self.unsupported + self.malformed


@dataclass(slots=True)
class _Event:
    """The newest event: its start, its current segment's start, whether its end was seen."""

    event: int
    start: int
    segment: int
    ended: bool


class ToneReceiver:
    """RFC 4733's receiver procedure for one participant's audio stream: event packets in, key presses out.

    `clock_rate` is the telephone-event clock (48000 beside Opus): it bounds how far a segment's successor may
    start. `memory` start timestamps are remembered to recognise repeats of earlier events arriving late.
    """

    __slots__ = ("clock_rate", "counters", "_ssrc", "_seen", "_current")

    def __init__(self, clock_rate: int = 48_000, memory: int = 16) -> None:
        self.clock_rate = clock_rate
        self.counters = ToneCounters()
        self._ssrc: int | None = None
        self._seen: deque[int] = deque(maxlen=memory)
        """Start timestamps (of events and of their segments) already accounted for, newest last."""
        self._current: _Event | None = None

    def receive(self, ssrc: int, timestamp: int, marker: bool, payload: bytes) -> list[KeyPress]:
        """Account for one telephone-event packet; returns the presses it starts (none for most packets)."""
        counters = self.counters
        counters.packets += 1
        try:
            reports = parse_reports(payload)
        except MalformedEvent:
            counters.malformed += 1
            return []
        if ssrc != self._ssrc:  # a new stream: what was seen of the old one says nothing about it
            self._ssrc = ssrc
            self._seen.clear()
            self._current = None
        presses: list[KeyPress] = []
        start = timestamp
        for index, report in enumerate(reports):
            press = self._report(ssrc, start, marker and index == 0, report)
            if press is not None:
                presses.append(press)
            start = (start + report.duration) % TIMESTAMP_MOD  # §2.5.1.5: packed events follow one another
        return presses

    def _report(self, ssrc: int, start: int, marker: bool, report: EventReport) -> KeyPress | None:
        counters = self.counters
        tone = tone_name(report.event)
        if tone is None:
            counters.unsupported += 1
            return None
        current = self._current
        if start in self._seen:
            counters.repeats += 1
            if current is not None and start == current.segment and report.end:
                current.ended = True
            return None
        if current is not None and self._continues(current, start, marker, report):
            counters.repeats += 1
            current.segment = start
            current.ended = report.end
            self._seen.append(start)
            return None
        if report.duration == 0 and not report.end:
            counters.empty += 1
            return None
        if current is not None and _ahead(start, current.start) < 0:
            counters.late += 1
            return None
        counters.presses += 1
        self._seen.append(start)
        self._current = _Event(report.event, start, start, report.end)
        return KeyPress(tone, report.event, ssrc, start, report.volume)

    def _continues(self, current: _Event, start: int, marker: bool, report: EventReport) -> bool:
        """Is this the next segment of the current long event (§2.5.1.3)? Same event, no marker, the event not
        ended, and a start about MAX_DURATION after the current segment's (a sender that starts the segment on its
        next packet boundary lands a little later: half a second of slack)."""
        if marker or current.ended or report.event != current.event:
            return False
        return MAX_DURATION <= _ahead(start, current.segment) <= MAX_DURATION + self.clock_rate // 2


# the sender's side ------------------------------------------------------------------------------------------------
MIN_DURATION_MS = 40
MAX_DURATION_MS = 6000
MIN_GAP_MS = 30
"""RTCDTMFSender's limits (W3C WebRTC §7): a tone lasts 40..6000 ms, tones are at least 30 ms apart."""
UPDATE_INTERVAL_MS = 20
"""Updates go out at the audio stream's packet spacing (RFC 4733 §2.5.1.2: "a natural interval")."""
END_REPEATS = 3


@dataclass(frozen=True, slots=True)
class PlannedPacket:
    """One telephone-event packet of a key sequence, before it has a sequence number or a base timestamp."""

    at_ms: int
    """When to send it, after the sequence's start."""
    timestamp: int
    """Its RTP timestamp, in timestamp units after the first press's start (the event's or segment's start)."""
    marker: bool
    report: EventReport


def plan_key_presses(
    keys: str,
    clock_rate: int = 48_000,
    duration_ms: int = 100,
    gap_ms: int = 70,
    volume: int = DEFAULT_VOLUME,
    interval_ms: int = UPDATE_INTERVAL_MS,
) -> list[PlannedPacket]:
    """Every packet RFC 4733 has a sender send for `keys` (DTMF keys, `,` a two-second pause), in sending order.

    Per press: an update every `interval_ms` whose duration is the time elapsed (the first with the marker bit;
    none at the very start, where the duration would be 0), then the end report (E bit, the whole duration) sent
    three times `interval_ms` apart. A press longer than MAX_DURATION units goes on in segments: a segment full at
    MAX_DURATION sends that as its final report (without E, three times), and the next segment starts with a new
    timestamp MAX_DURATION later, without marker. Presses start `duration_ms + gap_ms` apart.
    """
    if not MIN_DURATION_MS <= duration_ms <= MAX_DURATION_MS:
        raise ValueError(f"a tone lasts {MIN_DURATION_MS} to {MAX_DURATION_MS} ms, not {duration_ms}")
    if gap_ms < MIN_GAP_MS:
        raise ValueError(f"tones are at least {MIN_GAP_MS} ms apart, not {gap_ms}")
    if not 0 <= volume <= MAX_VOLUME:
        raise ValueError(f"volume is 0..{MAX_VOLUME} (-dBm0), not {volume}")
    if interval_ms <= 0:
        raise ValueError("the update interval must be positive")
    codes = [None if key == PAUSE else event_code(key) for key in keys]  # refuse a bad key before planning any
    units = clock_rate // 1000  # timestamp units per millisecond
    total = duration_ms * units
    packets: list[PlannedPacket] = []
    start_ms = 0
    for code in codes:
        if code is None:
            start_ms += PAUSE_MS
            continue
        start = start_ms * units
        segment = 0
        elapsed_ms = interval_ms
        first = True
        while True:
            elapsed = min(elapsed_ms * units, total)
            if elapsed - segment > MAX_DURATION:  # the segment is full: its final report, then a new segment
                for repeat in range(END_REPEATS):
                    final = EventReport(code, False, volume, MAX_DURATION)
                    packets.append(PlannedPacket(start_ms + elapsed_ms + repeat * interval_ms, start + segment, False, final))
                segment += MAX_DURATION
            ended = elapsed >= total
            report = EventReport(code, ended, volume, elapsed - segment)
            if ended:
                for repeat in range(END_REPEATS):
                    packets.append(PlannedPacket(start_ms + duration_ms + repeat * interval_ms, start + segment, first and repeat == 0, report))
                break
            packets.append(PlannedPacket(start_ms + elapsed_ms, start + segment, first, report))
            first = False
            elapsed_ms += interval_ms
        start_ms += duration_ms + gap_ms
    packets.sort(key=lambda p: p.at_ms)  # stable: a segment's final reports before the next segment's updates
    return packets
