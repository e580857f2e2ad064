"""The jitter buffer's own logic (stdlib only, no decoding): one packet in, one playout step out.

Packets arrive with 0-20 ms of jitter (a fixed seeded sequence); the clock is injected. `insert` is what a packet's
arrival costs past the gate and sequence validation, `next` what the tick's playout decision costs before the decode.
"""

import random

from mediamute.media.jitter import FRAME, PlayoutBuffer

ROUNDS = 20_000


def arrivals(count: int) -> list[tuple[int, float]]:
    rng = random.Random(3)
    return [((i * FRAME) % 2**32, i * 0.02 + rng.uniform(0, 0.02)) for i in range(count)]


def test_jitter_buffer_insert(benchmark):
    buffer = PlayoutBuffer()
    stream = iter(arrivals(ROUNDS + 200))

    def insert() -> None:
        ts, at = next(stream)
        buffer.insert(ts, b"x", FRAME, at)
        if buffer.depth > 64:
            buffer.flush()

    benchmark.pedantic(insert, rounds=ROUNDS, iterations=1, warmup_rounds=100)
    assert buffer.counters.packets >= ROUNDS


def test_jitter_buffer_next(benchmark):
    """One tick's decision, with a packet to play (the common case), after that packet's insert (not timed)."""
    buffer = PlayoutBuffer()
    stream = iter(arrivals(ROUNDS + 300))
    tick = [0.03]

    def arrive() -> tuple[tuple, dict]:
        ts, at = next(stream)
        buffer.insert(ts, b"x", FRAME, at)
        tick[0] += 0.02
        return (), {}

    def step() -> None:
        buffer.next(tick[0])

    for _ in range(200):
        arrive()
        step()
    benchmark.pedantic(step, setup=arrive, rounds=ROUNDS, iterations=1)
    c = buffer.counters
    assert c.decoded >= 0.95 * ROUNDS
