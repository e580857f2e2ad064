"""media/telephone_event.py: RFC 4733 payloads, the receiver's rule (one press per key press, whatever the repeats),
and the sender's plan checked against what the RFC asks of a sender."""

from __future__ import annotations

import pytest

from mediamute.media.telephone_event import (
    MAX_DURATION,
    TONE_NAMES,
    EventReport,
    MalformedEvent,
    ToneReceiver,
    event_code,
    parse_reports,
    plan_key_presses,
    tone_name,
)

SSRC = 0x1234ABCD
UNITS_PER_MS = 48


def report(event: int, duration: int, end: bool = False, volume: int = 10) -> bytes:
    return EventReport(event, end, volume, duration).pack()


def press_packets(event: int, start: int, duration_ms: int = 100, interval_ms: int = 20) -> list[tuple[int, bool, bytes]]:
    """(timestamp, marker, payload) of one press as a conformant sender sends it: updates, then the end three times."""
    packets = []
    elapsed = interval_ms
    while elapsed < duration_ms:
        packets.append((start, elapsed == interval_ms, report(event, elapsed * UNITS_PER_MS)))
        elapsed += interval_ms
    packets += [(start, False, report(event, duration_ms * UNITS_PER_MS, end=True))] * 3
    return packets


def feed(receiver: ToneReceiver, packets, ssrc: int = SSRC) -> list[str]:
    return [press.tone for ts, marker, payload in packets for press in receiver.receive(ssrc, ts, marker, payload)]


# the payload ------------------------------------------------------------------------------------------------------
def test_a_report_packs_and_parses_as_rfc_4733_lays_it_out():
    payload = EventReport(event=11, end=True, volume=10, duration=4800).pack()
    assert payload == bytes([11, 0x80 | 10, 4800 >> 8, 4800 & 0xFF])
    assert parse_reports(payload) == [EventReport(11, True, 10, 4800)]
    assert parse_reports(bytes([5, 0x40 | 7, 0, 160])) == [EventReport(5, False, 7, 160)]  # the R bit is ignored
    packed = report(1, 800, end=True) + report(2, 320)  # §2.5.1.5: several reports in one payload
    assert [r.event for r in parse_reports(packed)] == [1, 2]


@pytest.mark.parametrize("payload", [b"", b"\x01", b"\x01\x0a\x03", b"\x01\x0a\x03\xc0\x02"])
def test_a_payload_that_is_not_whole_reports_is_malformed(payload):
    with pytest.raises(MalformedEvent):
        parse_reports(payload)


def test_event_codes_and_graph_tone_names():
    assert [event_code(k) for k in "0123456789*#ABCDabcd"] == list(range(16)) + [12, 13, 14, 15]
    assert [tone_name(e) for e in (0, 9, 10, 11, 12, 15, 16)] == ["tone0", "tone9", "star", "pound", "a", "d", "flash"]
    assert tone_name(17) is None and tone_name(32) is None  # not DTMF: e.g. RFC 4734's modem events
    assert len(TONE_NAMES) == 17
    for bad in ("E", "x", "", "12", "+"):
        with pytest.raises(ValueError):
            event_code(bad)


# the receiver: one press per key press ----------------------------------------------------------------------------
def test_updates_and_the_three_redundant_end_packets_make_one_press():
    receiver = ToneReceiver()
    packets = press_packets(1, start=96_000)
    assert feed(receiver, packets) == ["tone1"]
    assert receiver.counters.packets == len(packets) == 7
    assert (receiver.counters.presses, receiver.counters.repeats, receiver.counters.dropped) == (1, 6, 0)


def test_retransmissions_and_reordering_within_a_press_make_no_second_press():
    receiver = ToneReceiver()
    packets = press_packets(7, start=10_000)
    shuffled = [packets[2], packets[0], packets[1], packets[0], packets[5], packets[3], packets[6], packets[4], packets[2]]
    assert feed(receiver, shuffled) == ["tone7"]
    assert receiver.counters.repeats == len(shuffled) - 1


def test_the_press_is_reported_on_its_first_packet_even_when_the_marker_packet_is_lost():
    receiver = ToneReceiver()
    assert feed(receiver, press_packets(3, start=5_000)[1:]) == ["tone3"]  # no marker ever seen


def test_only_end_packets_still_make_the_press():
    receiver = ToneReceiver()
    assert feed(receiver, press_packets(11, start=5_000)[-3:]) == ["pound"]


def test_two_quick_presses_of_the_same_key_are_two_presses():
    receiver = ToneReceiver()
    first = press_packets(5, start=0, duration_ms=40)
    second = press_packets(5, start=(40 + 30) * UNITS_PER_MS, duration_ms=40)  # 30 ms apart: the shortest gap
    assert feed(receiver, first + second) == ["tone5", "tone5"]
    # the end packets of the first arriving late, after the second began, are still the first's
    receiver = ToneReceiver()
    assert feed(receiver, first[:1] + second[:1] + first[1:] + second[1:]) == ["tone5", "tone5"]


def test_a_long_press_in_segments_is_one_press():
    """§2.5.1.3: past 0xFFFF units a press goes on in a new segment (new timestamp, no marker)."""
    receiver = ToneReceiver()
    plan = plan_key_presses("9", duration_ms=3000)  # 144000 units: three segments
    starts = sorted({p.timestamp for p in plan})
    assert starts == [0, MAX_DURATION, 2 * MAX_DURATION]
    base = 2**32 - 70_000  # the timestamp wraps during the press too
    tones = [press.tone for p in plan for press in receiver.receive(SSRC, (base + p.timestamp) % 2**32, p.marker, p.report.pack())]
    assert tones == ["tone9"]
    assert receiver.counters.repeats == len(plan) - 1 and receiver.counters.dropped == 0


