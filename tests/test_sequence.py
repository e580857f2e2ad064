"""RFC 3550 A.1 sequence validation, on crafted (SSRC, sequence number) streams."""

from __future__ import annotations

import random

import pytest

from mediamute.media.sequence import MAX_DROPOUT, MAX_MISORDER, RTP_SEQ_MOD, SequenceValidator, Verdict

S = 0x1234


def feed(validator: SequenceValidator, seqs, ssrc: int = S) -> list[Verdict]:
    return [validator.check(ssrc, seq % RTP_SEQ_MOD) for seq in seqs]


def accepted(verdicts: list[Verdict]) -> list[bool]:
    return [v.accepted for v in verdicts]


def test_in_order_stream_and_gaps_are_accepted():
    v = SequenceValidator()
    assert all(accepted(feed(v, [100, 101, 102, 110, 111, 111 + MAX_DROPOUT - 1])))  # gaps are loss, not errors
    assert v.counters.accepted == 6 and v.counters.dropped == 0


def test_one_packet_jumping_far_ahead_does_not_silence_the_stream():
    """The defect: the old decoder took a +30000 packet as the newest and dropped every real packet after it."""
    v = SequenceValidator()
    feed(v, range(1000, 1010))
    assert feed(v, [1010 + 30000]) == [Verdict.JUMP_PENDING]
    assert all(accepted(feed(v, range(1010, 1060))))  # the real stream goes on, not one packet lost
    assert v.max_seq == 1059 and v.counters.jumps_pending == 1 and v.counters.restarts == 0


def test_a_confirmed_jump_is_a_restart_within_two_packets():
    v = SequenceValidator()
    feed(v, range(5000, 5010))
    out = feed(v, range(40000, 40010))  # the sender restarted its numbering (behind, modulo 2**16)
    assert out[0] is Verdict.JUMP_PENDING and out[1] is Verdict.RESYNC and all(accepted(out[1:]))
    assert v.counters.restarts == 1 and v.counters.jumps_pending == 1 and v.max_seq == 40009


def test_a_restart_backwards_beyond_the_misorder_window_resyncs_too():
    v = SequenceValidator()
    feed(v, range(20000, 20010))
    out = feed(v, range(100, 105))
    assert [x.accepted for x in out] == [False, True, True, True, True]


def test_wrap_around_counts_a_cycle_and_is_not_a_jump():
    v = SequenceValidator()
    assert all(accepted(feed(v, range(RTP_SEQ_MOD - 5, RTP_SEQ_MOD + 5))))
    assert v.cycles == RTP_SEQ_MOD and v.max_seq == 4 and v.extended_max_seq == RTP_SEQ_MOD + 4
    assert v.counters.dropped == 0


def test_duplicates_are_dropped_and_misordered_packets_go_on_to_the_jitter_buffer():
    v = SequenceValidator()
    feed(v, [0, 1, 2, 3, 4, 5, 8, 9])  # 6 and 7 not (yet) here
    assert feed(v, [9, 9]) == [Verdict.DUPLICATE, Verdict.DUPLICATE]
    assert feed(v, [7, 9 - MAX_MISORDER]) == [Verdict.MISORDERED, Verdict.MISORDERED]  # the buffer decides if late
    assert feed(v, [7, 3]) == [Verdict.DUPLICATE, Verdict.DUPLICATE]  # seen before, however far behind: exact
    assert feed(v, [9 - MAX_MISORDER - 1]) == [Verdict.JUMP_PENDING]  # further behind: a possible restart
    assert feed(v, [10]) == [Verdict.NEXT]
    c = v.counters
    assert (c.duplicates, c.misordered, c.jumps_pending, c.accepted) == (4, 2, 1, 11)
    assert c.accepted + c.dropped == 16


def test_misordered_pair_is_accepted_and_keeps_the_newest():
    v = SequenceValidator()
    assert feed(v, [1, 2, 4, 3, 5]) == [Verdict.NEXT, Verdict.NEXT, Verdict.NEXT, Verdict.MISORDERED, Verdict.NEXT]
    assert v.max_seq == 5 and v.counters.misordered == 1 and v.counters.dropped == 0


def test_duplicates_are_found_across_the_wrap_and_before_the_first_packet():
    v = SequenceValidator()
    feed(v, range(RTP_SEQ_MOD - 3, RTP_SEQ_MOD + 3))
    assert feed(v, [RTP_SEQ_MOD - 2, 1]) == [Verdict.DUPLICATE, Verdict.DUPLICATE]
    fresh = SequenceValidator()
    feed(fresh, [3])
    assert feed(fresh, [RTP_SEQ_MOD - 1, RTP_SEQ_MOD - 1]) == [Verdict.MISORDERED, Verdict.DUPLICATE]


def test_ssrc_change_is_a_new_stream_after_one_packet():
    v = SequenceValidator()
    feed(v, range(30000, 30010))
    out = feed(v, range(200, 205), ssrc=0xBEEF)  # a new SSRC whose numbers are "behind" the old stream's
    assert out[0] is Verdict.SSRC_PENDING and out[1] is Verdict.RESYNC and all(accepted(out[1:]))
    assert v.ssrc == 0xBEEF and v.counters.ssrc_changes == 1 and v.counters.ssrcs_pending == 1
    # the old SSRC is now the stranger: a straggler of it is dropped and does not switch back
    assert feed(v, [30010], ssrc=S) == [Verdict.SSRC_PENDING]
    assert feed(v, [205], ssrc=0xBEEF) == [Verdict.NEXT]


def test_one_stray_ssrc_packet_does_not_disturb_the_stream():
    v = SequenceValidator()
    feed(v, range(0, 5))
    feed(v, [9999], ssrc=0xBAD)
    assert all(accepted(feed(v, range(5, 10))))
    assert v.ssrc == S and v.counters.ssrc_changes == 0


def test_first_packet_is_accepted_at_once():
    v = SequenceValidator()
    assert feed(v, [65000]) == [Verdict.NEXT]


@pytest.mark.parametrize("seed", range(5))
def test_every_packet_is_counted_once_and_the_stream_always_recovers(seed):
    """Random abuse (jumps, duplicates, reordering, stray SSRCs), then an ordinary stream: back within 2 packets."""
    rng = random.Random(seed)
    v = SequenceValidator()
    for _ in range(2000):
        v.check(rng.choice([S, S, S, rng.getrandbits(32)]), rng.getrandbits(16))
    c = v.counters
    assert c.accepted + c.dropped == 2000
    start = rng.getrandbits(16)
    out = feed(v, range(start, start + 10), ssrc=0xC0FFEE)
    assert all(accepted(out[1:])), out
