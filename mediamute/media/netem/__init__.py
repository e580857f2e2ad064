"""Network impairment, per participant and per direction: profiles and presets, the seeded model of what a
network does to datagrams, its counters, and the delivery line that hands them on at their times on the event
loop. Standard library only; `mediamute.rtc.impairment` installs it on a participant's ICE connection."""

from .counters import DELAY_BOUNDS, DirectionCounters, NetworkCounters
from .delivery import Batch, DeliveryLine, Scheduler
from .model import MAX_IN_FLIGHT, DirectionModel
from .presets import PRESET_LIST, PRESET_NAMES, PRESETS, Preset, preset
from .profile import (
    DIRECTIONS,
    PERFECT,
    PROFILE_FIELDS,
    Direction,
    FieldSpec,
    NetworkProfile,
    NetworkSpec,
    ProfileError,
    parse_network,
    parse_profile,
)
from .state import DirectionState, NetworkState, ReceptionReport

__all__ = [
    "DELAY_BOUNDS",
    "DIRECTIONS",
    "MAX_IN_FLIGHT",
    "PERFECT",
    "PRESETS",
    "PRESET_LIST",
    "PRESET_NAMES",
    "PROFILE_FIELDS",
    "Batch",
    "DeliveryLine",
    "Direction",
    "DirectionCounters",
    "DirectionModel",
    "DirectionState",
    "FieldSpec",
    "NetworkCounters",
    "NetworkProfile",
    "NetworkSpec",
    "NetworkState",
    "Preset",
    "ReceptionReport",
    "ProfileError",
    "Scheduler",
    "parse_network",
    "parse_profile",
    "preset",
]