def test_a_long_press_from_a_sender_that_starts_segments_on_its_next_packet_is_one_press():
    """libwebrtc starts the next segment at the packet that overflowed, a little after 0xFFFF units."""
    receiver = ToneReceiver()
    packets = [(0, True, report(4, 960))]
    packets += [(0, False, report(4, d)) for d in range(1920, MAX_DURATION, 960)]
    segment = 65_280 + 960  # the 20 ms packet whose duration would pass 0xFFFF
    packets += [(0, False, report(4, MAX_DURATION)), (segment, False, report(4, 960 - (MAX_DURATION - 65_280)))]
    packets += [(segment, False, report(4, 4800, end=True))] * 3
    assert feed(receiver, packets) == ["tone4"]


def test_a_new_segment_of_another_key_or_with_a_marker_is_a_new_press():
    receiver = ToneReceiver()
    assert feed(receiver, [(0, True, report(4, 960)), (MAX_DURATION, False, report(6, 960))]) == ["tone4", "tone6"]
    receiver = ToneReceiver()
    assert feed(receiver, [(0, True, report(4, 960)), (MAX_DURATION, True, report(4, 960))]) == ["tone4", "tone4"]


def test_zero_duration_reports_say_nothing_until_the_event_has_a_duration():
    receiver = ToneReceiver()
    assert feed(receiver, [(800, True, report(2, 0))]) == []
    assert receiver.counters.empty == 1
    assert feed(receiver, [(800, False, report(2, 960))]) == ["tone2"]


def test_a_press_that_began_before_the_newest_one_is_late_and_dropped():
    receiver = ToneReceiver()
    assert feed(receiver, press_packets(1, start=50_000)) == ["tone1"]
    assert feed(receiver, press_packets(2, start=20_000)) == []  # never seen, and older: out of order
    assert receiver.counters.late == 7 and receiver.counters.presses == 1


def test_garbage_is_counted_and_dropped_and_the_next_press_still_comes_through():
    receiver = ToneReceiver()
    garbage = [(1, False, b""), (2, False, b"\xff"), (3, True, b"\x01\x02\x03"), (4, False, b"\x00" * 7)]
    assert feed(receiver, garbage) == []
    assert receiver.counters.malformed == 4
    assert feed(receiver, [(9_000, True, report(40, 960))]) == []  # a modem event (RFC 4734), not a tone
    assert receiver.counters.unsupported == 1
    assert feed(receiver, press_packets(16, start=20_000)) == ["flash"]
    assert receiver.counters.packets == 4 + 1 + 7 and receiver.counters.dropped == 5


def test_a_new_ssrc_is_a_new_stream():
    receiver = ToneReceiver()
    assert feed(receiver, press_packets(8, start=70_000)) == ["tone8"]
    assert feed(receiver, press_packets(8, start=10_000), ssrc=SSRC + 1) == ["tone8"]  # older timestamp, new stream


def test_packed_reports_follow_one_another():
    receiver = ToneReceiver()
    payload = report(1, 4800, end=True) + report(2, 1920)
    presses = receiver.receive(SSRC, 1000, True, payload)
    assert [(p.tone, p.timestamp) for p in presses] == [("tone1", 1000), ("tone2", 5800)]


# the sender's plan, checked against RFC 4733 ----------------------------------------------------------------------
def test_the_plan_for_keys_is_what_rfc_4733_asks_of_a_sender():
    plan = plan_key_presses("1#", clock_rate=48_000, duration_ms=100, gap_ms=70)
    by_press: dict[int, list] = {}
    for packet in plan:
        by_press.setdefault(packet.timestamp, []).append(packet)
    assert sorted(by_press) == [0, (100 + 70) * UNITS_PER_MS]  # one timestamp per press: its start
    for (start, packets), key in zip(sorted(by_press.items()), "1#"):
        assert {p.report.event for p in packets} == {event_code(key)}
        assert [p.marker for p in packets] == [True] + [False] * (len(packets) - 1)  # M on the first only
        updates = [p for p in packets if not p.report.end]
        ends = [p for p in packets if p.report.end]
        assert [p.report.duration for p in updates] == [960, 1920, 2880, 3840]  # growing, never 0
        assert len(ends) == 3 and {p.report.duration for p in ends} == {100 * UNITS_PER_MS}  # §2.5.1.4: three times
        assert [p.at_ms - start // UNITS_PER_MS for p in ends] == [100, 120, 140]  # at the update interval
        assert all(p.report.volume == 10 for p in packets)
    times = [p.at_ms for p in plan]
    assert times == sorted(times)


def test_a_pause_and_the_browser_limits():
    plan = plan_key_presses("1,2", duration_ms=40, gap_ms=30)
    assert sorted({p.timestamp for p in plan}) == [0, (40 + 30 + 2000) * UNITS_PER_MS]
    with pytest.raises(ValueError):
        plan_key_presses("1", duration_ms=39)
    with pytest.raises(ValueError):
        plan_key_presses("1", duration_ms=6001)
    with pytest.raises(ValueError):
        plan_key_presses("1", gap_ms=29)
    with pytest.raises(ValueError, match="not a DTMF key"):
        plan_key_presses("12E")


def test_the_plan_at_8_khz_uses_that_clock():
    plan = plan_key_presses("0", clock_rate=8000, duration_ms=100)
    assert max(p.report.duration for p in plan) == 800
