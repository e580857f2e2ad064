"""A network profile: what one direction of a participant's network does to its datagrams, and how it is written.

One table (`PROFILE_FIELDS`) states every parameter once: its wire name (camelCase, as in the API, the WHIP
`network` parameter, scenarios and the CLI), its range, its unit and what it means. Parsing checks against it and
the API's OpenAPI schema is generated from it, so what the document promises is what the parser accepts.

A profile is written as a preset name (`"wifi"`), or an object whose fields override a preset or, without
`preset`, a perfect network (`{"preset": "wifi", "loss": 0.05}`, `{"delayMs": 80}`). Every field is
independent of the others, so any in-range combination is valid. A bad value raises `ProfileError` naming the
field (`network.uplink.loss: must be at most 1, got 1.5`). Standard library only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

MAX_SEED = 2**32 - 1
Direction = Literal["uplink", "downlink"]
"""uplink: participant → server; downlink: server → participant."""
DIRECTIONS: tuple[Direction, ...] = ("uplink", "downlink")


class ProfileError(ValueError):
    """A network profile that cannot be used; `field` is the path of the value at fault, e.g. `uplink.loss`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One profile parameter: its wire name, the dataclass attribute that holds it, its range and meaning."""

    wire: str
    attr: str
    minimum: float
    maximum: float
    default: float
    description: str
    integer: bool = False


PROFILE_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("delayMs", "delay_ms", 0, 5000, 0,
              "Base one-way delay added to every datagram (ms)."),
    FieldSpec("jitterMs", "jitter_ms", 0, 5000, 0,
              "Standard deviation of the delay around delayMs (ms): a Gaussian AR(1) process, truncated at 0. "
              "Deliveries keep their send order unless `reorder` asks otherwise (a datagram never overtakes an "
              "earlier one), and RTCP's interarrival jitter reads about 1.13 x jitterMs x sqrt(1 - "
              "jitterCorrelation), a little less when keeping that order holds datagrams back."),
    FieldSpec("jitterCorrelation", "jitter_correlation", 0, 0.99, 0,
              "AR(1) coefficient between the delays of consecutive datagrams (0: independent)."),
    FieldSpec("loss", "loss", 0, 1, 0,
              "Probability that a datagram is lost, independently of every other."),
    FieldSpec("burstLoss", "burst_loss", 0, 0.5, 0,
              "Mean loss of the Gilbert-Elliott burst process (its bad state loses every datagram, its good state "
              "none): p = burstLoss / (burstLength x (1 - burstLoss)), r = 1 / burstLength. Adds to `loss`."),
    FieldSpec("burstLength", "burst_length", 1, 100, 2,
              "Mean length of a loss burst, in datagrams (the bad state's mean stay, 1 / r)."),
    FieldSpec("reorder", "reorder", 0, 1, 0,
              "Probability that a datagram is held back by reorderMs, so the ones sent after it overtake it."),
    FieldSpec("reorderMs", "reorder_ms", 1, 1000, 40,
              "How far a reordered datagram is held back (ms): 40 ms is two 20 ms audio packets."),
    FieldSpec("duplicate", "duplicate", 0, 1, 0,
              "Probability that a datagram is delivered twice (the copy right after the original)."),
    FieldSpec("rateKbps", "rate_kbps", 0, 10_000_000, 0,
              "Bottleneck rate in kbit/s, counting 28 bytes of IPv4 + UDP headers per datagram (0: no cap)."),
    FieldSpec("queuePackets", "queue_packets", 1, 2000, 50,
              "Datagrams the bottleneck queue holds while the rate cap serialises them; the next one is dropped "
              "(drop-tail, counted as queue overflow).", integer=True),
)
"""Every profile parameter, in the order the API shows them."""

FIELDS_BY_WIRE = {spec.wire: spec for spec in PROFILE_FIELDS}
SEED_DESCRIPTION = (
    "Seed of this direction's random streams (0 .. 2^32-1). Given: the streams restart from it, so a run can be "
    "replayed. Left out: a new profile continues the streams in use (a new participant gets a random seed, shown here)."
)
PRESET_DESCRIPTION = "A named preset the other fields override; without one they override a perfect network."


@dataclass(frozen=True, slots=True)
class NetworkProfile:
    """What one direction of a network does to datagrams. All zero (the default) is a perfect network."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    jitter_correlation: float = 0.0
    loss: float = 0.0
    burst_loss: float = 0.0
    burst_length: float = 2.0
    reorder: float = 0.0
    reorder_ms: float = 40.0
    duplicate: float = 0.0
    rate_kbps: float = 0.0
    queue_packets: int = 50
    preset: str | None = None
    """The preset it was made from (None: from a perfect network)."""
    seed: int | None = None
    """Restart the direction's random streams from this seed when applied (None: continue them)."""

    @property
    def is_perfect(self) -> bool:
        """Nothing is done to a datagram: no delay, loss, burst, reordering, duplication or rate cap."""
        return not (
            self.delay_ms or self.jitter_ms or self.loss or self.burst_loss or self.reorder or self.duplicate
            or self.rate_kbps
        )

    @property
    def delays(self) -> bool:
        """Datagrams are held back (delay, jitter, reordering or a rate cap), so they go through a delivery queue."""
        return bool(self.delay_ms or self.jitter_ms or self.reorder or self.rate_kbps)

    def wire(self) -> dict[str, Any]:
        """The profile as the API writes it (a valid spec: it parses back to this profile)."""
        body: dict[str, Any] = {"preset": self.preset}
        for spec in PROFILE_FIELDS:
            value = getattr(self, spec.attr)
            body[spec.wire] = int(value) if spec.integer else float(value)
        body["seed"] = self.seed
        return body


