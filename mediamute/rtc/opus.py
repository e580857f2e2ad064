"""libopus decoding with in-band FEC and packet-loss concealment, through `opuslib_next` over the system libopus.

PyAV cannot do either: FFmpeg's libopus decoder only ever calls `opus_multistream_decode(..., decode_fec=0)` on the
bytes of a packet (its only option is `apply_phase_inv`), and libavcodec never hands a decoder an empty packet to
conceal. The receive path needs both, so it decodes through `opuslib_next` (ctypes bindings of libopus, loading the
system's `libopus0`): `opus_decode(data, decode_fec=1)` rebuilds a lost frame from the LBRR data of the packet after
it, `opus_decode(NULL)` conceals one. Calls go to the binding's `opus_decode` with a preallocated numpy buffer (its
high-level `Decoder.decode` copies the PCM through a Python list: three times slower). Encoding is mostly PyAV's
(`codec.py`: its bundled libopus is newer and keeps a tone's level closer with FEC on); `new_voip_encoder` serves the
two encoders that need the system's libopus: a live sender whose expected loss changes between packets (`fec.py`)
and the optional libopus mix encoder (`mix_encoder.py`).

`has_lbrr` reads whether a packet carries LBRR data at all, so a frame counts as recovered by FEC only when it was
(with none, libopus silently conceals instead). libopus 1.5 has `opus_packet_has_lbrr`; Debian's 1.3 does not, so it
is read from the bitstream as RFC 6716 lays it out (see the function).
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import numpy as np

from ..media.audio import FRAME_SAMPLES, SAMPLE_RATE, Frame

MAX_PACKET_SAMPLES = 5760
"""120 ms at 48 kHz: the longest an Opus packet can last."""
MISSING_LIBOPUS = (
    "mediamute needs the libopus shared library for its receive path (in-band FEC and loss concealment): "
    "install it with `apt-get install libopus0` (Debian/Ubuntu), `dnf install opus` or `brew install opus`, "
    "and the Python binding with `pip install opuslib-next`"
)


class OpusUnavailable(RuntimeError):
    """libopus (or its binding) cannot be loaded: the message says what to install."""


class OpusPacketError(ValueError):
    """The bytes are not a valid Opus packet."""


@functools.cache
def _binding() -> tuple[ModuleType, ModuleType]:
    """The binding's decoder module and its ctypes helpers, loaded once; `OpusUnavailable` if libopus is missing."""
    try:
        import opuslib_next.api as api  # raises a bare Exception when libopus cannot be found
        import opuslib_next.api.decoder as decoder
    except Exception as exc:  # noqa: BLE001 - the binding signals a missing library with a plain Exception
        raise OpusUnavailable(f"{MISSING_LIBOPUS} ({exc})") from None
    return api, decoder


def require_libopus() -> None:
    """Raise `OpusUnavailable` with what to install, now rather than at the first packet."""
    _binding()


def new_voip_encoder(bitrate: int, complexity: int) -> Any:
    """A mono 48 kHz VoIP encoder of the system's libopus (opuslib-next's `Encoder`) at `bitrate` and `complexity`;
    its other settings are libopus's defaults. `OpusUnavailable` if libopus cannot be loaded."""
    _binding()  # says what to install, rather than the binding's bare Exception
    import opuslib_next

    encoder = opuslib_next.Encoder(SAMPLE_RATE, 1, opuslib_next.APPLICATION_VOIP)
    encoder.bitrate = bitrate
    encoder.complexity = complexity
    return encoder


def encode_frame(encoder: Any, mono: Frame) -> bytes:
    """One 20 ms mono int16 frame through an encoder of `new_voip_encoder`: the Opus payload."""
    return encoder.encode(np.ascontiguousarray(mono, dtype=np.int16).tobytes(), FRAME_SAMPLES)


# --- reading a packet (RFC 6716 section 3) ------------------------------------------------------------------------
_FRAME_SAMPLES_BY_CONFIG = (
    [480, 960, 1920, 2880] * 3  # 0-11 SILK-only NB/MB/WB: 10, 20, 40, 60 ms
    + [480, 960] * 2  # 12-15 hybrid SWB/FB: 10, 20 ms
    + [120, 240, 480, 960] * 4  # 16-31 CELT-only NB/WB/SWB/FB: 2.5, 5, 10, 20 ms
)


def packet_samples(packet: bytes) -> int:
    """How many 48 kHz samples (per channel) the packet decodes to, from its TOC byte and frame count."""
    if not packet:
        raise OpusPacketError("an empty packet")
    toc = packet[0]
    per_frame = _FRAME_SAMPLES_BY_CONFIG[toc >> 3]
    code = toc & 0x3
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        if len(packet) < 2:
            raise OpusPacketError("a code-3 packet without its frame count byte")
        frames = packet[1] & 0x3F
        if frames == 0:
            raise OpusPacketError("a code-3 packet with no frames")
    samples = frames * per_frame
    if samples > MAX_PACKET_SAMPLES:
        raise OpusPacketError(f"a packet of {samples} samples (more than 120 ms)")
    return samples


