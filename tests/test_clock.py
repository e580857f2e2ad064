import asyncio
import time

from mediamute.media.clock import MixClock


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
