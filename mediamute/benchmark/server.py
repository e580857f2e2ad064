"""The benchmark's server process: a `MediamuteServer` (port 0, no auth) plus the measurements only it can take.

    python -m mediamute.benchmark.server [--redis URL]

With `--redis` it is a node of a cluster (`mediamute bench --workers W`): it may hold several calls, `calls` lists
the ones it holds, each is instrumented on its own node, and `report` adds per-call figures (`per_call`).

Prints `{"event": "ready", "base_url": ..., "pid": ...}`, then answers JSON commands on stdin: `instrument`
(a call's mixer records arrival→mix latency), `mark` (start the steady window: tick lateness and latency samples
restart; answers every jitter buffer's counters then, so the window's own can be told), `report` (window figures, RSS, and, for the mute/unmute requests the orchestrator lists with the
monotonic time it sent them, the latency to the first mix without/with the participant from the contributor audit),
`network` (per participant: the impairment's counters both ways and the uplink as the server's receiver measured it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import math
import sys
import time
from collections import defaultdict, deque
from dataclasses import asdict
from typing import Any

from .. import eventloop
from ..calls.call import Call
from ..media.audio import Frame
from ..media.jitter import JitterStats
from ..media.mixer import MixSlot
from ..media.netem import NetworkCounters
from ..server import MediamuteServer
from ..settings import ClusterSettings, ServerSettings
from .procstat import rss_bytes
from .stats import SampleRing, percentiles_ms

LATENCY_SAMPLES = 100_000
"""Arrival→mix latencies kept (the latest): 125 s of a 16-participant call, in 800 kB taken before the window."""

Request = tuple[float, str, str]
"""(monotonic time the orchestrator sent it, participant id, "mute" | "unmute"): one clock for all processes."""
Completed = list[tuple[float, str, str]]
"""(monotonic completion time, participant id, operation kind) of a call's operations, oldest first."""


def completed_operations(call: Call) -> Completed:
    return sorted((op.completed_monotonic, op.participant_id, op.kind) for op in list(call.operations.values()))


def completed_after(operations: Completed, after: float, participant_id: str, kind: str, strictly: bool = False) -> float | None:
    """When the first `kind` ("mute" | "unmute") operation on the participant completed at or after `after` (strictly
    after with `strictly`): the gate closed or opened on this node. None if none did."""
    name = f"{kind}Participant"
    return next((t for t, p, k in operations if (t > after if strictly else t >= after) and p == participant_id
                 and k == name), None)


def action_latencies(call: Call, requests: list[Request]) -> dict[str, list[float]]:
    """Request sent → first tick without (mute) / with (unmute) the participant, in seconds; and the part of it
    after the operation completed in the handler (gate closed or opened)."""
    out: dict[str, list[float]] = {"mute": [], "unmute": [], "mute_after_op": [], "unmute_after_op": []}
    audit = call.mixer.audit
    operations = completed_operations(call)
    for sent, pid, kind in requests:
        record = audit.first_without(pid, sent) if kind == "mute" else audit.first_with(pid, sent)
        if record is None:
            continue
        out[kind].append(record.mixed_at - sent)
        done = completed_after(operations, sent, pid, kind)
        if done is not None:
            out[f"{kind}_after_op"].append(record.mixed_at - done)
    return out


def leaks_after_mutes(call: Call, requests: list[Request]) -> list[int]:
    """For each mute request: frames of the participant the contributor audit found in mixes made after the mute
    operation completed (the gate closed, before the 200 OK) and before the next unmute re-opened it. Must be 0."""
    operations = completed_operations(call)
    audit = call.mixer.audit
    leaks = []
    for sent, pid, kind in requests:
        if kind != "mute":
            continue
        closed = completed_after(operations, sent, pid, "mute")
        if closed is None:
            continue
        reopened = completed_after(operations, closed, pid, "unmute", strictly=True)
        if reopened is None:
            reopened = float("inf")
        leaks.append(audit.frames_from(pid, closed, reopened))
    return leaks


def jitter_stats(call: Call) -> dict[str, JitterStats]:
    """Every remote participant's jitter buffer now, by participant id."""
    return {
        p.id: stats
        for p in list(call.participants.values())
        if p.media is not None and (stats := p.media.jitter_stats()) is not None
    }


