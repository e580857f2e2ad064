"""Server settings with embedded defaults: `mediamute serve` needs no configuration file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .media.jitter import JitterBufferSettings


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    ice_addresses: str | None = None
    """Host candidates ICE offers: None → 127.0.0.1 only; "auto" → the machine's interfaces; or a comma list."""
    ice_servers: list[str] = field(default_factory=list)
    """STUN/TURN URLs; empty by default so no public STUN server is ever asked."""
    inbox_frames: int = 5
    jitter: JitterBufferSettings = field(default_factory=JitterBufferSettings)
    """Every participant's receive-path jitter buffer (the Python client takes the same object)."""
    log_level: str = "info"
    key_file: str | None = None
    """The signing key's PEM file (default: $MEDIAMUTE_KEY_FILE or ~/.local/state/mediamute/signing-key.pem)."""
    ephemeral_key: bool = False
    """Sign with a key made at start and never written (tests, benchmarks)."""
    media_dir: str | None = None
    """A directory whose files playPrompt, recordResponse and startHoldMusic may play (`mediaInfo.uri`); None: only
    the package samples and http(s) URLs on this machine."""
    auth: bool = True
    """Check bearer tokens (Graph application roles) on the API and WHIP; False only for local play/benchmarks."""
    accept_foreign_tokens: bool = False
    """Also accept another issuer's JWT (e.g. Entra ID's, for Graph) WITHOUT verifying its signature, still checking
    its lifetime, audience and roles: so a bot's unchanged code can call this server. Local testing only."""
    faults: dict[str, Any] | None = None
    """The server-wide fault spec (`api.faults.FaultSpec` as JSON: `seed`, `notifications`, `api`); None: no faults.
    A call created with its own `mediamute.faults` uses that one instead."""
    encode_threads: int | None = None
    """Threads that encode each tick's mixes (rtc/encode_pool.py): None → one per core (none on a one-core
    machine); 0 → encode on the event loop."""
    mix_encoder: str = "pyav"
    """Which Opus encoder encodes the mixes (rtc/mix_encoder.py): "pyav" (PyAV's libopus), or "libopus" (the
    system's, through opuslib-next: `pip install 'mediamute[libopus]'`)."""
    lean_send: bool = True
    """Send each listener's mix through the lean send path (rtc/rtp_send.py); False: through aiortc's own sender
    (for comparison; the lean path also falls back to it by itself when aiortc's internals are not as verified)."""
    cluster: ClusterSettings | None = None
    """Join a cluster of nodes through Redis (`--redis`); None: one process, nothing of the cluster exists."""


@dataclass
class ClusterSettings:
    """A node of a cluster coordinated through Redis (`mediamute serve --redis URL --node-url URL`)."""

    redis_url: str
    node_url: str | None = None
    """The URL other nodes and redirected clients reach this node at; None: this server's own base URL."""
    capacity: int = 40
    """Participants this node is meant to hold (one process uses one core): placement weighs load against it."""
    heartbeat: float = 1.0
    """Seconds between heartbeats (load report, TTL renewal, the check for dead nodes)."""
    node_ttl: float = 5.0
    """Seconds without a heartbeat after which a node counts as dead and its calls are ended by a survivor."""
    relay_timeout: float = 5.0
    """Seconds a relayed request may take before the node that relayed it answers 504."""
    redis_timeout: float = 1.0
    """Bound on every Redis command: past it, what needs Redis answers 503 and live calls keep mixing."""
    listen_fd: int | None = None
    """An inherited listening socket (the public port of `--workers`) served beside this node's own port."""
