"""What a bench run's raw reports mean: the steady window's receive-path counts (server and probe), how continuous the
probe's audio was, what the mutes leaked, and the one flat row of named measures a sweep writes per point.

The raw material: per-participant jitter-buffer counters from the server at the window's start and end, the
probe's buffer likewise from the clients, the probe's per-tick record (what each playout tick played and the tones'
amplitudes), and the members' roles. Counters are cumulative from the join; the window's own are the difference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..media.audio import FRAME_SECONDS
from ..media.netem import parse_network
from .clients import CONCEALED, LOUD, NOTHING, RECOVERED

FRAME_COUNTERS = (
    "packets", "fec_packets", "late", "reordered", "decoded", "recovered", "concealed", "accelerated", "skipped",
    "single_losses", "single_recovered", "burst_losses",
)
"""Jitter-buffer counters summed over a window."""
VOICE_ROLES = ("target", "talker")
"""The streams that carry LBRR data in every packet (`VoicedToneSource`): the marker's silences between its bursts
carry none (libopus adds no FEC to silence), so FEC recovery is judged on these."""
DROPOUT_FRACTION = 0.25
"""The target's tone is gone from a frame (a dropout) below this fraction of its level."""


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def window_counters(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, int]:
    """A buffer's counters over the window: at its end minus at its start (a buffer born in the window: all)."""
    return {name: int(after.get(name, 0)) - int((before or {}).get(name, 0)) for name in FRAME_COUNTERS}


def receive_summary(counters: Iterable[Mapping[str, int]]) -> dict[str, Any]:
    """Summed window counters of some buffers, with the shares that say how the losses were met."""
    total = {name: 0 for name in FRAME_COUNTERS}
    for entry in counters:
        for name in FRAME_COUNTERS:
            total[name] += entry[name]
    frames = total["decoded"] + total["recovered"] + total["concealed"]
    lost = total["single_losses"] + total["burst_losses"]
    return {
        **total,
        "frames": frames,
        "fec_packet_share": _ratio(total["fec_packets"], total["packets"]),
        "lost_share": _ratio(lost, frames + total["skipped"]),
        "single_recovered_share": _ratio(total["single_recovered"], total["single_losses"]),
        "concealed_share": _ratio(total["concealed"], frames),
    }


def server_receive(before: Mapping[str, Any], after: Mapping[str, Any], members: list[dict[str, str]],
                   roles: Iterable[str] | None = None) -> dict[str, Any]:
    """The server's buffers over the window, for the participants of `roles` (all when None)."""
    chosen = {m["id"] for m in members if roles is None or m["role"] in roles}
    return receive_summary(window_counters(before.get(pid), stats) for pid, stats in after.items() if pid in chosen)


def buffer_delays_ms(stats: Mapping[str, Any] | None) -> dict[str, float | None]:
    """A buffer's target and actual delays now, in ms."""
    def ms(key: str) -> float | None:
        value = None if stats is None else stats.get(key)
        return None if value is None else 1000.0 * value

    return {"target_ms": ms("target_delay"), "delay_p50_ms": ms("delay_p50"), "delay_p95_ms": ms("delay_p95")}


def _longest_run(mask: np.ndarray) -> int:
    """The longest run of True values."""
    if not mask.any():
        return 0
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max())


def probe_continuity(probe: Mapping[str, Any], tone_key: str) -> dict[str, Any]:
    """How continuous the probe's audio was over the window: ticks by what they played, the longest stretch
    without the stream's own audio (concealed or nothing), the longest silence (nothing played), and the longest
    audible dropout of the target's tone (below a quarter of its level; the window holds no mute)."""
    kinds = np.asarray(probe.get("kinds", []), dtype=np.int8)
    amps = np.asarray(probe.get(tone_key, []), dtype=np.float64)
    frame_ms = 1000.0 * FRAME_SECONDS
    invented = (kinds == CONCEALED) | (kinds == NOTHING)
    return {
        "ticks": int(kinds.size),
        "recovered": int((kinds == RECOVERED).sum()),
        "concealed": int((kinds == CONCEALED).sum()),
        "nothing": int((kinds == NOTHING).sum()),
        "longest_invented_ms": frame_ms * _longest_run(invented),
        "longest_silence_ms": frame_ms * _longest_run(kinds == NOTHING),
        "longest_dropout_ms": frame_ms * _longest_run(amps < DROPOUT_FRACTION * LOUD) if amps.size else None,
    }


