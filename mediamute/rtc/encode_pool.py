"""A tick's Opus encodes on every core: a bounded pool of encoder threads, one per core.

libopus does its work with the GIL released (PyAV calls `avcodec_send_frame` inside `nogil`), so the encodes of
one tick can run side by side on the machine's cores while the event loop goes on receiving packets. What stays
exact:
- the gate, the inbox flush and admission to the mix stay on the loop: a tick's mixes are fixed (and audited)
  before any encode starts, and the pool only turns those fixed frames into packets;
- one tick at a time: a tick's batch goes to the threads only once the previous tick's packets were all sent, so
  an encoder is never used by two threads at once and no listener's packets can be reordered;
- its packets are sent on the loop, all at once and in listener order, when the last thread finishes: a tick's
  sends never interleave with the next tick's for any listener, and timestamps stay the mixer's grid.
If the encodes fall more than `MAX_WAITING` ticks behind, the oldest waiting tick is dropped whole and counted
(listeners hear a gap, as after a late tick) rather than letting latency grow without bound.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from ..media.audio import Frame

log = logging.getLogger(__name__)

MAX_WAITING = 2
"""Ticks whose encodes may wait behind the one running before the oldest waiting tick is dropped."""
INLINE_BELOW = 8
"""A tick with fewer encodes than this is encoded on the loop when nothing waits: the hop to the threads and back
(waking them, the GIL handed over and back, waking the loop) costs more CPU than a few encodes take (bench/RESULTS.md)."""


class FrameEncoder(Protocol):
    def encode(self, mono: Frame, pts: int) -> Any: ...


PacketSend = Callable[[Any], None]


class PoolBatch:
    """Work the pool splits across its threads: `jobs`, run in slices by `run(lo, hi)`; `prepare` before submitting."""

    __slots__ = ("jobs", "_parts", "_lock")

    def __init__(self, jobs: list[Any]) -> None:
        self.jobs = jobs
        self._parts = 0
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Called by `EncodePool.submit` on the submitting thread, before any slice runs."""

    def run(self, lo: int, hi: int) -> int:
        """Run jobs [lo, hi) (on a pool thread); returns how many failed."""
        raise NotImplementedError

    def _split(self, parts: int) -> list[tuple[int, int]]:
        count = len(self.jobs)
        parts = max(1, min(parts, count))
        bounds = [round(k * count / parts) for k in range(parts + 1)]
        return [(bounds[k], bounds[k + 1]) for k in range(parts)]


class TickBatch(PoolBatch):
    """One tick's encodes (encoder, frame, pts) and where each listener's packet goes, in listener order."""

    __slots__ = ("results", "deliveries", "handed_at")

    def __init__(self) -> None:
        super().__init__([])
        self.jobs: list[tuple[FrameEncoder, Frame, int]]
        self.results: list[Any] = []
        self.deliveries: list[tuple[PacketSend, int]] = []
        """(send, index of the job whose packet it gets), in the order the mixer handed out the mixes."""
        self.handed_at = 0.0
        """When the tick was handed to the encoder (monotonic), for `TickEncoder.send_delays`."""

    def prepare(self) -> None:
        self.results = [None] * len(self.jobs)

    def run(self, lo: int, hi: int) -> int:
        return self.encode(lo, hi)

    def add_job(self, encoder: FrameEncoder, frame: Frame, pts: int) -> int:
        self.jobs.append((encoder, frame, pts))
        return len(self.jobs) - 1

    def encode(self, lo: int, hi: int) -> int:
        """Run jobs [lo, hi) into `results`; returns how many raised (their packets are None)."""
        jobs, results, failed = self.jobs, self.results, 0
        for j in range(lo, hi):
            encoder, frame, pts = jobs[j]
            try:
                results[j] = encoder.encode(frame, pts)
            except Exception:
                failed += 1
                log.exception("encoding a mix failed")
        return failed

    def deliver(self) -> None:
        results = self.results
        for send, job in self.deliveries:
            packet = results[job]
            if packet is not None:
                send(packet)


