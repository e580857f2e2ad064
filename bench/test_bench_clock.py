"""The mix clock's own work per tick, around the handler: timing it into the tick-duration histogram and counting
it (`MixClock._fire` with a handler that does nothing), and the histogram's `observe` alone. Both must stay far
below a microsecond-scale share of the 20 ms period: /metrics reads the buckets at scrape time, not per tick."""

from mediamute.media.clock import DurationHistogram, MixClock


def test_clock_fire_with_noop_handler(benchmark):
    clock = MixClock(lambda deadline: None)
    benchmark(clock._fire, 0.0)
    assert clock.tick_durations().count == clock.ticks > 0


def test_duration_histogram_observe(benchmark):
    histogram = DurationHistogram()
    benchmark(histogram.observe, 0.0004)
    assert histogram.snapshot().counts[2] == histogram.snapshot().count > 0
