"""Opus encoding through PyAV's public API (no aiortc internals), and the settings every mediamute encoder shares
(`MIX_BITRATE`, `MIX_COMPLEXITY`). PyAV encodes the server's mixes (by default: `mix_encoder.py`) and the loops
that simulated and benchmark talkers replay (`encode_loop`).

aiortc encodes every frame as stereo at 96 kbps after computing its audio level in pure Python, on a thread hop,
and without in-band FEC. A mix of speech needs none of that: one mono VoIP encoder at 32 kbps, called on the loop,
handing aiortc a ready `av.Packet` (its sender then only packetises it). Mono Opus is valid under `opus/48000/2`
(RFC 7587), and a stereo decoder plays it on both channels at unity gain.

`MonoOpusEncoder` has in-band FEC on by default, with an expected loss of `EXPECTED_LOSS_PERCENT`: without an
expected loss libopus sends no LBRR data, and a receiver could only conceal a lost packet. (libopus adds LBRR data
to SILK and hybrid frames while its voice-activity detector hears voice: speech, not a steady tone.) Live senders
(`tracks.SourceTrack`, the clients) encode through `fec.py` instead, whose expected loss follows the receiver's
reports as a browser's does. Decoding, which needs FEC and concealment, is in `opus.py`.
"""

from __future__ import annotations

import fractions

import av
import numpy as np
from av import AudioFrame, CodecContext

from ..media.audio import FRAME_SAMPLES, SAMPLE_RATE, Frame

TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
MIX_BITRATE = 32_000
"""Speech, one voice or a few: 32 kbps mono is transparent enough and a third of aiortc's 96 kbps stereo."""
MIX_COMPLEXITY = 10
"""libopus complexity (0-10). Lower is cheaper (speech: ≈ 300 µs a 20 ms frame at 10, ≈ 100 µs at 0 on the benchmark
machine) but not transparent: at 0 a 660 + 880 Hz mix comes back with the 660 Hz tone 13 % low, at 5 3 % low,
at 10 exact (with FEC on, 3 % low: FEC steers libopus to hybrid frames). Unity gain end to end is a promise, so 10."""
EXPECTED_LOSS_PERCENT = 10
"""What the encoders expect to lose: libopus sizes its in-band FEC (LBRR) data for it, and sends none at 0. At 10 %
libopus codes speech and voice-like tones (`SyllableToneSource`) as SILK/hybrid with LBRR in 70-90 % of packets, and
a steady-tone mix as hybrid too (3 % low, ~2.5x the encode time of CELT). At 5 % speech keeps its LBRR and a tone mix
stays CELT (exact, no dearer than without FEC), but no synthetic tone we tried carries LBRR: nothing but speech could
test FEC end to end. Measured in bench/RESULTS.md."""
MIX_EXPECTED_LOSS_PERCENT = 0
"""The server's mix encoders (`encoding.py`) send no FEC: it costs +40 % of the server's CPU (a tone mix goes hybrid,
≈ 2.5x the encode time of CELT), and SILK wideband frames drop everything above 8 kHz, the demo's pilot tones
included. The senders into the server keep FEC on where the server's receive path can use it: the clients size it to
the loss the server reports (`fec.py`), the benchmark's and simulated talkers replay loops encoded at
`EXPECTED_LOSS_PERCENT`."""


class MonoOpusEncoder:
    """One continuous Opus stream: 20 ms mono int16 frames in, one `av.Packet` (pts given by the caller) out."""

    __slots__ = ("_codec", "encoded")

    def __init__(
        self,
        bitrate: int = MIX_BITRATE,
        complexity: int = MIX_COMPLEXITY,
        expected_loss_percent: int = EXPECTED_LOSS_PERCENT,
    ) -> None:
        """`expected_loss_percent` sizes the in-band FEC (LBRR) data; 0 turns FEC off."""
        codec = CodecContext.create("libopus", "w")
        codec.bit_rate = bitrate
        codec.format = "s16"
        codec.layout = "mono"
        codec.sample_rate = SAMPLE_RATE
        codec.time_base = TIME_BASE
        codec.options = {
            "application": "voip",
            "compression_level": str(complexity),
            "fec": "1" if expected_loss_percent > 0 else "0",
            "packet_loss": str(expected_loss_percent),
        }
        self._codec = codec
        self.encoded = 0

    def encode(self, mono: Frame, pts: int) -> av.Packet | None:
        """Encode one 960-sample frame; the packet's pts (1/48000 s) is `pts`, whatever the encoder's delay."""
        frame = AudioFrame.from_ndarray(mono.reshape(1, FRAME_SAMPLES), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = pts
        frame.time_base = TIME_BASE
        packets = self._codec.encode(frame)
        self.encoded += 1
        if not packets:
            return None
        packet = packets[-1]
        packet.pts = pts
        packet.time_base = TIME_BASE
        return packet


def opus_av_packet(payload: bytes, pts: int) -> av.Packet:
    """An encoded 20 ms frame as aiortc's sender takes it from a track (`OpusEncoder.pack` reads the payload, `pts`
    and `time_base`): `pts` in 1/48000 s."""
    packet = av.Packet(payload)
    packet.pts = pts
    packet.time_base = TIME_BASE
    return packet


def encode_loop(frames: list[np.ndarray], warmup_cycles: int = 1) -> list[bytes]:
    """Pre-encode a loop of frames (e.g. 1 s of a tone) so a cheap sender can replay it without encoding.

    The loop is encoded `warmup_cycles` extra times first, so the kept packets come from a warm encoder and the
    replayed stream has no start-up artefact at its seam.
    """
    encoder = MonoOpusEncoder()
    out: list[bytes] = []
    for cycle in range(warmup_cycles + 1):
        for i, frame in enumerate(frames):
            packet = encoder.encode(frame, (cycle * len(frames) + i) * FRAME_SAMPLES)
            if cycle == warmup_cycles and packet is not None:
                out.append(bytes(packet))
    return out
