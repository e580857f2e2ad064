"""The network model (media/netem) on an injected clock: its statistics against their closed forms, with seeds, and
the delivery line's order, batches and cancellation on a virtual event loop. No real time anywhere."""

from __future__ import annotations

import heapq
import math
import random
import statistics
from collections.abc import Callable

import pytest

from mediamute.media.netem import (
    MAX_IN_FLIGHT,
    DeliveryLine,
    DirectionModel,
    NetworkProfile,
)
from mediamute.media.netem.processes import IP_UDP_OVERHEAD, GilbertElliott, RateQueue

PERIOD = 0.02
"""One audio packet every 20 ms."""


def run(model: DirectionModel, count: int, period: float = PERIOD, size: int = 200) -> list[tuple[float, tuple[float, ...]]]:
    """Feed `count` datagrams `period` apart (from t = 0); (sent at, delivery times) for each."""
    return [(i * period, model.admit(i * period, size)) for i in range(count)]


def loss_runs(outcomes: list[bool]) -> list[int]:
    """Lengths of the runs of consecutive losses."""
    runs, current = [], 0
    for lost in outcomes:
        if lost:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    return runs + ([current] if current else [])


# losses -----------------------------------------------------------------------------------------------------------
def test_random_loss_rate_is_within_statistical_bounds():
    model = DirectionModel("uplink", NetworkProfile(loss=0.1), seed=1)
    out = run(model, 100_000)
    lost = sum(1 for _, times in out if not times)
    # binomial: sd = sqrt(0.1 * 0.9 / 100k) ≈ 0.00095; 5 sd
    assert lost / 100_000 == pytest.approx(0.1, abs=0.005)
    assert model.counters.dropped_random == lost and model.counters.dropped_burst == 0
    runs = loss_runs([not times for _, times in out])
    assert statistics.mean(runs) == pytest.approx(1 / 0.9, abs=0.02)  # independent: geometric runs, mean 1/(1-p)


def test_gilbert_elliott_mean_loss_and_burst_length_match_the_closed_form():
    loss, length = 0.05, 4.0
    model = DirectionModel("uplink", NetworkProfile(burst_loss=loss, burst_length=length), seed=2)
    outcomes = [not times for _, times in run(model, 200_000)]
    runs = loss_runs(outcomes)
    assert sum(outcomes) / len(outcomes) == pytest.approx(loss, abs=0.005)  # p / (p + r)
    assert statistics.mean(runs) == pytest.approx(length, rel=0.05)  # 1 / r
    assert max(runs) > 3 * length  # geometric runs: long bursts happen, unlike independent loss
    assert model.counters.dropped_burst == sum(outcomes) and model.counters.dropped_random == 0


def test_gilbert_elliott_parameters_from_a_mean_loss_and_burst_length():
    """netem's `loss gemodel p r` as webrtcperf derives it: r = 1/B, p = L·r / (1 - L)."""
    process = GilbertElliott.from_mean(0.02, 2.0, random.Random(0))
    assert process.r == pytest.approx(0.5) and process.p == pytest.approx(0.02 * 0.5 / 0.98)
    assert process.mean_loss == pytest.approx(0.02) and process.mean_burst_length == pytest.approx(2.0)


def test_gilbert_elliott_with_loss_in_both_states():
    process = GilbertElliott(p=0.02, r=0.2, rng=random.Random(3), loss_good=0.01, loss_bad=0.6)
    lost = sum(process.lost() for _ in range(200_000))
    bad = 0.02 / 0.22
    assert process.mean_loss == pytest.approx(bad * 0.6 + (1 - bad) * 0.01)
    assert lost / 200_000 == pytest.approx(process.mean_loss, abs=0.005)


# delay and jitter --------------------------------------------------------------------------------------------------
def test_delay_has_the_asked_mean_deviation_and_correlation():
    model = DirectionModel("downlink", NetworkProfile(delay_ms=100, jitter_ms=20, jitter_correlation=0.6), seed=4)
    delays = [times[0] - sent for sent, times in run(model, 50_000, period=1.0)]  # 1 s apart: order never binds
    assert statistics.mean(delays) == pytest.approx(0.100, abs=0.001)
    assert statistics.pstdev(delays) == pytest.approx(0.020, rel=0.03)
    mean = statistics.mean(delays)
    lag1 = sum((a - mean) * (b - mean) for a, b in zip(delays, delays[1:])) / sum((d - mean) ** 2 for d in delays)
    assert lag1 == pytest.approx(0.6, abs=0.03)
    counters = model.counters.snapshot()
    assert counters.pending == 0 and counters.delivered == 0  # the model decides; the delivery line delivers


def test_delay_never_goes_below_zero():
    model = DirectionModel("uplink", NetworkProfile(delay_ms=5, jitter_ms=20), seed=5)
    delays = [times[0] - sent for sent, times in run(model, 10_000, period=1.0)]
    assert min(delays) == 0.0 and sum(d == 0.0 for d in delays) > 1000  # truncated at 0 (≈ 40 % here)


