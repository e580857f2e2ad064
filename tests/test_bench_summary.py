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
def test_the_windows_receive_figures_are_the_counters_difference_and_fec_is_judged_on_the_voiced_talkers():
    from mediamute.benchmark.measures import server_receive

    members = [{"id": "m", "role": "marker"}, {"id": "t", "role": "target"}, {"id": "k", "role": "talker"}]
    start = {"m": {"packets": 100, "single_losses": 5}, "t": {"packets": 100, "fec_packets": 100, "single_losses": 1}}
    end = {
        "m": {"packets": 600, "single_losses": 9, "concealed": 9, "decoded": 590},
        "t": {"packets": 600, "fec_packets": 600, "decoded": 495, "recovered": 4, "concealed": 1, "single_losses": 5,
              "single_recovered": 4, "burst_losses": 2},
        "k": {"packets": 500, "fec_packets": 500, "decoded": 500},  # joined in the window: all of it counts
    }
    voiced = server_receive(start, end, members, ("target", "talker"))
    assert voiced["packets"] == 1000 and voiced["fec_packet_share"] == 1.0
    assert (voiced["single_losses"], voiced["single_recovered"], voiced["burst_losses"]) == (4, 4, 2)
    assert voiced["single_recovered_share"] == 1.0 and voiced["frames"] == 1000
    everyone = server_receive(start, end, members)
    assert everyone["single_losses"] == 8 and everyone["single_recovered_share"] == 0.5  # the marker's silences
    assert everyone["concealed"] == 10 and everyone["concealed_share"] == pytest.approx(10 / 1599)


def test_continuity_finds_the_longest_stretch_without_the_streams_audio_and_the_tones_longest_dropout():
    from mediamute.benchmark.clients import CONCEALED, NOTHING, PLAYED, RECOVERED
    from mediamute.benchmark.measures import probe_continuity

    kinds = [PLAYED] * 10 + [CONCEALED, CONCEALED, RECOVERED] + [PLAYED] * 5 + [NOTHING] + [PLAYED] * 5
    amps = [float(LOUD)] * len(kinds)
    amps[11] = amps[12] = 0.1 * LOUD  # the concealment faded the tone for two frames
    c = probe_continuity({"kinds": kinds, f"amp_{int(TARGET_HZ)}": amps}, f"amp_{int(TARGET_HZ)}")
    assert (c["ticks"], c["recovered"], c["concealed"], c["nothing"]) == (24, 1, 2, 1)
    assert c["longest_invented_ms"] == pytest.approx(40.0) and c["longest_silence_ms"] == pytest.approx(20.0)
    assert c["longest_dropout_ms"] == pytest.approx(40.0)


def test_mouth_to_ear_is_judged_beyond_the_profiles_fixed_delay_against_40_ms_and_both_buffers_targets():
    from mediamute.benchmark.measures import base_delays_ms
    from mediamute.benchmark.run import mouth_to_ear_budget

    assert base_delays_ms("wifi", ("marker", "probe")) == (60.0, 60.0)
    assert base_delays_ms('{"uplink": {"delayMs": 30}}', ("marker", "probe")) == (30.0, 0.0)
    assert base_delays_ms("wifi", ("talker",)) == (0.0, 0.0) and base_delays_ms(None, ("marker",)) == (0.0, 0.0)
    results = {"receive": {"marker_delays": {"target_ms": 50.0}, "probe_delays": {"target_ms": 45.0}},
               "mouth_to_ear_playout_ms": {"p50": 290.0, "n": 30}}
    budget = mouth_to_ear_budget(BenchConfig(network="wifi"), results)
    assert budget == {"base_delay_ms": 120.0, "budget_ms": 135.0, "beyond_base_p50_ms": 170.0, "met": False}


def test_the_summary_counts_the_frames_leaked_after_each_mute_and_the_table_says_so():
    cycles = MuteCycles(
        requests=[(1.0, "mute"), (1.5, "unmute"), (2.0, "mute"), (2.5, "unmute")],
        server={"server_mute_after_op_ms": {"p50": 8.0, "p95": 14.0, "n": 2}, "leaked_frames": [0, 2]},
        heard={"probe": None}, answered={"mute": [0.003, 0.004], "unmute": [0.005, 0.006]},
    )
    results = summarise(BenchConfig(), steady([(0.0, MB), (20.0, MB)], 20.0), cycles)
    assert results["mutes"] == 2 and results["leaked_frames"] == 2
    table = results_table(results)
    row = table.columns[0].cells
    values = list(table.columns[1].cells)
    leaked = values[list(row).index("frames of a muted participant mixed after the gate closed")]
    assert "2 in 2 mutes" in leaked and "red" in leaked


def test_the_bench_server_sees_a_pulled_streams_first_frame_after_an_unmute():
    """A receive path's frames reach the inbox at the tick (pulled, not pushed): the bench still records when a
    participant's stream resumed, from its packets' arrivals, so an unmute's parts can be measured."""
    from pyee import EventEmitter

    from mediamute.benchmark.server import RESUMED_AFTER, record_arrivals
    from mediamute.calls.call import Call, CallOptions
    from mediamute.calls.model import Participant
    from mediamute.media.audio import FRAME_SAMPLES, FRAME_SECONDS
    from mediamute.media.mixer import PulledFrame

    class Source:  # a receive path with a packet that arrived 5 ms before each tick
        def pull(self, at, now=None):
            return PulledFrame(np.full(FRAME_SAMPLES, 100, dtype=np.int16), at - 0.005)

    class Session:
        frame_source = Source()

    now = [100.0]
    call = Call(CallOptions(), EventEmitter(), clock=lambda: now[0])
    talker = call.join(Participant("talker"), sink=None, media=Session())
    arrivals = record_arrivals(call)

    def ticks(count):
        for _ in range(count):
            now[0] += FRAME_SECONDS
            call.mixer.tick(now[0])

    ticks(5)
    call.mute(talker.id)
    ticks(int(2 * RESUMED_AFTER / FRAME_SECONDS))
    call.unmute(talker.id)
    resumed = now[0] + FRAME_SECONDS - 0.005
    ticks(3)
    assert list(arrivals[talker.id]) == [pytest.approx(100.0 + FRAME_SECONDS - 0.005), pytest.approx(resumed)]
