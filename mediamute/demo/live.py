"""The demo's live terminal view (rich): roster with mute state (and who talks while muted), level meters of what
the server receives and what it mixes, gate drop counters, and the notifications as the callback receives them."""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..calls.stats import ParticipantStats
from .callbacks import summarize
from .runner import DemoRunner

METER_WIDTH = 18
FLOOR_DB = -60.0


def meter(db: float | None, color: str) -> Text:
    """A bar for a level in dB (-60..0); empty when there is nothing."""
    if db is None or db <= FLOOR_DB:
        return Text("·" * METER_WIDTH, style="grey30")
    filled = int(round((min(db, 0.0) - FLOOR_DB) / -FLOOR_DB * METER_WIDTH))
    return Text("█" * filled, style=color) + Text("·" * (METER_WIDTH - filled), style="grey30")


def state_badge(entry: ParticipantStats) -> Text:
    if entry.server_muted and entry.talking.talking:
        return Text(" MUTED BY SERVER ", style="bold white on red3") + Text(" talking ", style="bold black on orange1")
    if entry.server_muted:
        return Text(" MUTED BY SERVER ", style="bold white on red3")
    if entry.self_muted:
        return Text(" self-muted ", style="black on yellow")
    return Text(" live ", style="bold black on green3")


def _header(runner: DemoRunner) -> Group:
    scenario = runner.scenario
    elapsed = runner.elapsed()
    header = Table.grid(expand=True)
    header.add_column(ratio=3)
    header.add_column(ratio=2)
    header.add_row(
        Text(f"mediamute demo — {scenario.title}", style="bold"),
        Text(f"{runner.phase} · {elapsed:5.1f} / {scenario.duration:.0f} s", justify="right"),
    )
    return Group(header, ProgressBar(total=scenario.duration, completed=min(elapsed, scenario.duration)))


def _script(runner: DemoRunner) -> Table:
    """The last actions done (with their HTTP answers and times), and the next one."""
    actions = Table.grid(padding=(0, 1))
    for result in runner.actions[-4:]:
        label = result.spec.label or f"{result.spec.action} {result.target}"
        status = "done" if result.status is None else f"HTTP {result.status}"
        style = "green" if result.ok else "bold red"
        actions.add_row(
            Text(f"{result.spec.at:5.1f}s", style="grey50"),
            Text(label),
            Text(f"{status} in {(result.answered_at - result.sent_at) * 1000:.0f} ms", style=style),
        )
    done = len(runner.actions)
    for action in runner.scenario.actions[done : done + 1]:
        actions.add_row(Text(f"{action.at:5.1f}s", style="grey50"), Text(action.label or action.action, style="grey50"), Text("next", style="grey50"))
    return actions


def _roster(runner: DemoRunner) -> Table:
    roster = Table(expand=True, box=None, pad_edge=False)
    roster.add_column("participant", style="bold", min_width=12)
    roster.add_column("state", min_width=27)
    roster.add_column("server receives", min_width=METER_WIDTH)
    roster.add_column("server mixes", min_width=METER_WIDTH)
    roster.add_column("gate dropped", justify="right")
    for entry in runner.live_stats():
        name = entry.display_name + (" (app)" if entry.kind == "application" else "")
        dropped = entry.gate.dropped_packets
        roster.add_row(
            name,
            state_badge(entry),
            meter(entry.received_level_dbov, "cyan"),
            meter(entry.mixed_level_dbfs, "green3" if not entry.server_muted else "red3"),
            Text(f"{dropped:,} pkts", style="bold red3" if dropped else "grey50"),
        )
    return roster


def _notifications(runner: DemoRunner) -> Table:
    """The last notifications the callback received, with their signature check."""
    notes = Table.grid(padding=(0, 1))
    for entry in runner.sink.received[-7:]:
        note = entry.notification
        mark = Text("✓ signed", style="green") if entry.verified else Text("✗ unsigned", style="red")
        notes.add_row(
            Text(f"{entry.at - runner.t0:5.2f}s" if runner.t0 else "  —  ", style="grey50"),
            Text(note.get("changeType", ""), style="magenta"),
            Text("participants" if note.get("resourceUrl", "").endswith("/participants") else "call"),
            Text(summarize(note)),
            mark,
        )
    return notes


def render(runner: DemoRunner) -> Group:
    """One frame of the live view."""
    return Group(
        Panel(_header(runner), border_style="blue"),
        Panel(_script(runner), title="script", border_style="blue"),
        Panel(_roster(runner), title="roster", border_style="blue"),
        Panel(_notifications(runner), title="notifications at the callback (commsNotifications)", border_style="blue"),
    )
