"""What a Python participant hears of one tone, for the browser tests (median over frames, so one glitch is moot)."""

from __future__ import annotations

import numpy as np

from mediamute.analysis import tone_amplitudes
from mediamute.client import CallParticipant


def recent_amplitude(p: CallParticipant, frequency: float, frames: int = 10) -> float:
    recent = p.recording.frames[-frames:]
    return float(np.median(tone_amplitudes(recent, frequency))) if recent else 0.0


def amplitude_since(p: CallParticipant, frequency: float, start: float) -> float:
    _, frames = p.recording.window(start)
    assert frames, f"{p.display_name} heard nothing since {start}"
    return float(np.median(tone_amplitudes(frames, frequency)))
