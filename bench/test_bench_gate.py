"""The gate's per-packet decision, open and closed: target ≤ 0.5 µs."""

from mediamute.media.gate import MuteGate


def test_gate_admit_open(benchmark):
    gate = MuteGate()
    assert benchmark(gate.admit, 120) is True


def test_gate_admit_closed(benchmark):
    gate = MuteGate()
    gate.close()
    assert benchmark(gate.admit, 120) is False
