"""Audio frame helpers for the hot path: 48 kHz, 20 ms frames, int16 at the edges, exact sums in between.

numpy only, so the conversions can be benchmarked and tested without aiortc or av.
"""

from __future__ import annotations

import math

import numpy as np

SAMPLE_RATE = 48_000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 960
FRAME_SECONDS = FRAME_MS / 1000
INT16_MIN = -32768
INT16_MAX = 32767
SILENCE_DBFS = -127.0

Frame = np.ndarray
"""One 20 ms mono frame: shape (960,), dtype int16."""

SILENT_FRAME: Frame = np.zeros(FRAME_SAMPLES, dtype=np.int16)
SILENT_FRAME.setflags(write=False)


def interleaved_to_mono(samples: np.ndarray, channels: int) -> Frame:
    """Average interleaved int16 channels into one mono int16 channel (no gain change for L == R)."""
    flat = samples.reshape(-1)
    if channels == 1:
        return flat.astype(np.int16, copy=True)
    if channels == 2:
        # (L + R) >> 1 in int32: exact for identical channels, never overflows.
        return ((flat[0::2].astype(np.int32) + flat[1::2]) >> 1).astype(np.int16)
    wide = flat.reshape(-1, channels).astype(np.int32)
    return (wide.sum(axis=1) // channels).astype(np.int16)


def mono_to_stereo(mono: Frame, out: np.ndarray | None = None) -> np.ndarray:
    """Duplicate a mono frame into interleaved stereo (L == R), so an encoder sees unity gain."""
    if out is None:
        out = np.empty(mono.shape[0] * 2, dtype=np.int16)
    out[0::2] = mono
    out[1::2] = mono
    return out


def rms(frame: Frame) -> float:
    """Root mean square of an int16 frame, in sample units."""
    if frame.size == 0:
        return 0.0
    wide = frame.astype(np.float32)
    return float(np.sqrt(np.dot(wide, wide) / frame.size))


def dbfs(rms_value: float) -> float:
    """RMS in sample units to dB relative to int16 full scale (32768); silence floors at -127."""
    if rms_value <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20.0 * math.log10(rms_value / 32768.0))


class Reframer:
    """Cuts decoded audio of any length (10, 20, 40, 60 ms packets) into exact 20 ms frames."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = np.empty(0, dtype=np.int16)

    def push(self, mono: np.ndarray) -> list[Frame]:
        if self._pending.size == 0 and mono.shape[0] == FRAME_SAMPLES:
            return [mono]
        data = np.concatenate((self._pending, mono)) if self._pending.size else mono
        whole = data.shape[0] // FRAME_SAMPLES
        frames = [data[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES] for i in range(whole)]
        self._pending = data[whole * FRAME_SAMPLES :].copy()
        return frames

    def clear(self) -> None:
        self._pending = np.empty(0, dtype=np.int16)
