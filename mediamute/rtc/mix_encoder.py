"""The mixes' Opus encoder: libopus through opuslib-next (ctypes), mono VoIP at the mix's bitrate and complexity.

Why not PyAV (`codec.MonoOpusEncoder`) for the mixes: per 20 ms frame PyAV builds an `AudioFrame` and runs it
through its resampler graph before libopus, ≈ 100-120 µs of CPU a frame against ≈ 70 µs here for the same libopus
work on the benchmark machine; and ctypes releases the GIL for the whole libopus call, so the encode pool's threads
(`encode_pool.py`) encode side by side. Same settings as PyAV's encoder (`MIX_BITRATE`, `MIX_COMPLEXITY`, VoIP), so
the promise of unity gain holds the same (tests/test_mix_encoder.py checks it on the audio).

Where libopus cannot be loaded (no `libopus0` on the system), `new_mix_encoder` falls back to PyAV's encoder (PyAV
brings its own libopus), with one log line.
"""

from __future__ import annotations

import logging
from typing import NamedTuple, Protocol

import numpy as np

from ..media.audio import FRAME_SAMPLES, SAMPLE_RATE, Frame
from .codec import MIX_BITRATE, MIX_COMPLEXITY, MonoOpusEncoder

log = logging.getLogger(__name__)

try:
    import opuslib_next
except Exception as exc:  # opuslib-next raises at import when it finds no libopus
    opuslib_next = None  # type: ignore[assignment]
    _LIBOPUS_MISSING: str | None = f"{type(exc).__name__}: {exc}"
else:
    _LIBOPUS_MISSING = None


class EncodedMix(NamedTuple):
    """One encoded 20 ms mix: the Opus payload, and its media time in 1/48000 s (the mixer's grid)."""

    payload: bytes
    pts: int


class MixEncoder(Protocol):
    def encode(self, mono: Frame, pts: int) -> EncodedMix | None: ...


class LibopusEncoder:
    """One continuous mono Opus stream over libopus: 960 int16 samples in, one payload out."""

    __slots__ = ("_encoder", "encoded")

    def __init__(self, bitrate: int = MIX_BITRATE, complexity: int = MIX_COMPLEXITY) -> None:
        if opuslib_next is None:
            raise RuntimeError(f"libopus cannot be loaded through opuslib-next ({_LIBOPUS_MISSING}); install libopus0")
        encoder = opuslib_next.Encoder(SAMPLE_RATE, 1, opuslib_next.APPLICATION_VOIP)
        encoder.bitrate = bitrate
        encoder.complexity = complexity
        self._encoder = encoder
        self.encoded = 0

    def encode(self, mono: Frame, pts: int) -> EncodedMix:
        payload = self._encoder.encode(np.ascontiguousarray(mono, dtype=np.int16).tobytes(), FRAME_SAMPLES)
        self.encoded += 1
        return EncodedMix(payload, pts)


class PyAVMixEncoder:
    """PyAV's encoder (`codec.MonoOpusEncoder`) behind the same interface, where libopus is not loadable."""

    __slots__ = ("_encoder",)

    def __init__(self) -> None:
        self._encoder = MonoOpusEncoder()

    @property
    def encoded(self) -> int:
        return self._encoder.encoded

    def encode(self, mono: Frame, pts: int) -> EncodedMix | None:
        packet = self._encoder.encode(mono, pts)
        return EncodedMix(bytes(packet), pts) if packet is not None else None


_warned = False


def libopus_available() -> bool:
    return opuslib_next is not None


def new_mix_encoder() -> MixEncoder:
    """A mix encoder: libopus directly when it loads, else PyAV's (logged once)."""
    global _warned
    if opuslib_next is not None:
        return LibopusEncoder()
    if not _warned:
        _warned = True
        log.warning("libopus not loadable through opuslib-next (%s): mixes are encoded through PyAV", _LIBOPUS_MISSING)
    return PyAVMixEncoder()
