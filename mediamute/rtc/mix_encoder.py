"""The mixes' Opus encoders, behind one interface: 20 ms of mono int16 in, an `EncodedMix` (payload, pts) out.

- `pyav` (the default): PyAV's libopus (`codec.MonoOpusEncoder`), which PyAV's wheels bring with them. Measured on
  the benchmark machine (bench/RESULTS.md): ≈ 270 µs of CPU for a frame of speech, of which ≈ 20 % holds the GIL
  (PyAV's frame and packet handling); libopus itself runs with the GIL released (`avcodec_send_frame` in `nogil`),
  which is what lets the encode pool use every core.
- `libopus`: the system's libopus (Debian: `libopus0`) through opuslib-next's ctypes binding, a dependency like
  PyAV (the receive path decodes through it too). It holds the GIL for ≈ 8 % of an encode (ctypes releases it around the whole
  libopus call), so more of a tick's encodes overlap with the event loop; the libopus it finds (1.3 on Debian 12)
  is ≈ 9 % slower on speech than PyAV's, cheaper on steady tones.

Both use the mix's settings (`MIX_BITRATE`, `MIX_COMPLEXITY`, VoIP, no in-band FEC: `MIX_EXPECTED_LOSS_PERCENT`); tests/test_encode_pool.py checks unity gain
on the audio for each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple, Protocol

from ..media.audio import Frame
from .codec import MIX_BITRATE, MIX_COMPLEXITY, MIX_EXPECTED_LOSS_PERCENT, MonoOpusEncoder
from .opus import OpusUnavailable, encode_frame, new_voip_encoder, require_libopus

MixEncoderKind = Literal["pyav", "libopus"]
MIX_ENCODER_KINDS: tuple[MixEncoderKind, ...] = ("pyav", "libopus")


class EncodedMix(NamedTuple):
    """One encoded 20 ms mix: the Opus payload, and its media time in 1/48000 s (the mixer's grid)."""

    payload: bytes
    pts: int


class MixEncoder(Protocol):
    def encode(self, mono: Frame, pts: int) -> EncodedMix | None: ...


class PyAVMixEncoder:
    """PyAV's mono VoIP encoder (`codec.MonoOpusEncoder`) behind the mix encoder interface."""

    __slots__ = ("_encoder",)

    def __init__(self) -> None:
        self._encoder = MonoOpusEncoder(expected_loss_percent=MIX_EXPECTED_LOSS_PERCENT)

    @property
    def encoded(self) -> int:
        return self._encoder.encoded

    def encode(self, mono: Frame, pts: int) -> EncodedMix | None:
        packet = self._encoder.encode(mono, pts)
        return EncodedMix(bytes(packet), pts) if packet is not None else None


class LibopusEncoder:
    """One continuous mono Opus stream over the system's libopus (opuslib-next, ctypes)."""

    __slots__ = ("_encoder", "encoded")

    def __init__(self, bitrate: int = MIX_BITRATE, complexity: int = MIX_COMPLEXITY) -> None:
        self._encoder = new_voip_encoder(bitrate, complexity)
        self.encoded = 0

    def encode(self, mono: Frame, pts: int) -> EncodedMix:
        payload = encode_frame(self._encoder, mono)
        self.encoded += 1
        return EncodedMix(payload, pts)


def libopus_available() -> bool:
    try:
        require_libopus()
    except OpusUnavailable:
        return False
    return True


def mix_encoder_factory(kind: str = "pyav") -> Callable[[], MixEncoder]:
    """What makes each stream's encoder; `ValueError` for an unknown kind, `RuntimeError` (saying what to install)
    for `libopus` where it cannot be loaded — at server start, not at the first mix."""
    if kind == "pyav":
        return PyAVMixEncoder
    if kind == "libopus":
        require_libopus()
        return LibopusEncoder
    raise ValueError(f"mix encoder must be one of {', '.join(MIX_ENCODER_KINDS)}, not {kind!r}")
