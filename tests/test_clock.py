import asyncio
import math
import time

import pytest

from mediamute.media.clock import TICK_DURATION_BOUNDS, DurationHistogram, MixClock


async def test_ticks_on_absolute_deadlines_without_drift():
    deadlines: list[float] = []
    enough = asyncio.Event()

    def on_tick(deadline: float) -> None:
        deadlines.append(deadline)
        if len(deadlines) == 25:
            enough.set()

    clock = MixClock(on_tick)
    clock.start()
    async with asyncio.timeout(5):
        await enough.wait()
    await clock.stop()
    steps = [b - a for i, (a, b) in enumerate(zip(deadlines, deadlines[1:24])) if clock.lateness[i + 1] <= 0.02]
    assert len(steps) > 10
    assert all(abs(step - 0.02) < 1e-9 for step in steps)  # deadlines, not "sleep 20 ms after each tick"


async def test_a_stalled_loop_counts_a_late_tick_and_resynchronises():
    deadlines: list[float] = []
    done = asyncio.Event()

    def on_tick(deadline: float) -> None:
        deadlines.append(deadline)
        if len(deadlines) == 3:
            time.sleep(0.07)  # deliberately block the event loop, as a slow handler would
        if len(deadlines) == 8:
            done.set()

    clock = MixClock(on_tick)
    clock.start()
    async with asyncio.timeout(5):
        await done.wait()
    await clock.stop()
    # the tick after the stall woke >= 40 ms late and was counted (others may be late too on a loaded machine)
    assert clock.lateness[3] >= 0.04
    assert clock.late_ticks >= 1
    # no burst of catch-up ticks: the deadline after the stall restarts from "now", then steps 20 ms again
    assert deadlines[3] - deadlines[2] >= 0.06
    after = [b - a for i, (a, b) in enumerate(zip(deadlines[3:], deadlines[4:])) if clock.lateness[i + 4] <= 0.02]
    assert after and all(abs(step - 0.02) < 1e-9 for step in after)


def test_duration_histogram_buckets_are_inclusive_upper_bounds():
    histogram = DurationHistogram((0.001, 0.005, 0.02))
    for seconds in (0.0002, 0.001, 0.0011, 0.005, 0.019, 0.02, 0.021, 1.0):
        histogram.observe(seconds)
    snapshot = histogram.snapshot()
    assert snapshot.counts == (2, 2, 2, 2)  # (.., 1 ms], (1, 5 ms], (5, 20 ms], above 20 ms
    assert snapshot.count == 8
    assert snapshot.total == pytest.approx(1.0673)
    assert snapshot.cumulative() == [(0.001, 2), (0.005, 4), (0.02, 6), (math.inf, 8)]
    with pytest.raises(ValueError):
        DurationHistogram((0.005, 0.001))


class HandlerTimedClock:
    """A monotonic clock that stands still except when a tick handler moves it: each tick then takes exactly the
    time the test chose, whatever the machine's load."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_clock_times_every_tick_handler_into_its_histogram():
    took = [0.00005, 0.0003, 0.0007, 0.003, 0.004, 0.015, 0.03, 0.2]  # seconds on the injected clock
    manual = HandlerTimedClock()
    done = asyncio.Event()
    ticks = 0

    def on_tick(_deadline: float) -> None:
        nonlocal ticks
        manual.now += took[ticks] if ticks < len(took) else 0.0  # a tick may run before stop() lands
        ticks += 1
        if ticks == 3:
            raise RuntimeError("a broken tick is timed and counted too")
        if ticks == len(took):
            done.set()

    clock = MixClock(on_tick, period=0.002, clock=manual)
    clock.start()
    async with asyncio.timeout(5):
        await done.wait()
    await clock.stop()
    snapshot = clock.tick_durations()
    assert snapshot.bounds == TICK_DURATION_BOUNDS
    assert snapshot.count == clock.ticks == ticks >= len(took)
    took += [0.0] * (ticks - len(took))
    expected = [0] * (len(TICK_DURATION_BOUNDS) + 1)
    for seconds in took:
        expected[next((i for i, bound in enumerate(TICK_DURATION_BOUNDS) if seconds <= bound), len(TICK_DURATION_BOUNDS))] += 1
    assert list(snapshot.counts) == expected
    assert snapshot.counts[-1] == 1  # 200 ms: above every bound
    assert snapshot.total == pytest.approx(sum(took))
