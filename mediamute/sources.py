"""Audio sources a participant can send: a tone, a WAV file, silence, or marked tone bursts for latency probes.

Each source yields 20 ms mono int16 frames at 48 kHz and knows nothing of WebRTC; `rtc.tracks.SourceTrack` paces
them in real time for aiortc, and the application's own server-side participant feeds them to the mixer.
"""

from __future__ import annotations

import atexit
import math
import wave
from abc import ABC, abstractmethod
from contextlib import ExitStack
from importlib import resources
from pathlib import Path

import numpy as np

from .media.audio import FRAME_SAMPLES, SAMPLE_RATE, Frame

DEFAULT_AMPLITUDE = 8000
SAMPLES = resources.files(__package__).joinpath("samples")
"""The speech clips and the default scenario, package data of `mediamute` (the files live in mediamute/samples/,
which the repository's top-level `samples` symlink points to; see samples/README.md)."""


def _as_lasting_path(resource: resources.abc.Traversable) -> Path:
    """A real directory for `resource` that lasts as long as the process (importlib.resources' pattern: a plain
    installed package yields its own directory; a zipped one would be extracted once and removed at exit)."""
    keep = ExitStack()
    atexit.register(keep.close)
    return keep.enter_context(resources.as_file(resource))


SAMPLES_DIR: Path = _as_lasting_path(SAMPLES)
"""`SAMPLES` as a filesystem path, for what opens files by name (WAV readers, the demo's scenario loader)."""


class AudioSource(ABC):
    """Produces consecutive 20 ms mono frames; `marker` says whether the last frame began a marked burst."""

    frames_made = 0

    @abstractmethod
    def next_frame(self) -> Frame: ...

    @property
    def describe(self) -> str:
        return type(self).__name__

    def is_marker(self, frame_index: int) -> bool:
        """True if frame `frame_index` is the onset of a marker burst (for latency probes)."""
        return False


class SilenceSource(AudioSource):
    def next_frame(self) -> Frame:
        self.frames_made += 1
        return np.zeros(FRAME_SAMPLES, dtype=np.int16)

    @property
    def describe(self) -> str:
        return "silence"


class ToneSource(AudioSource):
    """A continuous sine, phase-continuous across frames."""

    def __init__(self, frequency: float, amplitude: int = DEFAULT_AMPLITUDE) -> None:
        if not 0 < frequency < SAMPLE_RATE / 2:
            raise ValueError(f"tone frequency must be between 0 and {SAMPLE_RATE // 2} Hz, not {frequency}")
        if not 0 <= amplitude <= 32767:
            raise ValueError(f"tone amplitude must be between 0 and 32767, not {amplitude}")
        self.frequency = frequency
        self.amplitude = amplitude
        self._step = 2 * math.pi * frequency / SAMPLE_RATE
        self._n = np.arange(FRAME_SAMPLES, dtype=np.float64)

    def next_frame(self) -> Frame:
        start = self.frames_made * FRAME_SAMPLES
        self.frames_made += 1
        phase = (start + self._n) * self._step
        return np.round(self.amplitude * np.sin(phase)).astype(np.int16)

    @property
    def describe(self) -> str:
        return f"tone {self.frequency:g} Hz"


