"""The adaptive jitter buffer on crafted packets and an injected clock: every time here is exact, nothing depends on
the machine's speed. A packet k carries timestamp k * 960 (20 ms); the playout clock ticks every 20 ms."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from mediamute.media.jitter import (
    FRAME,
    JitterBufferSettings,
    PlayoutBuffer,
    PlayoutKind,
    PlayoutStep,
)

T = 0.02
BASE = 1000  # the first packet's index: timestamps need not start at 0
FEC = "fec"


@dataclass
class Heard:
    """One tick's outcome: what was played, as (kind, packet index) per step; discarded steps marked."""

    at: float
    steps: list[tuple[str, int | None]] = field(default_factory=list)

    @property
    def played(self) -> tuple[str, int | None] | None:
        real = [s for s in self.steps if s[0] != "discard"]
        return real[-1] if real else None


def run(buffer: PlayoutBuffer, arrivals: dict[int, float], until: float, start: float = 0.0,
        fec: set[int] | None = None, quiet: bool = False, tick_phase: float = 0.01) -> list[Heard]:
    """Packets k arrive at arrivals[k]; ticks at start + tick_phase + n * 20 ms up to `until`. Returns each tick."""
    events = sorted((t, k) for k, t in arrivals.items())
    heard: list[Heard] = []
    at = start + tick_phase
    i = 0
    while at < until:
        while i < len(events) and events[i][0] <= at:
            t, k = events[i]
            buffer.insert((k * FRAME) % (1 << 32), b"\x00", FRAME, t, fec=fec is not None and k in fec,
                          misordered=any(j > k and arrivals[j] <= t for j in arrivals if j in range(k + 1, k + 20)))
            i += 1
        tick = Heard(at)
        while (step := buffer.next(at, at, 0, quiet)) is not None:
            tick.steps.append(describe(step))
            if not step.discard:
                break
        heard.append(tick)
        at += T
    return heard


