"""Where a prompt's audio (Graph's `mediaInfo.uri`) may come from, and reading it as 48 kHz mono int16.

mediamute is a local simulator, so it reads media from three places only, and refuses any other `uri` with a
reason (`MediaRefused`, a 400 before any operation exists):

- **a package sample by name**: `prompt.wav`, `hold-music.wav`, the demo voices (`mediamute/samples/`);
- **a file under the media directory** the server was started with (`mediamute serve --media-dir DIR`, none by
  default): a relative path (`welcome.wav`, `menus/main.wav`) or a `file:` URL; a path that leaves the directory
  (`..`, a symbolic link pointing out) is refused; a name in both places is the media directory's file;
- **an http(s) URL on this machine** (`127.0.0.1`, `localhost`, `[::1]`), fetched with httpx: no proxy, no
  redirects, `FETCH_TIMEOUT` seconds, at most `MAX_MEDIA_BYTES`.

Reading happens after the request is answered (`MediaLibrary.fetch` starts it): what cannot be read (an HTTP error,
a file that is not WAV, too long) raises `MediaUnreadable`, and the operation that wanted it fails with that
message, as Graph fails an operation whose media it cannot fetch. Graph documents WAV, mono, 16-bit, 16 kHz; any
WAV libavformat decodes is accepted (8/16/24/32-bit PCM, float, G.711 µ-law/A-law, any rate, any channels, mixed
down and resampled to 48 kHz by libswresample). Other containers are refused, as Graph takes WAV only.

`resourceId`, Graph's cache key for a uri, is one here: media read with a `resourceId` is kept (a bounded LRU)
under (uri, resourceId) and not read again; without one a file or URL is read each time, so an edited file is
heard at once. Samples are read once.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

import av
import httpx
import numpy as np

from .media.audio import SAMPLE_RATE
from .sources import SAMPLES_DIR

log = logging.getLogger(__name__)

MAX_MEDIA_BYTES = 10 * 1024 * 1024
"""The largest WAV read (file or download): 5 minutes of Graph's 16 kHz 16-bit mono."""
MAX_MEDIA_SECONDS = 300.0
"""The longest audio decoded: bounds memory whatever the WAV's encoding (8 kHz µ-law packs 10 MB into 20 min)."""
FETCH_TIMEOUT = 5.0
CACHE_ENTRIES = 32
CACHE_BYTES = 64 * 1024 * 1024
CONCURRENT_READS = 4
"""Reads (file, download, decode) running at once; more wait their turn, so a burst of requests queues."""
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class MediaRefused(ValueError):
    """The uri names a place mediamute does not read from (or a sample that does not exist): the request is a 400."""


class MediaUnreadable(Exception):
    """The media could not be read or decoded: the operation that wanted it fails with this message."""


def sample_names(samples_dir: Path = SAMPLES_DIR) -> tuple[str, ...]:
    """The WAV files among the package samples, by name."""
    return tuple(sorted(p.name for p in samples_dir.glob("*.wav")))


def check_place(uri: str) -> None:
    """MediaRefused if `uri`'s form names a place mediamute never reads from (another host, another scheme); what
    the form allows (a name, a path, a file URL, a local URL) may still be refused by `MediaLibrary.resolve`."""
    if not uri:
        raise MediaRefused("the uri is empty")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if (parts.hostname or "").lower() not in LOCAL_HOSTS:
            raise MediaRefused(
                f"{uri} is not on this machine: mediamute is a local simulator and fetches media only from http(s) "
                "URLs on 127.0.0.1, localhost or [::1] (or plays a package sample, or a file under its --media-dir)"
            )
    elif scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise MediaRefused(f"{uri}: a file URL must name a file on this machine (file:///path)")
    elif scheme and len(scheme) > 1:  # (a one-letter "scheme" would be a Windows drive)
        raise MediaRefused(
            f"{uri}: the {scheme!r} scheme is not supported; use a package sample's name, a file under the media "
            "directory, or an http(s) URL on this machine"
        )


@dataclass(frozen=True)
class MediaRef:
    """A uri resolved to one of the allowed places: a sample, a file under the media directory, or a local URL."""

    uri: str
    kind: Literal["sample", "file", "http"]
    location: str
    """The file's path (sample, file) or the URL (http)."""
    resource_id: str | None = None

    @property
    def cache_key(self) -> tuple[str, str] | None:
        if self.kind == "sample":
            return ("sample", self.location)
        return (self.uri, self.resource_id) if self.resource_id else None


def decode_wav(data: bytes, origin: str, max_seconds: float = MAX_MEDIA_SECONDS) -> np.ndarray:
    """A WAV file's audio as 48 kHz mono int16 (libavformat's WAV demuxer, libswresample); MediaUnreadable if it is
    not a WAV file, holds no audio, or lasts more than `max_seconds`."""
    limit = int(max_seconds * SAMPLE_RATE)
    try:
        with av.open(io.BytesIO(data), format="wav") as container:
            if not container.streams.audio:
                raise MediaUnreadable(f"{origin}: the WAV file has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            parts: list[np.ndarray] = []
            total = 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1))
                    total += parts[-1].size
                if total > limit:
                    raise MediaUnreadable(f"{origin}: the audio lasts more than {max_seconds:g} s")
            parts += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except av.FFmpegError as exc:
        raise MediaUnreadable(f"{origin}: not a WAV file mediamute can decode ({exc.strerror or exc})") from None
    audio = np.concatenate(parts).astype(np.int16, copy=False) if parts else np.zeros(0, dtype=np.int16)
    if audio.size == 0:
        raise MediaUnreadable(f"{origin}: the WAV file holds no audio")
    audio.flags.writeable = False  # shared by every operation that plays it (the cache)
    return audio


