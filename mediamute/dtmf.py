"""DTMF as Graph names it (`tone0`..`tone9`, `star`, `pound`, `a`..`d`, `flash`) and as it sounds in band: the
dual tones of ITU-T Q.23, which the application's participant plays for `call: sendDtmfTones`.

Durations follow common telephony practice within ITU-T Q.24's limits (a digit is recognised from 40 ms of tone
and 40 ms of pause): 100 ms of tone per digit, a 100 ms pause between digits unless the request says otherwise.
`flash` is a line signal (a short on-hook), not a tone: in band it is 500 ms with no sound. numpy only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from .media.audio import SAMPLE_RATE

GRAPH_TONES = (
    "tone0", "tone1", "tone2", "tone3", "tone4", "tone5", "tone6", "tone7", "tone8", "tone9",
    "star", "pound", "a", "b", "c", "d", "flash",
)
"""Graph's `toneInfo.tone` values (v1.0 resource page), in its order."""

LOW_HZ = (697.0, 770.0, 852.0, 941.0)
HIGH_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = (("tone1", "tone2", "tone3", "a"), ("tone4", "tone5", "tone6", "b"),
           ("tone7", "tone8", "tone9", "c"), ("star", "tone0", "pound", "d"))
DTMF_FREQUENCIES: dict[str, tuple[float, float]] = {
    tone: (LOW_HZ[row], HIGH_HZ[column]) for row, keys in enumerate(_KEYPAD) for column, tone in enumerate(keys)
}
"""Each key's (low group, high group) frequencies in Hz, ITU-T Q.23's keypad."""

TONE_MS = 100
DEFAULT_GAP_MS = 100
FLASH_MS = 500
COMPONENT_AMPLITUDE = 4000
"""Each of the two sines (≈ -18 dBFS each, -12 dBFS peak together): clearly heard, never clipping in a mix."""
RAMP_MS = 2
"""A raised-cosine edge on each tone, so its start and end do not click (spread energy beyond the two sines)."""

_SPELLINGS = {str(d): f"tone{d}" for d in range(10)} | {"*": "star", "#": "pound"} | {
    letter.upper(): letter for letter in "abcd"
}


def graph_tone(spelling: str) -> str:
    """Graph's name for a key, from Graph's own name or a keypad spelling (`"#"`, `"*"`, `"1"`, `"A"`): Graph's
    recordResponse example writes stopTones as `["#", "1", "*"]`, its toneInfo uses `pound`, `tone1`, `star`."""
    if spelling in GRAPH_TONES:
        return spelling
    try:
        return _SPELLINGS[spelling]
    except KeyError:
        raise ValueError(
            f"{spelling!r} is not a DTMF tone: use one of {', '.join(GRAPH_TONES)} (or 0-9, *, #, A-D)"
        ) from None


KEYPAD_SPELLINGS = tuple(_SPELLINGS)
"""The keypad spellings `graph_tone` also accepts."""


def _samples(ms: int) -> int:
    return SAMPLE_RATE * ms // 1000


def dual_tone(tone: str, ms: int = TONE_MS) -> np.ndarray:
    """One key's dual tone at 48 kHz, int16, with soft edges; `flash` is silence of FLASH_MS."""
    if tone == "flash":
        return np.zeros(_samples(FLASH_MS), dtype=np.int16)
    low, high = DTMF_FREQUENCIES[tone]
    t = np.arange(_samples(ms)) / SAMPLE_RATE
    wave = COMPONENT_AMPLITUDE * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
    ramp = min(_samples(RAMP_MS), t.size // 2)
    if ramp:
        edge = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        wave[:ramp] *= edge
        wave[-ramp:] *= edge[::-1]
    return np.round(wave).astype(np.int16)


def dtmf_segments(tones: Sequence[str], gap_ms: int = DEFAULT_GAP_MS, tone_ms: int = TONE_MS) -> Iterator[np.ndarray]:
    """The keys one after another, `gap_ms` of silence between two of them, segment by segment (made as they are
    played: a hundred tones 10 s apart are 17 minutes of audio, never held at once)."""
    names = [graph_tone(tone) for tone in tones]  # every name checked before the first segment
    for index, tone in enumerate(names):
        if index and gap_ms:
            yield np.zeros(_samples(gap_ms), dtype=np.int16)
        yield dual_tone(tone, tone_ms)


def dtmf_sequence(tones: Sequence[str], gap_ms: int = DEFAULT_GAP_MS, tone_ms: int = TONE_MS) -> np.ndarray:
    """`dtmf_segments` as one array."""
    parts = list(dtmf_segments(tones, gap_ms, tone_ms))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


def graph_tones(spellings: Iterable[str]) -> frozenset[str]:
    """A set of keys in Graph's names (see `graph_tone`); raises ValueError naming the first unknown one."""
    return frozenset(graph_tone(s) for s in spellings)
