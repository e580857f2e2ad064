"""Regenerate `hold-music.wav`, the music a participant hears on hold when startHoldMusic names no customPrompt.

Synthesised here from numbers (no recording, no third-party audio): a soft electric-piano arpeggio over the chords
C, A minor, F and G (one bar of 1.2 s each), with a sustained bass note per chord; 4.8 s that loop seamlessly
(every note dies away inside its bar). 16 kHz, mono, 16-bit PCM, peak -6 dBFS, like the other samples.
Run: python mediamute/samples/make_hold_music.py (numpy only; the output is identical on every run).
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

RATE = 16_000
BAR = 1.2
STEP = BAR / 8
CHORDS = (  # (bass, arpeggio notes) as MIDI numbers
    (48, (60, 64, 67, 72, 76, 72, 67, 64)),  # C
    (45, (57, 60, 64, 69, 72, 69, 64, 60)),  # A minor
    (41, (53, 57, 60, 65, 69, 65, 60, 57)),  # F
    (43, (55, 59, 62, 67, 71, 67, 62, 59)),  # G
)


def hz(midi: int) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def note(midi: int, seconds: float, decay: float, level: float) -> np.ndarray:
    """A plucked note: a sine with a little second harmonic, a 5 ms attack and an exponential decay to silence."""
    t = np.arange(int(seconds * RATE)) / RATE
    f = hz(midi)
    tone = np.sin(2 * np.pi * f * t) + 0.25 * np.sin(4 * np.pi * f * t)
    envelope = np.minimum(t / 0.005, 1.0) * np.exp(-t / decay)
    envelope *= np.clip((seconds - t) / 0.02, 0.0, 1.0)  # reaches zero by the note's end: no click at the loop
    return level * tone * envelope


def render() -> np.ndarray:
    bar = int(BAR * RATE)
    music = np.zeros(bar * len(CHORDS))
    for index, (bass, arpeggio) in enumerate(CHORDS):
        start = index * bar
        music[start : start + bar] += note(bass, BAR, 0.6, 0.35)
        for step, midi in enumerate(arpeggio):
            offset = start + int(step * STEP * RATE)
            length = min(int(2.5 * STEP * RATE), start + bar - offset)  # notes ring over the next ones, not the bar
            music[offset : offset + length] += note(midi, length / RATE, 0.18, 0.3)[:length]
    peak = 10 ** (-6 / 20) * 32767
    return np.round(music / np.abs(music).max() * peak).astype("<i2")


def main() -> None:
    out = Path(__file__).with_name("hold-music.wav")
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(render().tobytes())
    print(f"{out.name}: {out.stat().st_size} bytes, {len(CHORDS) * BAR:.1f} s")


if __name__ == "__main__":
    main()
