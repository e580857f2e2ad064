"""The `mediamute` command line: serve, demo, join, bench and token."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console

from . import eventloop
from .server import MediamuteServer
from .media.jitter import JitterBufferSettings
from .settings import ServerSettings
from .tokens import ALL_CALL_ROLES, SigningKey, default_key_file

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="mediamute: a local media-plane simulator of server-side mute in a WebRTC group call.",
)
console = Console()

IceAddresses = Annotated[
    Optional[str],
    typer.Option(
        "--ice-addresses",
        help="Host candidates ICE offers: default 127.0.0.1 only; 'auto' for the machine's interfaces (LAN "
        "calls); or a comma-separated list of IPs.",
    ),
]
KeyFile = Annotated[
    Optional[Path],
    typer.Option("--key-file", help=f"The signing key (PEM; created if missing). Default: {default_key_file()}"),
]
Network = Annotated[
    Optional[str],
    typer.Option(
        "--network",
        help="Have the server impair this participant's network: a preset (perfect, good, wifi, 4g, lossy, "
        "congested) or a JSON profile, e.g. '{\"preset\": \"wifi\", \"loss\": 0.05}' or "
        "'{\"uplink\": \"lossy\"}' (README: Network impairment).",
    ),
]
EncodeThreads = Annotated[
    Optional[int],
    typer.Option("--encode-threads", min=0, help="Threads encoding the mixes: default one per core; 0: on the event loop."),
]
MixEncoderOption = Annotated[
    str, typer.Option("--mix-encoder", help="Opus encoder of the mixes: pyav (PyAV's libopus) or libopus (the "
                      "system's, through opuslib-next).")
]
IceServers = Annotated[
    Optional[list[str]],
    typer.Option("--ice-server", help="A STUN/TURN URL (repeatable). None by default: no public STUN."),
]
JitterMinMs = Annotated[
    float, typer.Option("--jitter-min-ms", help="The jitter buffer's least target delay, ms (0: follow the network).")
]
JitterMaxMs = Annotated[float, typer.Option("--jitter-max-ms", help="The jitter buffer's largest target delay, ms.")]
PlcFrames = Annotated[
    int, typer.Option("--plc-frames", help="Lost frames concealed in a row before a participant goes quiet.")
]


def _jitter(min_ms: float, max_ms: float, plc_frames: int) -> JitterBufferSettings:
    """The receive path's settings from the command line; a bad value is a usage error naming the option."""
    try:
        return JitterBufferSettings(min_delay=min_ms / 1000, max_delay=max_ms / 1000, max_concealed=plc_frames)
    except ValueError as exc:
        option = {"min_delay": "--jitter-min-ms", "max_delay": "--jitter-max-ms", "max_concealed": "--plc-frames"}
        field = str(exc).removeprefix("jitter buffer ").split(" ", 1)[0]  # "jitter buffer <field> must be ..."
        name = option.get(field)
        raise typer.BadParameter(str(exc), param_hint=name) from None


DEFAULT_JITTER = JitterBufferSettings()


FOREIGN_TOKENS_WARNING = (
    "[bold white on red] WARNING [/] [bold red]--accept-foreign-tokens: tokens of other issuers (Entra ID...) are "
    "accepted WITHOUT verifying their signature[/]; anyone who reaches this server can forge one. Expiry, audience and "
    "roles are still checked. Local testing only."
)


