"""The call domain: calls, participants, mute state, operations and the events they emit (no HTTP, no aiortc)."""

from .call import Call, CallOptions, CallRegistry
from .errors import (
    CallError,
    CallNotFound,
    CallTerminated,
    MediaConflict,
    NoNetwork,
    NotSupportedForCall,
    OperationNotFound,
    ParticipantNotFound,
    PolicyForbids,
)
from .model import Operation, Participant

__all__ = [
    "Call",
    "CallError",
    "CallNotFound",
    "CallOptions",
    "CallRegistry",
    "CallTerminated",
    "MediaConflict",
    "NoNetwork",
    "NotSupportedForCall",
    "Operation",
    "OperationNotFound",
    "Participant",
    "ParticipantNotFound",
    "PolicyForbids",
]
