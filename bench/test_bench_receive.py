"""The per-packet receive path, without the network: SRTP-decrypted RTP bytes in → a frame in the mixer's inbox.

mediamute's path: parse (aiortc's RtpPacket) → depayload → gate → sequence validation → jitter buffer (`add`), then
the tick's pull: the buffer's step → libopus decode → the frame the mixer queues. One round = one packet in and one
pull out (a 20 ms period of one talker), on an injected clock; `add` and `pull` are also timed alone.
For comparison, aiortc's own path for the same packet: the gate, then its 4-packet jitter buffer → its stereo decoder →
stereo-to-mono → reframe → push (its decoder-thread hop and track queue are left out: they would only add).
"""

import pytest
from aiortc.codecs import depayload
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from mediamute.media.audio import Reframer
from mediamute.media.gate import MuteGate
from mediamute.media.mixer import Mixer
from mediamute.rtc.codec import encode_loop
from mediamute.rtc.receive import ReceivePath
from mediamute.rtc.tracks import frame_to_mono
from mediamute.sources import ToneSource

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=96)
ROUNDS = 4000


@pytest.fixture(scope="module")
def rtp_stream() -> list[bytes]:
    """Serialized RTP packets of a 440 Hz tone, consecutive sequence numbers (enough for every round)."""
    source = ToneSource(440, 8000)
    opus = encode_loop([source.next_frame() for _ in range(50)])
    out = []
    for i in range(ROUNDS + 100):
        packet = RtpPacket(payload_type=96, sequence_number=i % 65536, timestamp=(i * 960) % 2**32, ssrc=1234)
        packet.payload = opus[i % len(opus)]
        out.append(packet.serialize())
    return out


def parse(data: bytes) -> RtpPacket:
    packet = RtpPacket.parse(data)
    packet._data = depayload(OPUS, packet.payload)  # what RTCRtpReceiver does before its jitter buffer
    return packet


def run(benchmark, receive, stream: list[bytes]) -> None:
    packets = iter(stream)
    for _ in range(20):  # warm the decoder (and fill aiortc's prefetch)
        receive(next(packets))
    benchmark.pedantic(receive, setup=lambda: ((next(packets),), {}), rounds=ROUNDS, iterations=1)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_receive_packet_to_inbox_jitter_buffer(benchmark, rtp_stream):
    """One period of one talker: its packet arrives (add), the tick pulls a frame (decode) into the inbox."""
    clock = Clock()
    mixer = Mixer(clock=clock)
    gate = MuteGate()
    path = ReceivePath(gate, clock=clock)
    mixer.add("p", gate)

    def receive(data: bytes) -> None:
        clock.now += 0.02
        path.add(parse(data))
        pulled = path.pull(clock.now + 0.005)
        if pulled is not None:
            mixer.push("p", pulled.frame, pulled.arrived)
        mixer.slot("p").inbox.clear()

    run(benchmark, receive, rtp_stream)
    counters = path.buffer.counters
    assert counters.decoded > ROUNDS and counters.concealed == 0 and path.decoder.errors == 0


def test_receive_packet_add_only(benchmark, rtp_stream):
    """A packet's arrival alone: parse → gate → sequence validation → held by the buffer (no decode)."""
    clock = Clock()
    path = ReceivePath(MuteGate(), clock=clock)

    def receive(data: bytes) -> None:
        clock.now += 0.02
        path.add(parse(data))
        if path.buffer.depth > 64:
            path.buffer.flush()

    run(benchmark, receive, rtp_stream)
    assert path.buffer.counters.packets > ROUNDS


def test_receive_pull_only(benchmark, rtp_stream):
    """A tick's pull alone: the buffer's step and the libopus decode of one held packet."""
    clock = Clock()
    path = ReceivePath(MuteGate(), clock=clock)
    packets = iter(rtp_stream)

    def arrive() -> tuple[tuple, dict]:
        clock.now += 0.02
        path.add(parse(next(packets)))
        return (), {}

    for _ in range(20):
        arrive()
        path.pull(clock.now)
    benchmark.pedantic(lambda: path.pull(clock.now), setup=arrive, rounds=ROUNDS, iterations=1)
    assert path.buffer.counters.decoded > ROUNDS and path.buffer.counters.concealed == 0


def test_receive_packet_dropped_by_closed_gate(benchmark, rtp_stream):
    gate = MuteGate()
    gate.close()
    path = ReceivePath(gate)
    run(benchmark, lambda data: path.add(parse(data)), rtp_stream)
    assert path.buffer.counters.packets == 0 and gate.dropped_packets > ROUNDS


def test_receive_packet_to_inbox_aiortc_path(benchmark, rtp_stream):
    mixer = Mixer()
    gate = MuteGate()
    mixer.add("p", gate)
    buffer = JitterBuffer(capacity=16, prefetch=4, is_video=False)  # what RTCRtpReceiver creates for audio
    decoder = OpusDecoder()
    framer = Reframer()

    def receive(data: bytes) -> None:
        packet = parse(data)
        if not gate.admit(len(packet.payload)):
            return
        _, encoded = buffer.add(packet)
        if encoded is not None:
            for frame in decoder.decode(encoded):
                for piece in framer.push(frame_to_mono(frame)):
                    mixer.push("p", piece)

    run(benchmark, receive, rtp_stream)
