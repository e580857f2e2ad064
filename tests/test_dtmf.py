"""DTMF as the application sends it (sendDtmfTones): Graph's tone names, ITU-T Q.23's dual tones checked on the
audio (FFT), the durations, and the keypad spellings recordResponse's stopTones may use."""

from __future__ import annotations

import numpy as np
import pytest

from mediamute.analysis import tone_amplitude
from mediamute.dtmf import (
    COMPONENT_AMPLITUDE,
    DTMF_FREQUENCIES,
    FLASH_MS,
    GRAPH_TONES,
    dtmf_sequence,
    graph_tone,
    graph_tones,
)
from mediamute.media.audio import SAMPLE_RATE

ALL_FREQUENCIES = (697, 770, 852, 941, 1209, 1336, 1477, 1633)


@pytest.mark.parametrize("tone", [t for t in GRAPH_TONES if t != "flash"])
def test_each_key_is_its_two_q23_frequencies_and_nothing_else(tone):
    audio = dtmf_sequence([tone])
    assert audio.size == SAMPLE_RATE // 10  # 100 ms
    window = audio[960:3840].astype(np.float64)  # 60 ms away from the soft edges
    low, high = DTMF_FREQUENCIES[tone]
    for frequency in ALL_FREQUENCIES:
        level = tone_amplitude(window, frequency)
        if frequency in (low, high):
            assert level == pytest.approx(COMPONENT_AMPLITUDE, rel=0.05), (tone, frequency)
        else:
            assert level < 0.05 * COMPONENT_AMPLITUDE, (tone, frequency)


def test_a_sequence_has_its_gaps_and_flash_is_a_silent_pause():
    audio = dtmf_sequence(["tone1", "flash", "pound"], gap_ms=250)
    ms = SAMPLE_RATE // 1000
    assert audio.size == (100 + 250 + FLASH_MS + 250 + 100) * ms
    assert not audio[100 * ms : (100 + 250 + FLASH_MS + 250) * ms].any()
    assert np.abs(audio[:100 * ms]).max() > COMPONENT_AMPLITUDE and np.abs(audio[-100 * ms:]).max() > COMPONENT_AMPLITUDE
    assert abs(int(audio[0])) < 100 and abs(int(audio[-1])) < 100  # soft edges: no click


def test_graph_names_and_keypad_spellings():
    assert graph_tones(["#", "1", "*"]) == {"pound", "tone1", "star"}  # Graph's recordResponse example
    assert graph_tone("pound") == "pound" and graph_tone("D") == "d" and graph_tone("0") == "tone0"
    with pytest.raises(ValueError, match="'hash' is not a DTMF tone"):
        graph_tone("hash")
