"""`mediamute bench --sweep jitter=0,20,40,80`: one bench per value of one network parameter, a CSV and a plot.

Each point is a whole `mediamute bench` run (its own server and clients, the same N, window and mute cycles) whose
network is the base (`--network`, or a perfect network) with the swept field set to the point's value, on the
chosen roles. Every point seeds participant i's network with the same seed (`BenchConfig.network_seed` + i), so
the points differ by the swept parameter, not by their draws (the impairment keeps each process on its own
stream: changing the jitter leaves the loss pattern as it was). The mute promise is checked at every point: a frame
of a muted participant in any mix after its gate closed is a failure of the sweep (exit code 1).

Writes `<out>/sweep.csv` (one row per point: the value, the point's network spec, every measure of
`measures.POINT_MEASURES`), `<out>/sweep.png` (latency, then loss handling, then leaked frames, against the value)
and each point's full results as `<out>/point-<n>.json`.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .measures import POINT_MEASURES, point_measures
from .profiles import with_field
from .run import BenchConfig, run_bench


@dataclass(frozen=True)
class Parameter:
    """A sweepable parameter: its profile field, the unit values are given in, and how a value becomes the field's."""

    field: str
    unit: str
    scale: float
    """The field's value = the given value × scale (percentages become fractions)."""


PARAMETERS: dict[str, Parameter] = {
    "jitter": Parameter("jitterMs", "ms", 1.0),
    "delay": Parameter("delayMs", "ms", 1.0),
    "loss": Parameter("loss", "%", 0.01),
    "burst": Parameter("burstLoss", "%", 0.01),
    "reorder": Parameter("reorder", "%", 0.01),
}
"""What `--sweep NAME=V1,V2,...` may sweep (README: Network impairment gives each field's meaning and range)."""
MAX_POINTS = 12
"""A sweep is bounded: each point is a whole bench run."""


@dataclass(frozen=True)
class Sweep:
    name: str
    values: tuple[float, ...]

    @property
    def parameter(self) -> Parameter:
        return PARAMETERS[self.name]

    @property
    def column(self) -> str:
        """The CSV column of the swept value, with its unit."""
        return f"{self.name}_{'percent' if self.parameter.unit == '%' else self.parameter.unit}"

    def network(self, base: str | None, value: float) -> str:
        """The point's network spec: `base` with the swept field set."""
        field_value = value * self.parameter.scale
        return with_field(base, self.parameter.field, int(field_value) if field_value.is_integer() else field_value)


def parse_sweep(text: str) -> Sweep:
    """`NAME=V1,V2,...` → a Sweep; ValueError saying what is wrong."""
    name, sep, listed = text.partition("=")
    name = name.strip()
    if not sep or name not in PARAMETERS:
        raise ValueError(f"a sweep is NAME=V1,V2,... with NAME one of {', '.join(PARAMETERS)}, not {text!r}")
    try:
        values = tuple(float(v) for v in listed.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"sweep values must be numbers, not {listed!r}") from None
    if not 2 <= len(values) <= MAX_POINTS:
        raise ValueError(f"a sweep needs 2 to {MAX_POINTS} values, not {len(values)}")
    if len(set(values)) != len(values) or any(v < 0 or not math.isfinite(v) for v in values):
        raise ValueError(f"sweep values must be distinct and not negative: {listed!r}")
    return Sweep(name, values)


def write_csv(sweep: Sweep, rows: list[dict[str, Any]], path: Path) -> None:
    columns = [sweep.column, "network", *POINT_MEASURES]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})


LATENCY_LINES = (
    ("mouth_to_ear_arrival_p50_ms", "mouth-to-ear at the probe's RTP arrival, p50"),
    ("mouth_to_ear_playout_p50_ms", "mouth-to-ear at the probe's playout, p50"),
    ("server_jb_target_ms", "server jitter buffer target"),
    ("probe_jb_target_ms", "probe jitter buffer target"),
    ("server_mute_p50_ms", "server mute: gate closed → first mix without, p50"),
    ("probe_mute_p50_ms", "mute heard at the probe (RTP arrival), p50"),
)
LOSS_LINES = (
    ("server_concealed_share", "server: frames concealed"),
    ("probe_concealed_share", "probe: frames concealed"),
    ("server_single_recovered_share", "server: single losses rebuilt by FEC"),
    ("uplink_loss_rtcp", "uplink loss (RTCP)"),
    ("downlink_loss_rtcp", "downlink loss (RTCP)"),
)