def test_no_reordering_unless_asked_even_with_jitter_above_the_packet_spacing():
    model = DirectionModel("uplink", NetworkProfile(delay_ms=50, jitter_ms=40), seed=6)
    times = [t[0] for _, t in run(model, 20_000)]
    assert times == sorted(times)  # a datagram never comes out before one sent earlier
    spread = [t - s for s, (t,) in run(DirectionModel("uplink", NetworkProfile(delay_ms=50, jitter_ms=40), seed=6), 20_000)]
    assert max(spread) - min(spread) > 0.1  # and the delay still varies a lot


def test_reordering_when_asked():
    loop = VirtualLoop()
    delivered: list[bytes] = []
    model = DirectionModel("uplink", NetworkProfile(delay_ms=30, reorder=0.1, reorder_ms=40), seed=7)
    line = DeliveryLine(model, lambda batch: delivered.extend(d for d, _ in batch), loop)
    for i in range(20_000):
        loop.run_until(i * PERIOD)
        delivered.extend(d for d, _ in line.submit(i.to_bytes(4, "big")))
    loop.run_until(20_000 * PERIOD + 1)
    order = [int.from_bytes(d, "big") for d in delivered]
    assert sorted(order) == list(range(20_000))  # nothing lost, nothing invented
    highest, overtaken = -1, 0
    for seq in order:
        overtaken += seq < highest
        highest = max(highest, seq)
    counters = model.counters.snapshot()
    assert counters.reordered == overtaken
    assert overtaken / 20_000 == pytest.approx(0.1, abs=0.01)  # held 40 ms at 20 ms spacing: each one is overtaken
    assert counters.delay_max_ms == pytest.approx(70.0)


# duplication and the rate cap --------------------------------------------------------------------------------------
def test_duplication_delivers_a_copy_right_after_the_original():
    model = DirectionModel("downlink", NetworkProfile(duplicate=0.05), seed=8)
    out = run(model, 50_000)
    copies = [times for _, times in out if len(times) == 2]
    assert len(copies) / 50_000 == pytest.approx(0.05, abs=0.004)
    assert all(a == b for a, b in copies)
    assert model.counters.duplicated == len(copies)


def test_rate_cap_serialises_and_its_full_queue_drops_the_tail():
    rate_kbps, size, queue = 64, 200, 5
    service = (size + IP_UDP_OVERHEAD) * 8 / (rate_kbps * 1000)  # 28.5 ms per datagram: more than the 20 ms spacing
    model = DirectionModel("uplink", NetworkProfile(rate_kbps=rate_kbps, queue_packets=queue), seed=9)
    out = run(model, 10_000, size=size)
    sent = [(s, t[0]) for s, t in out if t]
    departures = [t for _, t in sent]
    assert all(b - a >= service - 1e-9 for a, b in zip(departures, departures[1:]))  # never faster than the rate
    assert max(t - s for s, t in sent) <= queue * service + 1e-9  # the queue bounds the delay it adds
    assert model.counters.dropped_queue / 10_000 == pytest.approx(1 - PERIOD / service, abs=0.01)  # what cannot fit


def test_rate_queue_backlog_drains_at_the_rate():
    queue = RateQueue(bits_per_second=8_000, limit=3)  # 100 B + 28 B headers: 128 ms each
    assert [queue.enqueue(0.0, 100) for _ in range(4)] == [pytest.approx(0.128), pytest.approx(0.256), pytest.approx(0.384), None]
    assert queue.backlog(0.13) == 2 and queue.enqueue(0.13, 100) == pytest.approx(0.512)


# seeds and live changes --------------------------------------------------------------------------------------------
def test_a_seed_replays_the_run_and_each_process_keeps_its_own_stream():
    lossy = NetworkProfile(loss=0.1, burst_loss=0.05, burst_length=3)
    first = [bool(t) for _, t in run(DirectionModel("uplink", lossy, seed=10), 5000)]
    again = [bool(t) for _, t in run(DirectionModel("uplink", lossy, seed=10), 5000)]
    with_jitter = NetworkProfile(loss=0.1, burst_loss=0.05, burst_length=3, delay_ms=40, jitter_ms=30, duplicate=0.1)
    jittered = [bool(t) for _, t in run(DirectionModel("uplink", with_jitter, seed=10), 5000)]
    other_direction = [bool(t) for _, t in run(DirectionModel("downlink", lossy, seed=10), 5000)]
    assert first == again
    assert first == jittered  # adding delay, jitter and duplication leaves the loss pattern as it was
    assert first != other_direction  # the other direction draws from its own streams


def test_a_new_profile_applies_from_the_next_datagram_and_a_given_seed_restarts_the_streams():
    model = DirectionModel("uplink", NetworkProfile(loss=0.5), seed=11)
    before = [bool(t) for _, t in run(model, 100)]
    model.apply(NetworkProfile())  # perfect from now on
    assert all(model.admit(10.0 + i * PERIOD, 200) == (10.0 + i * PERIOD,) for i in range(100))
    model.apply(NetworkProfile(loss=0.5, seed=11))
    assert [bool(model.admit(20.0 + i * PERIOD, 200)) for i in range(100)] == before
    assert model.profile.seed == 11 and model.counters.datagrams == 300


