"""What a simulated participant (participants: invite) costs the server, without the event loop's pacing.

Each 20 ms, each simulated participant builds the next RTP packet of its shared pre-encoded loop and hands it to
the receive path a WebRTC participant's packet takes after aiortc's receiver: gate → RTP sequence validation →
inline mono Opus decode → reframe → mixer inbox. One round of `test_thirty_simulated_participants_one_period` is
one 20 ms period of 30 invitees, their mix included: its median over 20 ms is the share of a core they take.
"""

import pytest

from mediamute.media.gate import MuteGate
from mediamute.media.mixer import Mixer
from mediamute.rtc.simulated import SimulatedParticipant, encode_packet_loop
from mediamute.sources import SAMPLES_DIR

ROUNDS = 3000


@pytest.fixture(scope="module")
def tone_loop():
    return encode_packet_loop("tone:440")


@pytest.fixture(scope="module")
def voice_loop():
    return encode_packet_loop("bob.wav", SAMPLES_DIR)


def seat(mixer: Mixer, loop, count: int, prefix: str = "p") -> list[SimulatedParticipant]:
    members = []
    for i in range(count):
        gate = MuteGate()
        mixer.add(f"{prefix}{i}", gate)
        members.append(SimulatedParticipant(f"{prefix}{i}", gate, mixer, loop))
    return members


def test_simulated_packet_into_inbox(benchmark, voice_loop):
    mixer = Mixer()
    (member,) = seat(mixer, voice_loop, 1)

    def period() -> None:
        member.send_next()
        mixer.tick()

    benchmark.pedantic(period, rounds=ROUNDS, iterations=1, warmup_rounds=20)
    assert member.decoder.frames > ROUNDS and member.decoder.decoder.errors == 0


def test_simulated_packet_dropped_by_closed_gate(benchmark, voice_loop):
    mixer = Mixer()
    (member,) = seat(mixer, voice_loop, 1)
    mixer.slot("p0").gate.close()
    benchmark.pedantic(member.send_next, rounds=ROUNDS, iterations=1, warmup_rounds=20)
    assert member.decoder.frames == 0


def test_thirty_simulated_participants_one_period(benchmark, tone_loop, voice_loop):
    mixer = Mixer()
    members = seat(mixer, voice_loop, 15, "voice") + seat(mixer, tone_loop, 15, "tone")

    def period() -> None:
        for member in members:
            member.send_next()
        mixer.tick()

    benchmark.pedantic(period, rounds=ROUNDS // 10, iterations=1, warmup_rounds=5)
    assert len(mixer.audit.last().contributors) == 30

