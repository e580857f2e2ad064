"""`mediamute bench --calls C -n N --workers W`: C calls of N participants on W cluster nodes, measured per node and
in total.

Processes: a private `redis-server`, W bench servers (`python -m mediamute.benchmark.server --redis URL`, each a
cluster node), one clients process per call (`python -m mediamute.benchmark.clients`, joining through node 1's
URL, so calls placed elsewhere are joined by WHIP redirect), and this orchestrator. The calls are created through
node 1 and placed by the cluster (least-loaded node). Over the steady window: per node its calls, participants,
CPU (utime + stime of its process) and late ticks; the clients' CPU; the machine's busy share. Then the mute
cycles: each call's `target` is muted and unmuted every 0.5 s, alternately through its own node (local) and through
another node (relayed, W ≥ 2), timing request → operation completed on the owner (the gate closed: same monotonic
clock, same machine) and request → 200 OK at the caller.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from ..cluster.redis_server import RedisServer
from ..tokens import SigningKey
from .procstat import CpuWindow, machine_times
from .run import CLIENT_START_TIMEOUT, BenchConfig, Child, bench_progress, warm_up
from .stats import percentiles_ms


async def start_nodes(count: int, redis_url: str, capacity: int, key_file: Path) -> list[tuple[Child, dict[str, Any]]]:
    nodes = []
    for _ in range(count):  # one after the other: W imports at once on 2 cores take long and prove nothing
        child = await Child.start(
            "mediamute.benchmark.server", "--redis", redis_url, "--capacity", str(capacity), "--key-file", str(key_file)
        )
        nodes.append((child, await child.read(60)))
    return nodes


async def mute_cycles(
    http: httpx.AsyncClient, calls: dict[str, dict[str, Any]], node_urls: list[str], cycles: int
) -> dict[str, list[tuple[float, str, str, str]]]:
    """Mute/unmute each call's target every 0.5 s, alternating the node the request goes to: its owner (local)
    and the next node (relayed). Returns, per owner URL, (sent, participant, kind, route) and the answer times."""
    sent_by_owner: dict[str, list[tuple[float, str, str, str]]] = {}
    answered: list[tuple[str, str, float]] = []
    failures: list[str] = []
    for cycle in range(cycles):
        for call_id, call in calls.items():
            owner = call["owner_url"]
            others = [u for u in node_urls if u != owner]
            route = "relayed" if others and cycle % 2 else "local"
            base = others[cycle % len(others)] if route == "relayed" else owner
            for kind, path in (
                ("mute", f"/v1.0/communications/calls/{call_id}/participants/{call['target']}/mute"),
                ("unmute", f"/ext/calls/{call_id}/participants/{call['target']}/unmute"),
            ):
                sent = time.monotonic()
                response = await http.post(f"{base}{path}", json={})
                if response.status_code != 200:  # e.g. the target's connection dropped on an overloaded machine
                    failures.append(f"{kind} {route}: HTTP {response.status_code}")
                    continue
                answered.append((kind, route, time.monotonic() - sent))
                sent_by_owner.setdefault(owner, []).append((sent, call["target"], kind, route))
                await asyncio.sleep(0.25)
    sent_by_owner["__answered__"] = answered  # type: ignore[assignment]
    sent_by_owner["__failures__"] = failures  # type: ignore[assignment]
    return sent_by_owner


async def run_cluster_bench(config: BenchConfig, console: Console | None = None) -> dict[str, Any]:
    """Run the cluster benchmark; prints the tables, returns (and writes) the JSON-ready results."""
    console = console or Console()
    redis = RedisServer().start()
    scratch = tempfile.TemporaryDirectory(prefix="mediamute-bench-")
    key_file = Path(scratch.name) / "signing-key.pem"
    SigningKey.load_or_create(key_file)
    nodes: list[tuple[Child, dict[str, Any]]] = []
    clients: list[Child] = []
    try:
        nodes = await start_nodes(config.workers or 1, redis.url, config.capacity, key_file)
        by_url = {ready["base_url"]: child for child, ready in nodes}
        node_urls = list(by_url)
        async with httpx.AsyncClient(timeout=30.0) as http:
            calls: dict[str, dict[str, Any]] = {}
            for _ in range(config.calls):
                response = await http.post(f"{node_urls[0]}/v1.0/communications/calls", json={})
                response.raise_for_status()
                calls[response.json()["id"]] = {}
            for url, child in by_url.items():
                for call_id in (await child.ask(cmd="calls"))["calls"]:
                    if call_id in calls:
                        calls[call_id]["owner_url"] = url
                        await child.ask(cmd="instrument", call_id=call_id)
            with bench_progress(console) as progress:
                join = progress.add_task(f"joining {config.calls} × {config.participants}", total=config.calls)
                for call_id in calls:
                    clients.append(await Child.start(
                        "mediamute.benchmark.clients", "--base-url", node_urls[0], "--call-id", call_id,
                        "--participants", str(config.participants),
                    ))
                for call_id, child in zip(calls, clients):
                    members = (await child.read(CLIENT_START_TIMEOUT + 3 * config.participants))["participants"]
                    calls[call_id]["target"] = next(m["id"] for m in members if m["role"] == "target")
                    progress.advance(join)
                await warm_up(progress, config.warmup)
                window = progress.add_task("measuring", total=config.duration)
                cpu = {url: CpuWindow(child.pid) for url, child in by_url.items()}
                client_cpu = [CpuWindow(c.pid) for c in clients]
                for child in by_url.values():
                    await child.ask(cmd="mark")
                t0 = time.monotonic()
                machine0 = machine_times()
                for meter in [*cpu.values(), *client_cpu]:
                    meter.start(t0)
                while (elapsed := time.monotonic() - t0) < config.duration:
                    await asyncio.sleep(min(0.5, config.duration - elapsed))
                    progress.update(window, completed=min(config.duration, time.monotonic() - t0))
                t1 = time.monotonic()
                for meter in [*cpu.values(), *client_cpu]:
                    meter.stop(t1)
                machine1 = machine_times()
                steady = {url: await child.ask(cmd="report") for url, child in by_url.items()}
                cycles_task = progress.add_task("mute / unmute cycles", total=1)
                sent = await mute_cycles(http, calls, node_urls, config.mute_cycles) if config.mute_cycles else {}
                progress.advance(cycles_task)
            await asyncio.sleep(0.3)
            answered = sent.pop("__answered__", [])
            failures = sent.pop("__failures__", [])
            timed = {
                url: await child.ask(cmd="report", requests=[(s, pid, kind) for s, pid, kind, _ in sent.get(url, [])])
                for url, child in by_url.items()
            }
    finally:
        for child in clients:
            await child.stop()
        for child, _ in nodes:
            await child.stop()
        redis.close()
        scratch.cleanup()
    results = summarise_cluster(config, node_urls, cpu, client_cpu, steady, timed, sent, answered,
                                100.0 * (machine1.busy - machine0.busy) / max(1, machine1.total - machine0.total), t1 - t0)
    results["failed_requests"] = failures
    for table in cluster_tables(results):
        console.print(table)
    if config.json_path is not None:
        config.json_path.write_text(json.dumps(results, indent=2) + "\n")
        console.print(f"results written to {config.json_path}")
    return results


def summarise_cluster(
    config: BenchConfig, node_urls: list[str], cpu: dict[str, CpuWindow], client_cpu: list[CpuWindow],
    steady: dict[str, dict[str, Any]], timed: dict[str, dict[str, Any]], sent: dict[str, list[tuple[float, str, str, str]]],
    answered: list[tuple[str, str, float]], machine_busy: float, seconds: float,
) -> dict[str, Any]:
    nodes = []
    op_times: dict[str, list[float]] = {}
    for url in node_urls:
        per_call = steady[url].get("per_call", {})
        nodes.append({
            "url": url,
            "calls": len(per_call),
            "participants": sum(c["participants"] for c in per_call.values()),
            "server_cpu_percent": cpu[url].percent,
            "late_ticks": sum(c["late_ticks"] for c in per_call.values()),
            "tick_lateness_p99_ms": max((c["tick_lateness_ms"]["p99"] for c in per_call.values()), default=float("nan")),
        })
        # the owner timed each request against its operation's completion: split them by route again
        routes = {(s, pid, kind): route for s, pid, kind, route in sent.get(url, [])}
        for call in timed[url].get("per_call", {}).values():
            for s, pid, kind, value in call.get("op_after_request", []):
                op_times.setdefault(f"{kind}_{routes[(s, pid, kind)]}", []).append(value)
    answer_times: dict[str, list[float]] = {}
    for kind, route, seconds_taken in answered:
        answer_times.setdefault(f"{kind}_{route}", []).append(seconds_taken)
    return {
        "config": {k: (str(v) if k == "json_path" and v is not None else v) for k, v in asdict(config).items()},
        "window_seconds": seconds,
        "machine_busy_percent": machine_busy,
        "nodes": nodes,
        "total": {
            "calls": sum(n["calls"] for n in nodes),
            "participants": sum(n["participants"] for n in nodes),
            "server_cpu_percent": sum(n["server_cpu_percent"] for n in nodes),
            "late_ticks": sum(n["late_ticks"] for n in nodes),
            "client_cpu_percent": sum(c.percent for c in client_cpu),
        },
        "gate_after_request_ms": {k: percentiles_ms(v) for k, v in sorted(op_times.items())},
        "answer_ms": {k: percentiles_ms(v) for k, v in sorted(answer_times.items())},
    }


def cluster_tables(r: dict[str, Any]) -> list[Table]:
    """Per node and in total; then the mute times, local and relayed."""
    c = r["config"]
    nodes = Table(title=f"mediamute bench — {c['calls']} calls × N={c['participants']} on {c['workers']} worker(s), "
                        f"{r['window_seconds']:.0f} s window, machine busy {r['machine_busy_percent']:.0f} %")
    for column in ("node", "calls", "participants", "server CPU % of a core", "late ticks", "tick lateness p99 ms"):
        nodes.add_column(column, justify="right")
    for n in r["nodes"]:
        nodes.add_row(n["url"], str(n["calls"]), str(n["participants"]), f"{n['server_cpu_percent']:.1f}",
                      str(n["late_ticks"]), f"{n['tick_lateness_p99_ms']:.1f}")
    t = r["total"]
    nodes.add_row("total", str(t["calls"]), str(t["participants"]), f"{t['server_cpu_percent']:.1f}", str(t["late_ticks"]), "")
    nodes.add_row("clients (all processes)", "", "", f"{t['client_cpu_percent']:.1f}", "", "")
    times = Table(title="mute / unmute: local (request to the owner) and relayed (to another node)")
    for column in ("measure", "p50 ms", "p95 ms", "n"):
        times.add_column(column, justify="right")
    for name, figures in (("request → operation completed on the owner (gate closed/opened)", r["gate_after_request_ms"]),
                          ("request → 200 OK at the caller", r["answer_ms"])):
        for key, p in figures.items():
            times.add_row(f"{key.replace('_', ' ')}: {name}", f"{p['p50']:.2f}", f"{p['p95']:.2f}", str(p["n"]))
    return [nodes, times]
