"""WHIP ingest (RFC 9725 shape): POST an SDP offer to join a call, DELETE the returned Location to leave.

Joining needs an application token with a calls role, or a join token for that call. The answer carries a
session token (header `Mediamute-Session-Token`) that acts for the new participant only: leave, self-mute,
self-unmute, watch the call's events, change its own network. `?network=<preset or JSON>` (or a
`Mediamute-Network` header) impairs the participant's network from its first media packet (api/network.py).

Trickle ICE and ICE restarts (PATCH on the session) are not supported: like every method a resource does not
serve, PATCH gets 405 with `Allow: DELETE` (RFC 9725 lets a server without trickle answer so); send a complete offer.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from ..calls.model import Participant
from ..rtc.peer import OfferError, ParticipantPeer
from ..tokens import ALL_CALL_ROLES, ROLE_JOIN_GROUP_CALL, ROLE_JOIN_GROUP_CALL_AS_GUEST
from .auth import FORBIDDEN, Principal, authenticate, for_call, require_app_roles
from .errors import GraphError
from .network import WHIP_PARAMETER, whip_network
from .state import app_state

log = logging.getLogger("mediamute.whip")
router = APIRouter(tags=["WHIP"])

MAX_DISPLAY_NAME = 64
SESSION_TOKEN_HEADER = "Mediamute-Session-Token"


def _display_name(request: Request) -> str:
    name = request.query_params.get("displayName", "").strip()
    if len(name) > MAX_DISPLAY_NAME:
        raise GraphError(400, f"displayName is longer than {MAX_DISPLAY_NAME} characters.")
    if any(ord(ch) < 32 for ch in name):
        raise GraphError(400, "displayName contains control characters.")
    return name or "Guest"


def _short_param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is not None and (len(value) > 32 or not value.replace("-", "").isalnum()):
        raise GraphError(400, f"{name} must be at most 32 letters, digits or dashes.")
    return value


def authorise_join(request: Request, call_id: str) -> Principal:
    """Who may join this call: an application with a calls role, or a join token of this call (in `Authorization`,
    or in `access_token`, which the join redirect of a cluster carries because clients drop `Authorization` on a
    redirect to another origin)."""
    principal = authenticate(request, allow_query=True)
    if principal.kind == "app":
        require_app_roles(principal, ALL_CALL_ROLES)
    elif principal.kind == "session":
        raise GraphError(403, "A session token cannot join again; use an application or join token.", FORBIDDEN)
    else:
        for_call(principal, call_id)
    return principal


@router.post(
    "/whip/{call_id}",
    status_code=201,
    summary="Join a call with an SDP offer (WHIP); the body is the SDP answer",
    openapi_extra={
        "requestBody": {
            "content": {"application/sdp": {"schema": {"type": "string", "format": "sdp", "pattern": "^v=0\r?\n"}}},
            "required": True,
        },
        "parameters": [WHIP_PARAMETER],
    },
    responses={
        201: {"description": "Joined: the SDP answer, `Location` of the session and its session token",
              "content": {"application/sdp": {"schema": {"type": "string"}}}},
        400: {"description": "The offer is not valid SDP, has no audio section, or a query parameter (or the network "
                            "profile) is invalid"},
        401: {"description": "No, malformed or expired token"},
        403: {"description": "The token may not join this call"},
        404: {"description": "Unknown call"},
        409: {"description": "The call has been terminated"},
        415: {"description": "The offer was not sent as application/sdp"},
    },
)
async def whip_join(call_id: str, request: Request) -> Response:
    authorise_join(request, call_id)
    state = app_state(request)
    call = state.registry.live(call_id)
    if call.encoding is None:  # a registry made without rtc's encoding factory: nobody would hear the mix
        raise GraphError(500, f"Call {call.id} has no outbound encoding.")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/sdp":
        raise GraphError(415, "A WHIP offer must be sent with Content-Type: application/sdp.")
    raw = await request.body()
    try:
        offer = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise GraphError(400, "The SDP offer is not valid UTF-8.") from None
    display_name = _display_name(request)
    network = whip_network(request)  # a bad profile is refused before anything is made
    participant = Participant(
        display_name=display_name,
        region=_short_param(request, "region"),
        language_id=_short_param(request, "languageId") or "en-US",
    )
    peer = ParticipantPeer(
        participant.id,
        participant.gate,
        ice_servers=state.settings.ice_servers,
        on_gone=lambda pid: state.participant_gone(call.id, pid),
        jitter=state.settings.jitter,
        on_tone=lambda tone: call.receive_tone(participant.id, tone),
        on_muted_level=lambda level: call.heard_while_muted(participant.id, -float(level)),
        lean_send=state.settings.lean_send,
    )
    try:
        answer = await peer.accept(offer, network)
    except OfferError as exc:
        await peer.close()
        raise GraphError(400, str(exc)) from None
    if call.terminated:  # the call ended while ICE was gathering
        await peer.close()
        raise GraphError(409, f"Call {call.id} has been terminated.")
    call.join(participant, sink=call.encoding.listener(peer.outlet), media=peer)
    location = f"/whip/{call.id}/{participant.id}"
    log.info("call %s: %s joined as %s", call.id, display_name, participant.id)
    return Response(
        content=answer,
        status_code=201,
        media_type="application/sdp",
        headers={
            "Location": location,
            "ETag": f'"{participant.id}"',
            SESSION_TOKEN_HEADER: state.signing_key.session_token(call.id, participant.id),
            "Access-Control-Expose-Headers": f"Location, ETag, {SESSION_TOKEN_HEADER}",
        },
    )


@router.delete(
    "/whip/{call_id}/{participant_id}",
    summary="Leave a call (WHIP session teardown)",
    response_class=Response,
    responses={
        200: {"description": "Left the call (no body)"},
        400: {"description": "The application's own participant cannot leave; delete the call"},
        401: {"description": "No, malformed or expired token"},
        403: {"description": "The token may not end this session"},
        404: {"description": "Unknown call or participant"},
    },
)
async def whip_leave(call_id: str, participant_id: str, request: Request) -> Response:
    principal = authenticate(request)
    if principal.kind == "app":
        require_app_roles(principal, (ROLE_JOIN_GROUP_CALL, ROLE_JOIN_GROUP_CALL_AS_GUEST))
    elif principal.kind == "join":
        raise GraphError(403, "A join token cannot end a session; use the session token the join returned.", FORBIDDEN)
    else:
        for_call(principal, call_id, participant_id)
    call = app_state(request).registry.get(call_id)
    await call.remove(participant_id)
    return Response(status_code=200)