def jitter_by_participant(by_id: dict[str, JitterStats]) -> dict[str, dict[str, Any]]:
    """The buffers of `jitter_stats` as JSON (counters, delays in seconds)."""
    return {pid: stats.as_dict() for pid, stats in by_id.items()}


def jitter_summary(by_id: dict[str, JitterStats]) -> dict[str, Any] | None:
    """The buffers of `jitter_stats` in one: counters summed, delays (ms) as the median participant's."""
    stats = list(by_id.values())
    if not stats:
        return None
    out: dict[str, Any] = {name: sum(getattr(s.counters, name) for s in stats)
                           for name in ("packets", "fec_packets", "late", "duplicates", "reordered", "decoded",
                                        "recovered", "concealed", "accelerated", "skipped", "flushed",
                                        "single_losses", "single_recovered", "burst_losses")}
    for name in ("target_delay", "delay_p50", "delay_p95", "jitter"):
        values = [getattr(s, name) for s in stats if getattr(s, name) is not None]
        out[f"{name}_ms"] = 1000 * statistics.median(values) if values else float("nan")
    return out


def unmute_parts(call: Call, requests: list[Request], arrivals: dict[str, deque[float]]) -> dict[str, list[float]]:
    """Each unmute's server-side latency in three parts (seconds): the request until its operation completed (the
    gate open), then until the participant's first frame reached the mixer inbox (waiting for its next packet:
    how the sender paces its packets, the network, the server's receive queue), then until the tick that mixed
    it. A mute needs no packet, so only an unmute has the middle part."""
    out: dict[str, list[float]] = {"request_to_op": [], "op_to_first_frame": [], "frame_to_mix": []}
    audit = call.mixer.audit
    operations = completed_operations(call)
    for sent, pid, kind in requests:
        if kind != "unmute":
            continue
        done = completed_after(operations, sent, pid, "unmute")
        record = audit.first_with(pid, sent)
        first = next((t for t in arrivals.get(pid, ()) if done is not None and t >= done), None)
        if done is None or record is None or first is None:
            continue
        out["request_to_op"].append(done - sent)
        out["op_to_first_frame"].append(first - done)
        out["frame_to_mix"].append(record.mixed_at - first)
    return out


RESUMED_AFTER = 0.1
"""Seconds without an admitted frame after which the next one counts as a stream resuming (after a mute)."""


def record_arrivals(call: Call, keep: int = 1000) -> dict[str, deque[float]]:
    """When each participant's stream resumed at the mixer inbox: the packet arrival of every admitted frame that
    came more than RESUMED_AFTER after the one before (the first frame after an unmute is always one), the latest
    `keep` each. Every frame reaches the inbox through the mixer's `_queue` (pushed, or pulled from a receive path
    at the tick), observed on this one call for the benchmark; a few floats per mute cycle."""
    arrivals: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=keep))
    last: dict[str, float] = {}
    mixer = call.mixer
    queue = mixer._queue

    def observed_queue(slot: MixSlot, frame: Frame, arrived: float) -> bool:
        accepted = queue(slot, frame, arrived)
        if accepted and arrived == arrived:
            participant_id = slot.participant_id
            if arrived - last.get(participant_id, -math.inf) > RESUMED_AFTER:
                arrivals[participant_id].append(arrived)
            last[participant_id] = arrived
        return accepted

    mixer._queue = observed_queue  # type: ignore[method-assign]  # an instance attribute shadows it, for this call only
    return arrivals


def op_after_request(call: Call, requests: list[Request]) -> list[tuple[float, str, str, float]]:
    """(sent, participant, kind, seconds from the request sent to its operation completed here) for each request
    whose operation this call completed: the gate closed (mute) or opened (unmute) on the node holding the call."""
    operations = completed_operations(call)
    out = []
    for sent, pid, kind in requests:
        done = completed_after(operations, sent, pid, kind)
        if done is not None:
            out.append((sent, pid, kind, done - sent))
    return out


