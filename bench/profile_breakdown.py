"""Where the server's time goes, per participant per tick, from py-spy profiles of `mediamute bench`.

    mediamute bench -n 16 --duration 20 --profile p1.raw --json r1.json      # (repeat: r2, r3, ...)
    python bench/profile_breakdown.py r1.json r2.json r3.json                # the median table, in markdown

`mediamute bench --profile FILE` records the server process with py-spy over the steady window (raw stacks, one
root frame per thread, 250 samples a second, without pausing the server). This script sorts every sample into one
stage of the media path by the functions on its stack (the table's rows, in the order a packet meets them), then
turns sample shares into time with the CPU /proc measured for each thread over the same window: a thread's
samples that are not idle share out that thread's measured CPU. Sampling shares come from py-spy, absolute time
from the kernel's accounting, because on a shared 2-core machine a sampler also catches a thread while it waits to
be scheduled. The event loop's wait in epoll (asyncio's `select`; with uvloop, the native loop itself) is idle
time and is left out; so is a thread below 0.5 % of a core.

Several runs: each figure is the median over the runs. `--raw FILE --cpu PERCENT -n N` reads one bare profile
(its main thread scaled to PERCENT).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

TICK_US = 20_000.0

IDLE = "idle: waiting in epoll (excluded)"
STAGES: tuple[str, ...] = (
    "receive: datagram (socket read, aioice, queue)",
    "receive: DTLS transport dispatch and RTP routing",
    "receive: SRTP unprotect",
    "receive: RTP parse",
    "receive: statistics and clocks (aiortc, datetime.now)",
    "receive: gate",
    "receive: sequence validation",
    "receive: jitter buffer (insert, playout decisions, frame assembly)",
    "receive: Opus decode (libopus: decode, FEC, concealment)",
    "receive: into the mixer inbox",
    "mix (numpy, the tick's loop over listeners)",
    "hand-off to and from the pool's threads (queue, wake-ups)",
    "encode (Opus)",
    "packetize (RTP header, extensions, NTP clock)",
    "send: per-packet coroutine chain (aiortc sender, track queue)",
    "send: SRTP protect",
    "send: sendto (syscall)",
    "RTCP (reports in and out)",
    "ICE consent (STUN)",
    "event loop overhead",
    "HTTP",
    "benchmark instrumentation",
    "unattributed (no Python frame)",
    "other",
)
(RX_DATAGRAM, RX_DTLS, RX_SRTP, RX_PARSE, RX_STATS, RX_GATE, RX_SEQ, RX_JITTER, RX_DECODE, RX_INBOX, MIX, HANDOFF, ENCODE, PACKETIZE,
 TX_CHAIN, TX_SRTP, TX_SENDTO, RTCP, CONSENT, LOOP, HTTP, INSTRUMENTATION, UNATTRIBUTED, OTHER) = STAGES

THREAD_ROOT = re.compile(r"^thread \((?:0x)?([0-9a-fA-F]+)\)(?::\s*(.*))?$")


@dataclass(frozen=True, slots=True)
class Frame:
    function: str
    path: str


def parse_frame(text: str) -> Frame:
    function, _, rest = text.partition(" (")
    return Frame(function, rest.rstrip(")"))


def _any(frames: list[Frame], *names: str) -> bool:
    return any(f.function == n or f.function.endswith("." + n) or f.function.startswith(n + ".") for f in frames
               for n in names)


def _in_module(frames: list[Frame], *fragments: str) -> bool:
    return any(frag in f.path for f in frames for frag in fragments)


def classify(frames: list[Frame]) -> str:
    """The stage one sample (its Python stack, outermost first, thread root removed) belongs to."""
    if not frames:
        return UNATTRIBUTED
    leaf, leaf_path = frames[-1].function, frames[-1].path
    if leaf.endswith(".select") or leaf in ("Runner.run", "run", "BaseEventLoop.run_until_complete",
                                            "BaseEventLoop.run_forever"):
        return IDLE
    if leaf_path.startswith(("threading.py", "queue.py", "concurrent/futures/thread.py")) or leaf == "EncodePool._work":
        return IDLE  # a worker thread waiting for work
    if _any(frames, "BenchServer", "SampleRing", "_record_latency", "percentiles_ms"):
        return INSTRUMENTATION
    if _in_module(frames, "uvicorn/", "starlette/", "fastapi/", "h11/", "httptools/", "mediamute/api/"):
        return HTTP
    if _any(frames, "query_consent", "send_stun", "Transaction", "request_received", "check_start", "check_complete"):
        return CONSENT
    if _any(frames, "_run_rtcp", "_send_rtcp", "_handle_rtcp_data", "_handle_rtcp_packet"):
        return RTCP
    if _any(frames, "MonoOpusEncoder.encode", "OpusEncoder.encode", "LibopusEncoder.encode", "PyAVMixEncoder.encode",
            "TickBatch.encode"):
        return ENCODE
    if _any(frames, "MonoOpusDecoder.decode", "OpusDecoder._run", "OpusDecoder.decode", "OpusDecoder.recover",
            "OpusDecoder.conceal", "OpusDecoder.reset", "ReceivePath._decode", "PendingDecode.run", "DecodeBatch.run"):
        return RX_DECODE
    if _any(frames, "unprotect"):
        return RX_SRTP
    if _any(frames, "protect"):
        return TX_SRTP
    if _any(frames, "_SelectorDatagramTransport.sendto", "send_data", "UDPTransport.sendto", "socket.sendto",
            "LeanRtpSender._write") or (leaf.endswith("sendto") and not _any(frames, "_read_ready")):
        return TX_SENDTO
    if _any(frames, "RtpPacket.parse"):
        return RX_PARSE
    if _any(frames, "MuteGate.admit", "GateFront._admit", "ReceivePath._admit"):
        return RX_GATE
    if _any(frames, "SequenceValidator.check"):
        return RX_SEQ
    if _any(frames, "PlayoutBuffer.insert", "PlayoutBuffer.next", "ReceivePath.add", "ReceivePath.pull",
            "ReceivePath.prepare", "ReceivePath._plan", "ReceivePath._assemble", "ReceivePath._landed",
            "PendingDecode.complete", "packet_samples", "has_lbrr"):
        return RX_JITTER
    if _any(frames, "Mixer.push", "Mixer._queue", "Mixer._admit", "Reframer.push", "ParticipantPeer._on_frame"):
        return RX_INBOX
    if _any(frames, "StreamStatistics.add", "current_datetime", "current_ms") and _any(frames, "_handle_rtp_packet",
                                                                                       "_recv_next"):
        return RX_STATS
    if _any(frames, "RtpPacket.serialize", "pack_header_extensions", "RtpPacket.__init__", "current_ntp_time",
            "datetime_to_ntp", "OpusEncoder.pack", "convert_timebase", "LeanRtpSender.send", "MixOutlet.__call__",
            "opus_av_packet"):
        return PACKETIZE
    if _any(frames, "EncodePool.submit", "TickEncoder._finished_elsewhere", "call_soon_threadsafe") or (
            _any(frames, "EncodePool._work") and _any(frames, "back")):
        return HANDOFF
    if _any(frames, "Mixer._mix", "Mixer._take_frames", "saturate_int16", "Mixer.tick", "Call._tick",
            "Mixer._mix_tick", "Mixer.begin_tick", "Mixer.finish_tick", "Call._finish_tick", "Call._mixed",
            "MixEncoding.decode", "TickDecoder",
            "MixClock._fire", "ListenerSink.__call__", "MixEncoding.stage", "MixEncoding.tick_done", "TickEncoder",
            "TickBatch.deliver", "EncodePool.submit"):
        return MIX
    if _any(frames, "_run_rtp", "_next_encoded_frame", "MixTrack.recv", "MixTrack.push", "_send_rtp",
            "Connection.send", "Connection.sendto"):
        return TX_CHAIN
    if _any(frames, "_handle_rtp_packet", "_handle_rtp_data", "_recv_next", "RtpRouter.route_rtp"):
        return RX_DTLS
    if _any(frames, "datagram_received", "_guarded_datagram_received", "data_received", "_read_ready",
            "Connection.recv", "recvfrom", "parse_message"):
        return RX_DATAGRAM
    if _in_module(frames, "asyncio/", "uvloop/") or leaf.startswith(("Handle.", "TimerHandle", "Task")):
        return LOOP
    return OTHER


@dataclass
class ThreadSamples:
    name: str
    stages: Counter[str]

    @property
    def active(self) -> int:
        return sum(n for stage, n in self.stages.items() if stage != IDLE)


def read_profile(path: Path) -> dict[int, ThreadSamples]:
    """py-spy's raw format (`frame;frame;...;frame count` per line, the first frame naming the thread)."""
    threads: dict[int, ThreadSamples] = {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        parts = stack.split(";")
        root = THREAD_ROOT.match(parts[0])
        if root is None:
            tid, name, frames = 0, "?", parts
        else:
            tid, name, frames = int(root.group(1), 16 if parts[0].startswith("thread (0x") else 10), root.group(2) or "", parts[1:]
        thread = threads.setdefault(tid, ThreadSamples(name, Counter()))
        thread.stages[classify([parse_frame(f) for f in frames])] += int(count)
    return threads


def stage_percent(threads: dict[int, ThreadSamples], cpu_by_tid: dict[int, float]) -> dict[str, float]:
    """% of one core spent in each stage: each thread's measured CPU shared out by its active samples."""
    out: dict[str, float] = defaultdict(float)
    for tid, thread in threads.items():
        cpu = cpu_by_tid.get(tid, 0.0)
        if cpu <= 0 or thread.active == 0:
            continue
        for stage, n in thread.stages.items():
            if stage != IDLE:
                out[stage] += cpu * n / thread.active
    return out


@dataclass
class Run:
    participants: int
    scenario: str
    cpu_percent: float
    stages: dict[str, float]
    """% of one core per stage (whole server)."""


def run_from_bench(path: Path) -> Run:
    results = json.loads(path.read_text())
    profile = Path(results["profile"]["path"])
    if not profile.is_absolute() and not profile.exists():
        profile = path.parent / profile
    cpu_by_tid = {t["tid"]: t["percent"] for t in results["server_threads"]}
    config = results["config"]
    return Run(config["participants"], config["scenario"], results["server_cpu_percent"],
               stage_percent(read_profile(profile), cpu_by_tid))


def run_from_raw(path: Path, cpu_percent: float, participants: int) -> Run:
    """A bare profile: its busiest thread (the event loop) is given `cpu_percent`, the others nothing."""
    threads = read_profile(path)
    main = max(threads, key=lambda tid: threads[tid].active)
    return Run(participants, "?", cpu_percent, stage_percent({main: threads[main]}, {main: cpu_percent}))


def median_table(runs: list[Run]) -> str:
    """Markdown: per stage, µs per participant per 20 ms tick and % of a core per participant (medians)."""
    n = runs[0].participants

    def med(values: Iterable[float]) -> float:
        return statistics.median(list(values))

    rows = ["| stage | µs / participant / tick | % of a core / participant | share |", "|---|---:|---:|---:|"]
    totals = [sum(r.stages.values()) for r in runs]
    for stage in STAGES:
        per = [r.stages.get(stage, 0.0) / r.participants for r in runs]
        share = [r.stages.get(stage, 0.0) / t * 100 if t else 0.0 for r, t in zip(runs, totals)]
        if max(per) < 0.0005:
            continue
        rows.append(f"| {stage} | {med(per) / 100 * TICK_US:.1f} | {med(per):.3f} | {med(share):.1f} % |")
    per_total = med(t / r.participants for t, r in zip(totals, runs))
    rows.append(f"| **total (profiled threads)** | **{per_total / 100 * TICK_US:.1f}** | **{per_total:.3f}** | 100 % |")
    cpu = med(r.cpu_percent / r.participants for r in runs)
    rows.append(f"| server process, /proc | {cpu / 100 * TICK_US:.1f} | {cpu:.3f} | |")
    head = f"N = {n}, {runs[0].scenario}, median of {len(runs)} run(s)"
    return head + "\n\n" + "\n".join(rows)


def main(argv: list[str] | None = None, out: Callable[[str], object] = print) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="*", type=Path, help="JSON files of `mediamute bench --profile … --json …`")
    parser.add_argument("--raw", type=Path, help="a bare py-spy raw profile instead")
    parser.add_argument("--cpu", type=float, help="with --raw: the server's CPU over the profile, %% of one core")
    parser.add_argument("-n", "--participants", type=int, help="with --raw: participants in the call")
    args = parser.parse_args(argv)
    if args.raw is not None:
        if args.cpu is None or args.participants is None:
            parser.error("--raw needs --cpu and --participants")
        runs = [run_from_raw(args.raw, args.cpu, args.participants)]
    elif args.results:
        runs = [run_from_bench(p) for p in args.results]
    else:
        parser.error("give bench JSON files, or --raw")
    out(median_table(runs))


if __name__ == "__main__":
    main()
