"""Encoding one listener's 20 ms mix: mediamute's mono VoIP encoder vs what aiortc's sender does per frame
(stereo up-mix to 96 kbps stereo Opus, plus its pure-Python audio level)."""

import itertools

from aiortc.codecs.opus import OpusEncoder
from aiortc.rtp import compute_audio_level_dbov

from mediamute.media.audio import FRAME_SAMPLES
from mediamute.rtc.codec import MonoOpusEncoder
from mediamute.rtc.tracks import mono_to_frame


def test_encode_mix_mono_voip(benchmark, tone_frame):
    encoder = MonoOpusEncoder()
    ticks = itertools.count()
    benchmark(lambda: encoder.encode(tone_frame, next(ticks) * FRAME_SAMPLES))


def test_encode_mix_aiortc_stereo_96k_with_level(benchmark, tone_frame):
    encoder = OpusEncoder()
    ticks = itertools.count()

    def encode() -> None:
        frame = mono_to_frame(tone_frame, next(ticks) * FRAME_SAMPLES)
        compute_audio_level_dbov(frame)
        encoder.encode(frame)

    benchmark(encode)