def test_an_unseeded_model_picks_a_seed_it_shows():
    model = DirectionModel("uplink", NetworkProfile(loss=0.2))
    assert isinstance(model.profile.seed, int)
    replay = DirectionModel("uplink", NetworkProfile(loss=0.2, seed=model.profile.seed))
    assert [bool(t) for _, t in run(model, 500)] == [bool(t) for _, t in run(replay, 500)]


# the delivery line ---------------------------------------------------------------------------------------------------
class VirtualLoop:
    """An event loop's clock and timers for the delivery line (asyncio's loop is not ours; this stands in for it)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, Callable[[], None], list[bool]]] = []
        self._count = 0
        self.armed = 0

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> "VirtualTimer":
        cancelled = [False]
        self._count += 1
        self.armed += 1
        heapq.heappush(self._timers, (when, self._count, callback, cancelled))
        return VirtualTimer(cancelled)

    def run_until(self, t: float) -> None:
        while self._timers and self._timers[0][0] <= t:
            when, _, callback, cancelled = heapq.heappop(self._timers)
            if not cancelled[0]:
                self.now = max(self.now, when)
                callback()
        self.now = t


class VirtualTimer:
    def __init__(self, cancelled: list[bool]) -> None:
        self._cancelled = cancelled

    def cancel(self) -> None:
        self._cancelled[0] = True


def test_due_datagrams_go_out_at_once_and_delayed_ones_in_order_in_batches():
    loop = VirtualLoop()
    batches: list[list[bytes]] = []
    model = DirectionModel("downlink", NetworkProfile(delay_ms=50, jitter_ms=30), seed=12)
    line = DeliveryLine(model, lambda batch: batches.append([d for d, _ in batch]), loop)
    for i in range(500):
        loop.run_until(i * PERIOD)
        due = line.submit(i.to_bytes(2, "big"))  # a draw truncated at 0 ms is due at once: the caller sends it
        if due:
            batches.append([d for d, _ in due])
    loop.run_until(100.0)
    order = [int.from_bytes(d, "big") for batch in batches for d in batch]
    assert order == list(range(500))  # equal delivery times (order raised a delay) keep the send order
    assert any(len(batch) > 1 for batch in batches)  # bunched datagrams go out together, on one timer
    assert loop.armed <= 500
    counters = model.counters.snapshot()
    assert counters.delivered == 500 and counters.pending == 0 and counters.reordered == 0
    assert counters.delay_mean_ms > 50 and counters.jitter_ms > 5
    assert counters.delay_histogram.count == 500

    duplicating = DirectionModel("uplink", NetworkProfile(duplicate=1.0), seed=13)
    timed: list[bytes] = []
    undelayed = DeliveryLine(duplicating, lambda batch: timed.extend(d for d, _ in batch), loop)
    armed = loop.armed
    assert undelayed.submit(b"\x80now", 1) == [(b"\x80now", 1), (b"\x80now", 1)]  # due at once: the caller sends it
    assert undelayed.idle and timed == [] and loop.armed == armed  # no timer, nothing held


def test_leaving_cancels_what_is_in_flight_and_the_counts_add_up():
    loop = VirtualLoop()
    delivered: list[bytes] = []
    profile = NetworkProfile(delay_ms=200, loss=0.1, burst_loss=0.05, duplicate=0.1, rate_kbps=64, queue_packets=8)
    model = DirectionModel("uplink", profile, seed=14)
    line = DeliveryLine(model, lambda batch: delivered.extend(d for d, _ in batch), loop)
    for i in range(300):
        loop.run_until(i * PERIOD)
        delivered.extend(d for d, _ in line.submit(b"\x80" * 200))
    line.close()
    assert line.submit(b"\x80late") == []  # after leaving: ignored
    loop.run_until(100.0)
    c = model.counters.snapshot()
    assert c.cancelled > 0 and c.pending == 0 and c.delivered == len(delivered)
    assert c.datagrams + c.duplicated == c.delivered + c.dropped + c.pending + c.cancelled
    assert c.dropped_queue > 0 and c.dropped_random > 0 and c.dropped_burst > 0


def test_a_direction_holds_a_bounded_number_of_datagrams():
    loop = VirtualLoop()
    model = DirectionModel("uplink", NetworkProfile(delay_ms=5000), seed=15)
    line = DeliveryLine(model, lambda batch: None, loop)
    for _ in range(MAX_IN_FLIGHT + 500):
        line.submit(b"\x80")
    c = model.counters.snapshot()
    assert c.pending == MAX_IN_FLIGHT and c.dropped_queue == 500
    assert math.isclose(c.loss_ratio, 500 / (MAX_IN_FLIGHT + 500))