def plot_sweep(sweep: Sweep, rows: list[dict[str, Any]], title: str, path: Path) -> Path:
    """Latency and concealment against the swept value (one line per measure), and the leaked frames per point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [row[sweep.column] for row in rows]
    fig, (latency, loss, leaks) = plt.subplots(
        3, 1, figsize=(10.0, 10.0), dpi=100, sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]}
    )

    def lines(ax: Any, measures: tuple[tuple[str, str], ...], scale: float) -> None:
        for key, label in measures:
            ys = [row.get(key) for row in rows]
            if any(y is not None for y in ys):
                ax.plot(x, [math.nan if y is None else y * scale for y in ys], marker="o", label=label)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")

    lines(latency, LATENCY_LINES, 1.0)
    latency.set_ylabel("ms")
    latency.set_title("latency", fontsize=10, loc="left")
    lines(loss, LOSS_LINES, 100.0)
    loss.set_ylabel("%")
    loss.set_title("loss and how it was met", fontsize=10, loc="left")
    leaked = [int(row.get("leaked_frames") or 0) for row in rows]
    measured = [row.get("leaked_frames") is not None for row in rows]
    colors = ["tab:red" if n else ("tab:green" if ok else "tab:gray") for n, ok in zip(leaked, measured)]
    width = 0.6 * min((b - a for a, b in zip(sorted(x), sorted(x)[1:])), default=1.0)
    leaks.bar(x, [max(n, 0.05) for n in leaked], width=width, color=colors)
    for xi, n, ok in zip(x, leaked, measured):
        leaks.annotate(str(n) if ok else "n/a", (xi, max(n, 0.05)), ha="center", va="bottom", fontsize=9)
    leaks.set_ylabel("frames")
    verdict = "0 at every point" if not any(leaked) and all(measured) else "FAILED: a muted participant was mixed"
    leaks.set_title(f"frames of a muted participant mixed after its gate closed — {verdict}", fontsize=10, loc="left",
                    color="tab:red" if any(leaked) else "black")
    leaks.set_ylim(0, max(1, max(leaked)) * 1.5)
    leaks.set_xlabel(f"{sweep.name} ({sweep.parameter.unit})")
    leaks.set_xticks(x)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path)
    plt.close(fig)
    return path


SUMMARY_ROWS = (
    ("mouth_to_ear_playout_p50_ms", "mouth-to-ear at the probe's playout p50 ms", "{:.1f}"),
    ("server_jb_target_ms", "server jitter buffer target ms", "{:.1f}"),
    ("probe_jb_target_ms", "probe jitter buffer target ms", "{:.1f}"),
    ("server_concealed_share", "server: frames concealed", "{:.1%}"),
    ("probe_concealed_share", "probe: frames concealed", "{:.1%}"),
    ("server_single_recovered_share", "server: single losses rebuilt by FEC", "{:.0%}"),
    ("server_mute_p50_ms", "server mute: gate closed → first mix without p50 ms", "{:.1f}"),
    ("late_ticks", "late ticks", "{:.0f}"),
    ("leaked_frames", "frames of a muted participant mixed", "{:.0f}"),
)


def summary_table(sweep: Sweep, rows: list[dict[str, Any]]) -> Table:
    """One column per point, one row per headline measure (the CSV has them all)."""
    table = Table(title=f"sweep of {sweep.name}")
    table.add_column("measure")
    for row in rows:
        table.add_column(f"{row[sweep.column]:g} {sweep.parameter.unit}", justify="right")
    for key, label, fmt in SUMMARY_ROWS:
        cells = ["n/a" if row.get(key) is None else fmt.format(row[key]) for row in rows]
        if key == "leaked_frames":
            cells = [f"[bold red]{c}[/]" if row.get(key) else c for c, row in zip(cells, rows)]
        table.add_row(label, *cells)
    return table


async def run_sweep(config: BenchConfig, sweep: Sweep, out: Path, console: Console | None = None) -> int:
    """Run every point, write the CSV, the plot and each point's JSON; 0 if no point leaked a frame, else 1."""
    console = console or Console()
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for index, value in enumerate(sweep.values):
        network = sweep.network(config.network, value)
        console.rule(f"point {index + 1}/{len(sweep.values)}: {sweep.name} = {value:g} {sweep.parameter.unit} → {network}")
        point = replace(config, network=network, json_path=out / f"point-{index + 1}.json")
        results = await run_bench(point, console)
        rows.append({sweep.column: value, "network": network, **point_measures(results)})
    write_csv(sweep, rows, out / "sweep.csv")
    roles = ", ".join(config.network_roles)
    title = (f"mediamute bench --sweep {sweep.name}={','.join(f'{v:g}' for v in sweep.values)} on "
             f"{config.network or 'perfect'} ({roles}); N={config.participants}, {config.duration:g} s per point, "
             f"seed {config.network_seed}")
    plot_sweep(sweep, rows, title, out / "sweep.png")
    console.print(summary_table(sweep, rows))
    console.print(f"sweep written to {out}/ (sweep.csv, sweep.png, point-*.json)")
    ok, message = verdict(sweep, rows)
    console.print(f"[bold {'green' if ok else 'red'}]{message}[/]")
    return 0 if ok else 1


def verdict(sweep: Sweep, rows: list[dict[str, Any]]) -> tuple[bool, str]:
    """The mute promise over the sweep: no frame of a muted participant mixed at any point, and checked at every one."""
    leaked = [(row[sweep.column], row["leaked_frames"]) for row in rows if row.get("leaked_frames")]
    unmeasured = [row[sweep.column] for row in rows if row.get("leaked_frames") is None]
    if leaked:
        return False, "FAIL: frames of a muted participant were mixed after its gate closed at " + ", ".join(
            f"{sweep.name}={v:g} ({int(n)} frames)" for v, n in leaked)
    if unmeasured:
        return False, "FAIL: the mute promise was not checked at " + ", ".join(
            f"{sweep.name}={v:g}" for v in unmeasured) + " (no mute completed)"
    return True, f"0 leaked frames at every point ({len(rows)} point{'s' if len(rows) != 1 else ''})"
