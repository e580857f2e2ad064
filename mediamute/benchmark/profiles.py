"""Network specs as the benchmark writes them: one parameter set on top of a base spec (a sweep's point), and a seed
per participant (every run, and every point of a sweep, draws the same losses and delays for the same client).

A spec is what WHIP's `network` parameter takes (README: Network impairment): a preset name, a profile object, or
an object with `uplink`/`downlink` profiles. The results are JSON texts that `media.netem.parse_network` accepts.
"""

from __future__ import annotations

import json
from typing import Any

from ..media.netem import DIRECTIONS


def _as_object(spec: str | None) -> dict[str, Any]:
    """A spec as a JSON object: a preset name becomes {"preset": name}; None (a perfect network) becomes {}."""
    if spec is None or not spec.strip():
        return {}
    text = spec.strip()
    if text.startswith("{"):
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError(f"a network spec must be a preset name or a JSON object, not {text!r}")
        return value
    return {"preset": text}


def _each_profile(spec: dict[str, Any]) -> tuple[bool, dict[str, dict[str, Any]]]:
    """(per direction?, the profile objects to change): both directions' own, or the one profile for both."""
    if any(key in spec for key in DIRECTIONS):
        return True, {d: _as_object(v) if isinstance(v, str) else dict(v) for d, v in spec.items() if v is not None}
    return False, {"both": dict(spec)}


def _join(per_direction: bool, profiles: dict[str, dict[str, Any]]) -> str:
    return json.dumps(profiles if per_direction else profiles["both"], separators=(",", ":"))


def with_field(spec: str | None, field: str, value: float) -> str:
    """`spec` with the profile field `field` (its wire name, e.g. `jitterMs`) set to `value` in every profile."""
    per_direction, profiles = _each_profile(_as_object(spec))
    for profile in profiles.values():
        profile[field] = value
    return _join(per_direction, profiles)


def with_seed(spec: str, seed: int) -> str:
    """`spec` with every profile seeded by `seed` (each direction draws from its own streams all the same)."""
    return with_field(spec, "seed", seed)
