"""`mediamute bench`: orchestrates the server process and the clients process, measures, prints, writes JSON."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..analysis import marker_latencies, marker_onsets
from .clients import LOUD, ROLES, TARGET_HZ
from .measures import (
    VOICE_ROLES,
    base_delays_ms,
    buffer_delays_ms,
    probe_continuity,
    receive_summary,
    server_receive,
    window_counters,
)
from .procstat import CpuWindow, ThreadCpu, machine_times, rss_bytes
from .stats import percentiles_ms

LoadPattern = Literal["all-talking", "few-talking"]
"""Who talks during the window (the CLI's --scenario; unrelated to the demo's scenario files)."""
CLIENT_START_TIMEOUT = 120.0
RSS_SAMPLE_PERIOD = 10.0
"""Seconds between samples of the server's RSS during the window (memory over a long call)."""
BUSY_THREAD_PERCENT = 5.0
"""A server thread that used at least this much of a core over the window counts as busy (cores in use)."""
PROFILE_RATE = 250
"""py-spy samples per second when the server is profiled: five per 20 ms tick."""


@dataclass
class BenchConfig:
    participants: int = 8
    duration: float = 20.0
    """Seconds of the steady window over which CPU, latency and tick figures are taken."""
    scenario: LoadPattern = "all-talking"
    """all-talking: everyone sends and is mixed; few-talking: all but two are server-muted (still sending)."""
    warmup: float = 3.0
    mute_cycles: int = 10
    json_path: Path | None = None
    encode_threads: int | None = None
    """The server's encode threads (None: one per core; 0: encode on the event loop)."""
    mix_encoder: str = "pyav"
    """The server's Opus encoder of the mixes (rtc/mix_encoder.py)."""
    send_path: Literal["lean", "aiortc"] = "lean"
    """How the server sends each listener's mix: its lean send path, or aiortc's own sender (for comparison)."""
    profile_path: Path | None = None
    """Record the server with py-spy over the steady window into this file (raw stacks per thread, PROFILE_RATE);
    `bench/profile_breakdown.py` turns it into the per-participant-per-tick table."""
    calls: int = 1
    """Calls at once (more than one, or `workers` set: the cluster benchmark, `benchmark/cluster.py`)."""
    workers: int | None = None
    """Cluster nodes (`--workers`); None: one server without Redis, as before."""
    capacity: int = 40
    """Each node's capacity (placement weighs calls and participants against it)."""
    network: str | None = None
    """The network spec (preset or JSON) the impaired clients join with; None: a perfect loopback."""
    network_roles: tuple[str, ...] = ROLES
    """Which clients' networks are impaired (by role)."""
    network_seed: int | None = 1
    """Participant i's network profiles are seeded with this + i, so runs (and a sweep's points) draw the same losses
    for the same client; None: a random seed per participant."""


def py_spy_command(pid: int, seconds: float, out: Path) -> list[str]:
    """py-spy attached to the server without pausing it (--nonblocking): raw stacks per thread, no line numbers."""
    exe = shutil.which("py-spy")
    if exe is None:
        raise RuntimeError("--profile needs py-spy on PATH (pip install py-spy)")
    return [exe, "record", "--pid", str(pid), "--rate", str(PROFILE_RATE), "--duration", str(max(1, round(seconds))),
            "--format", "raw", "--threads", "--nolineno", "--nonblocking", "--output", str(out)]


