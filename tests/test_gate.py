from mediamute.media.gate import MuteGate


def test_open_gate_passes_and_counts():
    gate = MuteGate()
    assert gate.is_open
    assert gate.admit(100) and gate.admit(50)
    counters = gate.counters()
    assert (counters.passed_packets, counters.passed_bytes) == (2, 150)
    assert (counters.dropped_packets, counters.dropped_bytes) == (0, 0)
    assert counters.closed_since is None


def test_closed_gate_drops_counts_and_remembers_since_when():
    now = [10.0]
    gate = MuteGate(clock=lambda: now[0])
    assert gate.close()
    assert not gate.admit(120)
    assert not gate.admit(80)
    counters = gate.counters()
    assert (counters.dropped_packets, counters.dropped_bytes) == (2, 200)
    assert counters.passed_packets == 0
    assert counters.closed_since == 10.0
    assert counters.closures == 1


def test_close_and_open_are_idempotent_and_call_listeners_once():
    gate = MuteGate()
    events: list[str] = []
    gate.on_close(lambda g: events.append(f"close open={g.is_open}"))
    gate.on_open(lambda g: events.append(f"open open={g.is_open}"))
    assert gate.close() is True
    assert gate.close() is False
    assert gate.open() is True
    assert gate.open() is False
    assert events == ["close open=False", "open open=True"]
    assert gate.closed_since is None


def test_counters_keep_growing_across_mute_cycles():
    gate = MuteGate()
    gate.admit(10)
    gate.close()
    gate.admit(10)
    gate.open()
    gate.admit(10)
    gate.close()
    gate.admit(10)
    c = gate.counters()
    assert (c.passed_packets, c.dropped_packets, c.closures) == (2, 2, 2)
