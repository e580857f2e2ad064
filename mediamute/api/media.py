"""Graph's media actions, served under /v1.0 and /beta: `call: playPrompt`, `recordResponse`,
`cancelMediaProcessing`, `sendDtmfTones`, and `participant: startHoldMusic` / `stopHoldMusic`.

Each answers with its typed operation and a `Location` that `GET …/operations/{id}` resolves: `running` (200; 202
for hold music, as Graph documents), completed later by Graph's `deleted` notification on the operation; except
cancelMediaProcessing, answered `completed`. Every action is also served at its OData-qualified name
(`…/microsoft.graph.sendDtmfTones`, as Graph's sendDtmfTones example posts), outside the OpenAPI document.

A `mediaInfo.uri` is resolved here (`prompts.MediaLibrary`): a place mediamute does not read from is a 400 naming
the prompt, before any operation exists; the media is then read while the request is answered, and an operation
whose media cannot be read fails (its notification says why).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from ..calls.call import CallRegistry
from ..calls.ivr import PendingMedia, ReadyMedia, RecordSettings
from ..calls.model import Operation
from ..dtmf import dtmf_segments, graph_tones
from ..prompts import MediaLibrary, MediaRefused
from ..settings import ServerSettings
from ..tokens import ROLE_ACCESS_MEDIA, ROLE_INITIATE, ROLE_JOIN_GROUP_CALL, ROLE_JOIN_GROUP_CALL_AS_GUEST, SigningKey
from . import media_bodies as bodies
from . import schemas
from .auth import Principal, roles
from .errors import GraphError
from .graph import ERRORS, ContextBody, client_context, operation_response
from .recordings import RecordingCollector, RecordingStore
from .state import app_state

IVR = roles(ROLE_INITIATE, ROLE_ACCESS_MEDIA)
"""playPrompt, cancelMediaProcessing, sendDtmfTones (Graph: Calls.Initiate.All, or Calls.AccessMedia.All)."""
RECORD = roles(ROLE_ACCESS_MEDIA)
"""recordResponse (Graph: Calls.AccessMedia.All only)."""
HOLD = roles(ROLE_JOIN_GROUP_CALL_AS_GUEST, ROLE_JOIN_GROUP_CALL)
"""start/stopHoldMusic (Graph checks nothing more at the action; mediamute asks for a participant-level role)."""
HOLD_MUSIC = "hold-music.wav"
"""What a participant on hold hears when startHoldMusic names no customPrompt (a package sample of ours)."""

router = APIRouter(tags=["Graph calls: media"])


@dataclass
class MediaServices:
    """What the media actions share, one per app: where prompts come from, and where recordings are kept."""

    library: MediaLibrary
    recordings: RecordingStore


def install(app: FastAPI, registry: CallRegistry, settings: ServerSettings, key: SigningKey) -> MediaServices:
    """Give `app` its media library and recording store (call after `install_metrics`: the store's numbers go to
    the app's metrics registry)."""
    recordings = RecordingStore(key, registry.events, auth=settings.auth)
    services = MediaServices(MediaLibrary(settings.media_dir), recordings)
    app.state.media = services
    app.state.recordings = recordings
    app.state.metrics.registry.register(RecordingCollector(recordings))
    return services


def media_services(request: Request) -> MediaServices:
    return request.app.state.media


def action(path: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A POST action at `path`, and at its OData-qualified twin (`…/microsoft.graph.<action>`), which Graph also
    answers; only the first is in the OpenAPI document."""

    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(path, endpoint, methods=["POST"], responses=ERRORS, **options)
        head, _, name = path.rpartition("/")
        router.add_api_route(
            f"{head}/microsoft.graph.{name}", endpoint, methods=["POST"], include_in_schema=False, **options
        )
        return endpoint

    return register


def _fetch(request: Request, prompts: Sequence[tuple[str, bodies.MediaPrompt]]) -> list[PendingMedia]:
    """Resolve every (name, prompt)'s uri (a refusal is a 400 naming the prompt), then start reading them all."""
    library = media_services(request).library
    refs = []
    for name, prompt in prompts:
        try:
            refs.append(library.resolve(prompt.media_info.uri, prompt.media_info.resource_id))
        except MediaRefused as exc:
            raise GraphError(400, f"{name}.mediaInfo.uri: {exc}") from None
    return [library.fetch(ref) for ref in refs]


def _numbered(prompts: Sequence[bodies.MediaPrompt]) -> list[tuple[str, bodies.MediaPrompt]]:
    return [(f"prompts[{index}]", prompt) for index, prompt in enumerate(prompts)]


def _begin(media: Sequence[PendingMedia], start: Callable[[], Operation]) -> Operation:
    """Start the operation; if the call refuses it (terminated, queue full, ...), stop reading its media."""
    try:
        return start()
    except BaseException:
        for pending in media:
            pending.cancel()
        raise


# the IVR queue ----------------------------------------------------------------------------------------------------
@action(
    "/communications/calls/{call_id}/playPrompt",
    response_model=schemas.PlayPromptOperation,
    summary="Play prompts into the call (the application's participant plays them, in turn with the queue)",
)
async def play_prompt(
    call_id: str, request: Request, body: Annotated[bodies.PlayPromptBody, Body()], _: Principal = Depends(IVR)
) -> JSONResponse:
    call = app_state(request).registry.live(call_id)
    media = _fetch(request, _numbered(body.prompts))
    operation = _begin(media, lambda: call.ivr.play_prompt(media, body.client_context))
    return operation_response(request, call, operation)


@action(
    "/communications/calls/{call_id}/recordResponse",
    response_model=schemas.RecordOperation,
    summary="Record what the application hears after an optional prompt and a beep",
)
async def record_response(
    call_id: str, request: Request, body: Annotated[bodies.RecordResponseBody, Body()], _: Principal = Depends(RECORD)
) -> JSONResponse:
    call = app_state(request).registry.live(call_id)
    media = _fetch(request, _numbered(body.prompts))
    settings = RecordSettings(
        prompt=media[0] if media else None,
        play_beep=body.play_beep,
        initial_silence_timeout=body.initial_silence_timeout_in_seconds,
        max_silence_timeout=body.max_silence_timeout_in_seconds,
        max_record_duration=body.max_record_duration_in_seconds,
        stop_tones=graph_tones(body.stop_tones),
        barge_in_allowed=body.barge_in_allowed,
    )
    recordings = media_services(request).recordings
    base_url = str(request.base_url)

    def keep(audio: Any) -> tuple[str, str]:
        return recordings.keep(call.id, audio, base_url)

    operation = _begin(media, lambda: call.ivr.record_response(settings, keep, body.client_context))
    return operation_response(request, call, operation)


@action(
    "/communications/calls/{call_id}/cancelMediaProcessing",
    response_model=schemas.CancelMediaProcessingOperation,
    summary="Cancel the running and queued playPrompt, recordResponse and sendDtmfTones operations",
)
async def cancel_media_processing(
    call_id: str, request: Request, body: ContextBody = None, _: Principal = Depends(IVR)
) -> JSONResponse:
    call = app_state(request).registry.live(call_id)
    return operation_response(request, call, call.ivr.cancel(client_context(body)))


@action(
    "/communications/calls/{call_id}/sendDtmfTones",
    response_model=schemas.SendDtmfTonesOperation,
    summary="Play DTMF tones into the call (ITU-T Q.23 dual tones, in turn with the IVR queue)",
)
async def send_dtmf_tones(
    call_id: str, request: Request, body: Annotated[bodies.SendDtmfTonesBody, Body()], _: Principal = Depends(IVR)
) -> JSONResponse:
    call = app_state(request).registry.live(call_id)
    segments = dtmf_segments(body.tone_names(), body.delay_between_tones_ms)
    return operation_response(request, call, call.ivr.send_dtmf_tones(segments, body.client_context))


# hold music -------------------------------------------------------------------------------------------------------
@action(
    "/communications/calls/{call_id}/participants/{participant_id}/startHoldMusic",
    response_model=schemas.StartHoldMusicOperation,
    status_code=202,
    summary="Put a participant on hold: out of everyone's mix, hearing only music (at most one per call)",
)
async def start_hold_music(
    call_id: str,
    participant_id: str,
    request: Request,
    body: Annotated[bodies.StartHoldMusicBody | None, Body()] = None,
    _: Principal = Depends(HOLD),
) -> JSONResponse:
    call = app_state(request).registry.live(call_id)
    custom = body.custom_prompt if body is not None else None
    if custom is not None:
        music: PendingMedia = _fetch(request, [("customPrompt", custom)])[0]
    else:
        music = ReadyMedia(media_services(request).library.sample(HOLD_MUSIC))
    context = body.client_context if body is not None else None
    operation = _begin([music], lambda: call.hold.start(participant_id, music, context))
    return operation_response(request, call, operation, status_code=202)


@action(
    "/communications/calls/{call_id}/participants/{participant_id}/stopHoldMusic",
    response_model=schemas.StopHoldMusicOperation,
    status_code=202,
    summary="Bring a participant on hold back into the call",
)
async def stop_hold_music(
    call_id: str, participant_id: str, request: Request, body: ContextBody = None, _: Principal = Depends(HOLD)
) -> JSONResponse:
    call = app_state(request).registry.live(call_id)
    return operation_response(request, call, call.hold.stop(participant_id, client_context(body)), status_code=202)