def base_delays_ms(network: str | None, roles: Iterable[str]) -> tuple[float, float]:
    """The profile's fixed one-way delay (ms) on the marker's uplink and the probe's downlink, where those roles are
    impaired: what a mouth-to-ear figure holds of the network itself."""
    if network is None:
        return 0.0, 0.0
    spec = parse_network(network)
    chosen = set(roles)
    up = spec.uplink.delay_ms if spec.uplink is not None and "marker" in chosen else 0.0
    down = spec.downlink.delay_ms if spec.downlink is not None and "probe" in chosen else 0.0
    return up, down


def _get(results: Mapping[str, Any], *path: str) -> float | None:
    node: Any = results
    for key in path:
        if not isinstance(node, Mapping) or node.get(key) is None:
            return None
        node = node[key]
    if isinstance(node, (int, float)) and not (isinstance(node, float) and math.isnan(node)):
        return float(node)
    return None


POINT_MEASURES: dict[str, tuple[str, ...]] = {
    "server_cpu_percent_per_participant": ("server_cpu_percent_per_participant",),
    "machine_busy_percent": ("machine_busy_percent",),
    "uplink_loss_rtcp": ("network", "uplink", "rtcp", "loss_ratio"),
    "uplink_jitter_rtcp_ms": ("network", "uplink", "rtcp", "jitter_ms_p50"),
    "downlink_loss_rtcp": ("network", "downlink", "rtcp", "loss_ratio"),
    "downlink_jitter_rtcp_ms": ("network", "downlink", "rtcp", "jitter_ms_p50"),
    "server_jb_target_ms": ("jitter_buffer", "target_delay_ms"),
    "server_jb_delay_p50_ms": ("jitter_buffer", "delay_p50_ms"),
    "server_jb_delay_p95_ms": ("jitter_buffer", "delay_p95_ms"),
    "server_single_losses": ("receive", "server", "single_losses"),
    "server_single_recovered_share": ("receive", "server", "single_recovered_share"),
    "server_burst_losses": ("receive", "server", "burst_losses"),
    "server_concealed_share": ("receive", "server_all", "concealed_share"),
    "probe_jb_target_ms": ("receive", "probe_delays", "target_ms"),
    "probe_jb_delay_p50_ms": ("receive", "probe_delays", "delay_p50_ms"),
    "probe_jb_delay_p95_ms": ("receive", "probe_delays", "delay_p95_ms"),
    "probe_single_losses": ("receive", "probe", "single_losses"),
    "probe_single_recovered_share": ("receive", "probe", "single_recovered_share"),
    "probe_concealed_share": ("receive", "probe", "concealed_share"),
    "probe_longest_invented_ms": ("continuity", "longest_invented_ms"),
    "probe_longest_dropout_ms": ("continuity", "longest_dropout_ms"),
    "mouth_to_ear_arrival_p50_ms": ("mouth_to_ear_ms", "p50"),
    "mouth_to_ear_arrival_p95_ms": ("mouth_to_ear_ms", "p95"),
    "mouth_to_ear_playout_p50_ms": ("mouth_to_ear_playout_ms", "p50"),
    "mouth_to_ear_playout_p95_ms": ("mouth_to_ear_playout_ms", "p95"),
    "server_added_p50_ms": ("server_added_latency_ms", "p50"),
    "server_mute_p50_ms": ("server_mute_after_op_ms", "p50"),
    "server_mute_p95_ms": ("server_mute_after_op_ms", "p95"),
    "server_unmute_p50_ms": ("server_unmute_after_op_ms", "p50"),
    "probe_mute_p50_ms": ("probe_mute_ms", "p50"),
    "probe_unmute_p50_ms": ("probe_unmute_ms", "p50"),
    "mute_answer_p50_ms": ("mute_answer_ms", "p50"),
    "mutes": ("mutes",),
    "leaked_frames": ("leaked_frames",),
    "late_ticks": ("late_ticks",),
}
"""A sweep's CSV columns (after the swept parameter): name → where it sits in a run's results."""


def point_measures(results: Mapping[str, Any]) -> dict[str, float | None]:
    """One run's measures as the flat row a sweep writes (None where the run has no such figure)."""
    return {name: _get(results, *path) for name, path in POINT_MEASURES.items()}
