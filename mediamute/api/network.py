"""A participant's network impairment over HTTP (an extension, not Graph): `GET`/`PUT
/ext/calls/{id}/participants/{pid}/network`, the `network` WHIP parameter (or `Mediamute-Network` header), and
the JSON shapes the stats share.

The OpenAPI schemas are made from the profile table (`media.netem.PROFILE_FIELDS`), which the parser checks
against too, so a schema-valid profile is an accepted one. Bad values are 400s naming the field
(`uplink.loss: must be at most 1, got 1.5`).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..media.netem import (
    DIRECTIONS,
    PRESET_NAMES,
    PROFILE_FIELDS,
    DirectionState,
    NetworkSpec,
    NetworkState,
    ProfileError,
    ReceptionReport,
    parse_network,
)
from ..media.netem.profile import MAX_SEED, PRESET_DESCRIPTION, SEED_DESCRIPTION
from ..tokens import ROLE_JOIN_GROUP_CALL, ROLE_JOIN_GROUP_CALL_AS_GUEST
from .auth import FORBIDDEN, authenticate, call_reader, for_call, require_app_roles
from .errors import GraphError
from .graph import ERRORS
from .state import app_state

router = APIRouter(prefix="/ext", tags=["mediamute extensions (not Graph)"])

HEADER = "Mediamute-Network"
QUERY = "network"
SET_OTHERS = (ROLE_JOIN_GROUP_CALL, ROLE_JOIN_GROUP_CALL_AS_GUEST)


# JSON shapes ----------------------------------------------------------------------------------------------------
def direction_json(state: DirectionState) -> dict[str, Any]:
    counters = state.counters
    histogram = counters.delay_histogram
    return {
        "profile": state.profile.wire(),
        "engaged": state.engaged,
        "burstP": state.burst_p,
        "burstR": state.burst_r,
        "counters": {
            "datagrams": counters.datagrams,
            "delivered": counters.delivered,
            "dropped": counters.dropped,
            "droppedRandom": counters.dropped_random,
            "droppedBurst": counters.dropped_burst,
            "droppedQueue": counters.dropped_queue,
            "duplicated": counters.duplicated,
            "reordered": counters.reordered,
            "pending": counters.pending,
            "cancelled": counters.cancelled,
            "passed": counters.passed,
            "lossRatio": counters.loss_ratio,
            "delayMeanMs": counters.delay_mean_ms,
            "delayMaxMs": counters.delay_max_ms,
            "jitterMs": counters.jitter_ms,
            "delayHistogram": {
                "boundsMs": [1000.0 * b for b in histogram.bounds],
                "counts": list(histogram.counts),
            },
        },
    }


def network_json(state: NetworkState | None) -> dict[str, Any] | None:
    """Both directions, as the stats and the network resource show them (None: no media connection)."""
    if state is None:
        return None
    return {"uplink": direction_json(state.uplink), "downlink": direction_json(state.downlink)}


def reception_json(report: ReceptionReport | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {
        "packetsLost": report.packets_lost,
        "packetsReceived": report.packets_received,
        "lossRatio": report.loss_ratio,
        "jitterMs": report.jitter_ms,
        "fractionLost": report.fraction_lost,
        "roundTripMs": report.round_trip_ms,
    }


# OpenAPI schemas, from the profile table ------------------------------------------------------------------------
def _number(low: float, high: float, description: str, integer: bool = False) -> dict[str, Any]:
    return {"type": "integer" if integer else "number", "minimum": low, "maximum": high, "description": description}


PROFILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "A network profile for one direction; every field is optional and independent of the others.",
    "properties": {
        "preset": {"anyOf": [{"type": "string", "enum": list(PRESET_NAMES)}, {"type": "null"}], "description": PRESET_DESCRIPTION},
        **{f.wire: _number(f.minimum, f.maximum, f.description, f.integer) for f in PROFILE_FIELDS},
        "seed": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_SEED}, {"type": "null"}], "description": SEED_DESCRIPTION},
    },
}
SPEC_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "enum": list(PRESET_NAMES), "description": "A preset's name."},
        {"$ref": "#/components/schemas/NetworkProfile"},
    ]
}
UPDATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "New profiles, per direction: a direction left out is unchanged.",
    "properties": {
        "uplink": {**SPEC_SCHEMA, "description": "Participant → server."},
        "downlink": {**SPEC_SCHEMA, "description": "Server → participant."},
    },
}
_COUNT = {"type": "integer", "minimum": 0}
_MS = {"type": "number", "minimum": 0}
DIRECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["profile", "engaged", "burstP", "burstR", "counters"],
    "properties": {
        "profile": {
            "allOf": [{"$ref": "#/components/schemas/NetworkProfile"}],
            "description": "The profile in use, with its seed (it can be PUT back to replay the run).",
        },
        "engaged": {"type": "boolean", "description": "The impairment is on the packet path (false: perfect, nothing in flight)."},
        "burstP": {"type": "number", "description": "Gilbert-Elliott p (good → bad) from burstLoss and burstLength."},
        "burstR": {"type": "number", "description": "Gilbert-Elliott r (bad → good): 1 / burstLength."},
        "counters": {
            "type": "object",
            "description": "Media datagrams (SRTP/SRTCP) only; `passed` counts the others (DTLS), never impaired. "
            "datagrams + duplicated = delivered + dropped + pending + cancelled.",
            "properties": {
                **{name: _COUNT for name in (
                    "datagrams", "delivered", "dropped", "droppedRandom", "droppedBurst", "droppedQueue",
                    "duplicated", "reordered", "pending", "cancelled", "passed",
                )},
                "lossRatio": {"type": "number", "minimum": 0, "maximum": 1},
                "delayMeanMs": _MS,
                "delayMaxMs": _MS,
                "jitterMs": {**_MS, "description": "RFC 3550's jitter estimate over the added delays."},
                "delayHistogram": {
                    "type": "object",
                    "properties": {"boundsMs": {"type": "array", "items": _MS}, "counts": {"type": "array", "items": _COUNT}},
                },
            },
        },
    },
}
_REPORT = {
    "anyOf": [
        {
            "type": "object",
            "properties": {
                "packetsLost": {"type": "integer"},
                "packetsReceived": {"type": ["integer", "null"]},
                "lossRatio": {"type": ["number", "null"]},
                "jitterMs": _MS,
                "fractionLost": {"type": ["number", "null"]},
                "roundTripMs": {"type": ["number", "null"]},
            },
        },
        {"type": "null"},
    ]
}
STATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["participantId", "uplink", "downlink", "rtcp"],
    "properties": {
        "participantId": {"type": "string"},
        "uplink": {"$ref": "#/components/schemas/NetworkDirection"},
        "downlink": {"$ref": "#/components/schemas/NetworkDirection"},
        "rtcp": {
            "type": "object",
            "description": "What RTCP says of the same streams: the uplink as the server's receiver measured it, the "
            "downlink as the participant's receiver reports told the server (null until known).",
            "properties": {"uplink": _REPORT, "downlink": _REPORT},
        },
    },
}
COMPONENTS = {"NetworkProfile": PROFILE_SCHEMA, "NetworkDirection": DIRECTION_SCHEMA, "NetworkState": STATE_SCHEMA}
"""Added to the OpenAPI document's components by `api.app.document_errors`."""
STATE_RESPONSE = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/NetworkState"}}}}
WHIP_PARAMETER = {
    "name": QUERY,
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": list(PRESET_NAMES)},
    "description": "Impair this participant's network from the first media packet: a preset's name for both "
    "directions, or (as JSON) a profile object for both, or {\"uplink\": …, \"downlink\": …}. The same "
    f"may come in a `{HEADER}` header instead (not both). A bad value is a 400 naming the field, and no "
    "participant is created.",
}


