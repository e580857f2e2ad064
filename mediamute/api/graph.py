"""The Graph-shaped calls API, served under /v1.0 and /beta: calls, participants, mute, operations.

Each route names the application roles it accepts (the spec's permission table); bodies and answers are the
pydantic models of `schemas`, so the JSON is Graph's: camelCase and `@odata.type` everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import JSONResponse

from ..calls.call import Call, CallOptions
from ..calls.model import Operation, new_id
from ..sources import SAMPLES_DIR, source_from_spec
from ..tokens import (
    ALL_CALL_ROLES,
    ROLE_ACCESS_MEDIA,
    ROLE_INITIATE,
    ROLE_INITIATE_GROUP_CALL,
    ROLE_JOIN_GROUP_CALL,
    ROLE_JOIN_GROUP_CALL_AS_GUEST,
)
from . import schemas
from .auth import Principal, roles
from .errors import GraphError
from .resources import call_resource, operation_resource, participant_resource, roster
from .state import app_state
from .urls import graph_root, metadata, operation_location

CREATE = roles(ROLE_INITIATE, ROLE_INITIATE_GROUP_CALL)
READ = roles(*ALL_CALL_ROLES)
PARTICIPANT_MUTE = roles(ROLE_JOIN_GROUP_CALL, ROLE_JOIN_GROUP_CALL_AS_GUEST)
SELF_MUTE = roles(ROLE_INITIATE, ROLE_ACCESS_MEDIA)
INVITE = roles(ROLE_INITIATE_GROUP_CALL)
ACCESS_MEDIA = roles(ROLE_ACCESS_MEDIA)

router = APIRouter(tags=["Graph calls"])
beta_router = APIRouter(tags=["Graph calls (beta)"])

ContextBody = Annotated[schemas.ClientContextBody | None, Body()]
ERRORS = {
    400: {"description": "Bad request (Graph error envelope)"},
    401: {"description": "No, malformed or expired token"},
    403: {"description": "The token lacks the permission, or is delegated"},
    404: {"description": "Unknown call, participant or operation"},
    409: {"description": "The call has been terminated"},
}


CallAction = Callable[[Call], Operation]
"""A mute action on a live call (`call.mute(...)`, `call.unmute(...)`, ...) returning its completed operation."""


def operation_response(request: Request, call: Call, operation: Operation, status_code: int = 200) -> JSONResponse:
    """200 OK (202 for the hold-music actions), the typed operation, and a Location that
    `GET …/operations/{id}` resolves."""
    body = operation_resource(operation, context=metadata(request, f"{operation.kind}Operation")).wire()
    return JSONResponse(
        body, status_code=status_code, headers={"Location": operation_location(request, call.id, operation.id)}
    )


def run_operation(request: Request, call_id: str, action: CallAction, status_code: int = 200) -> JSONResponse:
    """What every operation route does: find the live call (409 if it ended), act, answer with the operation."""
    call = app_state(request).registry.live(call_id)
    return operation_response(request, call, action(call), status_code)


def client_context(body: schemas.ClientContextBody | None) -> str | None:
    return body.client_context if body else None


MAX_APP_NAME = 64
"""The longest application displayName taken from `source` (as `mediamute.appDisplayName`)."""


def source_application(source: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """The bot's own identity in a create request, `source.identity.application` (Graph's create-call examples send
    it and Graph's answer echoes it): its (displayName, id), each None when absent. A value that is not a string
    of 1 to 64 characters is a 400 naming the field."""
    identity = source.get("identity") if isinstance(source, dict) else None
    application = identity.get("application") if isinstance(identity, dict) else None
    if not isinstance(application, dict):
        return None, None
    values: list[str | None] = []
    for key in ("displayName", "id"):
        value = application.get(key)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= MAX_APP_NAME):
            raise GraphError(400, f"source.identity.application.{key}: must be a string of 1 to {MAX_APP_NAME} characters")
        values.append(value)
    return values[0], values[1]


@router.post(
    "/communications/calls", status_code=201, response_model=schemas.Call, responses=ERRORS, summary="Create a call"
)
async def create_call(
    request: Request, body: Annotated[schemas.CreateCallBody, Body()], _: Principal = Depends(CREATE)
) -> JSONResponse:
    extension = body.mediamute or schemas.MediamuteCallOptions()
    app_name, app_id = source_application(body.source)
    if app_name is None or "app_display_name" in extension.model_fields_set:
        app_name = extension.app_display_name
    try:
        app_source = source_from_spec(extension.app_source, SAMPLES_DIR) if extension.app_source else None
    except ValueError as exc:
        raise GraphError(400, f"mediamute.appSource: {exc}") from None
    state = app_state(request)
    call_id = new_id()
    state.hub.faults.register(call_id, extension.faults)  # before the call publishes its first notification
    call = state.registry.create(
        call_id=call_id,
        options=CallOptions(
            callback_uri=body.callback_uri,
            peer_to_peer=body.is_peer_to_peer,
            allow_self_unmute=extension.allow_self_unmute,
            subject=body.subject,
            app_display_name=app_name,
            app_user_id=app_id,
            app_source=app_source,
            tenant_id=body.tenant_id,
            requested_modalities=list(body.requested_modalities),
            targets=body.targets,
            chat_info=body.chat_info,
            meeting_info=body.meeting_info,
            inbox_frames=state.settings.inbox_frames,
        ),
    )
    resource = call_resource(call, context=metadata(request, "communications/calls/$entity"))
    location = f"{graph_root(request)}/communications/calls/{call.id}"  # Graph's 201 names the new call
    return JSONResponse(resource.wire(), status_code=201, headers={"Location": location})


@router.get("/communications/calls/{call_id}", response_model=schemas.Call, responses=ERRORS, summary="Get a call")
async def get_call(call_id: str, request: Request, _: Principal = Depends(READ)) -> JSONResponse:
    call = app_state(request).registry.get(call_id)
    return JSONResponse(call_resource(call, context=metadata(request, "communications/calls/$entity")).wire())


@router.delete("/communications/calls/{call_id}", status_code=204, responses=ERRORS, summary="End a call")
async def delete_call(call_id: str, request: Request, _: Principal = Depends(CREATE)) -> Response:
    call = app_state(request).registry.live(call_id)
    await call.end()
    return Response(status_code=204)


@router.get(
    "/communications/calls/{call_id}/participants",
    response_model=schemas.ParticipantCollection,
    responses=ERRORS,
    summary="List participants",
)
async def list_participants(call_id: str, request: Request, _: Principal = Depends(READ)) -> JSONResponse:
    call = app_state(request).registry.get(call_id)
    collection = schemas.ParticipantCollection(
        odata_context=metadata(request, f"communications/calls('{call.id}')/participants"),
        value=[participant_resource(p) for p in roster(call.participants.values())],
    )
    return JSONResponse(collection.wire())


@router.post(
    "/communications/calls/{call_id}/participants/invite",
    response_model=schemas.InviteParticipantsOperation,
    responses=ERRORS,
    summary="Invite participants: each joins after its ring delay as a simulated participant",
)
async def invite_participants(
    call_id: str,
    request: Request,
    body: Annotated[schemas.InviteParticipantsBody, Body()],
    _: Principal = Depends(INVITE),
) -> JSONResponse:
    """Answered `running` with the invitees echoed; the operation completes (a `deleted` notification on it) when
    the last invitee has joined, then a roster update lists the newcomers. An invitee is a server-side simulated
    participant whose Opus packets take the WebRTC receive path (gate, decode, mix): it mutes like anyone."""
    state = app_state(request)
    call = state.registry.live(call_id)
    invitation = state.invitations.plan(call, body)
    operation = call.begin(
        Operation("inviteParticipants", "", body.client_context, details={"participants": invitation.echo})
    )
    state.invitations.start(call, operation, invitation)
    return operation_response(request, call, operation)


@router.get(
    "/communications/calls/{call_id}/participants/{participant_id}",
    response_model=schemas.Participant,
    responses=ERRORS,
    summary="Get a participant",
)
async def get_participant(
    call_id: str, participant_id: str, request: Request, _: Principal = Depends(READ)
) -> JSONResponse:
    call = app_state(request).registry.get(call_id)
    body = participant_resource(call.participant(participant_id)).wire()
    body["@odata.context"] = metadata(request, f"communications/calls('{call.id}')/participants/$entity")
    return JSONResponse(body)


@router.delete(
    "/communications/calls/{call_id}/participants/{participant_id}",
    status_code=204,
    responses=ERRORS,
    summary="Remove a participant (its media is dropped at once)",
)
async def delete_participant(
    call_id: str, participant_id: str, request: Request, _: Principal = Depends(PARTICIPANT_MUTE)
) -> Response:
    await app_state(request).registry.live(call_id).remove(participant_id)
    return Response(status_code=204)


@router.post(
    "/communications/calls/{call_id}/participants/{participant_id}/mute",
    response_model=schemas.MuteParticipantOperation,
    responses=ERRORS,
    summary="Mute a participant (server mute: its packets are dropped before decoding and mixing)",
)
async def mute_participant(
    call_id: str,
    participant_id: str,
    request: Request,
    body: ContextBody = None,
    _: Principal = Depends(PARTICIPANT_MUTE),
) -> JSONResponse:
    # the participant's gate is closed when call.mute returns, before the answer is sent
    return run_operation(request, call_id, lambda call: call.mute(participant_id, client_context(body)))


@router.post(
    "/communications/calls/{call_id}/mute",
    response_model=schemas.MuteParticipantOperation,
    responses=ERRORS,
    summary="Mute the application's own participant",
)
async def mute_self(
    call_id: str, request: Request, body: ContextBody = None, _: Principal = Depends(SELF_MUTE)
) -> JSONResponse:
    return run_operation(request, call_id, lambda call: call.mute(call.app.id, client_context(body)))


@router.post(
    "/communications/calls/{call_id}/unmute",
    response_model=schemas.UnmuteParticipantOperation,
    responses=ERRORS,
    summary="Unmute the application's own participant",
)
async def unmute_self(
    call_id: str, request: Request, body: ContextBody = None, _: Principal = Depends(SELF_MUTE)
) -> JSONResponse:
    return run_operation(request, call_id, lambda call: call.unmute(call.app.id, client_context(body)))


@router.post(
    "/communications/calls/{call_id}/subscribeToTone",
    response_model=schemas.SubscribeToToneOperation,
    responses=ERRORS,
    summary="Subscribe to DTMF: each key press a participant sends arrives as a call update with toneInfo",
)
async def subscribe_to_tone(
    call_id: str, request: Request, body: ContextBody = None, _: Principal = Depends(ACCESS_MEDIA)
) -> JSONResponse:
    return run_operation(request, call_id, lambda call: call.subscribe_to_tone(client_context(body)))


@router.get(
    "/communications/calls/{call_id}/operations/{operation_id}",
    response_model=schemas.CommsOperation,
    responses=ERRORS,
    summary="Get an operation",
)
async def get_operation(
    call_id: str, operation_id: str, request: Request, _: Principal = Depends(READ)
) -> JSONResponse:
    call = app_state(request).registry.get(call_id)
    operation = call.operation(operation_id)
    return JSONResponse(operation_resource(operation, context=metadata(request, f"{operation.kind}Operation")).wire())


@beta_router.post(
    "/communications/calls/{call_id}/participants/muteAll",
    response_model=schemas.CommsOperation,
    responses=ERRORS,
    summary="Mute all participants (beta, deprecated in Graph)",
)
async def mute_all(
    call_id: str,
    request: Request,
    body: Annotated[schemas.MuteAllBody | None, Body()] = None,
    _: Principal = Depends(PARTICIPANT_MUTE),
) -> JSONResponse:
    chosen = body or schemas.MuteAllBody()
    return run_operation(request, call_id, lambda call: call.mute_all(chosen.participants, chosen.client_context))