def work_done(call: Call) -> tuple[int, int, int]:
    """(ticks mixed, RTP packets that reached the gates, mix packets sent) so far: what the window's CPU paid for.

    On a busy machine a starved server mixes fewer ticks and receives fewer packets than the clock says it should;
    CPU per unit of work done stays comparable where CPU per second does not."""
    packets_in = packets_out = 0
    for participant in call.participants.values():
        gate = participant.gate.counters()
        packets_in += gate.passed_packets + gate.dropped_packets
        outbound = participant.media.outbound_counters if participant.media is not None else None
        if outbound is not None:
            packets_out += outbound.packets
    return call.clock.ticks, packets_in, packets_out


class BenchServer:
    def __init__(
        self,
        redis_url: str | None = None,
        capacity: int = 40,
        key_file: str | None = None,
        lean_send: bool = True,
        encode_threads: int | None = None,
        mix_encoder: str = "pyav",
    ) -> None:
        # ephemeral_key: never write a signing key for a benchmark; a cluster's nodes share the orchestrator's
        # temporary key file (every node of a cluster must sign with one key)
        cluster = ClusterSettings(redis_url=redis_url, capacity=capacity) if redis_url else None
        settings = ServerSettings(
            port=0, auth=False, log_level="warning", ephemeral_key=key_file is None, key_file=key_file, cluster=cluster,
            lean_send=lean_send, encode_threads=encode_threads, mix_encoder=mix_encoder,
        )
        self.server = MediamuteServer(settings)
        self.call_ids: list[str] = []
        self.window_start = 0.0
        self.late_at_mark: dict[str, int] = {}
        self.work_at_mark: dict[str, tuple[int, int, int]] = {}
        self.arrivals: dict[str, dict[str, deque[float]]] = {}
        self.rss_at_mark = 0

    def _calls(self) -> list[Call]:
        """The instrumented calls (the registry raises CallNotFound for a wrong id)."""
        return [self.server.registry.get(call_id) for call_id in self.call_ids]

    def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        cmd = command["cmd"]
        if cmd == "calls":
            return {"event": "calls", "calls": sorted(self.server.registry.calls)}
        if cmd == "instrument":
            mixer = self.server.registry.get(command["call_id"]).mixer
            self.call_ids.append(command["call_id"])
            mixer.record_latency(True)
            self.arrivals[command["call_id"]] = record_arrivals(self.server.registry.get(command["call_id"]))
            mixer.added_latency = SampleRing(LATENCY_SAMPLES)  # type: ignore[assignment]  # same extend/clear/iter
            return {"event": "instrumented"}
        calls = self._calls()
        if cmd == "mark":
            self.window_start = time.monotonic()
            for call in calls:
                call.clock.lateness.clear()
                self.late_at_mark[call.id] = call.clock.late_ticks
                self.work_at_mark[call.id] = work_done(call)
                if call.mixer.added_latency is not None:
                    call.mixer.added_latency.clear()
            self.rss_at_mark = rss_bytes(os.getpid())
            buffers = {pid: stats for call in calls for pid, stats in jitter_by_participant(jitter_stats(call)).items()}
            return {"event": "marked", "at": self.window_start, "jitter_by_participant": buffers}
        if cmd == "report":
            requests = [tuple(r) for r in command.get("requests", [])]
            return {"event": "report", **self.report(calls, requests)}
        raise ValueError(f"unknown command {cmd!r}")

    async def network(self) -> dict[str, Any]:
        """Every remote participant's impairment counters (both directions) and its uplink's RTCP reception, in the
        instrumented calls."""
        out: list[dict[str, Any]] = []
        for call in self._calls():
            for participant in list(call.participants.values()):
                media = participant.media
                state = media.network if media is not None else None
                if media is None or state is None:
                    continue
                uplink, _ = await media.reception()
                out.append({
                    "id": participant.id,
                    "impairment": {d.direction: {"profile": d.profile.preset, **_counters(d.counters)} for d in (state.uplink, state.downlink)},
                    "uplink_rtcp": None if uplink is None else {**asdict(uplink), "loss_ratio": uplink.loss_ratio},
                })
        return {"event": "network", "participants": out}

    def report(self, calls: list[Call], requests: list[Request]) -> dict[str, Any]:
        """The first call's figures at the top level (one call: `mediamute bench`), and every call's in `per_call`."""
        pool = self.server.encode_pool
        out: dict[str, Any] = {"rss_start": self.rss_at_mark, "rss_end": rss_bytes(os.getpid()),
                               "loop": eventloop.running_loop_kind(), "encode_threads": pool.threads if pool else 0,
                               "mix_encoder": self.server.settings.mix_encoder}
        per_call = {call.id: self.call_report(call, [r for r in requests if r[1] in call.participants]) for call in calls}
        if calls:
            out.update(per_call[calls[0].id])
        out["per_call"] = per_call
        return out

    def call_report(self, call: Call, requests: list[Request]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        lateness = list(call.clock.lateness)
        out["tick_lateness_ms"] = percentiles_ms(lateness)
        out["late_ticks"] = call.clock.late_ticks - self.late_at_mark.get(call.id, 0)
        if call.id in self.work_at_mark:
            now, then = work_done(call), self.work_at_mark[call.id]
            out["work"] = {"ticks": now[0] - then[0], "packets_in": now[1] - then[1], "packets_out": now[2] - then[2]}
        out["participants"] = len(call.participants) - 1
        added = call.mixer.added_latency
        out["added_latency_ms"] = percentiles_ms(list(added)) if added is not None else None
        if requests:
            actions = action_latencies(call, requests)
            for kind, samples in actions.items():
                out[f"server_{kind}_ms"] = percentiles_ms(samples)
            out["op_after_request"] = op_after_request(call, requests)
            if call.id in self.arrivals:
                parts = unmute_parts(call, requests, self.arrivals[call.id])
                out["server_unmute_parts_ms"] = {k: percentiles_ms(v) for k, v in parts.items()}
            out["leaked_frames"] = leaks_after_mutes(call, requests)
        out["encoding"] = call.encoding_counters()
        buffers = jitter_stats(call)
        out["jitter_buffer"] = jitter_summary(buffers)
        out["jitter_by_participant"] = jitter_by_participant(buffers)
        delays = getattr(call.encoding, "pool_send_delays", None)  # rtc's MixEncoding
        if delays:
            out["pool_send_delay_ms"] = percentiles_ms(delays)
        paths: dict[str, int] = {}
        for participant in call.participants.values():
            outbound = participant.media.outbound_counters if participant.media is not None else None
            if outbound is not None:
                paths[outbound.path] = paths.get(outbound.path, 0) + 1
        out["send_paths"] = paths
        return out


def _counters(counters: NetworkCounters) -> dict[str, Any]:
    fields = asdict(counters)
    fields.pop("delay_histogram")
    return {**fields, "dropped": counters.dropped, "loss_ratio": counters.loss_ratio}


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    bench = BenchServer(args.redis, args.capacity, args.key_file, args.send_path == "lean", args.encode_threads,
                        args.mix_encoder)
    await bench.server.start()
    node = bench.server.cluster.node_id if bench.server.cluster is not None else None
    emit({"event": "ready", "base_url": bench.server.base_url, "pid": os.getpid(), "node": node,
          "loop": eventloop.running_loop_kind()})
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            command = json.loads(line)
            if command["cmd"] == "quit":
                break
            try:
                emit(await bench.network() if command["cmd"] == "network" else bench.handle(command))
            except Exception as exc:  # answer, so the orchestrator never waits forever
                emit({"event": "error", "error": repr(exc)})
    finally:
        await bench.server.stop()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", help="join a cluster through this Redis URL")
    parser.add_argument("--capacity", type=int, default=40)
    parser.add_argument("--key-file", help="the signing key file every node of the cluster shares")
    parser.add_argument("--send-path", choices=("lean", "aiortc"), default="lean", help="how the mixes are sent")
    parser.add_argument("--encode-threads", type=int, default=None, help="default: one per core; 0: on the loop")
    parser.add_argument("--mix-encoder", choices=("pyav", "libopus"), default="pyav")
    return parser.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for name in ("mediamute.rtc.peer", "mediamute.api"):  # who left the call and why, in the server's log
        logging.getLogger(name).setLevel(logging.INFO)
    arguments = parse()
    profile_to = os.environ.get("MEDIAMUTE_BENCH_PROFILE")  # a cProfile dump of the server, for steering
    if profile_to:
        import cProfile

        cProfile.run("eventloop.run(main(arguments))", profile_to)
    else:
        eventloop.run(main(arguments))
