"""`mediamute demo`: a self-explaining run of a scenario, live in the terminal, with a report and a timeline."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from .. import eventloop
from .model import DemoRun
from .report import write_outputs
from .runner import DemoRunner
from .scenario import DEFAULT_SCENARIO, Scenario, ScenarioError, load_scenario

__all__ = ["DEFAULT_SCENARIO", "DemoResult", "Scenario", "ScenarioError", "load_scenario", "play_demo"]


@dataclass
class DemoResult:
    report: dict[str, Any]
    """What report.json holds."""
    out: Path
    """The folder the outputs were written to."""


def default_out_dir() -> Path:
    return Path("out") / time.strftime("demo-%Y%m%d-%H%M%S")


async def _run(scenario: Scenario, console: Console, live: bool) -> DemoRun:
    if not live:
        return await DemoRunner(scenario).run()
    from .live import render

    # Redrawn from the event loop (no refresh thread competing for the GIL with the media threads).
    with Live(console=console, auto_refresh=False, transient=False) as view:
        runner = DemoRunner(scenario, on_update=lambda r: view.update(render(r), refresh=True))
        result = await runner.run()
        view.update(render(runner), refresh=True)
        return result


def play_demo(
    scenario: Scenario, out: Path | None = None, live: bool = True, max_mute_ms: float = 250.0, console: Console | None = None
) -> DemoResult:
    """Run `scenario` for real and write its outputs; the report's `ok` is the verdict."""
    console = console or Console()
    run = eventloop.run(_run(scenario, console, live))
    out = out or default_out_dir()
    report = write_outputs(run, out, max_mute_ms)
    return DemoResult(report=report, out=out)
