"""The HTTP application: Graph routes under /v1.0 and /beta, WHIP, the extensions, docs and error envelope."""

from __future__ import annotations

import uuid

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi_swagger import patch_fastapi

from .. import __version__
from ..calls.call import CallRegistry
from ..settings import ServerSettings
from ..tokens import SigningKey
from . import ext, graph, schemas, web, whip
from .errors import error_response, install_error_handlers
from .metrics import install_metrics
from .routes import RouteTemplates
from .notifications import NotificationHub
from .state import AppState

GRAPH_PREFIXES = ("/v1.0", "/beta")
JSON_PREFIXES = ("/v1.0/", "/beta/", "/ext/")

DESCRIPTION = """A media-plane simulator of server-side mute with a Microsoft Graph-shaped calls API.

* **Graph** (`/v1.0`, `/beta`): calls, participants, `participant: mute`, `call: mute`/`unmute`, operations.
  Bearer tokens carry Graph application roles (`mediamute token --role …` mints development tokens).
* **WHIP** (`/whip/{callId}`): join with an SDP offer; the answer carries a session token for the participant.
* **Extensions** (`/ext`, not part of Graph): participant unmute, self-unmute/self-mute, join tokens, stats with
  the contributor audit, the call's event stream (WebSocket), and the JWKS that verifies callback signatures.
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
    app.state.mediamute = AppState(registry=registry, settings=settings, signing_key=signing_key, hub=hub)
    install_error_handlers(app)
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
    include(graph.beta_router, "/beta")
    include(whip.router)
    include(ext.router)
    include(web.router)
    install_metrics(app, registry, hub, templates)  # last: its request counter is the outermost middleware
    return app


ERROR_REF = "#/components/schemas/ErrorResponse"


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
        for path, item in document.get("paths", {}).items():
            for method, operation in item.items():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                if operation.get("parameters") or operation.get("requestBody"):
                    responses.setdefault("400", {"description": "Invalid parameters or body (Graph error envelope)"})
                if method == "post" and path.startswith(JSON_PREFIXES):
                    responses.setdefault("415", {"description": "A body sent with another Content-Type than application/json"})
                for status, response in responses.items():
                    if status.startswith("4"):
                        response["content"] = {"application/json": {"schema": {"$ref": ERROR_REF}}}
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
