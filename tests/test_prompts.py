"""Where prompt media may come from (prompts.MediaLibrary): the package samples, a file under the media directory
(no way out of it), an http(s) URL on this machine; every other uri refused with the reason; WAV in the formats
that are easy to take, decoded to 48 kHz mono; what cannot be read, and the resourceId cache."""

from __future__ import annotations

import io
import os

import av
import numpy as np
import pytest

from mediamute.analysis import spectrum_peak
from mediamute.media.audio import SAMPLE_RATE
from mediamute.prompts import MediaLibrary, MediaRefused, MediaUnreadable, decode_wav

from .helpers import A, MediaHost, tone_wav


@pytest.fixture
def media_dir(tmp_path):
    root = tmp_path / "media"
    (root / "menus").mkdir(parents=True)
    (root / "welcome.wav").write_bytes(tone_wav(500, 0.2))
    (root / "menus" / "main.wav").write_bytes(tone_wav(700, 0.2))
    (root / "prompt.wav").write_bytes(tone_wav(900, 0.2))  # shadows the package sample of that name
    (tmp_path / "secret.wav").write_bytes(tone_wav(300, 0.2))
    os.symlink(tmp_path / "secret.wav", root / "escape.wav")
    return root


def test_where_a_uri_may_point(media_dir):
    library = MediaLibrary(media_dir)
    assert library.resolve("welcome.wav").location == str(media_dir / "welcome.wav")
    assert library.resolve("menus/main.wav").kind == "file"
    assert library.resolve(f"file://{media_dir}/menus/main.wav").location == str(media_dir / "menus" / "main.wav")
    assert library.resolve("prompt.wav").location == str(media_dir / "prompt.wav")  # the user's file wins
    assert library.resolve("hold-music.wav").kind == "sample"
    for url in ("http://127.0.0.1:8000/a.wav", "https://localhost/a.wav?x=1", "http://[::1]:9/a.wav"):
        assert library.resolve(url).kind == "http"
    refused = {
        "https://cdn.contoso.com/beep.wav": "not on this machine",
        "http://10.0.0.1/a.wav": "not on this machine",
        "ftp://127.0.0.1/a.wav": "'ftp' scheme is not supported",
        "../secret.wav": "outside the media directory",
        "menus/../../secret.wav": "outside the media directory",
        "escape.wav": "outside the media directory",  # a symbolic link out of it
        f"file://{media_dir.parent}/secret.wav": "outside the media directory",
        "file://otherhost/x.wav": "on this machine",
        "missing.wav": "no package sample of that name",
        "menus/missing.wav": "no file menus/missing.wav",
    }
    for uri, reason in refused.items():
        with pytest.raises(MediaRefused, match=reason):
            library.resolve(uri)
    bare = MediaLibrary()
    assert bare.resolve("prompt.wav").kind == "sample"
    with pytest.raises(MediaRefused, match="no media directory"):
        bare.resolve("welcome.wav")
    with pytest.raises(MediaRefused, match="no media directory"):
        bare.resolve(f"file://{media_dir}/welcome.wav")


def mulaw_wav(frequency: float, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="wav") as container:
        stream = container.add_stream("pcm_mulaw", rate=rate, layout="mono")
        t = np.arange(rate) / rate
        frame = av.AudioFrame.from_ndarray(np.round(A * np.sin(2 * np.pi * frequency * t)).astype(np.int16).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name, data, frequency",
    [
        ("Graph's format: 16 kHz mono 16-bit", tone_wav(1000, 1.0), 1000),
        ("48 kHz stereo 16-bit", tone_wav(2000, 1.0, rate=48_000, channels=2), 2000),
        ("8 kHz G.711 mu-law", mulaw_wav(440), 440),
    ],
)
def test_wav_files_are_decoded_to_48_khz_mono(name, data, frequency):
    audio = decode_wav(data, name)
    assert audio.dtype == np.int16 and audio.size == pytest.approx(SAMPLE_RATE, abs=64)
    peak, level = spectrum_peak(audio[4800:-4800])
    assert peak == pytest.approx(frequency, abs=2) and level == pytest.approx(A, rel=0.05)


def test_what_is_not_a_wav_file_is_unreadable():
    for data in (b"RIFF" + b"\0" * 200, b"ID3\x03" + bytes(500), b""):
        with pytest.raises(MediaUnreadable, match="not a WAV file|no audio"):
            decode_wav(data, "x.wav")
    with pytest.raises(MediaUnreadable, match="lasts more than 0.5 s"):
        decode_wav(tone_wav(440, 1.0), "long.wav", max_seconds=0.5)


async def test_reading_from_a_local_url_and_what_cannot_be_read(media_dir):
    async with MediaHost({"tone.wav": tone_wav(1500, 0.5), "big.wav": tone_wav(1500, 2.0), "text.wav": b"hello"}) as host:
        library = MediaLibrary(media_dir, max_bytes=40_000)
        audio = await library.fetch(library.resolve(host.url("tone.wav")))
        assert spectrum_peak(audio[2400:-2400])[0] == pytest.approx(1500, abs=2)
        problems = {"missing.wav": "HTTP 404", "big.wav": "more than the 40000 bytes", "text.wav": "not a WAV file"}
        for name, reason in problems.items():
            with pytest.raises(MediaUnreadable, match=reason):
                await library.fetch(library.resolve(host.url(name)))
        with pytest.raises(MediaUnreadable, match="ConnectError"):
            await library.load(library.resolve("http://127.0.0.1:1/nothing-listens.wav"))


async def test_a_resource_id_caches_the_media_and_no_resource_id_reads_again(media_dir):
    library = MediaLibrary(media_dir)
    first = await library.load(library.resolve("welcome.wav", resource_id="greeting-v1"))
    uncached = await library.load(library.resolve("welcome.wav"))
    (media_dir / "welcome.wav").write_bytes(tone_wav(600, 0.2))
    assert await library.load(library.resolve("welcome.wav", resource_id="greeting-v1")) is first  # Graph's cache key
    fresh = await library.load(library.resolve("welcome.wav"))
    assert spectrum_peak(fresh[960:-960])[0] == pytest.approx(600, abs=5)  # without one, the edited file is heard
    assert np.array_equal(first, uncached) and not first.flags.writeable
