"""The HTTP application: Graph routes under /v1.0 and /beta, WHIP, the extensions, docs and error envelope."""

from __future__ import annotations

import uuid

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import ValidationError
from fastapi_swagger import patch_fastapi

from .. import __version__
from ..calls.call import CallRegistry
from ..settings import ServerSettings
from ..tokens import SigningKey
from . import ext, graph, media, network, recordings, schemas, web, whip
from .auth import FOREIGN_WARNING
from .errors import error_response, install_error_handlers
from .fault_injection import ApiFaultInjection
from .faults import fault_spec_errors, parse_fault_spec
from .invitations import Invitations
from .metrics import install_metrics
from .routes import RouteTemplates
from .notifications import NotificationHub
from .state import AppState

GRAPH_PREFIXES = ("/v1.0", "/beta")
JSON_PREFIXES = ("/v1.0/", "/beta/", "/ext/")

DESCRIPTION = """A media-plane simulator of server-side mute with a Microsoft Graph-shaped calls API.

* **Graph** (`/v1.0`, `/beta`): calls, participants, `participant: mute`, `call: mute`/`unmute`,
  `call: subscribeToTone` (DTMF key presses as tone notifications), operations; the media actions
  `call: playPrompt`, `recordResponse`, `cancelMediaProcessing`, `sendDtmfTones` and
  `participant: startHoldMusic`/`stopHoldMusic`.
  Bearer tokens carry Graph application roles (`mediamute token --role …` mints development tokens).
* **WHIP** (`/whip/{callId}`): join with an SDP offer; the answer carries a session token for the participant.
* **Extensions** (`/ext`, not part of Graph): participant unmute, self-unmute/self-mute, join tokens, a
  participant's network impairment (per direction: delay, jitter, loss, bursts, reordering, duplication, a rate
  cap), stats with the contributor audit, the call's event stream (WebSocket), the JWKS that verifies callback
  signatures, and the download of recordResponse recordings (with their recordingAccessToken).
  Participants carry `mediamute.talkingWhileMuted`; tone notifications carry who pressed under `mediamute`.
* **Metrics** (`/metrics`, Prometheus text, not in this document): calls, gates, mixer, clock, encodes, callbacks,
  API requests; no authentication (the server binds 127.0.0.1).
"""


def create_app(
    registry: CallRegistry, settings: ServerSettings, signing_key: SigningKey, hub: NotificationHub
) -> FastAPI:
    app = FastAPI(
        title="mediamute",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    try:
        hub.faults.set_server(parse_fault_spec(settings.faults))
    except ValidationError as exc:
        raise ValueError(f"invalid fault spec (settings.faults): {fault_spec_errors(exc)}") from None
    app.state.mediamute = AppState(
        registry=registry, settings=settings, signing_key=signing_key, hub=hub, invitations=Invitations(registry, settings.jitter)
    )
    install_error_handlers(app)
    app.add_middleware(ApiFaultInjection, book=hub.faults)  # inside graph_conventions: refusals get request-id
    # Swagger UI served from the package (no CDN): the interactive docs work offline.
    patch_fastapi(app, docs_url="/docs", redirect_from_root_to_docs=False)

    @app.middleware("http")
    async def graph_conventions(request: Request, call_next):
        """Graph's request-id header on every answer, and 415 for a JSON API body that is not JSON."""
        # a request relayed by another node of a cluster keeps the request-id that node gave it
        request.state.request_id = getattr(request.state, "request_id", None) or str(uuid.uuid4())
        path = request.url.path
        if request.method in ("POST", "PATCH", "PUT") and path.startswith(JSON_PREFIXES):
            has_body = int(request.headers.get("content-length") or 0) > 0 or "transfer-encoding" in request.headers
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if has_body and content_type != "application/json":
                response = error_response(request, 415, "The request body must be sent with Content-Type: application/json.")
                response.headers["request-id"] = request.state.request_id
                return response
        response = await call_next(request)
        response.headers["request-id"] = request.state.request_id
        if getattr(request.state, "foreign_token", False):  # accepted without a signature check: say so every time
            response.headers["Mediamute-Warning"] = FOREIGN_WARNING
        if "client-request-id" in request.headers:
            response.headers["client-request-id"] = request.headers["client-request-id"][:128]
        return response

    document_errors(app)
    templates = app.state.route_templates = RouteTemplates()  # the 405 handler's Allow reads it too

    def include(router: APIRouter, prefix: str = "") -> None:
        app.include_router(router, prefix=prefix)
        templates.add(router.routes, prefix)

    for prefix in GRAPH_PREFIXES:
        include(graph.router, prefix)
        include(media.router, prefix)
    include(graph.beta_router, "/beta")
    include(whip.router)
    include(ext.router)
    include(network.router)
    include(recordings.router)
    include(web.router)
    install_metrics(app, registry, hub, templates)  # last: its request counter is the outermost middleware
    media.install(app, registry, settings, signing_key)
    return app


ERROR_REF = "#/components/schemas/ErrorResponse"
FAULT_PREFIXES = ("/v1.0/", "/beta/", "/ext/", "/whip/")
FAULT_RESPONSES = {
    "429": "Too Many Requests: an injected fault (mediamute faults.api), the action not performed",
    "503": "Service Unavailable: an injected fault (mediamute faults.api), the action not performed",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}


def document_errors(app: FastAPI) -> None:
    """The OpenAPI document states the errors the server really sends: invalid parameters or bodies are 400 (never
    FastAPI's 422), a JSON API POST with another content type is 415, and every 4xx has Graph's error envelope."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        components = document.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        components["ErrorResponse"] = schemas.ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in components["ErrorResponse"].pop("$defs", {}).items():
            components[name] = definition
        components.update(network.COMPONENTS)
        for path, item in document.get("paths", {}).items():
            for method, operation in item.items():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                if operation.get("parameters") or operation.get("requestBody"):
                    responses.setdefault("400", {"description": "Invalid parameters or body (Graph error envelope)"})
                if method in ("post", "put") and path.startswith(JSON_PREFIXES):
                    responses.setdefault("415", {"description": "A body sent with another Content-Type than application/json"})
                if path.startswith(FAULT_PREFIXES):  # only when faults are asked for (faults.api), never by default
                    for status, text in FAULT_RESPONSES.items():
                        responses.setdefault(status, {"description": text, "headers": RETRY_AFTER})
                for status, response in responses.items():
                    if status.startswith("4") or status in FAULT_RESPONSES:
                        response["content"] = {"application/json": {"schema": {"$ref": ERROR_REF}}}
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
