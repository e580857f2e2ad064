"""Shared pieces of the hot-path benchmarks (pytest-benchmark; see bench/README.md). Not part of the test suite."""

from __future__ import annotations

import numpy as np
import pytest

from mediamute.media.audio import FRAME_SAMPLES
from mediamute.sources import ToneSource


@pytest.fixture(scope="session")
def tone_frame() -> np.ndarray:
    """A 20 ms mono frame of a 440 Hz tone at amplitude 8000."""
    return ToneSource(440, 8000).next_frame()


def distinct_frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(6)
    return [rng.integers(-2000, 2000, FRAME_SAMPLES, dtype=np.int16) for _ in range(count)]


def pytest_benchmark_update_json(config, benchmarks, output_json) -> None:
    """Save statistics only: the raw time of every round (tens of MB per run) is not worth committing or comparing."""
    for bench in output_json["benchmarks"]:
        bench["stats"].pop("data", None)
