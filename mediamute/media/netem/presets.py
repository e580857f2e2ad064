"""Named network profiles, per direction, each with where its figures come from (the README's table is made from
this one). Standard library only."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .profile import PERFECT, Direction, NetworkProfile, ProfileError


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    uplink: NetworkProfile
    """Participant → server."""
    downlink: NetworkProfile
    """Server → participant."""
    summary: str
    source: str
    """Where the figures come from, and which ones are mediamute's own choice."""

    def profile(self, direction: Direction) -> NetworkProfile:
        return self.uplink if direction == "uplink" else self.downlink


def _both(name: str, profile: NetworkProfile, summary: str, source: str) -> Preset:
    named = replace(profile, preset=name)
    return Preset(name, named, named, summary, source)


PRESET_LIST: tuple[Preset, ...] = (
    _both("perfect", PERFECT, "no impairment (the default): nothing is installed on the packet path", "-"),
    _both(
        "good",
        NetworkProfile(delay_ms=20, jitter_ms=2, loss=0.001),
        "a wired broadband path",
        "inside ITU-T Y.1541 QoS class 0 (one-way delay ≤ 100 ms, delay variation ≤ 50 ms, loss ≤ 10⁻³): "
        "20 ms and 2 ms are ours, the loss is the class's bound",
    ),
    _both(
        "wifi",
        NetworkProfile(delay_ms=60, jitter_ms=30, jitter_correlation=0.5, burst_loss=0.02, burst_length=2),
        "a busy home WLAN on the way to the server: bursty loss, strongly varying delay",
        "the ≈ 2 % loss and ≈ 30 ms jitter of mediamute issue 11; losses in short bursts (mean 2) as WLAN "
        "retries and interference make them, a delay correlation of 0.5 and a 60 ms base (≥ 2 x jitter, so "
        "the truncation at 0 ms stays rare) are ours",
    ),
    Preset(
        "4g",
        NetworkProfile(preset="4g", delay_ms=45, jitter_ms=15, loss=0.002, rate_kbps=50_000),
        NetworkProfile(preset="4g", delay_ms=45, jitter_ms=5, loss=0.002, rate_kbps=100_000),
        "LTE: 45 ms, 0.2 % loss, more jitter up than down",
        "Loadero's \"4G\" network condition: 45 ms latency, 0.2 % loss, jitter 5 ms in / 15 ms out, "
        "100 / 50 Mbit/s",
    ),
    _both(
        "lossy",
        NetworkProfile(delay_ms=40, jitter_ms=10, loss=0.05, burst_loss=0.05, burst_length=3),
        "≈ 10 % loss, half of it in bursts",
        "the 10 % of Loadero's \"10% packetloss\" condition; half of it as Gilbert-Elliott bursts of mean "
        "length 3 (the netem `loss gemodel p r` that webrtcperf derives from a loss and a burst length), "
        "40 ± 10 ms are ours",
    ),
    _both(
        "congested",
        NetworkProfile(
            delay_ms=100, jitter_ms=40, jitter_correlation=0.9, burst_loss=0.03, burst_length=4,
            rate_kbps=128, queue_packets=12,
        ),
        "a shared bottleneck: a slow, strongly correlated delay swing, losses in bursts, a 128 kbit/s cap",
        "all ours, past ITU-T Y.1541 class 0's delay-variation bound (50 ms). The cap (IP/UDP headers counted) "
        "carries the server's 32 kbit/s mix and a browser's Opus; aiortc's 96 kbit/s stereo (≈ 133 kbit/s on "
        "the wire) overfills it, so its 12-packet queue stands full (≈ 250 ms more) and drops ≈ 1 % at its tail",
    ),
)
"""The presets, in the order the README lists them."""

PRESETS: dict[str, Preset] = {p.name: p for p in PRESET_LIST}
ALIASES = {"off": "perfect"}
"""Other names a preset answers to (exact, like the preset names)."""
PRESET_NAMES: tuple[str, ...] = (*PRESETS, *ALIASES)
"""Every name `preset()` accepts, for the OpenAPI document and the CLI's help."""


def preset(name: str, direction: Direction, where: str = "network") -> NetworkProfile:
    """The named preset's profile for `direction`; `ProfileError` naming `where` for an unknown name."""
    found = PRESETS.get(ALIASES.get(name, name))
    if found is None:
        known = ", ".join([*PRESETS, *ALIASES])
        raise ProfileError(where, f"unknown network preset {name!r} (known: {known}, or a JSON profile)")
    return found.profile(direction)
