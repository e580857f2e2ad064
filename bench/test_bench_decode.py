"""Decoding one 20 ms Opus packet: libopus through opuslib-next (what the receive path uses) normally, from the next
packet's in-band FEC, and concealment; and PyAV's libopus decoder (the previous inline decode) for comparison."""

import av
import pytest
from av import CodecContext

from mediamute.rtc.codec import MonoOpusEncoder
from mediamute.rtc.opus import OpusDecoder, has_lbrr
from mediamute.sources import SyllableToneSource

ROUNDS = 4000


@pytest.fixture(scope="module")
def packets() -> list[bytes]:
    """Packets of a tone Opus hears as voice (so they carry LBRR data), encoded with FEC on as every sender does."""
    encoder = MonoOpusEncoder()
    source = SyllableToneSource(440)
    out = [encoder.encode(source.next_frame(), i * 960) for i in range(300)]
    return [bytes(p) for p in out if p is not None]


def cycle(packets: list[bytes]):
    i = 0
    while True:
        yield packets[i % len(packets)]
        i += 1


def test_decode_libopus(benchmark, packets):
    decoder = OpusDecoder()
    stream = cycle(packets)
    benchmark.pedantic(lambda p: decoder.decode(p), setup=lambda: ((next(stream),), {}), rounds=ROUNDS, iterations=1)
    assert decoder.errors == 0


def test_decode_libopus_fec(benchmark, packets):
    """Rebuild the frame before a packet from its LBRR data (packets without any are left out)."""
    decoder = OpusDecoder()
    with_lbrr = [p for p in packets if has_lbrr(p)]
    assert len(with_lbrr) > 0.7 * len(packets)
    stream = cycle(with_lbrr)
    benchmark.pedantic(lambda p: decoder.recover(p), setup=lambda: ((next(stream),), {}), rounds=ROUNDS, iterations=1)


def test_decode_libopus_plc(benchmark, packets):
    decoder = OpusDecoder()
    for p in packets[:50]:
        decoder.decode(p)
    benchmark.pedantic(decoder.conceal, rounds=ROUNDS, iterations=1)


def test_decode_pyav(benchmark, packets):
    codec = CodecContext.create("libopus", "r")
    codec.format = "s16"
    codec.layout = "mono"
    codec.sample_rate = 48000
    stream = cycle(packets)

    def decode(p: bytes) -> list:
        return [f.to_ndarray().reshape(-1) for f in codec.decode(av.Packet(p))]

    benchmark.pedantic(decode, setup=lambda: ((next(stream),), {}), rounds=ROUNDS, iterations=1)