class MediaLibrary:
    """Resolves `mediaInfo.uri`s against the allowed places and reads them, one per server."""

    def __init__(
        self,
        media_dir: Path | str | None = None,
        samples_dir: Path = SAMPLES_DIR,
        max_bytes: int = MAX_MEDIA_BYTES,
        timeout: float = FETCH_TIMEOUT,
    ) -> None:
        self.media_dir = Path(media_dir).resolve() if media_dir is not None else None
        if self.media_dir is not None and not self.media_dir.is_dir():
            raise ValueError(f"the media directory {media_dir} is not a directory")
        self.samples_dir = samples_dir
        self.samples = sample_names(samples_dir)
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._cache_bytes = 0
        self._reads: asyncio.Semaphore | None = None

    # resolving (synchronous: a refusal is the request's 400) ---------------------------------------------------
    def resolve(self, uri: str, resource_id: str | None = None) -> MediaRef:
        """Where `uri` is, or MediaRefused saying why mediamute will not read it."""
        text = uri.strip()
        check_place(text)
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            return MediaRef(text, "http", text, resource_id)
        if scheme == "file":
            return self._in_media_dir(Path(unquote(parts.path)), text, resource_id)
        return self._local_name(text, resource_id)

    def _local_name(self, text: str, resource_id: str | None) -> MediaRef:
        """A plain name or relative path: the media directory's file of that name, else the sample of that name."""
        path = Path(text)
        if path.is_absolute():
            return self._in_media_dir(path, text, resource_id)
        if self.media_dir is not None:
            candidate = self.media_dir / path
            if candidate.exists() or ".." in path.parts:
                return self._in_media_dir(candidate, text, resource_id)
        if text in self.samples:
            return MediaRef(text, "sample", str(self.samples_dir / text), resource_id)
        where = f"no file {text} under the media directory {self.media_dir}" if self.media_dir else (
            "the server has no media directory (start it with --media-dir DIR to play your own files)"
        )
        raise MediaRefused(f"{text}: {where}, and no package sample of that name (samples: {', '.join(self.samples)})")

    def _in_media_dir(self, path: Path, text: str, resource_id: str | None) -> MediaRef:
        if self.media_dir is None:
            raise MediaRefused(
                f"{text}: the server has no media directory, so it reads no files (start it with --media-dir DIR)"
            )
        resolved = path.resolve()
        if not resolved.is_relative_to(self.media_dir):
            raise MediaRefused(f"{text}: the path leads outside the media directory {self.media_dir}")
        if not resolved.is_file():
            raise MediaRefused(f"{text}: no file {resolved.relative_to(self.media_dir)} under the media directory")
        return MediaRef(text, "file", str(resolved), resource_id)

    # reading (asynchronous: a failure fails the operation) -------------------------------------------------------
    def fetch(self, ref: MediaRef) -> asyncio.Task[np.ndarray]:
        """Start reading `ref` now; the task's result is the audio, or it raises MediaUnreadable."""
        task = asyncio.get_running_loop().create_task(self.load(ref), name=f"media {ref.uri[:80]}")
        task.add_done_callback(_retrieve)
        return task

    async def load(self, ref: MediaRef) -> np.ndarray:
        key = ref.cache_key
        if key is not None and key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        if self._reads is None:
            self._reads = asyncio.Semaphore(CONCURRENT_READS)
        async with self._reads:
            data = await (self._download(ref.location) if ref.kind == "http" else self._read_file(ref))
            audio = await asyncio.to_thread(decode_wav, data, ref.uri)
        if key is not None:
            self._remember(key, audio)
        return audio

    def sample(self, name: str) -> np.ndarray:
        """A package sample's audio, read once (synchronously: samples are small and local)."""
        key = ("sample", str(self.samples_dir / name))
        if key not in self._cache:
            self._remember(key, decode_wav((self.samples_dir / name).read_bytes(), name))
        return self._cache[key]

    async def _read_file(self, ref: MediaRef) -> bytes:
        path = Path(ref.location)
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise MediaUnreadable(f"{ref.uri}: the file has {size} bytes, more than the {self.max_bytes} allowed")
            return await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise MediaUnreadable(f"{ref.uri}: cannot read the file ({exc.strerror or exc})") from None

    async def _download(self, url: str) -> bytes:
        """One GET with its own client (no connection outlives the read, so nothing is left to close)."""
        try:
            async with asyncio.timeout(self.timeout), httpx.AsyncClient(
                trust_env=False, follow_redirects=False, timeout=self.timeout
            ) as client:
                async with client.stream("GET", url) as response:
                    if response.status_code != 200:
                        raise MediaUnreadable(f"{url}: HTTP {response.status_code} (200 expected)")
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise MediaUnreadable(f"{url}: more than the {self.max_bytes} bytes allowed")
                        chunks.append(chunk)
                    return b"".join(chunks)
        except TimeoutError:
            raise MediaUnreadable(f"{url}: no complete answer within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise MediaUnreadable(f"{url}: {type(exc).__name__}: {exc or 'the request failed'}") from None

    def _remember(self, key: tuple[str, str], audio: np.ndarray) -> None:
        if key in self._cache:
            return
        self._cache[key] = audio
        self._cache_bytes += audio.nbytes
        while self._cache_bytes > CACHE_BYTES or len(self._cache) > CACHE_ENTRIES:
            _, dropped = self._cache.popitem(last=False)
            self._cache_bytes -= dropped.nbytes


def _retrieve(task: asyncio.Task[np.ndarray]) -> None:
    """Take a finished read's exception, so an operation cancelled before it asked leaves no "never retrieved"."""
    if not task.cancelled():
        task.exception()