async def stop_profiler(profiler: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    """py-spy stops by itself after the window's duration, unless sampling a server of many threads fell behind:
    then it is interrupted (it writes what it has on SIGINT)."""
    try:
        await asyncio.wait_for(profiler.wait(), grace)
    except asyncio.TimeoutError:
        profiler.send_signal(signal.SIGINT)
        await asyncio.wait_for(profiler.wait(), 30)
    if profiler.returncode not in (0, -signal.SIGINT):
        raise RuntimeError(f"py-spy could not record the server (exit {profiler.returncode})")


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
    times = np.asarray(probe["times"], dtype=np.float64)
    amps = np.asarray(probe[f"amp_{hz}"])
    arrived = np.isfinite(times)  # a concealed frame had no packet: it has no arrival time
    times, amps = times[arrived], amps[arrived]
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


@dataclass
class SteadyWindow:
    """What the steady window measured, from /proc and from both children's reports."""

    seconds: float
    server_cpu_percent: float
    client_cpu_percent: float
    machine_busy_percent: float
    rss_samples: list[tuple[float, int]]
    """(seconds into the window, server RSS bytes), every RSS_SAMPLE_PERIOD and at the end."""
    server: dict[str, Any]
    heard: dict[str, Any]
    network: dict[str, Any] | None = None
    """With --network: the server's impairment counters and uplink RTCP per participant, at the window's end."""
    server_threads: list[ThreadCpu] = field(default_factory=list)
    """The server's threads over the window, busiest first (% of one core each)."""
    profiler_cpu_percent: float | None = None
    """py-spy's own CPU over the window when the server was profiled (it shares the machine)."""
    server_buffers_at_start: dict[str, Any] | None = None
    """Every server-side jitter buffer's counters when the window began (by participant id)."""
    probe_buffer_at_start: dict[str, Any] | None = None
    """The probe's jitter buffer counters when the window began."""


@dataclass
class MuteCycles:
    """The mute/unmute requests the orchestrator sent (monotonic time, kind) and what each side saw of them."""

    requests: list[tuple[float, str]]
    server: dict[str, Any]
    heard: dict[str, Any]
    answered: dict[str, list[float]]
    """Seconds from each request sent to its 200 OK at the caller, by kind (one keep-alive connection)."""
    failures: list[str] = field(default_factory=list)
    """Requests the server refused (the cycles stop at the first: the target is gone)."""


def bench_progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<28}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=console,
    )


async def open_call(server: Child, http: httpx.AsyncClient) -> str:
    """Create the call through the Graph API and have the server instrument it; returns its id."""
    response = await http.post("/v1.0/communications/calls", json={})
    response.raise_for_status()
    call_id = response.json()["id"]
    await server.ask(cmd="instrument", call_id=call_id)
    return call_id


async def mute_background(http: httpx.AsyncClient, call_id: str, members: list[dict[str, str]]) -> None:
    """few-talking: server-mute everyone but the marker and the target (they keep sending)."""
    for m in members:
        if m["role"] not in ("marker", "target"):
            r = await http.post(f"/v1.0/communications/calls/{call_id}/participants/{m['id']}/mute", json={})
            r.raise_for_status()


async def warm_up(progress: Progress, seconds: float) -> None:
    task = progress.add_task("warm-up", total=seconds)
    for _ in range(int(seconds * 10)):
        await asyncio.sleep(0.1)
        progress.advance(task, 0.1)