# parsing --------------------------------------------------------------------------------------------------------
def whip_network(request: Request) -> NetworkSpec | None:
    """The network a WHIP join asks for (query parameter or header), or None; GraphError 400 when it is bad."""
    query, header = request.query_params.get(QUERY), request.headers.get(HEADER)
    if query is not None and header is not None:
        raise GraphError(400, f"network: give it as the '{QUERY}' query parameter or the {HEADER} header, not both.")
    text = query if query is not None else header
    if text is None:
        return None
    try:
        return parse_network(text, QUERY)
    except ProfileError as exc:
        raise GraphError(400, f"Invalid network profile: {exc}") from None


async def _update(request: Request) -> NetworkSpec:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GraphError(400, f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise GraphError(400, "The body must be an object with 'uplink' and/or 'downlink' profiles.")
    stray = [key for key in body if key not in DIRECTIONS]
    if stray:
        raise GraphError(400, f"{stray[0]}: not a direction (give 'uplink' and/or 'downlink').")
    try:
        return parse_network(body, "body") if body else NetworkSpec()
    except ProfileError as exc:
        raise GraphError(400, f"Invalid network profile: {exc.field.removeprefix('body.')}: {exc.message}") from None


# routes ---------------------------------------------------------------------------------------------------------
def _setter(request: Request, call_id: str, participant_id: str) -> None:
    """An application with a participant-mute role, or the participant's own session token."""
    principal = authenticate(request)
    if principal.kind == "app":
        require_app_roles(principal, SET_OTHERS)
    elif principal.kind == "session":
        for_call(principal, call_id, participant_id)
    elif principal.kind != "anonymous":
        raise GraphError(403, "A join token cannot change a network; use the participant's session token.", FORBIDDEN)


async def _state(request: Request, call_id: str, participant_id: str, state: NetworkState) -> JSONResponse:
    media = app_state(request).registry.get(call_id).participant(participant_id).media
    uplink, downlink = await media.reception() if media is not None else (None, None)
    body = {"participantId": participant_id, **(network_json(state) or {}),
            "rtcp": {"uplink": reception_json(uplink), "downlink": reception_json(downlink)}}
    return JSONResponse(body)


NETWORK_ERRORS = {
    **ERRORS,
    400: {"description": "A bad profile: the message names the field"},
    404: {"description": "Unknown call or participant, or one without a media connection (the application's own)"},
}


@router.get(
    "/calls/{call_id}/participants/{participant_id}/network",
    responses={200: {"description": "Both directions' profiles and impairment counters, and what RTCP reports", **STATE_RESPONSE}, **NETWORK_ERRORS},
    summary="A participant's network: profiles, impairment counters and RTCP's view (any calls role or a token of the call)",
)
async def get_network(call_id: str, participant_id: str, request: Request) -> JSONResponse:
    call_reader(request, call_id)  # as the stats, which show the same counters
    call = app_state(request).registry.get(call_id)
    return await _state(request, call_id, participant_id, call.network(participant_id))


@router.put(
    "/calls/{call_id}/participants/{participant_id}/network",
    responses={200: {"description": "The profiles now in use (from the next datagram on) and the counters", **STATE_RESPONSE}, **NETWORK_ERRORS},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": UPDATE_SCHEMA}}}},
    summary="Impair a participant's network, per direction (an app with a participant-mute role, or its own session token)",
)
async def put_network(call_id: str, participant_id: str, request: Request) -> JSONResponse:
    _setter(request, call_id, participant_id)
    spec = await _update(request)
    call = app_state(request).registry.live(call_id)
    state = call.set_network(participant_id, spec)
    return await _state(request, call_id, participant_id, state)
