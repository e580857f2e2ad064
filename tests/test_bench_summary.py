"""`mediamute bench`'s summary of a run: the memory-over-time figures and the mute latencies it derives.

Pure data in, figures out (the live run itself is a benchmark, not a test: see bench/README.md)."""

from __future__ import annotations

import numpy as np
import pytest

from mediamute.benchmark.clients import LOUD, TARGET_HZ
from mediamute.benchmark.stats import SampleRing
from mediamute.benchmark.run import (
    BenchConfig,
    MuteCycles,
    SteadyWindow,
    probe_action_latencies,
    results_table,
    rss_at,
    rss_growth_after,
    summarise,
)

MB = 1_000_000


def steady(rss_samples: list[tuple[float, int]], seconds: float) -> SteadyWindow:
    return SteadyWindow(
        seconds=seconds, server_cpu_percent=32.0, client_cpu_percent=18.0, machine_busy_percent=40.0,
        rss_samples=rss_samples, server={"late_ticks": 0}, heard={"probe": None, "marker_times": []},
    )


def test_rss_growth_counts_only_after_the_first_minute():
    samples = [(0.0, 100 * MB), (30.0, 110 * MB), (60.0, 120 * MB), (300.0, 120 * MB), (600.0, 121 * MB)]
    assert rss_growth_after(samples, 60.0) == 1 * MB
    assert rss_at(samples, 60.0) == 120 * MB and rss_at(samples, 299.0) == 120 * MB
    assert rss_at(samples, 10_000.0) == 121 * MB  # past the end: the last sample
    assert rss_growth_after(samples[:2], 60.0) is None  # a short window says nothing about leveling off


def test_summary_reports_rss_over_time_and_the_table_shows_minutes():
    samples = [(0.0, 100 * MB)] + [(10.0 * k, 118 * MB + k * 1000) for k in range(1, 61)]
    results = summarise(BenchConfig(participants=16, duration=600.0), steady(samples, 600.0), None)
    assert results["rss_start_bytes"] == 100 * MB and results["rss_end_bytes"] == samples[-1][1]
    assert results["rss_samples"] == samples
    assert results["rss_growth_after_first_minute_bytes"] == (60 - 6) * 1000
    assert results["server_cpu_percent_per_participant"] == pytest.approx(2.0)
    rows = set(results_table(results).columns[0].cells)
    assert "server RSS at 1 / 5 / 10 min MB" in rows and "server RSS growth after the first minute MB" in rows


def test_probe_latencies_find_the_frame_where_the_tone_goes_and_comes_back():
    times = np.arange(0.0, 2.0, 0.02)
    amps = np.where((times >= 0.52) & (times < 1.26), 0.0, float(LOUD))  # tone gone from 0.52 s to 1.26 s
    probe = {"times": times.tolist(), f"amp_{int(TARGET_HZ)}": amps.tolist()}
    out = probe_action_latencies(probe, [(0.5, "mute"), (1.2, "unmute")], int(TARGET_HZ))
    assert out["mute"] == [pytest.approx(0.02)] and out["unmute"] == [pytest.approx(0.06)]


def test_summary_carries_the_mute_cycle_figures():
    cycles = MuteCycles(
        requests=[(1.0, "mute")],
        server={"server_mute_ms": {"p50": 12.0, "n": 1}, "server_unmute_ms": {"p50": 15.0, "n": 1}},
        heard={"probe": None},
        answered={"mute": [0.002, 0.004, 0.003], "unmute": [0.005]},
    )
    results = summarise(BenchConfig(), steady([(0.0, MB), (20.0, MB)], 20.0), cycles)
    assert results["server_mute_ms"]["p50"] == 12.0 and results["server_unmute_ms"]["p50"] == 15.0
    assert results["mute_answer_ms"]["p50"] == pytest.approx(3.0) and results["unmute_answer_ms"]["p50"] == pytest.approx(5.0)
    assert results["rss_growth_after_first_minute_bytes"] is None


def test_sample_ring_keeps_the_latest_samples_oldest_first_in_fixed_memory():
    ring = SampleRing(5)
    ring.extend([1.0, 2.0, 3.0])
    assert list(ring) == [1.0, 2.0, 3.0]
    ring.extend(x for x in (4.0, 5.0, 6.0, 7.0))  # the mixer hands it a generator
    assert list(ring) == [3.0, 4.0, 5.0, 6.0, 7.0] and len(ring) == 5
    ring.extend(float(x) for x in range(10, 20))  # more than fits at once: the latest five
    assert list(ring) == [15.0, 16.0, 17.0, 18.0, 19.0]
    ring.clear()
    assert list(ring) == [] and len(ring) == 0
    ring.extend([0.5])
    assert list(ring) == [0.5] and ring._data.nbytes == 5 * 8


def test_a_target_gone_mid_cycles_is_reported_not_fatal():
    cycles = MuteCycles(
        requests=[(1.0, "mute")], server={"participants": 15}, heard={"probe": None},
        answered={"mute": [0.002], "unmute": []}, failures=["unmute: 404 Participant p not found in this call."],
    )
    results = summarise(BenchConfig(participants=16), steady([(0.0, MB), (20.0, MB)], 20.0), cycles)
    assert results["mute_cycle_failures"] == ["unmute: 404 Participant p not found in this call."]
    assert results["participants_at_end"] == 15
    assert "mute cycles stopped early" in set(results_table(results).columns[0].cells)
