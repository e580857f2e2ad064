"""Percentiles of latency samples, in milliseconds, with the sample count (nan when there is nothing)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def percentiles_ms(samples: Sequence[float], qs: Sequence[int] = (50, 95, 99)) -> dict[str, float]:
    """`{"p50": ..., "n": ...}` of samples given in seconds."""
    values = np.asarray(samples, dtype=np.float64) * 1000.0
    out: dict[str, float] = {f"p{q}": (float(np.percentile(values, q)) if values.size else float("nan")) for q in qs}
    out["n"] = int(values.size)
    return out