@app.callback()
def _root() -> None:
    """mediamute: a local media-plane simulator of server-side mute in a WebRTC group call."""


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind the HTTP API and WHIP endpoint to.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port (0: any free port).")] = 8080,
    ice_addresses: IceAddresses = None,
    ice_server: IceServers = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Accept requests without tokens (local play).")] = False,
    key_file: KeyFile = None,
    accept_foreign_tokens: Annotated[
        bool,
        typer.Option(
            "--accept-foreign-tokens",
            help="Also accept other issuers' tokens (e.g. Entra ID's, so a bot's unchanged code can call this server) "
            "WITHOUT verifying their signature; their expiry, audience and roles are still checked. Local testing only.",
        ),
    ] = False,
    faults: Annotated[
        Optional[str],
        typer.Option(
            "--faults",
            metavar="JSON|@FILE",
            help='Faults on request for every call, seeded and counted: e.g. \'{"seed": 1, "notifications": '
            '{"delayMs": 200, "duplicate": 0.1, "reorder": 0.1, "failFirstAttempt": 0.2}, "api": {"rate": 0.05, '
            '"statuses": [429, 503], "retryAfterSeconds": 1}}\' (see the README). Off by default.',
        ),
    ] = None,
    media_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--media-dir", exists=True, file_okay=False, dir_okay=True, resolve_path=True,
            help="A directory whose WAV files playPrompt, recordResponse and startHoldMusic may play (mediaInfo.uri: "
            "a path relative to it, or a file: URL). Default: none (package samples and local http(s) URLs only).",
        ),
    ] = None,
    encode_threads: EncodeThreads = None,
    mix_encoder: MixEncoderOption = "pyav",
    redis: Annotated[
        Optional[str],
        typer.Option("--redis", metavar="URL", help="Join a cluster of nodes through this Redis (redis://HOST:PORT/DB)."),
    ] = None,
    node_url: Annotated[
        Optional[str],
        typer.Option("--node-url", metavar="URL", help="With --redis: where other nodes and redirected clients reach "
                     "this node (default: http://HOST:PORT of this server)."),
    ] = None,
    workers: Annotated[
        Optional[str],
        typer.Option("--workers", metavar="N|auto", help="Run N nodes (auto: one per core) behind this one port, "
                     "through --redis or a redis-server started for them."),
    ] = None,
    capacity: Annotated[int, typer.Option(min=1, help="With --redis: participants this node is meant to hold.")] = 40,
    node_ttl: Annotated[float, typer.Option(min=0.5, help="With --redis: seconds without a heartbeat before a node is "
                                            "taken for dead and its calls are ended.")] = 5.0,
    relay_timeout: Annotated[float, typer.Option(min=0.05, help="With --redis: seconds a relayed request may take "
                                                 "before the answer is 504.")] = 5.0,
    jitter_min_ms: JitterMinMs = DEFAULT_JITTER.min_delay * 1000,
    jitter_max_ms: JitterMaxMs = DEFAULT_JITTER.max_delay * 1000,
    plc_frames: PlcFrames = DEFAULT_JITTER.max_concealed,
    listen_fd: Annotated[Optional[int], typer.Option("--listen-fd", hidden=True)] = None,
    worker: Annotated[bool, typer.Option("--worker", hidden=True)] = False,
) -> None:
    """Run the Graph-shaped calls API, WHIP and the media server on 127.0.0.1."""
    _logging(log_level)
    fault_spec = _fault_spec(faults)
    jitter = _jitter(jitter_min_ms, jitter_max_ms, plc_frames)
    if workers is not None:
        raise typer.Exit(_serve_workers(
            workers, host, port, redis, no_auth, key_file,
            [*(["--no-auth"] if no_auth else []), *(["--key-file", str(key_file)] if key_file else []),
             *(f"--ice-server={s}" for s in ice_server or []), *(["--ice-addresses", ice_addresses] if ice_addresses else []),
             "--log-level", log_level, "--capacity", str(capacity), "--node-ttl", str(node_ttl),
             "--relay-timeout", str(relay_timeout),
             *(["--accept-foreign-tokens"] if accept_foreign_tokens else []),
             *(["--faults", json.dumps(fault_spec)] if fault_spec is not None else []),
             *(["--media-dir", str(media_dir)] if media_dir else []),
             *(["--encode-threads", str(encode_threads)] if encode_threads is not None else []),
             "--mix-encoder", mix_encoder],
        ))
    if node_url is not None and redis is None:
        raise typer.BadParameter("--node-url needs --redis", param_hint="--node-url")
    cluster = None
    if redis is not None:
        from .settings import ClusterSettings

        cluster = ClusterSettings(
            redis_url=redis, node_url=node_url, capacity=capacity, heartbeat=min(1.0, node_ttl / 3),
            node_ttl=node_ttl, relay_timeout=relay_timeout, listen_fd=listen_fd,
        )
    settings = ServerSettings(
        jitter=jitter,
        host=host,
        port=port,
        ice_addresses=ice_addresses,
        ice_servers=list(ice_server or []),
        log_level=log_level,
        auth=not no_auth,
        key_file=str(key_file) if key_file else None,
        accept_foreign_tokens=accept_foreign_tokens,
        faults=fault_spec,
        encode_threads=encode_threads,
        mix_encoder=mix_encoder,
        cluster=cluster,
        media_dir=str(media_dir) if media_dir else None,
    )
    try:
        server = MediamuteServer(settings)
    except (ValueError, RuntimeError) as exc:  # an unknown mix encoder, or libopus missing
        raise typer.BadParameter(str(exc), param_hint="--mix-encoder") from None

    async def run() -> None:
        if cluster is not None:
            # SIGTERM and Ctrl-C stop uvicorn (it catches both while it serves, then raises them again with the
            # handlers it found): these no-ops let serve_forever return, so the calls end and the node leaves the
            # cluster cleanly. Installed before uvicorn starts, so it finds them.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: None)
        try:
            await server.start()
        except OSError as exc:
            console.print(f"[bold red]cannot listen on {host}:{port}:[/] {exc.strerror}")
            raise typer.Exit(2) from None
        except Exception as exc:
            if type(exc).__name__ != "ClusterError":
                raise
            console.print(f"[bold red]{exc}[/]", soft_wrap=True)
            raise typer.Exit(2) from None
        base = server.base_url
        if worker and server.cluster is not None:
            console.print(f"node {server.cluster.node_id} ready at {server.cluster.url} (pid {os.getpid()})", highlight=False, soft_wrap=True)
            await server.serve_forever()
            return
        token = server.signing_key.app_token(list(ALL_CALL_ROLES))
        auth = f" -H 'Authorization: Bearer {token}'" if settings.auth else ""
        console.print(f"[bold green]mediamute[/] listening on [link={base}]{base}[/link] ({eventloop.running_loop_kind()} loop)")
        page = f"{base}/?token={token}" if settings.auth else f"{base}/"
        console.print(f"  web page:       {page}", soft_wrap=True)
        console.print(f"  API docs:       {base}/docs")
        console.print(f"  create a call:  curl -X POST {base}/v1.0/communications/calls{auth} -H 'Content-Type: application/json' -d '{{}}'", soft_wrap=True)
        console.print(f"  join (WHIP):    POST {base}/whip/<callId>?displayName=NAME  (Content-Type: application/sdp)", soft_wrap=True)
        if server.cluster is not None:
            console.print(f"  cluster node:   {server.cluster.node_id} at {server.cluster.url}, through {redis}", soft_wrap=True)
        where = f", files under {media_dir}" if media_dir else ""
        console.print(f"  prompt media:   package samples (prompt.wav, hold-music.wav, ...){where}, http(s) URLs on 127.0.0.1", soft_wrap=True)
        if settings.auth:
            console.print(f"  token (all calls roles, 24 h):\n{token}", soft_wrap=True)
        else:
            console.print("  [yellow]auth is off[/]: any request is accepted")
        if settings.accept_foreign_tokens and settings.auth:
            console.print(FOREIGN_TOKENS_WARNING, soft_wrap=True)
        if fault_spec is not None:
            console.print(f"  [yellow]faults on request[/] for every call: {json.dumps(fault_spec)}", soft_wrap=True)
        await server.serve_forever()

    try:
        eventloop.run(run())
    except KeyboardInterrupt:
        pass


