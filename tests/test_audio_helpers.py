from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mediamute.analysis import marker_latencies, marker_onsets, spectrum_peak, tone_amplitude
from mediamute.media.audio import FRAME_SAMPLES, Reframer, dbfs, interleaved_to_mono, mono_to_stereo, rms
from mediamute.sources import MarkerSource, ToneSource, WavSource, load_wav, source_from_spec

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
int16s = arrays(np.int16, FRAME_SAMPLES, elements=st.integers(-32768, 32767))


@given(int16s)
def test_stereo_round_trip_is_lossless(mono):
    assert np.array_equal(interleaved_to_mono(mono_to_stereo(mono), 2), mono)


def test_mono_of_stereo_averages_channels():
    stereo = np.array([100, 300, -32768, -32768, 32767, 32767], dtype=np.int16)
    assert interleaved_to_mono(stereo, 2).tolist() == [200, -32768, 32767]


@pytest.mark.parametrize("chunk", [480, 960, 1920, 2880, 700])
def test_reframer_cuts_any_packet_size_into_20ms_frames(chunk):
    data = np.arange(chunk * 7, dtype=np.int64).astype(np.int16)
    framer = Reframer()
    frames = []
    for start in range(0, data.size, chunk):
        frames += framer.push(data[start : start + chunk])
    assert all(f.shape == (FRAME_SAMPLES,) for f in frames)
    joined = np.concatenate(frames)
    assert np.array_equal(joined, data[: joined.size])
    assert data.size - joined.size < FRAME_SAMPLES


def test_tone_source_amplitude_and_frequency_are_exact():
    source = ToneSource(660, amplitude=8000)
    audio = np.concatenate([source.next_frame() for _ in range(50)])
    freq, amp = spectrum_peak(audio)
    assert abs(freq - 660) < 2
    assert abs(amp - 8000) < 80
    assert abs(tone_amplitude(audio[:960], 660) - 8000) < 80
    assert tone_amplitude(audio[:960], 440) < 100
    assert abs(rms(audio) - 8000 / np.sqrt(2)) < 20
    assert dbfs(0) == -127.0


def test_marker_source_bursts_and_latency_pairing():
    source = MarkerSource(1000, period_frames=5, burst_frames=2)
    frames = [source.next_frame() for _ in range(15)]
    amps = np.array([tone_amplitude(f, 1000) for f in frames])
    assert [i for i in range(15) if source.is_marker(i)] == [0, 5, 10]
    times = np.arange(15) * 0.02 + 1.0
    onsets = marker_onsets(times, amps, 2000)
    # the first recorded frame is never taken for an onset: nothing says the burst began there
    assert np.allclose(onsets, [1.1, 1.2])
    assert np.allclose(marker_latencies([0.92, 1.02, 1.12], onsets), [0.08, 0.08])


def test_wav_source_resamples_speech_sample():
    audio = load_wav(SAMPLES / "bob.wav")
    assert audio.dtype == np.int16 and audio.size > 48000
    source = WavSource(SAMPLES / "bob.wav", loop=False)
    frames = [source.next_frame() for _ in range(audio.size // FRAME_SAMPLES + 5)]
    assert not frames[-1].any()  # played once, then silence
    assert max(rms(f) for f in frames) > 1000


def test_source_spec_errors_are_precise():
    assert isinstance(source_from_spec("440"), ToneSource)
    with pytest.raises(ValueError, match="neither 'silence'"):
        source_from_spec("nonexistent.wav")
    with pytest.raises(ValueError, match="between 0 and"):
        ToneSource(30000)


def test_a_one_frame_click_is_not_a_heard_tone():
    from mediamute.analysis import first_time_above, last_time_above, sustained

    amps = np.array([900, 900, 900, 0, 0, 950, 0, 0, 0, 900, 900, 0], dtype=float)
    times = np.arange(amps.size) * 0.02
    assert sustained(amps, 800).tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0]
    assert last_time_above(times, amps, 800, 0.0, 0.17) == pytest.approx(0.04)  # the click at 0.10 is ignored
    assert first_time_above(times, amps, 800, 0.05) == pytest.approx(0.18)
    assert last_time_above(times, amps, 800, 0.0, 0.17, min_run=1) == pytest.approx(0.10)
