"""`mediamute bench --sweep`: the parameter and its points' network specs, the CSV and the plot on crafted rows, the
failure said loudly when a point leaked a frame, and one tiny sweep through the real CLI (two points of a 3-party
call, about a second each: it checks the files and the mute promise, not the machine's speed)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import matplotlib.image
import pytest

from mediamute.benchmark.measures import POINT_MEASURES, point_measures
from mediamute.benchmark.profiles import with_field, with_seed
from mediamute.benchmark.sweep import parse_sweep, plot_sweep, summary_table, verdict, write_csv
from mediamute.media.netem import parse_network

CLI = [sys.executable, "-m", "mediamute.cli"]


def test_a_sweep_is_one_named_parameter_and_two_to_twelve_distinct_values():
    sweep = parse_sweep("loss=0,1,2,5,10")
    assert sweep.name == "loss" and sweep.values == (0, 1, 2, 5, 10) and sweep.column == "loss_percent"
    assert parse_sweep("jitter=0, 20,40").column == "jitter_ms"
    for bad, says in (("jitter", "NAME=V1"), ("speed=1,2", "NAME=V1"), ("jitter=1", "2 to 12"),
                      ("jitter=a,b", "numbers"), ("loss=1,1", "distinct"), ("delay=-5,5", "not negative")):
        with pytest.raises(ValueError, match=says):
            parse_sweep(bad)


def test_each_point_sets_the_field_on_the_base_in_every_direction_it_names():
    loss = parse_sweep("loss=0,5")
    assert json.loads(loss.network("wifi", 5)) == {"preset": "wifi", "loss": 0.05}  # percent → fraction
    assert json.loads(parse_sweep("jitter=0,40").network(None, 40)) == {"jitterMs": 40}  # on a perfect network
    spec = parse_sweep("burst=0,2").network('{"uplink": "lossy", "downlink": {"delayMs": 30}}', 2)
    assert json.loads(spec) == {"uplink": {"preset": "lossy", "burstLoss": 0.02}, "downlink": {"delayMs": 30, "burstLoss": 0.02}}
    parsed = parse_network(with_seed(spec, 7))  # what the server is given parses, seeded per direction
    assert parsed.uplink.seed == parsed.downlink.seed == 7 and parsed.uplink.burst_loss == 0.02
    assert json.loads(with_field('{"preset": "4g", "seed": 3}', "reorder", 0.1)) == {"preset": "4g", "seed": 3, "reorder": 0.1}


def _row(value: float, leaked: int | None) -> dict:
    results = {
        "mouth_to_ear_playout_ms": {"p50": 60.0 + value, "n": 20}, "jitter_buffer": {"target_delay_ms": value},
        "receive": {"server_all": {"concealed_share": 0.01 * value / 40}, "probe_delays": {"target_ms": value / 2}},
        "server_mute_after_op_ms": {"p50": 9.0, "p95": 15.0, "n": 5}, "late_ticks": 0,
    }
    if leaked is not None:
        results.update(mutes=5, leaked_frames=leaked)
    return {"jitter_ms": value, "network": json.dumps({"jitterMs": value}), **point_measures(results)}


def test_the_csv_has_a_row_per_point_and_every_measure_and_the_plot_shows_a_leak_in_red(tmp_path):
    sweep = parse_sweep("jitter=0,20,40")
    rows = [_row(0, 0), _row(20, 2), _row(40, None)]
    write_csv(sweep, rows, tmp_path / "sweep.csv")
    with (tmp_path / "sweep.csv").open() as handle:
        read = list(csv.DictReader(handle))
    assert list(read[0]) == ["jitter_ms", "network", *POINT_MEASURES]
    assert [r["leaked_frames"] for r in read] == ["0.0", "2.0", ""]  # not measured: empty, not 0
    assert float(read[2]["mouth_to_ear_playout_p50_ms"]) == 100.0 and read[1]["probe_jb_target_ms"] == "10.0"
    image = matplotlib.image.imread(plot_sweep(sweep, rows, "crafted", tmp_path / "sweep.png"))
    assert image.shape[:2] == (1000, 1000)
    red = (image[..., 0] > 0.8) & (image[..., 1] < 0.25) & (image[..., 2] < 0.25)
    assert red.sum() > 200  # the leaking point's bar and the failed verdict
    table = summary_table(sweep, rows)
    assert [c.header for c in table.columns] == ["measure", "0 ms", "20 ms", "40 ms"]
    ok, message = verdict(sweep, rows)  # what the CLI prints, exiting 1
    assert not ok and "jitter=20 (2 frames)" in message
    assert verdict(sweep, rows[:1]) == (True, "0 leaked frames at every point (1 point)")
    assert verdict(sweep, [rows[0], rows[2]])[1] == "FAIL: the mute promise was not checked at jitter=40 (no mute completed)"


@pytest.mark.integration
def test_a_tiny_sweep_through_the_cli_writes_its_csv_and_plot_and_checks_every_point(tmp_path):
    out = tmp_path / "sweep"
    done = subprocess.run(
        [*CLI, "bench", "-n", "3", "--duration", "1.2", "--warmup", "0.5", "--mute-cycles", "1",
         "--sweep", "jitter=0,40", "--network-role", "probe", "--out", str(out)],
        capture_output=True, text=True, timeout=90,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "0 leaked frames at every point" in done.stdout
    with (out / "sweep.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["jitter_ms"]) for r in rows] == [0.0, 40.0]
    assert list(rows[0]) == ["jitter_ms", "network", *POINT_MEASURES]
    assert [json.loads(r["network"]) for r in rows] == [{"jitterMs": 0}, {"jitterMs": 40}]
    assert all(r["leaked_frames"] == "0.0" and r["mutes"] == "1.0" for r in rows)  # the promise checked at each point
    assert all(float(r["mouth_to_ear_arrival_p50_ms"]) > 0 for r in rows)
    image = matplotlib.image.imread(out / "sweep.png")
    assert image.shape[:2] == (1000, 1000) and image.std() > 0.05
    point = json.loads((out / "point-2.json").read_text())
    assert point["config"]["network"] == '{"jitterMs":40}' and point["config"]["network_roles"] == ["probe"]
    assert point["network"]["downlink"]["impairment"]["jitter_ms_p50"] > 5  # the probe's downlink was jittered
