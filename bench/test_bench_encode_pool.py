"""One tick's encodes of N listeners' own mixes: on the loop (inline) vs on the encode pool's threads (one per core),
with libopus through opuslib-next and with PyAV.

The pool's figure is wall time from handing the tick over to the last packet delivered on the loop. On a machine
with two free cores it is about half the inline figure when the codec releases the GIL while it encodes; a codec
that held the GIL would show no gain (this is the measurement behind rtc/encode_pool.py, see bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from mediamute.rtc.encode_pool import EncodePool, TickBatch, TickEncoder
from mediamute.rtc.mix_encoder import LibopusEncoder, PyAVMixEncoder, libopus_available

from conftest import distinct_frames

ENCODERS = {"libopus": LibopusEncoder, "pyav": PyAVMixEncoder}


@pytest.fixture(scope="module")
def loop():
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


@pytest.fixture(scope="module")
def pool():
    encode_pool = EncodePool(2)
    yield encode_pool
    encode_pool.close()


def tick(encoders: list, frames: list[np.ndarray], position: int, sink: list) -> TickBatch:
    batch = TickBatch()
    for encoder, frame in zip(encoders, frames):
        batch.deliveries.append((sink.append, batch.add_job(encoder, frame, position * 960)))
    return batch


def run_ticks(benchmark, loop, runner: TickEncoder, n: int, kind: str) -> None:
    if kind == "libopus" and not libopus_available():
        pytest.skip("opuslib-next or the system's libopus0 is not installed")
    encoders = [ENCODERS[kind]() for _ in range(n)]
    frames = distinct_frames(n)
    sink: list = []
    position = iter(range(10**9))

    async def one_tick() -> None:
        runner.run(tick(encoders, frames, next(position), sink))
        await runner.idle()

    for _ in range(5):
        loop.run_until_complete(one_tick())
    benchmark.pedantic(lambda: loop.run_until_complete(one_tick()), rounds=60 if n <= 48 else 25, iterations=1)
    assert len(sink) >= 5 * n and runner.dropped_ticks == 0


@pytest.mark.parametrize("kind", ["libopus", "pyav"])
@pytest.mark.parametrize("n", [16, 48, 128])
def test_encode_tick_inline(benchmark, loop, n, kind):
    run_ticks(benchmark, loop, TickEncoder(None), n, kind)


@pytest.mark.parametrize("kind", ["libopus", "pyav"])
@pytest.mark.parametrize("n", [16, 48, 128])
def test_encode_tick_pool(benchmark, loop, pool, n, kind):
    run_ticks(benchmark, loop, TickEncoder(pool), n, kind)