async def measure_window(progress: Progress, config: BenchConfig, server: Child, clients: Child) -> SteadyWindow:
    """CPU of both children and of the machine, and the server's RSS over time, across the steady window."""
    task = progress.add_task(f"measuring {config.scenario}", total=config.duration)
    server_cpu, client_cpu = CpuWindow(server.pid), CpuWindow(clients.pid)
    mark = await server.ask(cmd="mark")
    profiler: asyncio.subprocess.Process | None = None
    if config.profile_path is not None:
        profiler = await asyncio.create_subprocess_exec(
            *py_spy_command(server.pid, config.duration, config.profile_path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
    profiler_cpu = CpuWindow(profiler.pid) if profiler is not None else None
    probe_mark = await clients.ask(cmd="buffer")
    t0 = time.monotonic()
    machine0 = machine_times()
    server_cpu.start(t0)
    client_cpu.start(t0)
    if profiler_cpu is not None:
        profiler_cpu.start(t0)
    rss_samples = [(0.0, rss_bytes(server.pid))]
    while (elapsed := time.monotonic() - t0) < config.duration:
        await asyncio.sleep(min(0.2, config.duration - elapsed))
        now = time.monotonic() - t0
        progress.update(task, completed=min(config.duration, now))
        if now - rss_samples[-1][0] >= RSS_SAMPLE_PERIOD:
            rss_samples.append((round(now, 1), rss_bytes(server.pid)))
    t1 = time.monotonic()
    server_cpu.stop(t1)
    client_cpu.stop(t1)
    if profiler_cpu is not None:
        profiler_cpu.stop(t1)
    machine1 = machine_times()
    rss_samples.append((round(t1 - t0, 1), rss_bytes(server.pid)))
    if profiler is not None:
        await stop_profiler(profiler)
    return SteadyWindow(
        seconds=t1 - t0,
        server_cpu_percent=server_cpu.percent,
        client_cpu_percent=client_cpu.percent,
        machine_busy_percent=100.0 * (machine1.busy - machine0.busy) / max(1, machine1.total - machine0.total),
        rss_samples=rss_samples,
        server=await server.ask(cmd="report"),
        heard=await clients.ask(cmd="report", since=mark["at"]),
        network=await server.ask(cmd="network") if config.network is not None else None,
        server_threads=server_cpu.threads,
        profiler_cpu_percent=profiler_cpu.percent if profiler_cpu is not None else None,
        server_buffers_at_start=mark.get("jitter_by_participant"),
        probe_buffer_at_start=probe_mark.get("probe_buffer"),
    )


async def mute_cycles(
    progress: Progress, http: httpx.AsyncClient, call_id: str, target: str, cycles: int, server: Child, clients: Child
) -> MuteCycles:
    """Mute (Graph) and unmute (/ext) the target every 500 ms; the server times each against its audit."""
    task = progress.add_task("mute / unmute cycles", total=cycles)
    requests: list[tuple[float, str]] = []
    answered: dict[str, list[float]] = {"mute": [], "unmute": []}
    start = time.monotonic()
    failures: list[str] = []
    for _ in range(cycles):
        for kind, url in (
            ("mute", f"/v1.0/communications/calls/{call_id}/participants/{target}/mute"),
            ("unmute", f"/ext/calls/{call_id}/participants/{target}/unmute"),
        ):
            sent = time.monotonic()
            response = await http.post(url, json={})
            if response.is_error:  # e.g. the target's connection dropped on a starved machine: report what we have
                failures.append(f"{kind}: {response.status_code} {response.text[:200]}")
                break
            requests.append((sent, kind))
            answered[kind].append(time.monotonic() - sent)
            await asyncio.sleep(0.5)
        if failures:
            break
        progress.advance(task)
    await asyncio.sleep(0.3)
    return MuteCycles(
        requests=requests,
        server=await server.ask(cmd="report", requests=[(sent, target, kind) for sent, kind in requests]),
        heard=await clients.ask(cmd="report", since=start),
        answered=answered,
        failures=failures,
    )


async def measure_call(config: BenchConfig, console: Console) -> tuple[SteadyWindow, MuteCycles | None]:
    """Start the server and the clients, take the steady window and the mute cycles, stop both (always)."""
    args = ["--send-path", config.send_path, "--mix-encoder", config.mix_encoder]
    if config.encode_threads is not None:
        args += ["--encode-threads", str(config.encode_threads)]
    server = await Child.start("mediamute.benchmark.server", *args)
    clients: Child | None = None
    try:
        base_url = (await server.read(30))["base_url"]
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as http:
            call_id = await open_call(server, http)
            with bench_progress(console) as progress:
                n = config.participants
                join = progress.add_task(f"joining {n} participants", total=1)
                impairment = ["--network", config.network, "--network-roles", *config.network_roles] if config.network else []
                if config.network and config.network_seed is not None:
                    impairment += ["--network-seed", str(config.network_seed)]
                clients = await Child.start(
                    "mediamute.benchmark.clients", "--base-url", base_url, "--call-id", call_id, "--participants", str(n),
                    *impairment,
                )
                members = (await clients.read(CLIENT_START_TIMEOUT + 3 * n))["participants"]
                progress.update(join, completed=1)
                if config.scenario == "few-talking":
                    await mute_background(http, call_id, members)
                await warm_up(progress, config.warmup)
                steady = await measure_window(progress, config, server, clients)
                target = next((m["id"] for m in members if m["role"] == "target"), None)
                cycles = None
                if target is not None and config.mute_cycles > 0:
                    cycles = await mute_cycles(progress, http, call_id, target, config.mute_cycles, server, clients)
                steady.heard["members"] = members
                return steady, cycles
    finally:
        if clients is not None:
            await clients.stop()
        await server.stop()


def cpu_per_participant_tick(steady: SteadyWindow, participants: int) -> float | None:
    """Server CPU µs per participant per tick actually mixed in the window (None without the work counts): on a
    machine so busy that the server misses ticks, this stays comparable where CPU % per participant does not."""
    work = steady.server.get("work")
    if not work or not work.get("ticks"):
        return None
    return steady.server_cpu_percent / 100.0 * steady.seconds / (work["ticks"] * participants) * 1e6


def rss_growth_after(samples: list[tuple[float, int]], after: float) -> float | None:
    """Bytes the RSS grew from the first sample at or after `after` seconds to the last (None if none is later)."""
    later = [rss for t, rss in samples if t >= after]
    return float(later[-1] - later[0]) if len(later) >= 2 else None


def rss_at(samples: list[tuple[float, int]], seconds: float) -> int:
    """The first RSS sample taken at or after `seconds` into the window (the last one if none is)."""
    return next((rss for t, rss in samples if t >= seconds), samples[-1][1])


def summarise(config: BenchConfig, steady: SteadyWindow, cycles: MuteCycles | None) -> dict[str, Any]:
    """The JSON-ready results of one run."""
    n = config.participants
    results: dict[str, Any] = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "server_cpu_percent": steady.server_cpu_percent,
        "server_cpu_percent_per_participant": steady.server_cpu_percent / n,
        "server_cores_used": steady.server_cpu_percent / 100.0,
        "server_busy_threads": sum(1 for t in steady.server_threads if t.percent >= BUSY_THREAD_PERCENT),
        "server_threads": [asdict(t) for t in steady.server_threads if t.percent >= 0.5],
        "client_cpu_percent": steady.client_cpu_percent,
        "machine_busy_percent": steady.machine_busy_percent,
        "rss_start_bytes": steady.rss_samples[0][1],
        "rss_end_bytes": steady.rss_samples[-1][1],
        "rss_samples": steady.rss_samples,
        "rss_growth_after_first_minute_bytes": rss_growth_after(steady.rss_samples, 60.0),
        "window_seconds": steady.seconds,
        "late_ticks": steady.server.get("late_ticks"),
        "tick_lateness_ms": steady.server.get("tick_lateness_ms"),
        "server_added_latency_ms": steady.server.get("added_latency_ms"),
        "encoding": steady.server.get("encoding"),
        "client_send_lateness_ms": steady.heard.get("send_lateness_ms"),
        "pool_send_delay_ms": steady.server.get("pool_send_delay_ms"),
        "server_work": steady.server.get("work"),
        "server_cpu_us_per_participant_tick": cpu_per_participant_tick(steady, n),
        "server_loop": steady.server.get("loop"),
        "server_send_paths": steady.server.get("send_paths"),
        "server_encode_threads": steady.server.get("encode_threads"),
        "server_mix_encoder": steady.server.get("mix_encoder"),
    }
    if config.network is not None and steady.network is not None:
        results["network"] = network_summary(config, steady.heard["members"], steady.network, steady.heard.get("reception") or [])
    results["jitter_buffer"] = steady.server.get("jitter_buffer")
    if config.profile_path is not None:
        results["profile"] = {"path": str(config.profile_path), "rate": PROFILE_RATE,
                              "profiler_cpu_percent": steady.profiler_cpu_percent}
    results["receive"] = receive_figures(steady)
    probe = steady.heard.get("probe")
    if probe:
        arrived = np.asarray(probe["times"], dtype=np.float64)
        amps = np.asarray(probe["amp_1000"])
        packets = np.isfinite(arrived)
        onsets = marker_onsets(arrived[packets], amps[packets], 0.25 * LOUD)
        results["mouth_to_ear_ms"] = percentiles_ms(marker_latencies(steady.heard["marker_times"], onsets))
        heard = marker_onsets(np.asarray(probe["playout"], dtype=np.float64), amps, 0.25 * LOUD)
        results["mouth_to_ear_playout_ms"] = percentiles_ms(marker_latencies(steady.heard["marker_times"], heard))
        results["continuity"] = probe_continuity(probe, f"amp_{int(TARGET_HZ)}")
        results["mouth_to_ear_budget"] = mouth_to_ear_budget(config, results)
    if cycles is not None:
        for kind in ("mute", "unmute", "mute_after_op", "unmute_after_op"):
            results[f"server_{kind}_ms"] = cycles.server.get(f"server_{kind}_ms")
        leaks = cycles.server.get("leaked_frames") or []
        results["mutes"] = len(leaks)
        results["leaked_frames"] = sum(leaks)
        for kind, samples in cycles.answered.items():
            results[f"{kind}_answer_ms"] = percentiles_ms(samples)
        results["mute_cycle_failures"] = cycles.failures
        results["server_unmute_parts_ms"] = cycles.server.get("server_unmute_parts_ms")
        results["participants_at_end"] = cycles.server.get("participants")
        if cycles.heard.get("probe"):
            at_probe = probe_action_latencies(cycles.heard["probe"], cycles.requests, int(TARGET_HZ))
            results["probe_mute_ms"] = percentiles_ms(at_probe["mute"])
            results["probe_unmute_ms"] = percentiles_ms(at_probe["unmute"])
    return results


def receive_figures(steady: SteadyWindow) -> dict[str, Any]:
    """The window's receive paths: the server's (FEC judged on the voiced streams, concealment over all), the
    probe's, and the buffers' delays now (the marker's, whose stream mouth-to-ear follows, and the probe's)."""
    members = steady.heard.get("members") or []
    before = steady.server_buffers_at_start or {}
    after = steady.server.get("jitter_by_participant") or {}
    probe_after = steady.heard.get("probe_buffer")
    marker = next((m["id"] for m in members if m["role"] == "marker"), None)
    return {
        "server": server_receive(before, after, members, VOICE_ROLES),
        "server_all": server_receive(before, after, members),
        "probe": receive_summary([window_counters(steady.probe_buffer_at_start, probe_after)]) if probe_after else None,
        "probe_delays": buffer_delays_ms(probe_after),
        "marker_delays": buffer_delays_ms(after.get(marker) if marker else None),
    }


BUDGET_BASE_MS = 40.0
"""Issue 11's mouth-to-ear target on a wifi-like network: 40 ms plus the jitter buffers' targets."""


def mouth_to_ear_budget(config: BenchConfig, results: dict[str, Any]) -> dict[str, float | None]:
    """Mouth-to-ear at the probe's playout against 40 ms + the jitter buffers' targets (the marker's on the server,
    the probe's own), with the profile's fixed one-way delays (the marker's uplink, the probe's downlink) taken out:
    those are the network, not mediamute."""
    up, down = base_delays_ms(config.network, config.network_roles)
    receive = results["receive"]
    targets = [receive["marker_delays"]["target_ms"], receive["probe_delays"]["target_ms"]]
    playout = (results.get("mouth_to_ear_playout_ms") or {}).get("p50")
    budget = BUDGET_BASE_MS + sum(t for t in targets if t is not None)
    beyond = None if playout is None or playout != playout else playout - up - down
    return {"base_delay_ms": up + down, "budget_ms": budget, "beyond_base_p50_ms": beyond,
            "met": None if beyond is None else beyond <= budget}


IMPAIRMENT_SUMS = ("datagrams", "delivered", "dropped", "dropped_random", "dropped_burst", "dropped_queue", "duplicated", "reordered")


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def _direction_summary(impairments: list[dict[str, Any]], reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One direction over the impaired participants: what the impairment did (summed) and what RTCP reported."""
    done = {key: sum(c[key] for c in impairments) for key in IMPAIRMENT_SUMS}
    done["loss_ratio"] = done["dropped"] / done["datagrams"] if done["datagrams"] else None
    done["delay_mean_ms_p50"] = _median([c["delay_mean_ms"] for c in impairments])
    done["jitter_ms_p50"] = _median([c["jitter_ms"] for c in impairments])
    lost = sum(r["packets_lost"] for r in reports)
    received = sum(r["packets_received"] or 0 for r in reports)
    rtcp = {
        "reports": len(reports),
        "packets_lost": lost,
        "packets_received": received,
        "loss_ratio": lost / (lost + received) if lost + received > 0 else None,
        "jitter_ms_p50": _median([r["jitter_ms"] for r in reports]),
        "jitter_ms_max": max((r["jitter_ms"] for r in reports), default=None),
    }
    return {"impairment": done, "rtcp": rtcp}


def network_summary(
    config: BenchConfig, members: list[dict[str, str]], server: dict[str, Any], reception: list[dict[str, Any]]
) -> dict[str, Any]:
    """The impaired clients' two directions: the server's impairment counters against RTCP's figures (the uplink's
    from the server's receivers, the downlink's from the clients' own). Counters hold RTP and RTCP datagrams, RTCP's
    loss RTP packets only; both count from the join on (warm-up included)."""
    impaired = {m["id"] for m in members if m["role"] in config.network_roles}
    entries = [e for e in server["participants"] if e["id"] in impaired]
    clients = [r for r in reception if r["id"] in impaired]
    return {
        "profile": config.network,
        "roles": list(config.network_roles),
        "participants": len(entries),
        "uplink": _direction_summary(
            [e["impairment"]["uplink"] for e in entries], [e["uplink_rtcp"] for e in entries if e["uplink_rtcp"]]
        ),
        "downlink": _direction_summary(
            [e["impairment"]["downlink"] for e in entries], [r["downlink"] for r in clients if r["downlink"]]
        ),
    }


async def run_bench(config: BenchConfig, console: Console | None = None) -> dict[str, Any]:
    """Run one live benchmark; prints the table, returns the JSON-ready results (written to `config.json_path`)."""
    console = console or Console()
    if config.workers is not None or config.calls > 1:
        from .cluster import run_cluster_bench

        return await run_cluster_bench(config, console)
    results = summarise(config, *await measure_call(config, console))
    console.print(results_table(results))
    if config.json_path is not None:
        config.json_path.write_text(json.dumps(results, indent=2) + "\n")
        console.print(f"results written to {config.json_path}")
    return results


def thread_summary(threads: list[dict[str, Any]], shown: int = 4) -> str:
    """The busiest threads as `name: %`; threads beyond the first few summed per name as `name ×k: %`."""
    parts = [f"{t['name']}: {t['percent']:.1f}" for t in threads[:shown]]
    rest: dict[str, list[float]] = {}
    for t in threads[shown:]:
        rest.setdefault(t["name"], []).append(t["percent"])
    parts += [f"{name} ×{len(p)}: {sum(p):.1f}" for name, p in rest.items()]
    return ", ".join(parts) or "n/a"


def _ms(d: dict[str, float] | None, *keys: str) -> str:
    if not d:
        return "n/a"
    return " / ".join(f"{d[k]:.1f}" for k in keys) + f"  (n={d['n']})"


def _share(part: int | None, share: float | None) -> str:
    return "n/a" if part is None else f"{part}" + ("" if share is None else f" ({100 * share:.1f} %)")


def _delays(d: dict[str, float | None] | None) -> str:
    if not d or d.get("target_ms") is None:
        return "n/a"
    return " / ".join("n/a" if d[k] is None else f"{d[k]:.1f}" for k in ("target_ms", "delay_p50_ms", "delay_p95_ms"))


def _section(table: Table, title: str) -> None:
    table.add_section()
    table.add_row(f"[bold]{title}[/]", "", "")


def add_receive_rows(table: Table, r: dict[str, Any]) -> None:
    """The receive paths over the window: the server's buffers (FEC on the voiced talkers), then the probe's."""
    receive = r.get("receive") or {}
    server, everyone, probe = receive.get("server"), receive.get("server_all"), receive.get("probe")
    jb = r.get("jitter_buffer")
    _section(table, "receive path on the server (steady window)")
    if jb:
        table.add_row("jitter buffer target / actual p50 / p95 ms (median participant)",
                      f"{jb['target_delay_ms']:.1f} / {jb['delay_p50_ms']:.1f} / {jb['delay_p95_ms']:.1f}", "")
    if server:
        table.add_row("packets carrying FEC data (voiced talkers)", _share(server["fec_packets"], server["fec_packet_share"]),
                      f"of {server['packets']}")
        table.add_row("lost frames: single / in bursts (voiced talkers)", f"{server['single_losses']} / {server['burst_losses']}", "")
        table.add_row("single losses rebuilt by FEC", _share(server["single_recovered"], server["single_recovered_share"]),
                      "≥ 90 % (wifi)")
    if everyone:
        table.add_row("frames FEC-rebuilt / concealed (all participants)",
                      f"{everyone['recovered']} / {_share(everyone['concealed'], everyone['concealed_share'])}",
                      f"of {everyone['frames']} frames")
        table.add_row("packets late / reordered (repaired)", f"{everyone['late']} / {everyone['reordered']}", "")
    _section(table, "at the probe (a listener: its own jitter buffer)")
    table.add_row("jitter buffer target / actual p50 / p95 ms", _delays(receive.get("probe_delays")), "")
    if probe:
        table.add_row("lost frames: single / in bursts", f"{probe['single_losses']} / {probe['burst_losses']}", "")
        table.add_row("single losses rebuilt by FEC", _share(probe["single_recovered"], probe["single_recovered_share"]),
                      "(the mix is sent without FEC)")
        table.add_row("frames concealed", _share(probe["concealed"], probe["concealed_share"]), f"of {probe['frames']} frames")
    c = r.get("continuity")
    if c:
        table.add_row("longest stretch without the stream's audio ms (concealed or silent)",
                      f"{c['longest_invented_ms']:.0f}", "≤ 20 (wifi)")
        table.add_row("longest silence / audible dropout of the target's tone ms",
                      f"{c['longest_silence_ms']:.0f} / {_ms1(c['longest_dropout_ms'])}", "")


def results_table(r: dict[str, Any]) -> Table:
    c = r["config"]
    network = f", network {c['network']}" if c.get("network") else ""
    table = Table(title=f"mediamute bench — N={c['participants']}, {c['scenario']}{network}, {r['window_seconds']:.0f} s window")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row("[bold]load[/]", "", "")
    table.add_row("server CPU, % of one core", f"{r['server_cpu_percent']:.1f}", "")
    if r.get("server_loop"):
        table.add_row("server event loop", str(r["server_loop"]), "")
    if r.get("server_send_paths"):
        paths = ", ".join(f"{path}: {count}" for path, count in sorted(r["server_send_paths"].items()))
        table.add_row("listeners by send path", paths, "")
    if r.get("server_encode_threads") is not None:
        threads = r["server_encode_threads"]
        table.add_row("server encode threads", str(threads) if threads else "0 (on the event loop)", "")
        table.add_row("mix encoder", str(r.get("server_mix_encoder")), "")
    if r.get("pool_send_delay_ms"):
        table.add_row("tick handed to the pool → sent, p50/p99 ms", _ms(r["pool_send_delay_ms"], "p50", "p99"), "")
    table.add_row("server CPU per participant", f"{r['server_cpu_percent_per_participant']:.2f} %",
                  "≤ 1.3 % (all) / ≤ 0.6 % (few), N=16")
    if r.get("server_cpu_us_per_participant_tick") is not None:
        work = r.get("server_work") or {}
        table.add_row("server CPU per participant per tick mixed, µs",
                      f"{r['server_cpu_us_per_participant_tick']:.0f}  ({work.get('ticks')} ticks, "
                      f"{work.get('packets_in')} packets in, {work.get('packets_out')} out)", "")
    if "server_cores_used" in r:
        table.add_row(f"server cores used (threads ≥ {BUSY_THREAD_PERCENT:.0f} % of a core)",
                      f"{r['server_cores_used']:.2f} ({r['server_busy_threads']})", "")
        table.add_row("server CPU by thread, % of a core", thread_summary(r.get("server_threads", [])), "")
    table.add_row("client process CPU, % of one core", f"{r['client_cpu_percent']:.1f}", "")
    table.add_row("clients' packets handed to their senders late p50/p95/p99 ms",
                  _ms(r.get("client_send_lateness_ms"), "p50", "p95", "p99"), "")
    table.add_row("machine busy (all cores)", f"{r['machine_busy_percent']:.0f} %", "< 100 %")
    enc = r.get("encoding")
    if enc:
        table.add_row("encodes per tick (shared + own)", f"{enc['per_tick']:.2f} ({enc['shared']} + {enc['own']})", "")
    if r.get("network"):
        _section(table, "network (the impairment, and what RTCP reported of it)")
        add_network_rows(table, r["network"])
    add_receive_rows(table, r)
    _section(table, "latency")
    table.add_row("mouth-to-ear at probe RTP arrival p50/p95/p99 ms", _ms(r.get("mouth_to_ear_ms"), "p50", "p95", "p99"), "")
    table.add_row("mouth-to-ear at probe playout p50/p95/p99 ms", _ms(r.get("mouth_to_ear_playout_ms"), "p50", "p95", "p99"), "")
    budget = r.get("mouth_to_ear_budget")
    if budget and budget["beyond_base_p50_ms"] is not None:
        table.add_row(f"  at playout, beyond the network's {budget['base_delay_ms']:.0f} ms of base delay, p50 ms",
                      f"{budget['beyond_base_p50_ms']:.1f}", f"≤ {budget['budget_ms']:.1f} (40 + both buffers' targets)")
    table.add_row("server-added latency p50/p99 ms", _ms(r.get("server_added_latency_ms"), "p50", "p99"), "≤ 30 p50")
    _section(table, "mute and unmute")
    table.add_row("server mute: request handled (gate closed) → first mix without, p50/p95 ms",
                  _ms(r.get("server_mute_after_op_ms"), "p50", "p95"), "≤ 20 (one tick)")
    table.add_row("server unmute: request handled (gate open) → first mix with, p50/p95 ms",
                  _ms(r.get("server_unmute_after_op_ms"), "p50", "p95"), "")
    table.add_row("  from the request sent: mute / unmute p50 ms",
                  f"{_ms1((r.get('server_mute_ms') or {}).get('p50'))} / {_ms1((r.get('server_unmute_ms') or {}).get('p50'))}", "")
    parts = r.get("server_unmute_parts_ms")
    if parts:
        table.add_row("  unmute: request → gate open / → first frame / → mixed, p50 ms",
                      " / ".join(f"{parts[k]['p50']:.1f}" for k in ("request_to_op", "op_to_first_frame", "frame_to_mix")), "")
    table.add_row("mute at probe RTP arrival p50/p95 ms", _ms(r.get("probe_mute_ms"), "p50", "p95"), "≤ 30 p50 (perfect)")
    table.add_row("unmute at probe RTP arrival p50/p95 ms", _ms(r.get("probe_unmute_ms"), "p50", "p95"), "≤ 50 p50 (perfect)")
    table.add_row("mute request → 200 OK p50/p95 ms", _ms(r.get("mute_answer_ms"), "p50", "p95"), "")
    table.add_row("unmute request → 200 OK p50/p95 ms", _ms(r.get("unmute_answer_ms"), "p50", "p95"), "")
    if r.get("mutes") is not None:
        leaked = r["leaked_frames"]
        value = f"{leaked} in {r['mutes']} mutes" if not leaked else f"[bold red]{leaked} in {r['mutes']} mutes[/]"
        table.add_row("frames of a muted participant mixed after the gate closed", value, "0")
    _section(table, "clock and memory")
    table.add_row("tick lateness p99 ms", _ms(r.get("tick_lateness_ms"), "p99"), "")
    table.add_row("late ticks", str(r.get("late_ticks")), "0")
    if r.get("mute_cycle_failures"):
        table.add_row("mute cycles stopped early", "; ".join(r["mute_cycle_failures"])[:120], "")
    growth = (r["rss_end_bytes"] - r["rss_start_bytes"]) / 1e6
    table.add_row("server RSS start → end MB", f"{r['rss_start_bytes'] / 1e6:.1f} → {r['rss_end_bytes'] / 1e6:.1f} ({growth:+.1f})", "growth < 5 MB / 60 s")
    minutes = [m for m in (1, 5, 10, 30, 60) if m * 60 <= r["window_seconds"]]
    if minutes:
        at = [rss_at(r["rss_samples"], 60.0 * m) for m in minutes]
        table.add_row(f"server RSS at {' / '.join(map(str, minutes))} min MB", " / ".join(f"{b / 1e6:.1f}" for b in at), "")
    if r.get("rss_growth_after_first_minute_bytes") is not None:
        table.add_row("server RSS growth after the first minute MB", f"{r['rss_growth_after_first_minute_bytes'] / 1e6:+.1f}", "< 2 MB")
    return table


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _ms1(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def add_network_rows(table: Table, n: dict[str, Any]) -> None:
    table.add_row(f"{n['profile']} on {', '.join(n['roles'])}", f"{n['participants']} participants", "")
    for direction in ("uplink", "downlink"):
        done, rtcp = n[direction]["impairment"], n[direction]["rtcp"]
        table.add_row(
            f"  {direction} loss: impairment / RTCP",
            f"{_pct(done['loss_ratio'])} / {_pct(rtcp['loss_ratio'])}",
            f"dropped {done['dropped']} of {done['datagrams']}",
        )
        table.add_row(
            f"  {direction} jitter p50 ms: added / RTCP (max)",
            f"{_ms1(done['jitter_ms_p50'])} / {_ms1(rtcp['jitter_ms_p50'])} ({_ms1(rtcp['jitter_ms_max'])})",
            f"mean added delay {_ms1(done['delay_mean_ms_p50'])} ms",
        )