def _fault_spec(text: str | None) -> dict | None:
    """`--faults`: a JSON fault spec, inline or `@file`, checked now so a typo is an error that names the field."""
    from pydantic import ValidationError

    from .api.faults import fault_spec_errors, parse_fault_spec

    if text is None:
        return None
    try:
        raw = Path(text[1:]).read_text() if text.startswith("@") else text
        spec = parse_fault_spec(raw)
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {text[1:]}: {exc.strerror}", param_hint="--faults") from None
    except ValidationError as exc:
        raise typer.BadParameter(fault_spec_errors(exc), param_hint="--faults") from None
    assert spec is not None
    return spec.model_dump(mode="json", by_alias=True, exclude_none=True)


def _serve_workers(
    workers: str, host: str, port: int, redis: str | None, no_auth: bool, key_file: Path | None, worker_args: list[str]
) -> int:
    foreign = "--accept-foreign-tokens" in worker_args and not no_auth
    """`serve --workers`: N nodes behind one port (mediamute/cluster/supervisor.py)."""
    from .cluster.redis_server import RedisServerError
    from .cluster.supervisor import run_workers, worker_count

    try:
        count = worker_count(workers)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--workers") from None
    key = None if no_auth else SigningKey.load_or_create(key_file)  # made once, before the workers read it

    def banner(public: str, redis_url: str) -> None:
        console.print(f"[bold green]mediamute[/] {count} workers listening on [link={public}]{public}[/link] (Redis {redis_url})", soft_wrap=True)
        token = key.app_token(list(ALL_CALL_ROLES)) if key is not None else None
        console.print(f"  web page:       {public}/?token={token}" if token else f"  web page:       {public}/", soft_wrap=True)
        console.print(f"  API docs:       {public}/docs")
        if token:
            console.print(f"  token (all calls roles, 24 h):\n{token}", soft_wrap=True)
        else:
            console.print("  [yellow]auth is off[/]: any request is accepted")
        if foreign:
            console.print(FOREIGN_TOKENS_WARNING, soft_wrap=True)

    try:
        return run_workers(count, host, port, redis, worker_args, lambda text: console.print(text, highlight=False, soft_wrap=True), banner)
    except RedisServerError as exc:
        console.print(f"[bold red]--workers needs Redis:[/] {exc}", soft_wrap=True)
        return 2


