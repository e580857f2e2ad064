"""Measurements on recorded audio: tone amplitude per frame, when a tone vanished or came back, marker latency.

Used by the tests (the mute promise is checked on the audio itself), the demo's report and the benchmarks.
numpy only.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from .media.audio import FRAME_SAMPLES, SAMPLE_RATE

@functools.lru_cache(maxsize=64)
def tone_basis(frequencies: tuple[float, ...], length: int = FRAME_SAMPLES, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The (length × tones) matrix that turns a frame into one Hann-windowed DFT bin per tone: `abs(frame @ basis)`
    is the peak amplitude of each tone. Exact for a steady tone at the frequency; other tones more than ~150 Hz
    away leak less than 1%. Cached and read-only: the measurement every tone check here and in the benchmark uses."""
    window = np.hanning(length)
    phasors = np.exp(-2j * np.pi * np.outer(frequencies, np.arange(length)) / rate)
    basis = (phasors * window / (window.sum() / 2.0)).T
    basis.flags.writeable = False
    return basis


def tone_amplitude(samples: np.ndarray, frequency: float, rate: int = SAMPLE_RATE) -> float:
    """Peak amplitude of the sinusoid at `frequency` in one frame (see `tone_basis`)."""
    basis = tone_basis((float(frequency),), samples.shape[0], rate)
    return float(abs(samples.astype(np.float64) @ basis[:, 0]))


def tone_amplitudes(frames: Sequence[np.ndarray], frequency: float) -> np.ndarray:
    """`tone_amplitude` of each 20 ms frame, vectorised."""
    if len(frames) == 0:
        return np.zeros(0)
    stack = np.stack([f.astype(np.float64) for f in frames])
    return np.abs(stack @ tone_basis((float(frequency),))[:, 0])


def spectrum_peak(samples: np.ndarray, rate: int = SAMPLE_RATE) -> tuple[float, float]:
    """(frequency, amplitude) of the strongest component of a longer stretch of audio."""
    window = np.hanning(samples.shape[0])
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * window)) / (window.sum() / 2.0)
    spectrum[0] = 0.0
    index = int(np.argmax(spectrum))
    return index * rate / samples.shape[0], float(spectrum[index])


SUSTAINED_FRAMES = 2
"""A tone counts as heard only in runs of at least this many consecutive frames: a click (a broadband
transient, e.g. where the stream skips a period) can reach a tone's threshold in one frame, a tone lasts."""


def sustained(amplitudes: np.ndarray, threshold: float, min_run: int = SUSTAINED_FRAMES) -> np.ndarray:
    """Mask of the frames that belong to a run of at least `min_run` consecutive frames at or above `threshold`."""
    above = np.asarray(amplitudes) >= threshold
    if min_run <= 1 or not above.any():
        return above
    edges = np.diff(np.concatenate(([0], above.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    mask = np.zeros_like(above)
    for begin, finish in zip(starts, ends):
        if finish - begin >= min_run:
            mask[begin:finish] = True
    return mask


def last_time_above(
    times: np.ndarray, amplitudes: np.ndarray, threshold: float, start: float, end: float, min_run: int = SUSTAINED_FRAMES
) -> float | None:
    """The last time in [start, end) at which the tone was heard (sustained at or above `threshold`), or None."""
    window = (times >= start) & (times < end)
    mask = sustained(amplitudes[window], threshold, min_run)
    return float(times[window][mask][-1]) if mask.any() else None


def first_time_above(
    times: np.ndarray, amplitudes: np.ndarray, threshold: float, start: float, end: float = np.inf,
    min_run: int = SUSTAINED_FRAMES,
) -> float | None:
    """The first time in [start, end) at which the tone was heard (sustained at or above `threshold`), or None."""
    window = (times >= start) & (times < end)
    mask = sustained(amplitudes[window], threshold, min_run)
    return float(times[window][mask][0]) if mask.any() else None


def marker_onsets(times: np.ndarray, amplitudes: np.ndarray, threshold: float) -> np.ndarray:
    """Arrival times of the frames where a marker burst begins (amplitude crosses `threshold` upwards)."""
    above = amplitudes >= threshold
    rising = above & ~np.concatenate(([True], above[:-1]))
    return times[rising]


def marker_latencies(sent: Sequence[float], received_onsets: Sequence[float], max_latency: float = 0.4) -> list[float]:
    """Pair each received onset with the latest marker sent before it (within `max_latency`): the delays."""
    sent_array = np.asarray(sent)
    latencies = []
    for onset in received_onsets:
        earlier = sent_array[(sent_array <= onset) & (sent_array > onset - max_latency)]
        if earlier.size:
            latencies.append(float(onset - earlier[-1]))
    return latencies
