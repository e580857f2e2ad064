"""Extensions beyond Graph, outside its prefixes (under /ext):

- participant unmute by an application (Graph has no such action), self-unmute and self-mute by a participant's
  own WHIP session token, join tokens for a call;
- call statistics: gate, mixer, RTP, network impairment, clock and callback counters, and the contributor audit;
- the call's event stream (WebSocket): the same commsNotifications the callback gets, plus live levels;
- the public key (JWKS) that verifies tokens and callback signatures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from ..calls.call import Call
from ..calls.errors import CallError
from ..calls.stats import DEFAULT_AUDIT_LIMIT, CallStats, ParticipantStats, call_stats
from ..tokens import ROLE_INITIATE, ROLE_INITIATE_GROUP_CALL, ROLE_JOIN_GROUP_CALL, ROLE_JOIN_GROUP_CALL_AS_GUEST
from . import schemas
from .auth import FORBIDDEN, Principal, authenticate, call_reader, for_call, roles
from .errors import GraphError, error_body
from .graph import ERRORS, ContextBody, client_context, run_operation
from .network import network_json
from .notifications import DeliveryCounters
from .resources import call_resource, participant_resource, roster
from .state import app_state

log = logging.getLogger("mediamute.ext")
router = APIRouter(prefix="/ext", tags=["mediamute extensions (not Graph)"])

UNMUTE_OTHERS = roles(ROLE_JOIN_GROUP_CALL, ROLE_JOIN_GROUP_CALL_AS_GUEST)
MINT_JOIN = roles(ROLE_INITIATE, ROLE_INITIATE_GROUP_CALL, ROLE_JOIN_GROUP_CALL, ROLE_JOIN_GROUP_CALL_AS_GUEST)
STATS_PERIOD = 0.1


def participant_self(request: Request, call_id: str, participant_id: str) -> Principal:
    """The participant's own session token (or, with auth off, anyone)."""
    principal = authenticate(request)
    if principal.kind == "anonymous":
        return principal
    if principal.kind != "session":
        raise GraphError(403, "Only the participant's own WHIP session token may do this.", FORBIDDEN)
    for_call(principal, call_id, participant_id)
    return principal


@router.post(
    "/calls/{call_id}/participants/{participant_id}/unmute",
    response_model=schemas.UnmuteParticipantOperation,
    responses=ERRORS,
    summary="Unmute a participant (an application with a participant-mute role)",
)
async def unmute_participant(
    call_id: str, participant_id: str, request: Request, body: ContextBody = None, _: Principal = Depends(UNMUTE_OTHERS)
) -> JSONResponse:
    return run_operation(request, call_id, lambda call: call.unmute(participant_id, client_context(body)))


@router.post(
    "/calls/{call_id}/participants/{participant_id}/selfUnmute",
    response_model=schemas.UnmuteParticipantOperation,
    responses=ERRORS,
    summary="Lift your own server mute (your WHIP session token); 403 when the call's allowSelfUnmute is false",
)
async def self_unmute(call_id: str, participant_id: str, request: Request) -> JSONResponse:
    participant_self(request, call_id, participant_id)
    return run_operation(request, call_id, lambda call: call.self_unmute(participant_id))


@router.post(
    "/calls/{call_id}/participants/{participant_id}/selfMute",
    response_model=schemas.Participant,
    responses=ERRORS,
    summary="Say whether your client muted its own microphone (your WHIP session token)",
)
async def self_mute(
    call_id: str, participant_id: str, request: Request, body: Annotated[schemas.SelfMuteBody, Body()]
) -> JSONResponse:
    participant_self(request, call_id, participant_id)
    call = app_state(request).registry.live(call_id)
    return JSONResponse(participant_resource(call.set_self_muted(participant_id, body.muted)).wire())


@router.post("/calls/{call_id}/joinTokens", responses=ERRORS, summary="Mint a token that lets its bearer join this call")
async def join_token(call_id: str, request: Request, _: Principal = Depends(MINT_JOIN)) -> JSONResponse:
    state = app_state(request)
    call = state.registry.live(call_id)
    return JSONResponse({"token": state.signing_key.join_token(call.id), "whipUrl": f"{str(request.base_url).rstrip('/')}/whip/{call.id}"})


@router.get("/keys", summary="The public key (JWKS) that verifies mediamute tokens and callback signatures")
async def keys(request: Request) -> JSONResponse:
    return JSONResponse(app_state(request).signing_key.jwks())


# statistics ---------------------------------------------------------------------------------------------------
def participant_stats_json(entry: ParticipantStats) -> dict[str, Any]:
    """One participant's numbers on the wire (the `mixer` key only while it has a mixer slot; `rtp`, its sequence
    validation counters, `jitterBuffer`, its receive path's buffer (times in seconds), `network`, its impairment
    profiles and counters per direction, and `tones`, its DTMF counters; each null without media)."""
    gate = entry.gate
    body: dict[str, Any] = {
        "id": entry.id,
        "displayName": entry.display_name,
        "kind": entry.kind,
        "isMuted": entry.is_muted,
        "serverMuted": entry.server_muted,
        "selfMuted": entry.self_muted,
        "gate": {
            "open": gate.is_open,
            "passedPackets": gate.passed_packets,
            "droppedPackets": gate.dropped_packets,
            "droppedBytes": gate.dropped_bytes,
            "closedSince": gate.closed_since,
        },
        "receivedLevelDbov": entry.received_level_dbov,
        "mixedLevelDbfs": entry.mixed_level_dbfs,
    }
    if entry.mixer is not None:
        body["mixer"] = asdict(entry.mixer)
    body["rtp"] = {**asdict(entry.rtp), "dropped": entry.rtp.dropped} if entry.rtp is not None else None
    body["network"] = network_json(entry.network)
    body["jitterBuffer"] = entry.jitter.as_dict() if entry.jitter is not None else None
    talking = entry.talking
    body["talkingWhileMuted"] = {
        "talking": talking.talking,
        "since": talking.since,
        "episodes": talking.episodes,
        "talkingSeconds": talking.talking_seconds,
        "levelsRead": talking.levels,
    }
    body["tones"] = (
        {**asdict(entry.tones), "dropped": entry.tones.dropped, "formats": list(entry.tone_formats)}
        if entry.tones is not None else None
    )
    out = entry.outbound
    body["outbound"] = {**asdict(out), "dropped": out.dropped} if out is not None else None
    return body