class SyllableToneSource(ToneSource):
    """A steady tone plus a companion tone that swells and fades `rate` times a second, like syllables.

    A steady tone alone is "no voice" to Opus's voice-activity detector, and libopus then sends no in-band FEC data
    however it is configured; the companion keeps the detector hearing voice (LBRR data in ~90 % of packets), while
    the steady tone stays measurable at its own frequency and amplitude. What the loss and FEC tests send.
    """

    def __init__(self, frequency: float, amplitude: int = DEFAULT_AMPLITUDE, companion: float = 1200.0,
                 companion_amplitude: int | None = None, rate: float = 3.0) -> None:
        super().__init__(frequency, amplitude)
        if not 0 < companion < SAMPLE_RATE / 2:
            raise ValueError(f"companion frequency must be between 0 and {SAMPLE_RATE // 2} Hz, not {companion}")
        self.companion = companion
        self.companion_amplitude = amplitude // 2 if companion_amplitude is None else companion_amplitude
        self.rate = rate

    def next_frame(self) -> Frame:
        start = self.frames_made * FRAME_SAMPLES
        steady = super().next_frame().astype(np.float64)
        n = (start + self._n) / SAMPLE_RATE
        envelope = 0.5 - 0.5 * np.cos(2 * math.pi * self.rate * n)
        swell = self.companion_amplitude * envelope * np.sin(2 * math.pi * self.companion * n)
        return np.clip(np.round(steady + swell), -32768, 32767).astype(np.int16)

    @property
    def describe(self) -> str:
        return f"tone {self.frequency:g} Hz with syllables at {self.companion:g} Hz"


class VoicedToneSource(ToneSource):
    """A steady tone plus two companion tones that swell and fade in turn (in antiphase), `rate` times a second.

    The companions sit in two of SILK's voice-activity bands (1-2 kHz and 2-4 kHz by default), so one of them is
    always swelling: libopus's voice detector hears voice in every frame, and an encoder that expects loss (9 % or
    more for a tone) adds LBRR data to every packet — where a `SyllableToneSource`'s fade leaves ~20 % without,
    and speech its pauses. What the benchmark's talkers send, so every single loss is one FEC can rebuild; the
    steady tone stays measurable at its own frequency (the companions are > 150 Hz away from it)."""

    def __init__(self, frequency: float, amplitude: int = DEFAULT_AMPLITUDE,
                 companions: tuple[float, float] = (1500.0, 3000.0), companion_amplitude: int | None = None,
                 rate: float = 5.0) -> None:
        super().__init__(frequency, amplitude)
        for companion in companions:
            if not 0 < companion < SAMPLE_RATE / 2:
                raise ValueError(f"companion frequency must be between 0 and {SAMPLE_RATE // 2} Hz, not {companion}")
        self.companions = companions
        self.companion_amplitude = amplitude // 2 if companion_amplitude is None else companion_amplitude
        self.rate = rate

    def next_frame(self) -> Frame:
        start = self.frames_made * FRAME_SAMPLES
        mixed = super().next_frame().astype(np.float64)
        n = (start + self._n) / SAMPLE_RATE
        for companion, phase in zip(self.companions, (0.0, math.pi)):
            envelope = 0.5 - 0.5 * np.cos(2 * math.pi * self.rate * n + phase)
            mixed += self.companion_amplitude * envelope * np.sin(2 * math.pi * companion * n)
        return np.clip(np.round(mixed), -32768, 32767).astype(np.int16)

    @property
    def describe(self) -> str:
        return f"tone {self.frequency:g} Hz voiced by {' and '.join(f'{c:g}' for c in self.companions)} Hz"


class MarkerSource(ToneSource):
    """Tone bursts of `burst_frames` frames every `period_frames` frames, silence between: onsets are markers."""

    def __init__(
        self,
        frequency: float = 1000.0,
        amplitude: int = DEFAULT_AMPLITUDE,
        period_frames: int = 25,
        burst_frames: int = 5,
    ) -> None:
        super().__init__(frequency, amplitude)
        if not 0 < burst_frames < period_frames:
            raise ValueError("burst_frames must be between 1 and period_frames - 1")
        self.period_frames = period_frames
        self.burst_frames = burst_frames

    def next_frame(self) -> Frame:
        index = self.frames_made
        frame = super().next_frame()
        if index % self.period_frames >= self.burst_frames:
            frame[:] = 0
        return frame

    def is_marker(self, frame_index: int) -> bool:
        return frame_index % self.period_frames == 0

    @property
    def describe(self) -> str:
        return f"marker bursts {self.frequency:g} Hz every {self.period_frames * 20} ms"