def _first_frame_offset(packet: bytes) -> int | None:
    """Where the first Opus frame's bytes start (RFC 6716 3.2), or None if the packet is cut short."""
    code = packet[0] & 0x3
    if code in (0, 1):
        return 1
    if code == 2:
        if len(packet) < 2:
            return None
        return 2 if packet[1] < 252 else 3
    if len(packet) < 2:
        return None
    count = packet[1]
    at = 2
    if count & 0x40:  # padding: length bytes, each 255 means "254 more and another length byte"
        while True:
            if at >= len(packet):
                return None
            at += 1
            if packet[at - 1] != 255:
                break
    if count & 0x80:  # VBR: the size of every frame but the last
        for _ in range((count & 0x3F) - 1):
            if at >= len(packet):
                return None
            at += 1 if packet[at] < 252 else 2
    return at


def has_lbrr(packet: bytes) -> bool:
    """Does the packet's first frame carry LBRR (in-band FEC) data for the frame before it?

    Only SILK and hybrid frames can (CELT-only has no LBRR). The SILK layer starts with one voice-activity flag per
    SILK frame and then the LBRR flag, per channel (RFC 6716 4.2.3-4.2.4), each an equiprobable bit of the range
    coder. The range decoder starts with rng = 2**31 and val = the first byte's inverted bits on top (4.1.1), and an
    equiprobable bit (`ec_dec_bit_logp(1)`) is 1 exactly when val < rng / 2, halving rng; so the k-th such bit is bit
    (8 - k) of the frame's first byte, for the first eight. Mono: the LBRR flag follows n VAD flags; stereo: mid's n
    VAD flags and LBRR flag, then side's. tests/test_opus.py checks this against libopus's own FEC decode.
    """
    if not packet:
        return False
    config = packet[0] >> 3
    if config >= 16:
        return False
    start = _first_frame_offset(packet)
    if start is None or start >= len(packet):
        return False
    silk_frames = 1 if config >= 12 else max(1, _FRAME_SAMPLES_BY_CONFIG[config] // 960)
    first = packet[start]
    mid_lbrr = (first >> (7 - silk_frames)) & 1
    if not packet[0] & 0x4:  # mono
        return bool(mid_lbrr)
    side_lbrr = (first >> (7 - (2 * silk_frames + 1))) & 1
    return bool(mid_lbrr or side_lbrr)


# --- decoding ----------------------------------------------------------------------------------------------------
class OpusDecoder:
    """One mono libopus decoder (stereo streams are down-mixed by libopus): decode, recover by FEC, conceal, reset.

    Returns fresh int16 arrays (the mixer keeps them); never raises on a bad packet (`decode` counts it and
    returns None), so one broken packet costs one frame, not the stream.
    """

    __slots__ = ("_api", "_lib", "_state", "_pcm", "_pointer", "errors")

    def __init__(self) -> None:
        api, decoder = _binding()
        self._api = decoder
        self._lib = decoder.libopus_decode
        self._state = decoder.create_state(SAMPLE_RATE, 1)
        self._pcm = np.zeros(MAX_PACKET_SAMPLES, dtype=np.int16)
        self._pointer = self._pcm.ctypes.data_as(api.c_int16_pointer)
        self.errors = 0
        """Packets libopus refused (corrupt): each cost its frame."""

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state is not None:
            self._api.destroy(state)

    def _run(self, data: bytes | None, samples: int, fec: int) -> Frame | None:
        count = self._lib(self._state, data, len(data) if data else 0, self._pointer, samples, fec)
        if count < 0:
            self.errors += 1
            return None
        return self._pcm[:count].copy()

    def decode(self, packet: bytes) -> Frame | None:
        """The packet's audio (None, counted in `errors`, if libopus refuses it)."""
        return self._run(packet, MAX_PACKET_SAMPLES, 0)

    def recover(self, next_packet: bytes, samples: int = FRAME_SAMPLES) -> Frame | None:
        """The lost `samples` just before `next_packet`, rebuilt from its LBRR data (libopus conceals without it)."""
        return self._run(next_packet, samples, 1)

    def conceal(self, samples: int = FRAME_SAMPLES) -> Frame:
        """`samples` of packet-loss concealment continuing the decoder's last output (fading by itself)."""
        frame = self._run(None, samples, 0)
        return frame if frame is not None else np.zeros(samples, dtype=np.int16)

    def reset(self) -> None:
        """Forget everything decoded so far (after a mute or a new stream): the next packet starts fresh."""
        self._api.decoder_ctl(self._state, _reset_state())


@functools.cache
def _reset_state():  # type: ignore[no-untyped-def]
    import opuslib_next.api.ctl as ctl

    return ctl.reset_state

