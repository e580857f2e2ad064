"""Frame conversions and level computation, next to aiortc's own per-frame level (pure Python, on the loop)."""

import numpy as np
from aiortc.rtp import compute_audio_level_dbov

from mediamute.media.audio import Reframer, dbfs, interleaved_to_mono, mono_to_stereo, rms
from mediamute.rtc.tracks import frame_to_mono, mono_to_frame


def test_interleaved_stereo_to_mono(benchmark, tone_frame):
    stereo = mono_to_stereo(tone_frame)
    assert np.array_equal(benchmark(interleaved_to_mono, stereo, 2), tone_frame)


def test_mono_to_stereo(benchmark, tone_frame):
    out = np.empty(tone_frame.size * 2, dtype=np.int16)
    benchmark(mono_to_stereo, tone_frame, out)


def test_reframer_push_whole_frame(benchmark, tone_frame):
    framer = Reframer()
    assert len(benchmark(framer.push, tone_frame)) == 1


def test_level_numpy_rms_dbfs(benchmark, tone_frame):
    level = benchmark(lambda: dbfs(rms(tone_frame)))
    assert -15.8 < level < -14.8  # 8000 / sqrt(2) of 32768


def test_level_aiortc_pure_python_stereo_frame(benchmark, tone_frame):
    """What aiortc's sender does for every outgoing AudioFrame (and 3 dB high for stereo); the mix path skips it."""
    frame = mono_to_frame(tone_frame, 0)
    assert benchmark(compute_audio_level_dbov, frame) == -12


def test_av_frame_to_mono(benchmark, tone_frame):
    frame = mono_to_frame(tone_frame, 0)
    assert np.array_equal(benchmark(frame_to_mono, frame), tone_frame)


def test_mono_to_av_stereo_frame(benchmark, tone_frame):
    benchmark(mono_to_frame, tone_frame, 0)