def describe(step: PlayoutStep) -> tuple[str, int | None]:
    if step.discard:
        return ("discard", step.packet.timestamp // FRAME if step.packet else None)
    if step.kind is PlayoutKind.DECODE:
        return ("decode", step.packet.timestamp // FRAME)
    if step.kind is PlayoutKind.RECOVER:
        return ("recover", step.packet.timestamp // FRAME)  # the packet whose FEC rebuilt the frame before it
    return ("conceal", None)


def steady(first: int, count: int, start: float = 0.0, delay: float = 0.005) -> dict[int, float]:
    return {first + n: start + n * T + delay for n in range(count)}


def decoded(heard: list[Heard]) -> list[int]:
    return [h.played[1] for h in heard if h.played and h.played[0] == "decode"]


def kinds(heard: list[Heard]) -> list[str]:
    return [h.played[0] if h.played else "-" for h in heard]


# --- a perfect network ------------------------------------------------------------------------------------------------
def test_in_order_packets_play_in_order_at_the_next_tick():
    buffer = PlayoutBuffer()
    heard = run(buffer, steady(BASE, 100), until=2.0)
    assert decoded(heard) == list(range(BASE, BASE + 100))
    assert kinds(heard) == ["decode"] * 100  # one packet per tick from the first tick after the first packet
    stats = buffer.stats()
    assert stats.target_delay == pytest.approx(0.0, abs=1e-9)
    assert stats.counters.concealed == 0 and stats.counters.late == 0
    assert stats.delay_p95 == pytest.approx(0.005)  # a packet waits only for the next tick
    assert stats.jitter == pytest.approx(0.0, abs=1e-9)


def test_timestamps_wrap_around_without_a_hitch():
    first = (1 << 32) // FRAME - 10  # crosses 2**32 ten packets in
    buffer = PlayoutBuffer()
    heard = run(buffer, steady(first, 40), until=0.8)
    assert [k % ((1 << 32) // FRAME) for k in decoded(heard)] == [k % ((1 << 32) // FRAME) for k in range(first, first + 40)]
    assert buffer.counters.late == 0 and buffer.counters.timestamp_jumps == 0


def test_min_delay_holds_every_packet_that_long():
    buffer = PlayoutBuffer(JitterBufferSettings(min_delay=0.04))
    heard = run(buffer, steady(BASE, 50), until=1.2)
    assert decoded(heard) == list(range(BASE, BASE + 50))
    first = next(h for h in heard if h.played)
    assert first.at == pytest.approx(0.05)  # arrived at 0.005, due at 0.045: the tick at 0.05
    assert buffer.stats().delay_p50 == pytest.approx(0.045)


# --- reordering, lateness, duplicates -----------------------------------------------------------------------------------
def test_reordering_within_the_buffers_depth_is_repaired():
    buffer = PlayoutBuffer(JitterBufferSettings(min_delay=0.03))
    arrivals = steady(BASE, 60)
    arrivals[BASE + 20], arrivals[BASE + 21] = arrivals[BASE + 21] + 0.002, arrivals[BASE + 21]  # 21 overtakes 20
    heard = run(buffer, arrivals, until=1.24)  # the stream's last packet plays at 1.23
    assert decoded(heard) == list(range(BASE, BASE + 60))
    assert buffer.counters.reordered == 1 and buffer.counters.late == 0 and buffer.counters.concealed == 0


def test_a_packet_after_its_playout_is_late_counted_and_dropped():
    buffer = PlayoutBuffer()
    arrivals = steady(BASE, 60)
    arrivals[BASE + 20] += 0.07  # three periods late, behind 21 and 22
    heard = run(buffer, arrivals, until=1.2)
    played = decoded(heard)
    assert BASE + 20 not in played and played == [k for k in range(BASE, BASE + 60) if k != BASE + 20]
    assert buffer.counters.late == 1
    assert buffer.counters.concealed == 1  # its turn: waited for it once, then let it go
    # one late packet in a hundred is an outlier, not the network's jitter: the latency of the others stays low
    assert buffer.target_delay == pytest.approx(0.0, abs=1e-9) and buffer.stats().delay_p95 <= 0.025

def test_duplicates_are_dropped():
    buffer = PlayoutBuffer()
    assert buffer.insert(960, b"x", FRAME, 0.0)
    assert not buffer.insert(960, b"x", FRAME, 0.001)
    assert buffer.counters.duplicates == 1 and buffer.depth == 1


# --- loss: FEC, then PLC, bounded -------------------------------------------------------------------------------------
def test_a_lost_packet_is_rebuilt_from_the_next_packets_fec():
    buffer = PlayoutBuffer(JitterBufferSettings(min_delay=0.025))  # deep enough that the next packet is there
    arrivals = steady(BASE, 50)
    del arrivals[BASE + 10]
    heard = run(buffer, arrivals, until=1.02, fec=set(arrivals))
    played = [h.played for h in heard if h.played]
    at = played.index(("recover", BASE + 11))
    assert played[at - 1] == ("decode", BASE + 9) and played[at + 1] == ("decode", BASE + 11)
    assert buffer.counters.recovered == 1 and buffer.counters.concealed == 0


def test_without_fec_data_a_lost_packet_is_concealed():
    buffer = PlayoutBuffer(JitterBufferSettings(min_delay=0.025))
    arrivals = steady(BASE, 50)
    del arrivals[BASE + 10]
    heard = run(buffer, arrivals, until=1.02, fec=set())
    assert ("conceal", None) in [h.played for h in heard]
    assert buffer.counters.recovered == 0 and buffer.counters.concealed == 1
    assert decoded(heard) == [k for k in range(BASE, BASE + 50) if k != BASE + 10]


def test_two_lost_in_a_row_are_concealed_then_recovered():
    buffer = PlayoutBuffer(JitterBufferSettings(min_delay=0.045))  # the packet after both is there in time
    arrivals = steady(BASE, 50)
    del arrivals[BASE + 10], arrivals[BASE + 11]
    heard = run(buffer, arrivals, until=1.3, fec=set(arrivals))
    played = [h.played for h in heard if h.played]
    at = played.index(("decode", BASE + 9))
    assert played[at + 1 : at + 4] == [("conceal", None), ("recover", BASE + 12), ("decode", BASE + 12)]


def test_losses_are_told_apart_single_or_in_a_burst_and_single_recoveries_counted():
    buffer = PlayoutBuffer(JitterBufferSettings(min_delay=0.045))
    arrivals = steady(BASE, 100)
    for k in (10, 30, 31, 50, 51, 52, 70):  # two single losses, bursts of two and three
        del arrivals[BASE + k]
    fec = set(arrivals) - {BASE + 71}  # the packet after the second single loss carries no FEC data
    heard = run(buffer, arrivals, until=2.2, fec=fec, tick_phase=0.013)  # ticks off the packets' due times
    c = buffer.counters
    assert (c.single_losses, c.burst_losses) == (2, 5)
    assert c.single_recovered == 1  # 10 from 11's FEC; 70 concealed
    played = [h.played for h in heard if h.played]
    within = played[: played.index(("decode", BASE + 99))]  # (after the stream's end the buffer conceals a while)
    assert c.recovered == 3  # each burst's last frame rebuilt, the others concealed: 1 + 2, and 70; the packet after
    assert within.count(("conceal", None)) == 5  # the burst of three comes 60 ms on, past the target: one frame waited


def test_a_single_loss_is_single_even_when_the_next_packet_is_late_for_its_turn():
    buffer = PlayoutBuffer()  # no margin: the frame after the lost one is not there when the lost one is due
    arrivals = steady(BASE, 50)
    del arrivals[BASE + 20]
    arrivals[BASE + 21] += 0.015  # due at 0.41 + its tick, it comes at 0.44 (before 22 at 0.445)
    run(buffer, arrivals, until=1.2, fec=set(arrivals))
    c = buffer.counters
    assert (c.single_losses, c.single_recovered, c.burst_losses) == (1, 1, 0)  # waited (concealing), then rebuilt


def test_a_streams_first_packet_read_after_a_stall_still_anchors_the_playout():
    buffer = PlayoutBuffer()  # e.g. a join's handshakes stalled the loop just as the first packet came
    assert buffer.insert(BASE * FRAME, b"x", FRAME, 1.0, stalled=True)
    step = buffer.next(1.01)
    assert step is not None and step.kind is PlayoutKind.DECODE and step.packet.timestamp == BASE * FRAME
    buffer.restart()  # and a new stream's first packet likewise
    assert buffer.insert(7 * FRAME, b"y", FRAME, 2.0, stalled=True)
    assert buffer.next(2.01).kind is PlayoutKind.DECODE


def test_concealment_is_bounded_and_fades_out_when_the_sender_stops():
    buffer = PlayoutBuffer(JitterBufferSettings(max_concealed=4))
    run(buffer, steady(BASE, 20), until=0.41)
    steps = [buffer.next(0.41 + n * T) for n in range(20)]
    concealed = [s for s in steps if s is not None]
    assert len(concealed) == 4 and all(s.kind is PlayoutKind.CONCEAL for s in concealed)
    assert [s.fade for s in concealed] == [False, False, False, True]
    assert steps[4:] == [None] * 16  # quiet from then on: nothing invented
    # the sender comes back (its clock ran on): a fresh anchor, played once due, nothing older
    buffer.insert((BASE + 60) * FRAME, b"x", FRAME, 1.205)
    step = buffer.next(1.21)
    assert step is not None and step.kind is PlayoutKind.DECODE and step.packet.timestamp == (BASE + 60) * FRAME


# --- mute and unmute --------------------------------------------------------------------------------------------------
def test_flush_on_mute_leaves_nothing_to_play_or_conceal():
    buffer = PlayoutBuffer(JitterBufferSettings(min_delay=0.06))
    run(buffer, steady(BASE, 30), until=0.6)
    assert buffer.depth >= 2
    held = buffer.depth
    assert buffer.flush() == held
    assert buffer.counters.flushed == held
    assert [buffer.next(0.6 + n * T) for n in range(10)] == [None] * 10  # no concealment smear after a mute


def test_refill_on_unmute_plays_only_fresh_packets_from_a_new_anchor():
    buffer = PlayoutBuffer(JitterBufferSettings(min_delay=0.04))
    run(buffer, steady(BASE, 30), until=0.6)
    buffer.flush()
    # muted for a second (the gate dropped those packets); the first fresh packet anchors the playout
    fresh = steady(BASE + 80, 20, start=1.6)
    heard = run(buffer, fresh, start=1.6, until=2.0)
    assert decoded(heard)[0] == BASE + 80 and set(decoded(heard)) <= set(fresh)
    first = next(h for h in heard if h.played)
    assert first.at == pytest.approx(1.65)  # arrived 1.605, prebuffered its 40 ms target
    assert "conceal" not in kinds(heard)


# --- adaptation ---------------------------------------------------------------------------------------------------------
def jittered(first: int, count: int, start: float, spread: float, rng: random.Random) -> dict[int, float]:
    """Each packet delayed by a uniform 0..spread (so some overtake others), sent every 20 ms."""
    return {first + n: start + n * T + rng.uniform(0, spread) for n in range(count)}


def window_kinds(heard: list[Heard], start: float, end: float) -> list[str]:
    return [kinds([h])[0] for h in heard if start <= h.at < end]


def test_target_follows_jitter_up_and_back_down():
    rng = random.Random(7)
    buffer = PlayoutBuffer()
    arrivals = steady(BASE, 100)  # 2 s calm
    arrivals.update(jittered(BASE + 100, 250, 2.0, 0.06, rng))  # 5 s of 0-60 ms jitter
    arrivals.update(steady(BASE + 350, 750, start=7.0))  # 15 s calm again
    targets: dict[float, float] = {}
    heard: list[Heard] = []
    for chunk in range(22):  # in 1 s chunks, noting the target as it goes
        heard += run(buffer, {k: t for k, t in arrivals.items() if chunk <= t < chunk + 1}, until=chunk + 1.0,
                     start=chunk)
        targets[chunk + 1.0] = buffer.target_delay
    assert targets[2.0] == pytest.approx(0.0, abs=1e-9)
    assert 0.04 <= targets[7.0] <= 0.07  # up: it covers the jitter (the 95th percentile of 0-60 ms, and peaks)
    # under jitter, once adapted, nearly every frame is a real one
    during = window_kinds(heard, 4.0, 7.0)
    assert during.count("decode") >= 0.97 * len(during)
    assert targets[21.0] == pytest.approx(0.0, abs=1e-9)  # and back down once the jitter is gone
    assert buffer.stats().delay_p95 <= 0.02  # the actual delay too: latency returned to the calm network's
    calm_after = window_kinds(heard, 12.0, 22.0)
    assert calm_after == ["decode"] * len(calm_after)


def test_latency_does_not_creep_over_a_long_lossy_jittery_run():
    """Ten minutes of 0-20 ms jitter and 2 % loss: the delay stays where it settled, it does not grow."""
    rng = random.Random(11)
    buffer = PlayoutBuffer()
    minutes = 10
    count = minutes * 60 * 50
    arrivals = {BASE + n: n * T + rng.uniform(0, 0.02) for n in range(count) if rng.random() > 0.02}
    delays: list[float] = []
    for second in range(minutes * 60):
        run(buffer, {k: t for k, t in arrivals.items() if second <= t < second + 1} if second % 1 == 0 else {},
            until=second + 1.0, start=second)
        if second % 30 == 29:
            delays.append(buffer.stats().delay_p95)
    assert max(delays) - min(delays) <= 0.02, delays  # within one frame from the first half-minute to the last
    assert max(delays) <= 0.06
    c = buffer.counters
    assert c.decoded + c.recovered + c.late >= 0.97 * len(arrivals)


def test_a_sender_clock_running_fast_is_caught_up_without_creep():
    """A sender whose clock runs 0.5 % fast delivers 1 frame in 200 too many: the buffer drops one now and then."""
    buffer = PlayoutBuffer()
    arrivals = {BASE + n: n * T / 1.005 + 0.005 for n in range(50 * 120)}
    heard = run(buffer, arrivals, until=119.0)
    assert buffer.counters.accelerated >= 25  # ~0.5 % of 6000 frames, each dropped to catch up
    assert buffer.stats().delay_p95 <= 0.045  # never more than two frames behind
    assert buffer.counters.concealed == 0
    assert len(heard) - kinds(heard).count("decode") <= 2


def test_catching_up_prefers_a_quiet_frame():
    loud = PlayoutBuffer(JitterBufferSettings(min_delay=0.0))
    calm = PlayoutBuffer(JitterBufferSettings(min_delay=0.0))
    arrivals = steady(BASE, 40)
    for k in range(BASE + 5, BASE + 8):  # a burst: three packets stuck, then arriving together
        arrivals[k] = arrivals[BASE + 8] - 0.001
    for buffer, quiet in ((loud, False), (calm, True)):
        run(buffer, arrivals, until=0.8, quiet=quiet)
    assert calm.counters.accelerated >= 1  # dropped a (quiet) frame at once to get back to the target
    assert loud.counters.accelerated <= calm.counters.accelerated  # a loud stream waits for patience or urgency


def test_far_behind_the_plan_the_buffer_skips_at_once():
    buffer = PlayoutBuffer(JitterBufferSettings(max_delay=0.1, max_concealed=50))
    arrivals = steady(BASE, 20)
    arrivals.update({BASE + 20 + n: 0.9 + n * 0.0001 for n in range(30)})  # a 0.5 s outage, then a flood
    run(buffer, arrivals, until=1.2)
    assert buffer.counters.skipped >= 10
    assert buffer.stats().delay_p95 <= 0.12


def test_a_timestamp_jump_needs_two_packets_and_then_restarts_the_timebase():
    buffer = PlayoutBuffer()
    heard = run(buffer, steady(BASE, 20), until=0.4)
    assert not buffer.insert((BASE + 20 + 10_000_000) % (1 << 32), b"x", FRAME, 0.405)  # a stray timestamp
    assert buffer.counters.timestamp_jumps == 1
    heard = run(buffer, steady(BASE + 20, 10, start=0.4), until=0.6, start=0.4)
    assert decoded(heard) == list(range(BASE + 20, BASE + 30))  # the stream went on untouched
    far = BASE + 50_000_000
    run(buffer, steady(far, 10, start=0.6), until=0.8, start=0.6)  # a real jump: confirmed by its second packet
    assert buffer.counters.restarts == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("min_delay", -0.1), ("max_delay", 5.0), ("quantile", 1.0), ("window", 3), ("release", 0.0),
     ("max_concealed", -1), ("capacity", 2), ("min_delay", float("nan")), ("window", True)],
)
def test_settings_refuse_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"jitter buffer {field}"):
        JitterBufferSettings(**{field: value})


def test_a_stall_of_the_receivers_own_loop_makes_no_packet_late():
    """The loop stalls 400 ms: the first tick after it runs before the packets queued in the socket are read (they
    are stamped with the time they are read). Catching up must not move past them: none of them is late."""
    buffer = PlayoutBuffer(JitterBufferSettings(min_delay=0.04))
    run(buffer, steady(BASE, 50), until=1.0)  # a few packets held when the stall begins
    assert buffer.depth >= 2
    queued = {BASE + 50 + n: 1.4101 + n * 0.0001 for n in range(20)}  # read right after the first tick at 1.41
    queued.update(steady(BASE + 70, 560, start=1.42))  # and the stream goes on, read after them (the socket is FIFO)
    heard = run(buffer, queued, start=1.4, until=12.6)
    assert buffer.counters.late == 0 and buffer.counters.concealed == 0
    played = decoded(heard)
    assert played == sorted(played) and played[-1] >= BASE + 625  # in order, and caught up with the stream
    # the stall looked like a 400 ms delay spike: the target rose to its bound, then came back down
    assert buffer.target_delay == pytest.approx(0.04)
    assert buffer.depth <= 3 and buffer.stats().delay_p50 <= 0.065  # holding its target's worth again
