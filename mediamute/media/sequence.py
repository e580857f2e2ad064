"""RTP sequence-number validation (RFC 3550 appendix A.1) in front of the jitter buffer.

It decides which stream a packet belongs to, never letting one odd packet define "newest": before this validator a
single packet whose sequence number jumped far ahead made every following real packet "late" until the 16-bit
sequence wrapped (up to 11 minutes of unrequested silence). As in A.1:

- a step of 1..MAX_DROPOUT-1 ahead is the stream going on (a gap is loss, not an error);
- up to MAX_MISORDER behind is a misordered packet: it goes on to the jitter buffer, which plays it if its playout
  time has not passed (reordering repaired) and counts it late otherwise; a number already accepted (the newest
  or, exactly, any of the last RECENT behind it) is a duplicate: dropped;
- anything else is a bad jump: dropped, unless the last bad jump was to exactly one less, i.e. two consecutive
  numbers confirm it; then the sender restarted its numbering and the stream re-syncs to it.

A packet of another SSRC is a new stream by the same rule: one stray packet is dropped, a second one with the next
number switches to it (packets of the old SSRC still in flight in between do not undo that). The very first packet is accepted at once (no A.1 probation on start: SRTP has
already authenticated the sender). Standard library only: this runs for every packet.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
RECENT = 128
"""How many accepted numbers are remembered (a ring indexed by extended number, >= MAX_MISORDER + 1): what makes
duplicate detection exact for every misordered packet."""


class Verdict(Enum):
    """What the validator decided about one packet; the first three let it go on to the jitter buffer."""

    NEXT = "next"
    """In order (possibly after a gap)."""
    MISORDERED = "misordered"
    """Behind the newest packet by at most MAX_MISORDER and not seen before: the jitter buffer decides if it is late."""
    RESYNC = "resync"
    """The second of two consecutive packets confirming a restart or a new SSRC: a new stream starts here."""
    DUPLICATE = "duplicate"
    """A number accepted before (the newest, or one of the last RECENT)."""
    JUMP_PENDING = "jump_pending"
    """A bad jump not (yet) confirmed by the next packet."""
    SSRC_PENDING = "ssrc_pending"
    """A packet of another SSRC not (yet) confirmed by the next packet."""

    @property
    def accepted(self) -> bool:
        return self is Verdict.NEXT or self is Verdict.MISORDERED or self is Verdict.RESYNC


@dataclass(slots=True)
class SequenceCounters:
    """Packets by verdict since the stream began; every packet lands in exactly one of the first four."""

    accepted: int = 0
    duplicates: int = 0
    jumps_pending: int = 0
    ssrcs_pending: int = 0
    restarts: int = 0
    """Confirmed jumps in the same SSRC (counted in `accepted` too)."""
    ssrc_changes: int = 0
    """Confirmed switches to another SSRC (counted in `accepted` too)."""
    misordered: int = 0
    """Accepted packets that came behind a newer one (counted in `accepted` too): the jitter buffer repairs the
    order of those that still arrive before their playout time."""

    @property
    def dropped(self) -> int:
        return self.duplicates + self.jumps_pending + self.ssrcs_pending


class SequenceValidator:
    """Decides per packet (SSRC, sequence number) whether it continues the stream; counts every drop by reason."""

    __slots__ = ("ssrc", "max_seq", "cycles", "counters", "_bad_seq", "_candidate_ssrc", "_candidate_next", "_recent")

    def __init__(self) -> None:
        self.ssrc: int | None = None
        """The SSRC of the stream being played; None before the first packet."""
        self.max_seq = 0
        """The highest sequence number accepted in the current stream."""
        self.cycles = 0
        """Sequence-number wraps in the current stream, as a multiple of 2**16 (A.1's `cycles`)."""
        self.counters = SequenceCounters()
        self._bad_seq: int | None = None
        self._candidate_ssrc: int | None = None
        self._candidate_next = 0
        self._recent: list[int | None] = [None] * RECENT
        """Extended numbers of accepted packets, at index (extended number % RECENT)."""

    @property
    def extended_max_seq(self) -> int:
        """`cycles + max_seq`: the highest accepted sequence number without 16-bit wrapping."""
        return self.cycles + self.max_seq

    def check(self, ssrc: int, seq: int) -> Verdict:
        """Classify one packet and update the stream state; the caller buffers it only if `verdict.accepted`."""
        counters = self.counters
        if ssrc != self.ssrc:
            if self.ssrc is not None:
                if ssrc != self._candidate_ssrc or seq != self._candidate_next:
                    self._candidate_ssrc = ssrc
                    self._candidate_next = (seq + 1) % RTP_SEQ_MOD
                    counters.ssrcs_pending += 1
                    return Verdict.SSRC_PENDING
                counters.ssrc_changes += 1
                self._restart(ssrc, seq)
                counters.accepted += 1
                return Verdict.RESYNC
            self._restart(ssrc, seq)
            counters.accepted += 1
            return Verdict.NEXT
        delta = (seq - self.max_seq) % RTP_SEQ_MOD
        if 0 < delta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
            self._remember(self.cycles + seq)
            counters.accepted += 1
            return Verdict.NEXT
        if delta == 0:
            counters.duplicates += 1
            return Verdict.DUPLICATE
        if delta >= RTP_SEQ_MOD - MAX_MISORDER:
            extended = self.cycles + self.max_seq - (RTP_SEQ_MOD - delta)
            if self._recent[extended % RECENT] == extended:
                counters.duplicates += 1
                return Verdict.DUPLICATE
            self._remember(extended)
            counters.accepted += 1
            counters.misordered += 1
            return Verdict.MISORDERED
        if seq == self._bad_seq:
            counters.restarts += 1
            self._restart(ssrc, seq)
            counters.accepted += 1
            return Verdict.RESYNC
        self._bad_seq = (seq + 1) % RTP_SEQ_MOD
        counters.jumps_pending += 1
        return Verdict.JUMP_PENDING

    def _remember(self, extended: int) -> None:
        self._recent[extended % RECENT] = extended

    def _restart(self, ssrc: int, seq: int) -> None:
        self.ssrc = ssrc
        self.max_seq = seq
        self.cycles = 0
        self._bad_seq = None
        self._candidate_ssrc = None
        self._recent = [None] * RECENT
        self._remember(seq)
