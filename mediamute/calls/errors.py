"""Domain errors: each names what went wrong in the call model; the API maps them to Graph error responses."""

from __future__ import annotations


class CallError(Exception):
    """Base of every domain error. `status` is the HTTP status a Graph-shaped API answers with."""

    status = 400
    code = "BadRequest"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CallNotFound(CallError):
    status = 404
    code = "9997"  # what the real service answers for an unknown call id

    def __init__(self, call_id: str) -> None:
        super().__init__("Call not found.")
        self.call_id = call_id


class ParticipantNotFound(CallError):
    status = 404
    code = "itemNotFound"

    def __init__(self, participant_id: str) -> None:
        super().__init__(f"Participant {participant_id} not found in this call.")
        self.participant_id = participant_id


class OperationNotFound(CallError):
    status = 404
    code = "itemNotFound"

    def __init__(self, operation_id: str) -> None:
        super().__init__(f"Operation {operation_id} not found in this call.")


class CallTerminated(CallError):
    status = 409
    code = "conflict"

    def __init__(self, call_id: str) -> None:
        super().__init__(f"Call {call_id} has been terminated.")


class NotSupportedForCall(CallError):
    status = 400
    code = "BadRequest"


class PolicyForbids(CallError):
    status = 403
    code = "Forbidden"
