"""The Graph-shaped calls API (served under /v1.0 and /beta): calls, participants, mute and operations."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ..calls.call import Call, CallOptions
from ..calls.model import Operation, Participant
from .errors import GraphError
from .state import app_state

router = APIRouter(tags=["Graph calls"])
MAX_CLIENT_CONTEXT = 256


async def json_body(request: Request, required: bool = False) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise GraphError(400, "A JSON request body is required.")
        return {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type != "application/json":
        raise GraphError(415, "The request body must be sent with Content-Type: application/json.")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GraphError(400, f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise GraphError(400, "The request body must be a JSON object.")
    return body


def client_context(body: dict[str, Any]) -> str | None:
    value = body.get("clientContext")
    if value is None:
        return None
    if not isinstance(value, str):
        raise GraphError(400, "clientContext must be a string.")
    if len(value) > MAX_CLIENT_CONTEXT:
        raise GraphError(400, f"clientContext must be at most {MAX_CLIENT_CONTEXT} characters.")
    return value


def participant_json(call: Call, participant: Participant) -> dict[str, Any]:
    identity_key = "application" if participant.kind == "application" else "user"
    return {
        "@odata.type": "#microsoft.graph.participant",
        "id": participant.id,
        "info": {
            "@odata.type": "#microsoft.graph.participantInfo",
            "identity": {
                "@odata.type": "#microsoft.graph.identitySet",
                identity_key: {
                    "@odata.type": "#microsoft.graph.identity",
                    "displayName": participant.display_name,
                    "id": participant.user_id,
                },
            },
            "region": "local",
            "languageId": "en-US",
        },
        "mediaStreams": [
            {
                "@odata.type": "#microsoft.graph.mediaStream",
                "mediaType": "audio",
                "label": "main-audio",
                "sourceId": "1",
                "direction": "sendReceive",
                "serverMuted": participant.server_muted,
            }
        ],
        "isMuted": participant.is_muted,
        "isInLobby": False,
        "rosterSequenceNumber": participant.roster_sequence,
        "metadata": None,
    }


def operation_json(operation: Operation) -> dict[str, Any]:
    return {
        "@odata.type": f"#microsoft.graph.{operation.kind}Operation",
        "id": operation.id,
        "status": operation.status,
        "clientContext": operation.client_context,
        "resultInfo": {
            "@odata.type": "#microsoft.graph.resultInfo",
            "code": operation.result_code,
            "subcode": operation.result_subcode,
            "message": operation.result_message,
        },
    }


def call_json(call: Call) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.call",
        "id": call.id,
        "state": call.state,
        "direction": "outgoing",
        "callbackUri": call.options.callback_uri,
        "myParticipantId": call.app.id,
        "requestedModalities": call.options.requested_modalities,
        "subject": call.options.subject,
        "tenantId": call.options.tenant_id,
    }


def _base(request: Request) -> str:
    return request.url.path.split("/communications/")[0]


def operation_response(request: Request, call: Call, operation: Operation) -> JSONResponse:
    body = operation_json(operation)
    body["@odata.context"] = f"{request.base_url}{_base(request).lstrip('/')}/$metadata#{operation.kind}Operation"
    location = f"{request.base_url}{_base(request).lstrip('/')}/communications/calls/{call.id}/operations/{operation.id}"
    return JSONResponse(body, status_code=200, headers={"Location": location})


@router.post("/communications/calls", status_code=201, summary="Create a call")
async def create_call(request: Request) -> JSONResponse:
    body = await json_body(request)
    callback = body.get("callbackUri")
    if callback is not None and not isinstance(callback, str):
        raise GraphError(400, "callbackUri must be a string.")
    state = app_state(request)
    call = state.registry.create(CallOptions(callback_uri=callback, inbox_frames=state.settings.inbox_frames))
    return JSONResponse(call_json(call), status_code=201)


@router.get("/communications/calls/{call_id}", summary="Get a call")
async def get_call(call_id: str, request: Request) -> JSONResponse:
    return JSONResponse(call_json(app_state(request).registry.get(call_id)))


@router.delete("/communications/calls/{call_id}", status_code=204, summary="End a call")
async def delete_call(call_id: str, request: Request) -> Response:
    await app_state(request).registry.get(call_id).end()
    return Response(status_code=204)


@router.get("/communications/calls/{call_id}/participants", summary="List participants")
async def list_participants(call_id: str, request: Request) -> JSONResponse:
    call = app_state(request).registry.get(call_id)
    return JSONResponse(
        {
            "@odata.context": f"{request.base_url}{_base(request).lstrip('/')}/$metadata#communications/calls('{call.id}')/participants",
            "value": [participant_json(call, p) for p in call.participants.values()],
        }
    )


@router.get("/communications/calls/{call_id}/participants/{participant_id}", summary="Get a participant")
async def get_participant(call_id: str, participant_id: str, request: Request) -> JSONResponse:
    call = app_state(request).registry.get(call_id)
    return JSONResponse(participant_json(call, call.participant(participant_id)))


@router.delete("/communications/calls/{call_id}/participants/{participant_id}", status_code=204)
async def delete_participant(call_id: str, participant_id: str, request: Request) -> Response:
    await app_state(request).registry.live(call_id).remove(participant_id)
    return Response(status_code=204)


@router.post("/communications/calls/{call_id}/participants/{participant_id}/mute", summary="Mute a participant")
async def mute_participant(call_id: str, participant_id: str, request: Request) -> JSONResponse:
    body = await json_body(request)
    context = client_context(body)
    call = app_state(request).registry.live(call_id)
    operation = call.mute(participant_id, context)  # the gate is closed when this returns
    return operation_response(request, call, operation)


@router.get("/communications/calls/{call_id}/operations/{operation_id}", summary="Get an operation")
async def get_operation(call_id: str, operation_id: str, request: Request) -> JSONResponse:
    call = app_state(request).registry.get(call_id)
    return JSONResponse(operation_json(call.operation(operation_id)))
