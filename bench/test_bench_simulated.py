"""What a simulated participant (participants: invite) costs the server, without the event loop's pacing.

Each 20 ms, each simulated participant builds the next RTP packet of its shared pre-encoded loop and hands it to
the receive path a WebRTC participant's packet takes after aiortc's receiver (gate → RTP sequence validation →
jitter buffer); the mix tick pulls it through the libopus decoder. One round of
`test_thirty_simulated_participants_one_period` is one 20 ms period of 30 invitees, their mix included: over 20 ms,
the share of a core they take. The periods run on an injected clock (20 ms apart), so the jitter buffer sees
packets at their pace.
"""

import pytest

from mediamute.media.audio import FRAME_SECONDS
from mediamute.media.gate import MuteGate
from mediamute.media.mixer import Mixer
from mediamute.rtc.simulated import PacketLoop, SimulatedParticipant, encode_packet_loop
from mediamute.sources import SAMPLES_DIR

ROUNDS = 3000


class StepClock:
    """Monotonic seconds that move one 20 ms period per round."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def tone_loop() -> PacketLoop:
    return encode_packet_loop("tone:440")


@pytest.fixture(scope="module")
def voice_loop() -> PacketLoop:
    return encode_packet_loop("bob.wav", SAMPLES_DIR)


def seat(mixer: Mixer, clock: StepClock, loop: PacketLoop, count: int, prefix: str) -> list[SimulatedParticipant]:
    members = []
    for i in range(count):
        gate = MuteGate()
        member = SimulatedParticipant(f"{prefix}{i}", gate, loop, clock=clock)
        mixer.add(member.participant_id, gate, source=member.frame_source)
        members.append(member)
    return members


def periods(benchmark, members: list[SimulatedParticipant], mixer: Mixer, clock: StepClock, rounds: int) -> None:
    def period() -> None:
        for member in members:
            member.send_next()
        mixer.tick(clock.now)
        clock.now += FRAME_SECONDS

    benchmark.pedantic(period, rounds=rounds, iterations=1, warmup_rounds=20)


def test_simulated_participant_one_period(benchmark, voice_loop):
    clock = StepClock()
    mixer = Mixer(clock=clock)
    (member,) = seat(mixer, clock, voice_loop, 1, "p")
    periods(benchmark, [member], mixer, clock, ROUNDS)
    assert member.path.frames > ROUNDS // 2 and member.path.decoder.errors == 0


def test_simulated_packet_dropped_by_closed_gate(benchmark, voice_loop):
    clock = StepClock()
    mixer = Mixer(clock=clock)
    (member,) = seat(mixer, clock, voice_loop, 1, "p")
    mixer.slot("p0").gate.close()
    benchmark.pedantic(member.send_next, rounds=ROUNDS, iterations=1, warmup_rounds=20)
    assert member.path.frames == 0


def test_thirty_simulated_participants_one_period(benchmark, tone_loop, voice_loop):
    clock = StepClock()
    mixer = Mixer(clock=clock)
    members = seat(mixer, clock, voice_loop, 15, "voice") + seat(mixer, clock, tone_loop, 15, "tone")
    periods(benchmark, members, mixer, clock, ROUNDS // 10)
    assert len(mixer.audit.last().contributors) == 30
