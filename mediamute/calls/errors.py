"""Domain errors: each names what went wrong in the call model. They carry a message and no transport status;
`api.errors.DOMAIN_ERRORS` is the one table that maps them to Graph's HTTP statuses and error codes."""

from __future__ import annotations


class CallError(Exception):
    """Base of every domain error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CallNotFound(CallError):
    """No call has this id."""

    def __init__(self, call_id: str) -> None:
        super().__init__("Call not found.")
        self.call_id = call_id


class ParticipantNotFound(CallError):
    """The call has no participant with this id."""

    def __init__(self, participant_id: str) -> None:
        super().__init__(f"Participant {participant_id} not found in this call.")
        self.participant_id = participant_id


class OperationNotFound(CallError):
    """The call has no operation with this id."""

    def __init__(self, operation_id: str) -> None:
        super().__init__(f"Operation {operation_id} not found in this call.")


class NoNetwork(CallError):
    """The participant has no media connection, hence no network resource (the application's own participant runs
    inside the server; a participant may also be in the roster without media)."""


class CallTerminated(CallError):
    """The call has ended (or is ending): it takes no more changes."""

    def __init__(self, call_id: str) -> None:
        super().__init__(f"Call {call_id} has been terminated.")


class NotSupportedForCall(CallError):
    """The action does not apply to this kind of call or participant (e.g. participant mute in a 1:1 call)."""


class PolicyForbids(CallError):
    """The call's own policy refuses the action (e.g. self-unmute when allowSelfUnmute is false)."""


class MediaConflict(CallError):
    """The media action conflicts with the call's media state: a second participant on hold, stopHoldMusic for one
    who is not held, a full IVR queue."""
