"""Extensions beyond Graph, outside its prefixes: participant unmute by the application, and call statistics
(gate counters, mixer counters, clock health and the contributor audit)."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from ..calls.call import Call
from .graph import client_context, json_body, operation_response
from .state import app_state

router = APIRouter(prefix="/ext", tags=["mediamute extensions"])


@router.post(
    "/calls/{call_id}/participants/{participant_id}/unmute",
    summary="Unmute a participant (extension: Graph has no such action)",
)
async def unmute_participant(call_id: str, participant_id: str, request: Request) -> JSONResponse:
    context = client_context(await json_body(request))
    call = app_state(request).registry.live(call_id)
    operation = call.unmute(participant_id, context)
    return operation_response(request, call, operation)


def call_stats(call: Call, audit_since: float | None = None, audit_limit: int = 200) -> dict[str, Any]:
    participants = []
    for participant in call.participants.values():
        entry: dict[str, Any] = {
            "id": participant.id,
            "displayName": participant.display_name,
            "kind": participant.kind,
            "serverMuted": participant.server_muted,
            "gate": asdict(participant.gate.counters()),
        }
        if participant.id in call.mixer:
            slot = call.mixer.slot(participant.id)
            entry["mixer"] = asdict(slot.counters())
            entry["mixedLevel"] = slot.last_level
        participants.append(entry)
    records = (
        call.mixer.audit.between(audit_since) if audit_since is not None else call.mixer.audit.latest(audit_limit)
    )
    return {
        "callId": call.id,
        "state": call.state,
        "monotonicNow": time.monotonic(),
        "clock": asdict(call.clock.counters()),
        "participants": participants,
        "audit": [
            {"seq": r.seq, "at": r.at, "contributors": list(r.contributors), "levels": list(r.levels)}
            for r in records[-audit_limit:]
        ],
    }


@router.get("/calls/{call_id}/stats", summary="Gate, mixer and clock counters and the contributor audit")
async def stats(
    call_id: str,
    request: Request,
    since: float | None = Query(None, description="only audit records at or after this server monotonic time"),
    limit: int = Query(200, ge=0, le=3000),
) -> JSONResponse:
    call = app_state(request).registry.get(call_id)
    return JSONResponse(call_stats(call, since, limit))