def load_wav(path: str | Path) -> np.ndarray:
    """Read a PCM WAV file as mono int16 at 48 kHz (averaging channels, resampling with libswresample)."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as wav:
            channels = wav.getnchannels()
            width = wav.getsampwidth()
            rate = wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"{path}: not a PCM WAV file ({exc})") from exc
    if width != 2:
        raise ValueError(f"{path}: only 16-bit PCM WAV is supported, this one has {8 * width}-bit samples")
    samples = np.frombuffer(raw, dtype="<i2").astype(np.int32)
    if channels > 1:
        samples = samples[: len(samples) - len(samples) % channels].reshape(-1, channels).mean(axis=1)
    mono = np.asarray(samples, dtype=np.int16)
    if rate != SAMPLE_RATE:
        mono = resample_mono(mono, rate)
    return mono


def resample_mono(mono: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Mono int16 audio at `rate` Hz, resampled to `target` Hz (48 kHz by default) by libswresample."""
    import av  # the resampler is libswresample's; av is a dependency of aiortc anyway

    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(mono).reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=target)
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out).astype(np.int16) if out else np.zeros(0, dtype=np.int16)


class WavSource(AudioSource):
    """Plays a WAV file, looping (with a short pause between loops) or once followed by silence."""

    def __init__(self, path: str | Path, loop: bool = True, gap_ms: int = 400) -> None:
        self.path = Path(path)
        audio = load_wav(self.path)
        if audio.size == 0:
            raise ValueError(f"{self.path}: the WAV file holds no audio")
        if loop and gap_ms > 0:
            audio = np.concatenate((audio, np.zeros(SAMPLE_RATE * gap_ms // 1000, dtype=np.int16)))
        pad = (-audio.size) % FRAME_SAMPLES
        self._audio = np.concatenate((audio, np.zeros(pad, dtype=np.int16)))
        self._frames = self._audio.size // FRAME_SAMPLES
        self.loop = loop

    def next_frame(self) -> Frame:
        index = self.frames_made
        self.frames_made += 1
        if index >= self._frames:
            if not self.loop:
                return np.zeros(FRAME_SAMPLES, dtype=np.int16)
            index %= self._frames
        return self._audio[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES].copy()

    @property
    def frames_per_loop(self) -> int:
        """How many 20 ms frames one pass of the file takes (its pause included when it loops)."""
        return self._frames

    @property
    def describe(self) -> str:
        return f"wav {self.path.name}"


class PilotSource(AudioSource):
    """Another source plus a faint continuous sine above the speech band: a per-speaker tag.

    The demo's voices are 16 kHz recordings (nothing above 8 kHz), so a pilot at 9-12 kHz lets a listener's
    audio be filtered per speaker, frame by frame, to see whose voice is in each mix.
    """

    def __init__(self, inner: AudioSource, frequency: float, amplitude: int = 400) -> None:
        self.inner = inner
        self.pilot = ToneSource(frequency, amplitude)
        self.frequency = frequency

    def next_frame(self) -> Frame:
        self.frames_made += 1
        mixed = self.inner.next_frame().astype(np.int32) + self.pilot.next_frame()
        return np.clip(mixed, -32768, 32767).astype(np.int16)

    @property
    def describe(self) -> str:
        return f"{self.inner.describe} + {self.frequency:g} Hz pilot"


def source_from_spec(spec: str | float | int | None, samples_dir: Path | None = None) -> AudioSource:
    """Build a source from a short spec: None/"silence", a frequency ("440" or "tone:440"), or a WAV path."""
    if spec is None or spec == "silence":
        return SilenceSource()
    if isinstance(spec, (int, float)):
        return ToneSource(float(spec))
    text = str(spec).strip()
    if text.startswith("tone:"):
        text = text[5:]
    try:
        return ToneSource(float(text))
    except ValueError:
        pass
    path = Path(text)
    if not path.is_absolute() and samples_dir is not None and not path.exists():
        path = samples_dir / path
    if not path.exists():
        raise ValueError(f"audio source {spec!r} is neither 'silence', a tone frequency, nor an existing WAV file")
    return WavSource(path)
