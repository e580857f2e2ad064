"""The network impairment's cost per datagram, per preset: the model's decision alone (`DirectionModel.admit`), and
the delivery line's round trip (decision, the heap, the timer, the hand-over), 20 ms of virtual time apart.

`perfect` is the floor of an engaged direction; a direction that is perfect costs nothing at all, because no hook
is installed on its packet path (rtc/impairment.py). The timer here is a heap standing in for asyncio's
`call_at` (which costs about the same: a handle and a heap push)."""

from __future__ import annotations

import heapq
from collections.abc import Callable

import pytest

from mediamute.media.netem import PRESETS, DeliveryLine, DirectionModel

PERIOD = 0.02
SIZE = 160  # an SRTP audio datagram of a 32 kbit/s Opus stream, roughly
PROFILES = ("perfect", "good", "wifi", "lossy", "congested")


class VirtualLoop:
    """`time()` and `call_at()` on a clock the benchmark moves; due timers run when it moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, Callable[[], None], list[bool]]] = []
        self._count = 0

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> "Timer":
        self._count += 1
        timer = Timer()
        heapq.heappush(self._timers, (when, self._count, callback, timer.cancelled))
        return timer

    def advance(self, step: float) -> None:
        self.now += step
        while self._timers and self._timers[0][0] <= self.now:
            _, _, callback, cancelled = heapq.heappop(self._timers)
            if not cancelled[0]:
                callback()


class Timer:
    def __init__(self) -> None:
        self.cancelled = [False]

    def cancel(self) -> None:
        self.cancelled[0] = True


@pytest.mark.parametrize("name", PROFILES)
def test_netem_model_admit(benchmark, name):
    model = DirectionModel("uplink", PRESETS[name].uplink, seed=1)
    clock = [0.0]

    def admit() -> tuple[float, ...]:
        clock[0] += PERIOD
        return model.admit(clock[0], SIZE)

    benchmark(admit)
    assert model.counters.datagrams > 100


@pytest.mark.parametrize("name", PROFILES)
def test_netem_line_round_trip(benchmark, name):
    loop = VirtualLoop()
    delivered = [0]

    def deliver(batch: list) -> None:
        delivered[0] += len(batch)

    line = DeliveryLine(DirectionModel("uplink", PRESETS[name].uplink, seed=1), deliver, loop)
    datagram = b"\x80" * SIZE

    def one() -> None:
        loop.advance(PERIOD)
        delivered[0] += len(line.submit(datagram))

    benchmark(one)
    counters = line.counters.snapshot()
    assert counters.delivered == delivered[0] > 100 and counters.pending < 100
