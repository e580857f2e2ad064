"""What DTMF and talking while muted cost per packet.

- a muted participant's dropped packet now also feeds its talking-while-muted detector (from the RTP header's
  audio level, through the call): compare with `test_receive_packet_dropped_by_closed_gate` (target: ≤ 2 µs more);
- every audio packet now passes the ToneTap (one payload-type lookup) before the inline decoder: compare with
  `test_receive_packet_to_inbox_inline`;
- an event packet: parse and recognise a repeat (most of a press's packets), and the detector's own step.
"""

from pyee import EventEmitter

from mediamute.calls.call import Call, CallOptions
from mediamute.calls.model import Participant
from mediamute.media.gate import MuteGate
from mediamute.media.mixer import Mixer
from mediamute.media.talking import TalkingDetector
from mediamute.media.telephone_event import EventReport, ToneReceiver
from mediamute.rtc.gate_adapter import InlineDecoder
from mediamute.rtc.dtmf import ToneTap

from test_bench_receive import parse, rtp_stream, run  # noqa: F401  (rtp_stream: that module's packets fixture)


def test_talking_detector_feed(benchmark):
    detector = TalkingDetector()
    at = iter(i * 0.02 for i in range(10_000_000))
    benchmark(lambda: detector.feed(-20.0, next(at)))
    assert detector.talking


def test_receive_packet_dropped_by_closed_gate_read_for_talking(benchmark, rtp_stream):
    call = Call(CallOptions(), EventEmitter())  # never started: only its roster and detectors are used
    bob = call.join(Participant("Bob"), sink=None, media=None)
    call.mute(bob.id)
    inline = InlineDecoder(bob.gate, lambda mono, arrived: None)
    inline.on_dropped_level = lambda level: call.heard_while_muted(bob.id, -float(level))

    def receive(data: bytes) -> None:
        packet = parse(data)
        packet.extensions.audio_level = (False, 20)  # what aiortc's header parser yields for a -20 dBov packet
        inline.add(packet)

    run(benchmark, receive, rtp_stream)
    assert inline.frames == 0 and bob.talking.levels > 20


def test_receive_packet_to_inbox_through_the_tone_tap(benchmark, rtp_stream):
    mixer = Mixer()
    gate = MuteGate()
    mixer.add("p", gate)
    inline = InlineDecoder(gate, lambda mono, arrived: mixer.push("p", mono))
    tap = ToneTap(inline, {110: 48000, 126: 8000}, lambda press: None)
    run(benchmark, lambda data: tap.add(parse(data)), rtp_stream)
    assert inline.frames > 20 and inline.decoder.errors == 0


def test_tone_receiver_repeat_packet(benchmark):
    receiver = ToneReceiver()
    payload = EventReport(5, False, 10, 1920).pack()
    receiver.receive(1, 9600, True, payload)
    benchmark(receiver.receive, 1, 9600, False, payload)
    assert receiver.counters.presses == 1 and receiver.counters.repeats > 0
