"""The hot path: mute gate, mixer, clock, contributor audit and frame helpers (stdlib + numpy only)."""

from .audio import FRAME_SAMPLES, SAMPLE_RATE, Frame, Reframer
from .audit import ContributorAudit, TickRecord
from .clock import MixClock
from .gate import GateCounters, MuteGate
from .mixer import FrameSink, Mixer, MixSlot, MixTick, SlotCounters, saturate_int16

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "ContributorAudit",
    "Frame",
    "FrameSink",
    "GateCounters",
    "MixClock",
    "MixSlot",
    "MixTick",
    "Mixer",
    "MuteGate",
    "Reframer",
    "SlotCounters",
    "TickRecord",
    "saturate_int16",
]
