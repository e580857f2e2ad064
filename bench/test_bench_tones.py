"""What DTMF and talking while muted cost per packet.

- a muted participant's dropped packet now also feeds its talking-while-muted detector (from the RTP header's
  audio level, through the call): compare with `test_receive_packet_dropped_by_closed_gate` (target: ≤ 2 µs more);
- every audio packet now passes the ToneTap (one payload-type lookup) before the receive path: compare with
  `test_receive_packet_to_inbox_jitter_buffer`;
- an event packet: parse and recognise a repeat (most of a press's packets), and the detector's own step.
"""

from pyee import EventEmitter

from mediamute.calls.call import Call, CallOptions
from mediamute.calls.model import Participant
from mediamute.media.gate import MuteGate
from mediamute.media.mixer import Mixer
from mediamute.media.talking import TalkingDetector
from mediamute.media.telephone_event import EventReport, ToneReceiver
from mediamute.rtc.dtmf import ToneTap
from mediamute.rtc.receive import ReceivePath

from test_bench_receive import ROUNDS, Clock, parse, rtp_stream, run  # noqa: F401  (rtp_stream: that module's packets fixture)


def test_talking_detector_feed(benchmark):
    detector = TalkingDetector()
    at = iter(i * 0.02 for i in range(10_000_000))
    benchmark(lambda: detector.feed(-20.0, next(at)))
    assert detector.talking


def test_receive_packet_dropped_by_closed_gate_read_for_talking(benchmark, rtp_stream):
    call = Call(CallOptions(), EventEmitter())  # never started: only its roster and detectors are used
    bob = call.join(Participant("Bob"), sink=None, media=None)
    call.mute(bob.id)
    path = ReceivePath(bob.gate)
    path.on_dropped_level = lambda level: call.heard_while_muted(bob.id, -float(level))

    def receive(data: bytes) -> None:
        packet = parse(data)
        packet.extensions.audio_level = (False, 20)  # what aiortc's header parser yields for a -20 dBov packet
        path.add(packet)

    run(benchmark, receive, rtp_stream)
    assert path.buffer.counters.packets == 0 and bob.talking.levels > 20


def test_receive_packet_to_inbox_through_the_tone_tap(benchmark, rtp_stream):
    """As `test_receive_packet_to_inbox_jitter_buffer`, with the tap in front of the receive path."""
    clock = Clock()
    mixer = Mixer(clock=clock)
    gate = MuteGate()
    path = ReceivePath(gate, clock=clock)
    mixer.add("p", gate)
    tap = ToneTap(path, {110: 48000, 126: 8000}, lambda press: None)

    def receive(data: bytes) -> None:
        clock.now += 0.02
        tap.add(parse(data))
        pulled = path.pull(clock.now + 0.005)
        if pulled is not None:
            mixer.push("p", pulled.frame, pulled.arrived)
        mixer.slot("p").inbox.clear()

    run(benchmark, receive, rtp_stream)
    assert path.buffer.counters.decoded > ROUNDS and path.decoder.errors == 0


def test_tone_receiver_repeat_packet(benchmark):
    receiver = ToneReceiver()
    payload = EventReport(5, False, 10, 1920).pack()
    receiver.receive(1, 9600, True, payload)
    benchmark(receiver.receive, 1, 9600, False, payload)
    assert receiver.counters.presses == 1 and receiver.counters.repeats > 0