def call_stats_json(
    record: CallStats, callbacks: DeliveryCounters | None, faults: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A call's numbers on the wire, with its callback delivery counters (the API's own, None without a callback)
    and the faults on request in force for it (the spec and the API requests refused; None without faults)."""
    return {
        "callId": record.call_id,
        "state": record.state,
        "monotonicNow": record.monotonic_now,
        "rosterSequenceNumber": record.roster_sequence,
        "clock": asdict(record.clock),
        "callbacks": asdict(callbacks) if callbacks is not None else None,
        "faults": faults,
        "participants": [participant_stats_json(p) for p in record.participants],
        "audit": [
            {"seq": r.seq, "at": r.at, "mixedAt": r.mixed_at, "contributors": list(r.contributors), "levels": list(r.levels),
             "concealed": list(r.concealed), "recovered": list(r.recovered)}
            for r in record.audit
        ],
    }


@router.get("/calls/{call_id}/stats", responses=ERRORS, summary="Gate, mixer, clock, callback and fault counters and the contributor audit")
async def stats(
    call_id: str,
    request: Request,
    since: float | None = Query(None, description="only audit records of ticks mixed (mixedAt) at or after this server monotonic time"),
    limit: int = Query(DEFAULT_AUDIT_LIMIT, ge=0, le=3000),
) -> JSONResponse:
    call_reader(request, call_id)
    state = app_state(request)
    call = state.registry.get(call_id)
    counters = state.hub.delivery_counters(call_id)
    return JSONResponse(call_stats_json(call_stats(call, since, limit), counters, state.hub.faults.call_report(call_id)))


# event stream -------------------------------------------------------------------------------------------------
@router.websocket("/calls/{call_id}/events")
async def events(websocket: WebSocket, call_id: str) -> None:
    """Notifications as they happen and live stats every 100 ms. Token: `Authorization` or `?access_token=`."""
    await websocket.accept()
    call = await _authorise_stream(websocket, call_id)
    if call is None:
        return
    hub = app_state(websocket).hub
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=256)

    def enqueue(message: dict[str, Any]) -> None:
        if queue.full():  # a slow page loses the oldest message; it never slows the call
            queue.get_nowait()
        queue.put_nowait(message)

    unsubscribe = hub.subscribe(call_id, enqueue)
    try:
        await websocket.send_json(_snapshot(call, list(hub.history.get(call_id, ()))))
        await _pump(websocket, call, queue)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        unsubscribe()
        with contextlib.suppress(Exception):
            await websocket.close()


async def _authorise_stream(websocket: WebSocket, call_id: str) -> Call | None:
    """The call, if this connection may read it; otherwise tell the page why (Graph's error shape), close, None."""
    try:
        call_reader(websocket, call_id, allow_query=True)
        return app_state(websocket).registry.get(call_id)
    except (GraphError, CallError) as exc:
        answer = GraphError.of(exc)
        body = error_body(websocket, answer.code, answer.message)  # type: ignore[arg-type]
        await websocket.send_json({"type": "error", "status": answer.status, **body})
        await websocket.close(code=4000 + answer.status)
        return None


def _snapshot(call: Call, history: list[dict[str, Any]]) -> dict[str, Any]:
    """The first message: the call, its roster and policy, and the notifications published so far."""
    return {
        "type": "snapshot",
        "call": call_resource(call).wire(),
        "participants": [participant_resource(p).wire() for p in roster(call.participants.values())],
        "allowSelfUnmute": call.options.allow_self_unmute,
        "history": history,
    }


async def _pump(websocket: WebSocket, call: Call, queue: asyncio.Queue[dict[str, Any]]) -> None:
    """Forward queued notifications as they come and stats (no audit) every STATS_PERIOD, until the page goes or
    the call has ended and every queued notification is sent."""
    receiver = asyncio.get_running_loop().create_task(_drain_incoming(websocket))
    next_stats = time.monotonic()
    while not receiver.done():
        timeout = max(0.0, next_stats - time.monotonic())
        try:
            message = await asyncio.wait_for(queue.get(), timeout)
            await websocket.send_json(message)
        except asyncio.TimeoutError:
            await websocket.send_json({"type": "stats", "body": call_stats_json(call_stats(call, audit_limit=0), None)})
            next_stats = time.monotonic() + STATS_PERIOD
        if call.terminated and queue.empty():
            break
    receiver.cancel()


async def _drain_incoming(websocket: WebSocket) -> None:
    """Read (and ignore) what the page sends, to notice when it goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await websocket.receive_text()