def name_native_thread(name: str) -> None:
    """Give the OS thread a name (Linux: 15 bytes, what /proc/<pid>/task/*/comm, top -H and the bench show)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


class EncodePool:
    """`threads` encoder threads shared by every call of a server; `submit` one tick at a time per call."""

    def __init__(self, threads: int, min_jobs: int = INLINE_BELOW) -> None:
        if threads < 1:
            raise ValueError("an encode pool needs at least one thread")
        self.threads = threads
        self.min_jobs = min_jobs
        """Ticks with fewer encodes than this stay on the loop when nothing waits (INLINE_BELOW by default)."""
        self._queue: queue.SimpleQueue[tuple[PoolBatch, int, int, Callable[[Any], None]] | None] = queue.SimpleQueue()
        self._workers = [
            threading.Thread(target=self._work, args=(k,), name=f"mm-encode-{k}", daemon=True) for k in range(threads)
        ]
        self.failed = 0
        for worker in self._workers:
            worker.start()

    @classmethod
    def for_cores(cls, threads: int | None = None) -> "EncodePool | None":
        """A pool of `threads` threads (None: one per core); None for 0, or for auto on a one-core machine."""
        if threads is None:
            threads = os.cpu_count() or 1
            if threads < 2:
                return None
        return cls(threads) if threads > 0 else None

    def submit(self, batch: PoolBatch, on_done: Callable[[Any], None]) -> None:
        """Run `batch` across the threads (a tick's encodes, or its decodes); `on_done(batch)` is called by the
        thread that finishes last (not on the loop: it must hand over with `call_soon_threadsafe`)."""
        batch.prepare()
        parts = batch._split(self.threads)
        batch._parts = len(parts)
        for lo, hi in parts:
            self._queue.put((batch, lo, hi, on_done))

    def _work(self, index: int) -> None:
        name_native_thread(f"mm-encode-{index}")
        while (item := self._queue.get()) is not None:
            batch, lo, hi, on_done = item
            failed = batch.run(lo, hi)
            with batch._lock:
                self.failed += failed
                batch._parts -= 1
                last = batch._parts == 0
            if last:
                on_done(batch)

    def close(self) -> None:
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join(timeout=5)


class TickEncoder:
    """A call's side of the pool: its ticks go through one at a time, in order, and their packets are sent on the
    loop. Without a pool (or for a small tick with nothing waiting) a tick is encoded and sent at once, inline."""

    def __init__(self, pool: EncodePool | None) -> None:
        self.pool = pool
        self._running: TickBatch | None = None
        self._waiting: deque[TickBatch] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: asyncio.Event | None = None
        self.pooled_ticks = 0
        self.inline_ticks = 0
        self.dropped_ticks = 0
        """Ticks whose packets were never sent because the encodes fell more than MAX_WAITING ticks behind."""
        self.send_delays: deque[float] = deque(maxlen=3000)
        """Seconds from handing a tick over to sending its packets, for the latest pooled ticks (what the pool
        adds to a listener's latency; an inline tick sends as it encodes)."""

    def run(self, batch: TickBatch) -> None:
        """Encode and send one tick's batch (now, or once the ticks before it are sent)."""
        if not batch.jobs:
            return
        if self.pool is None or (self._running is None and len(batch.jobs) < self.pool.min_jobs):
            self.inline_ticks += 1
            batch.prepare()
            batch.encode(0, len(batch.jobs))
            batch.deliver()
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        batch.handed_at = time.monotonic()
        if self._running is not None:
            if len(self._waiting) == MAX_WAITING:
                self._waiting.popleft()
                self.dropped_ticks += 1
            self._waiting.append(batch)
            return
        self._start(batch)

    def _start(self, batch: TickBatch) -> None:
        self._running = batch
        self.pooled_ticks += 1
        assert self.pool is not None
        self.pool.submit(batch, self._finished_elsewhere)

    def _finished_elsewhere(self, batch: TickBatch) -> None:
        loop = self._loop
        try:
            if loop is not None:
                loop.call_soon_threadsafe(self._finished, batch)
        except RuntimeError:  # the loop is closed: the call is gone, nothing to send
            pass

    def _finished(self, batch: TickBatch) -> None:
        """On the loop: send the tick's packets, then start the next waiting tick."""
        self._running = None
        batch.deliver()
        self.send_delays.append(time.monotonic() - batch.handed_at)
        if self._waiting:
            self._start(self._waiting.popleft())
        elif self._idle is not None:
            self._idle.set()

    @property
    def busy(self) -> bool:
        return self._running is not None

    async def idle(self) -> None:
        """Wait until every tick handed over so far has been sent (or dropped)."""
        while self._running is not None:
            if self._idle is None:
                self._idle = asyncio.Event()
            self._idle.clear()
            await self._idle.wait()