@app.command()
def demo(
    scenario: Annotated[
        Optional[Path],
        typer.Option(
            "--scenario",
            help="A scenario file (TOML or JSON), or the name of one mediamute ships (bad-network-scenario.toml). "
            "Default: samples/default-scenario.toml.",
        ),
    ] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder. Default: out/demo-<timestamp>/.")] = None,
    no_live: Annotated[bool, typer.Option("--no-live", help="No live terminal view (for logs and CI).")] = False,
    max_mute_ms: Annotated[float, typer.Option(help="The verdict's limit on heard mute-to-silence.")] = 250.0,
) -> None:
    """Watch and hear a server mute happen, with proof: a live view, WAVs, a timeline plot and a report."""
    from .demo import ScenarioError, load_scenario, play_demo

    logging.basicConfig(level="ERROR", format="%(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        console.print(f"[bold red]bad scenario:[/] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None
    result = play_demo(loaded, out=out, live=not no_live, max_mute_ms=max_mute_ms, console=console)
    report = result.report
    console.print()
    for mute in report["mutes"]:
        heard = ", ".join(f"{k} {v:.0f} ms" if v is not None else f"{k} n/a" for k, v in mute["heardMuteToSilenceMs"].items())
        console.print(f"  {mute['speaker']} muted at {mute['mutedAt']:.1f} s: leaked frames {mute['leakedFrames']}; heard silence: {heard}", soft_wrap=True)
    for episode in report["talkingWhileMuted"]:
        until = f"to {episode['to']:.1f} s" if episode["to"] is not None else "to the end"
        console.print(f"  {episode['participant']} talked while muted from {episode['from']:.1f} s {until} (ended: {episode['ended']})")
    for p in report["participants"]:
        if p["serverRecoveredFrames"] or p["serverConcealedFrames"] or p["heardConcealedFrames"]:
            console.print(
                f"  {p['name']} ({p['network'] or 'perfect'}): its voice {p['serverRecoveredFrames']} frames rebuilt by FEC, "
                f"{p['serverConcealedFrames']} concealed on the server; it heard {p['heardConcealedFrames']} frames its "
                "own buffer concealed", soft_wrap=True,
            )
    console.print(f"  late ticks: {report['lateTicks']} of {report['ticks']}; notifications: {len(report['notifications'])}")
    console.print(f"  outputs: {result.out}/ (report.md, timeline.png, heard-by-*.wav, notifications.jsonl)", soft_wrap=True)
    style = "bold green" if report["ok"] else "bold red"
    console.print(f"[{style}]{report['verdict']}[/]  ({time.monotonic() - started:.1f} s)", soft_wrap=True)
    if not report["ok"]:
        raise typer.Exit(1)


@app.command()
def join(
    url: Annotated[str, typer.Argument(help="The server, e.g. http://127.0.0.1:8080")],
    call: Annotated[str, typer.Option("--call", help="The call id to join.")],
    tone: Annotated[Optional[float], typer.Option("--tone", help="Send a tone of this frequency (Hz).")] = None,
    wav: Annotated[Optional[Path], typer.Option("--wav", help="Send this WAV file (looped).")] = None,
    record: Annotated[Optional[Path], typer.Option("--record", help="Save what you hear to this WAV file.")] = None,
    name: Annotated[str, typer.Option("--name", help="Your display name.")] = "terminal",
    token: Annotated[Optional[str], typer.Option("--token", envvar="MEDIAMUTE_TOKEN", help="An app or join token.")] = None,
    duration: Annotated[Optional[float], typer.Option(help="Leave after this many seconds (default: until Ctrl-C).")] = None,
    dtmf: Annotated[
        Optional[str],
        typer.Option("--dtmf", help="Press these keys (0-9, *, #, A-D; ',' waits 2 s) as RFC 4733 DTMF, as a browser's keypad does."),
    ] = None,
    dtmf_at: Annotated[float, typer.Option("--dtmf-at", help="Seconds after joining to press the --dtmf keys.")] = 1.0,
    ice_addresses: IceAddresses = None,
    network: Network = None,
    jitter_min_ms: JitterMinMs = DEFAULT_JITTER.min_delay * 1000,
    jitter_max_ms: JitterMaxMs = DEFAULT_JITTER.max_delay * 1000,
    plc_frames: PlcFrames = DEFAULT_JITTER.max_concealed,
) -> None:
    """Join a call from the terminal as a WebRTC participant, and show what you send and hear."""
    jitter = _jitter(jitter_min_ms, jitter_max_ms, plc_frames)
    from .client import CallParticipant, JoinError
    from .media.audio import dbfs, rms
    from .media.telephone_event import PAUSE, event_code
    from .rtc.dtmf import DtmfUnavailable
    from .sources import SilenceSource, ToneSource, WavSource

    if tone is not None and wav is not None:
        console.print("[bold red]choose one of --tone and --wav[/]")
        raise typer.Exit(2)
    _check_network(network)
    try:
        source = ToneSource(tone) if tone is not None else WavSource(wav) if wav is not None else SilenceSource()
        for key in dtmf or "":
            if key != PAUSE:
                event_code(key)
    except ValueError as exc:
        console.print(f"[bold red]{exc}[/]")
        raise typer.Exit(2) from None

    async def press_keys(participant: CallParticipant) -> None:
        await asyncio.sleep(dtmf_at)  # the user's schedule: press the keys this long after joining
        try:
            sent = await participant.send_dtmf(dtmf or "")
        except DtmfUnavailable as exc:
            console.print(f"[bold red]DTMF not sent:[/] {exc}")
            return
        console.print(f"  pressed {dtmf} ({len(sent)} telephone-event packets)", highlight=False)

    async def run() -> int:
        participant = CallParticipant(
            url, call, source, display_name=name, token=token, ice_addresses=ice_addresses, network=network,
            jitter=jitter,
        )
        try:
            await participant.join()
        except JoinError as exc:
            console.print(f"[bold red]join refused:[/] HTTP {exc.status}: {exc.body}", soft_wrap=True)
            return 1
        except (TimeoutError, OSError) as exc:
            console.print(f"[bold red]cannot join:[/] {exc or type(exc).__name__}")
            return 1
        console.print(f"joined call {call} as {name} ({participant.participant_id}); sending {source.describe}")
        if network is not None:
            console.print(f"the server impairs your network: {network}", soft_wrap=True)
        started = time.monotonic()
        keys = asyncio.get_running_loop().create_task(press_keys(participant)) if dtmf else None
        try:
            while duration is None or time.monotonic() - started < duration:
                await asyncio.sleep(0.5)
                frames = participant.recording.frames[-25:]
                level = dbfs(rms(np.concatenate(frames))) if frames else -127.0
                console.print(f"  {time.monotonic() - started:6.1f} s  hearing {level:6.1f} dBFS", highlight=False)
        finally:
            if keys is not None and not keys.done():
                keys.cancel()
            if record is not None:
                participant.recording.save_wav(record)
                console.print(f"saved what you heard to {record}")
            await participant.leave()
        return 0

    try:
        code = eventloop.run(run())
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


def _check_network(spec: str | None) -> None:
    """Refuse a bad --network before anything starts (the server would answer 400 with the same message)."""
    if spec is None:
        return
    from .media.netem import ProfileError, parse_network

    try:
        parse_network(spec, "--network")
    except ProfileError as exc:
        console.print(f"[bold red]bad network profile:[/] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None


@app.command()
def token(
    role: Annotated[
        Optional[list[str]],
        typer.Option("--role", help=f"A Graph application role (repeatable). Default: all of {', '.join(ALL_CALL_ROLES)}."),
    ] = None,
    join: Annotated[Optional[str], typer.Option("--join", metavar="CALL_ID", help="Mint a join token for this call.")] = None,
    delegated: Annotated[bool, typer.Option("--delegated", help="A delegated (scp) token, which the API refuses.")] = False,
    hours: Annotated[float, typer.Option(help="Lifetime in hours.")] = 24.0,
    key_file: KeyFile = None,
) -> None:
    """Mint a development token that `mediamute serve` (same key file) accepts."""
    key = SigningKey.load_or_create(key_file)
    lifetime = hours * 3600
    if join:
        typer.echo(key.join_token(join, lifetime))
    elif delegated:
        typer.echo(key.delegated_token(lifetime=lifetime))
    else:
        typer.echo(key.app_token(list(role or ALL_CALL_ROLES), lifetime))


@app.command()
def bench(
    participants: Annotated[int, typer.Option("--participants", "-n", min=3, help="Participants in the call.")] = 8,
    duration: Annotated[float, typer.Option(help="Seconds of the steady measuring window.")] = 20.0,
    scenario: Annotated[
        str, typer.Option(help="all-talking, or few-talking (all but two server-muted, still sending).")
    ] = "all-talking",
    mute_cycles: Annotated[int, typer.Option(help="Mute/unmute cycles for the mute latency figures.")] = 10,
    json_file: Annotated[Optional[str], typer.Option("--json", help="Write the results as JSON to this file.")] = None,
    profile: Annotated[
        Optional[str],
        typer.Option(help="Record the server with py-spy over the window into this raw profile "
                          "(bench/profile_breakdown.py turns it into a table)."),
    ] = None,
    loop: Annotated[
        Optional[str], typer.Option(help="Event loop for every process: auto (uvloop if installed), uvloop or asyncio.")
    ] = None,
    send_path: Annotated[
        str, typer.Option(help="How the server sends the mix: lean (its own send path) or aiortc (aiortc's sender).")
    ] = "lean",
    encode_threads: EncodeThreads = None,
    mix_encoder: MixEncoderOption = "pyav",
    calls: Annotated[int, typer.Option("--calls", min=1, help="Calls at once, each of N participants (a cluster bench).")] = 1,
    workers: Annotated[
        Optional[int], typer.Option("--workers", min=1, help="Cluster nodes sharing the calls through a private "
                                    "redis-server: per-node and total figures, local and relayed mute times.")
    ] = None,
    capacity: Annotated[int, typer.Option(min=1, help="With --workers: each node's capacity.")] = 40,
    network: Network = None,
    network_role: Annotated[
        Optional[list[str]],
        typer.Option(
            "--network-role",
            help="Impair only these clients' networks (repeatable): marker, target, probe, talker. Default: every client.",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(min=0, help="With --network: participant i's network is seeded SEED + i (the same draws every run).")
    ] = 1,
    sweep: Annotated[
        Optional[str],
        typer.Option(
            "--sweep", metavar="NAME=V1,V2,...",
            help="One bench per value of a network parameter on top of --network (or a perfect network): jitter or "
            "delay (ms), loss, burst or reorder (in %: loss=0,2,5,10). Writes a CSV and a plot; exit 1 if any point "
            "leaked a frame.",
        ),
    ] = None,
    out: Annotated[
        Optional[str], typer.Option("--out", help="With --sweep: the folder for the CSV, plot and per-point JSON.")
    ] = None,
    warmup: Annotated[float, typer.Option(min=0.0, help="Seconds between the joins and the measuring window.")] = 3.0,
) -> None:
    """A live loopback call of N cheap participants: server CPU, mute/unmute and mouth-to-ear latency, ticks, RSS;
    with --network, the impairment's counters and what RTCP reports of it, and the receive paths' losses, FEC and
    concealment; with --sweep, one such run per value of a network parameter; with --calls/--workers, C calls on W
    cluster nodes, per node and in total."""
    from .benchmark import BenchConfig, run_bench
    from .benchmark.clients import ROLES

    if scenario not in ("all-talking", "few-talking"):
        raise typer.BadParameter("scenario must be all-talking or few-talking", param_hint="--scenario")
    _check_network(network)
    unknown = sorted(set(network_role or ()) - set(ROLES))
    if unknown:
        raise typer.BadParameter(f"{unknown[0]!r} is not a role ({', '.join(ROLES)})", param_hint="--network-role")
    if network is not None and (calls > 1 or workers is not None):
        raise typer.BadParameter("--network is measured by the one-call bench (without --calls/--workers)", param_hint="--network")
    if send_path not in ("lean", "aiortc"):
        raise typer.BadParameter("send path must be lean or aiortc", param_hint="--send-path")
    if loop is not None:
        try:
            eventloop.loop_kind(loop)
        except (ValueError, RuntimeError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--loop") from None
        os.environ[eventloop.LOOP_ENV] = loop  # the server and clients processes inherit it
    if network_role and network is None and sweep is None:
        raise typer.BadParameter("--network-role needs --network or --sweep", param_hint="--network-role")
    config = BenchConfig(
        participants=participants, duration=duration, scenario=scenario, mute_cycles=mute_cycles,
        json_path=None if json_file is None else Path(json_file),
        profile_path=None if profile is None else Path(profile),
        send_path=send_path,  # type: ignore[arg-type]  # checked above
        encode_threads=encode_threads,
        mix_encoder=mix_encoder,
        calls=calls, workers=workers if workers is not None else (1 if calls > 1 else None), capacity=capacity,
        network=network, network_roles=tuple(network_role or ROLES), network_seed=seed, warmup=warmup,
    )
    if sweep is None:
        if out is not None:
            raise typer.BadParameter("--out is where a sweep writes its files: it needs --sweep", param_hint="--out")
        eventloop.run(run_bench(config, console))
        return
    from .benchmark.sweep import parse_sweep, run_sweep

    try:
        swept = parse_sweep(sweep)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--sweep") from None
    if calls > 1 or workers is not None or json_file is not None:
        raise typer.BadParameter("a sweep runs the one-call bench and writes its own files (no --calls, --workers, --json)",
                                 param_hint="--sweep")
    if mute_cycles < 1:
        raise typer.BadParameter("a sweep checks the mute at every point: at least one mute cycle", param_hint="--mute-cycles")
    for value in swept.values:  # every point's profile is valid before the first one runs
        _check_network(swept.network(network, value))
    folder = Path(out) if out else Path("out") / time.strftime(f"sweep-{swept.name}-%Y%m%d-%H%M%S")
    raise typer.Exit(eventloop.run(run_sweep(config, swept, folder, console)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
