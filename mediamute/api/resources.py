"""Domain objects as Graph resources (the one place that maps calls/participants/operations to the wire)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..calls.call import Call
from ..calls.model import Operation, Participant, ToneInfo
from . import schemas


def participant_resource(participant: Participant, removed_reason: str | None = None) -> schemas.Participant:
    identity = schemas.Identity(display_name=participant.display_name, id=participant.user_id)
    if participant.identity is not None:  # invited: the identity it was invited as (a user, a phone, a guest)
        identity_set = schemas.IdentitySet.model_validate(participant.identity)
    elif participant.kind == "application":
        identity_set = schemas.IdentitySet(application=identity)
    else:
        identity_set = schemas.IdentitySet(user=identity)
    return schemas.Participant(
        id=participant.id,
        info=schemas.ParticipantInfo(
            identity=identity_set,
            region=participant.region,
            language_id=participant.language_id,
            endpoint_type="default",
            participant_id=participant.id,
        ),
        is_muted=participant.is_muted,
        is_in_lobby=False,
        # on hold (startHoldMusic) it hears only its music and sends nothing into the call: Graph's participant has
        # no hold property, so the stream's direction says it
        media_streams=[
            schemas.MediaStream(
                server_muted=participant.server_muted,
                direction="receiveOnly" if participant.on_hold else "sendReceive",
            )
        ],
        metadata=None,
        roster_sequence_number=participant.roster_sequence,
        removed_state=schemas.RemovedState(reason=removed_reason) if removed_reason else None,
        mediamute=schemas.ParticipantExtension(talking_while_muted=participant.talking.talking),
    )


OPERATION_MODELS: dict[str, type[schemas.CommsOperation]] = {
    "muteParticipant": schemas.MuteParticipantOperation,
    "unmuteParticipant": schemas.UnmuteParticipantOperation,
    "comms": schemas.CommsOperation,
    "playPrompt": schemas.PlayPromptOperation,
    "record": schemas.RecordOperation,
    "cancelMediaProcessing": schemas.CancelMediaProcessingOperation,
    "subscribeToTone": schemas.SubscribeToToneOperation,
    "sendDtmfTones": schemas.SendDtmfTonesOperation,
    "startHoldMusic": schemas.StartHoldMusicOperation,
    "stopHoldMusic": schemas.StopHoldMusicOperation,
    "inviteParticipants": schemas.InviteParticipantsOperation,
}


def roster(participants: Iterable[Participant]) -> list[Participant]:
    """The participants a roster shows (list, roster updates, the event stream's snapshot): all but hidden ones."""
    return [p for p in participants if not p.hidden]


def operation_path(call_id: str, operation_id: str) -> str:
    """An operation's resource path: a completing notification's resourceUrl and its data's `@odata.id`."""
    return f"/communications/calls/{call_id}/operations/{operation_id}"


def operation_resource(
    operation: Operation, context: str | None = None, odata_id: str | None = None
) -> schemas.CommsOperation:
    """The typed operation: its type's model, Graph's resultInfo once it has ended (null while it runs), the
    completionReason where the type has one, and the type's own properties from `operation.details`."""
    model = OPERATION_MODELS[operation.kind]
    properties = {field.alias or name for name, field in model.model_fields.items()}
    extra: dict[str, Any] = {name: value for name, value in operation.details.items() if name in properties}
    if "completionReason" in properties and operation.completion_reason is not None:
        extra["completionReason"] = operation.completion_reason
    return model(
        odata_context=context,
        odata_id=odata_id,
        id=operation.id,
        status=operation.status,
        client_context=operation.client_context,
        result_info=schemas.ResultInfo(
            code=operation.result_code, subcode=operation.result_subcode, message=operation.result_message or None
        )
        if operation.finished
        else None,
        **extra,
    )


def call_resource(call: Call, context: str | None = None) -> schemas.Call:
    options = call.options
    return schemas.Call(
        odata_context=context,
        id=call.id,
        state=call.state,
        direction="outgoing",
        callback_uri=options.callback_uri,
        my_participant_id=call.app.id,
        requested_modalities=list(options.requested_modalities),
        media_config={"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
        source=schemas.ParticipantInfo(
            identity=schemas.IdentitySet(
                application=schemas.Identity(display_name=call.app.display_name, id=call.app.user_id)
            ),
            participant_id=call.app.id,
        ),
        targets=options.targets,
        subject=options.subject,
        chat_info=options.chat_info,
        meeting_info=options.meeting_info,
        tenant_id=options.tenant_id,
        result_info=schemas.ResultInfo(code=200, subcode=0, message="The call ended.") if call.state == "terminated" else None,
        call_chain_id=call.id,
        tone_info=tone_info(call.tone_info) if call.tone_info is not None else None,
    )


def tone_info(info: ToneInfo) -> schemas.ToneInfo:
    return schemas.ToneInfo(sequence_id=info.sequence_id, tone=info.tone)  # type: ignore[arg-type]


def tone_notification_data(call: Call, info: ToneInfo) -> schemas.ToneNotificationCall:
    """A tone notification's resourceData: Graph's (call state and toneInfo), plus who pressed under `mediamute`."""
    return schemas.ToneNotificationCall(
        state=call.state,
        tone_info=tone_info(info),
        mediamute=schemas.ToneExtension(participant_id=info.participant_id, server_muted=info.server_muted),
    )