PERFECT = NetworkProfile()


def _number(value: Any, spec: FieldSpec, where: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProfileError(where, f"must be a number, got {json.dumps(value)[:40]}")
    if not math.isfinite(value):
        raise ProfileError(where, f"must be a finite number, got {value}")
    if spec.integer and value != int(value):
        raise ProfileError(where, f"must be a whole number, got {value}")
    if value < spec.minimum:
        raise ProfileError(where, f"must be at least {spec.minimum:g}, got {value:g}")
    if value > spec.maximum:
        raise ProfileError(where, f"must be at most {spec.maximum:g}, got {value:g}")
    return int(value) if spec.integer else float(value)


def _seed(value: Any, where: str) -> int | None:
    if value is None:
        return None
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())  # JSON's 7.0 is whole
    if isinstance(value, bool) or not whole or not 0 <= value <= MAX_SEED:
        raise ProfileError(where, f"must be a whole number from 0 to {MAX_SEED}, got {json.dumps(value)[:40]}")
    return int(value)


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(where, f"is not valid JSON: {exc.msg} at character {exc.pos}") from None


def parse_profile(spec: Any, direction: Direction, where: str = "network") -> NetworkProfile:
    """`direction`'s profile from a preset name or a mapping of fields (a preset may differ per direction, e.g.
    4g's uplink jitter); `where` prefixes the field in errors."""
    from .presets import preset  # the presets are profiles themselves

    if isinstance(spec, str):
        return preset(spec, direction, where)
    if not isinstance(spec, Mapping):
        raise ProfileError(where, f"must be a preset name or an object, got {json.dumps(spec)[:40]}")
    base = PERFECT
    if "preset" in spec and spec["preset"] is not None:
        if not isinstance(spec["preset"], str):
            raise ProfileError(f"{where}.preset", "must be a preset name")
        base = preset(spec["preset"], direction, f"{where}.preset")
    changes: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "preset":
            continue
        if key == "seed":
            changes["seed"] = _seed(value, f"{where}.seed")
            continue
        field = FIELDS_BY_WIRE.get(key)
        if field is None:
            known = ", ".join(["preset", *FIELDS_BY_WIRE, "seed"])
            raise ProfileError(f"{where}.{key}", f"is not a profile field (known: {known})")
        changes[field.attr] = _number(value, field, f"{where}.{key}")
    return replace(base, **changes)




@dataclass(frozen=True, slots=True)
class NetworkSpec:
    """Profiles for the two directions of a participant's network; None leaves a direction as it is."""

    uplink: NetworkProfile | None = None
    """Participant → server."""
    downlink: NetworkProfile | None = None
    """Server → participant."""


def parse_network(spec: Any, where: str = "network") -> NetworkSpec:
    """Both directions from one spec: a profile (a preset name or object) applies to both; an object with
    `uplink` and/or `downlink` keys sets each direction on its own (a direction left out is left as it is).
    A text spec (a query parameter, a header, a command-line option) is a preset name or that object as JSON."""
    if isinstance(spec, str):
        spec = spec.strip()
        if spec.startswith("{"):
            spec = _json(spec, where)
    if isinstance(spec, Mapping) and any(key in spec for key in DIRECTIONS):
        stray = [key for key in spec if key not in DIRECTIONS]
        if stray:
            raise ProfileError(
                f"{where}.{stray[0]}", "give either one profile for both directions or 'uplink'/'downlink' profiles"
            )
        return NetworkSpec(
            **{d: parse_profile(spec[d], d, f"{where}.{d}") for d in DIRECTIONS if d in spec and spec[d] is not None}
        )
    return NetworkSpec(uplink=parse_profile(spec, "uplink", where), downlink=parse_profile(spec, "downlink", where))


