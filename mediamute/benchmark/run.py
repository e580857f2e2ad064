"""`mediamute bench`: orchestrates the server process and the clients process, measures, prints, writes JSON."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..analysis import marker_latencies, marker_onsets
from .clients import LOUD
from .procstat import CpuWindow, machine_times, rss_bytes
from .stats import percentiles_ms

Scenario = Literal["all-talking", "few-talking"]
CLIENT_START_TIMEOUT = 120.0


@dataclass
class BenchConfig:
    participants: int = 8
    duration: float = 20.0
    """Seconds of the steady window over which CPU, latency and tick figures are taken."""
    scenario: Scenario = "all-talking"
    """all-talking: everyone sends and is mixed; few-talking: all but two are server-muted (still sending)."""
    warmup: float = 3.0
    mute_cycles: int = 10
    json_path: Path | None = None


class Child:
    """A benchmark subprocess speaking JSON lines: commands on stdin, one reply line each on stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log

    @classmethod
    async def start(cls, module: str, *args: str) -> "Child":
        log = Path(tempfile.mkstemp(prefix=f"{module.rsplit('.', 1)[-1]}-", suffix=".log")[1])
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log.open("wb"),
            limit=64 * 1024 * 1024,  # a report line carries every probe frame of the window
        )
        return cls(proc, log)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{self.log.name}: process ended; see {self.log}")
        message = json.loads(line)
        if message.get("event") == "error":
            raise RuntimeError(f"{self.log.name}: {message['error']}")
        return message

    async def ask(self, timeout: float = 30.0, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        await self.proc.stdin.drain()
        return await self.read(timeout)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(b'{"cmd": "quit"}\n')
                await self.proc.stdin.drain()
                await asyncio.wait_for(self.proc.wait(), 15)
            except (asyncio.TimeoutError, ConnectionError):
                self.proc.kill()
                await self.proc.wait()


def probe_action_latencies(probe: dict[str, list[float]], requests: list[tuple[float, str]], hz: int) -> dict[str, list[float]]:
    """Request sent → RTP arrival at the probe of the first frame where the tone falls below (mute) or reaches
    (unmute) half its amplitude — half, because Opus's look-ahead leaves a few ms of the tone in the frame after."""
    times = np.asarray(probe["times"])
    amps = np.asarray(probe[f"amp_{hz}"])
    out: dict[str, list[float]] = {"mute": [], "unmute": []}
    for sent, kind in requests:
        after = np.nonzero(times >= sent)[0]
        if kind == "mute":  # the first frame below half the tone's amplitude, with silence from the next one on
            half = amps[after] < 0.5 * LOUD
            quiet = amps[after] < 0.1 * LOUD
            for k in range(len(after) - 3):
                if half[k] and quiet[k + 1 : k + 4].all():
                    out["mute"].append(float(times[after[k]] - sent))
                    break
        else:  # the first frame at half the tone's amplitude or more
            loud = np.nonzero(amps[after] >= 0.5 * LOUD)[0]
            if loud.size:
                out["unmute"].append(float(times[after[loud[0]]] - sent))
    return out


async def run_bench(config: BenchConfig, console: Console | None = None) -> dict[str, Any]:
    """Run one live benchmark; returns the JSON-ready results (and writes them to `config.json_path`)."""
    console = console or Console()
    n = config.participants
    server = await Child.start("mediamute.benchmark.server")
    clients: Child | None = None
    try:
        ready = await server.read(30)
        base_url = ready["base_url"]
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as http:
            response = await http.post("/v1.0/communications/calls", json={})
            response.raise_for_status()
            call_id = response.json()["id"]
            await server.ask(cmd="instrument", call_id=call_id)

            progress = Progress(
                TextColumn("[bold]{task.description:<28}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(), console=console,
            )
            with progress:
                join = progress.add_task(f"joining {n} participants", total=1)
                clients = await Child.start(
                    "mediamute.benchmark.clients", "--base-url", base_url, "--call-id", call_id, "--participants", str(n)
                )
                joined = await clients.read(CLIENT_START_TIMEOUT + 3 * n)
                progress.update(join, completed=1)
                members = joined["participants"]
                by_role = {m["role"]: m["id"] for m in members}
                if config.scenario == "few-talking":
                    for m in members:
                        if m["role"] not in ("marker", "target"):
                            r = await http.post(f"/v1.0/communications/calls/{call_id}/participants/{m['id']}/mute", json={})
                            r.raise_for_status()

                warm = progress.add_task("warm-up", total=config.warmup)
                for _ in range(int(config.warmup * 10)):
                    await asyncio.sleep(0.1)
                    progress.advance(warm, 0.1)

                window = progress.add_task(f"measuring {config.scenario}", total=config.duration)
                server_cpu, client_cpu = CpuWindow(server.pid), CpuWindow(clients.pid)
                mark = await server.ask(cmd="mark")
                t0 = time.monotonic()
                machine0 = machine_times()
                server_cpu.start(t0)
                client_cpu.start(t0)
                rss_start = rss_bytes(server.pid)
                while (elapsed := time.monotonic() - t0) < config.duration:
                    await asyncio.sleep(min(0.2, config.duration - elapsed))
                    progress.update(window, completed=min(config.duration, time.monotonic() - t0))
                t1 = time.monotonic()
                server_cpu.stop(t1)
                client_cpu.stop(t1)
                machine1 = machine_times()
                rss_end = rss_bytes(server.pid)
                steady = await server.ask(cmd="report")
                heard = await clients.ask(cmd="report", since=mark["at"])

                target = by_role.get("target")
                requests: list[tuple[float, str]] = []
                server_requests: list[tuple[float, str, str]] = []
                actions = None
                answered: dict[str, list[float]] = {"mute": [], "unmute": []}  # request sent → 200 OK received
                if target is not None and config.mute_cycles > 0:
                    phase = progress.add_task("mute / unmute cycles", total=config.mute_cycles)
                    phase_start = time.monotonic()
                    for _ in range(config.mute_cycles):
                        for kind, url in (
                            ("mute", f"/v1.0/communications/calls/{call_id}/participants/{target}/mute"),
                            ("unmute", f"/ext/calls/{call_id}/participants/{target}/unmute"),
                        ):
                            requests.append((time.monotonic(), kind))
                            server_requests.append((requests[-1][0], target, kind))
                            (await http.post(url, json={})).raise_for_status()
                            answered[kind].append(time.monotonic() - requests[-1][0])
                            await asyncio.sleep(0.5)
                        progress.advance(phase)
                    await asyncio.sleep(0.3)
                    actions = await server.ask(cmd="report", requests=server_requests)
                    actions_heard = await clients.ask(cmd="report", since=phase_start)
    finally:
        if clients is not None:
            await clients.stop()
        await server.stop()

    results: dict[str, Any] = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "server_cpu_percent": server_cpu.percent,
        "server_cpu_percent_per_participant": server_cpu.percent / n,
        "client_cpu_percent": client_cpu.percent,
        "machine_busy_percent": 100.0 * (machine1.busy - machine0.busy) / max(1, machine1.total - machine0.total),
        "rss_start_bytes": rss_start,
        "rss_end_bytes": rss_end,
        "window_seconds": t1 - t0,
        "late_ticks": steady.get("late_ticks"),
        "tick_lateness_ms": steady.get("tick_lateness_ms"),
        "server_added_latency_ms": steady.get("added_latency_ms"),
        "encoding": steady.get("encoding"),
    }
    probe = heard.get("probe")
    if probe:
        onsets = marker_onsets(np.asarray(probe["times"]), np.asarray(probe["amp_1000"]), 0.25 * LOUD)
        results["mouth_to_ear_ms"] = percentiles_ms(marker_latencies(heard["marker_times"], onsets))
    if actions is not None:
        results["server_mute_ms"] = actions.get("server_mute_ms")
        results["server_unmute_ms"] = actions.get("server_unmute_ms")
        results["server_mute_after_op_ms"] = actions.get("server_mute_after_op_ms")
        results["server_unmute_after_op_ms"] = actions.get("server_unmute_after_op_ms")
        results["mute_answer_ms"] = percentiles_ms(answered["mute"])
        results["unmute_answer_ms"] = percentiles_ms(answered["unmute"])
        if actions_heard.get("probe"):
            at_probe = probe_action_latencies(actions_heard["probe"], requests, 700)
            results["probe_mute_ms"] = percentiles_ms(at_probe["mute"])
            results["probe_unmute_ms"] = percentiles_ms(at_probe["unmute"])
    console.print(results_table(results))
    if config.json_path is not None:
        config.json_path.write_text(json.dumps(results, indent=2) + "\n")
        console.print(f"results written to {config.json_path}")
    return results


def _ms(d: dict[str, float] | None, *keys: str) -> str:
    if not d:
        return "n/a"
    return " / ".join(f"{d[k]:.1f}" for k in keys) + f"  (n={d['n']})"


def results_table(r: dict[str, Any]) -> Table:
    c = r["config"]
    table = Table(title=f"mediamute bench — N={c['participants']}, {c['scenario']}, {r['window_seconds']:.0f} s window")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row("server CPU, % of one core", f"{r['server_cpu_percent']:.1f}", "")
    table.add_row("server CPU per participant", f"{r['server_cpu_percent_per_participant']:.2f} %",
                  "≤ 1.3 % (all) / ≤ 0.6 % (few), N=16")
    table.add_row("client process CPU, % of one core", f"{r['client_cpu_percent']:.1f}", "")
    table.add_row("machine busy (all cores)", f"{r['machine_busy_percent']:.0f} %", "< 100 %")
    table.add_row("mute at probe RTP arrival p50/p95 ms", _ms(r.get("probe_mute_ms"), "p50", "p95"), "≤ 30 p50")
    table.add_row("unmute at probe RTP arrival p50/p95 ms", _ms(r.get("probe_unmute_ms"), "p50", "p95"), "≤ 50 p50")
    table.add_row("server mute: request → first mix without, p50/p95 ms", _ms(r.get("server_mute_ms"), "p50", "p95"), "≤ 20 (one tick)")
    table.add_row("  of which after the operation completed", _ms(r.get("server_mute_after_op_ms"), "p50", "p95"), "")
    table.add_row("server unmute: request → first mix with, p50/p95 ms", _ms(r.get("server_unmute_ms"), "p50", "p95"), "")
    table.add_row("mute request → 200 OK p50/p95 ms", _ms(r.get("mute_answer_ms"), "p50", "p95"), "")
    table.add_row("unmute request → 200 OK p50/p95 ms", _ms(r.get("unmute_answer_ms"), "p50", "p95"), "")
    table.add_row("mouth-to-ear p50/p95/p99 ms", _ms(r.get("mouth_to_ear_ms"), "p50", "p95", "p99"), "")
    table.add_row("server-added latency p50/p99 ms", _ms(r.get("server_added_latency_ms"), "p50", "p99"), "≤ 30 p50")
    table.add_row("tick lateness p99 ms", _ms(r.get("tick_lateness_ms"), "p99"), "")
    table.add_row("late ticks", str(r.get("late_ticks")), "0")
    growth = (r["rss_end_bytes"] - r["rss_start_bytes"]) / 1e6
    table.add_row("server RSS start → end MB", f"{r['rss_start_bytes'] / 1e6:.1f} → {r['rss_end_bytes'] / 1e6:.1f} ({growth:+.1f})", "growth < 5 MB / 60 s")
    enc = r.get("encoding")
    if enc:
        table.add_row("encodes per tick (shared + own)", f"{enc['per_tick']:.2f} ({enc['shared']} + {enc['own']})", "")
    return table
