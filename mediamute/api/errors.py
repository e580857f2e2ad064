"""Graph's error envelope for every 4xx/5xx, so no request, however malformed, gets a bare 500 or a traceback."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..calls.errors import (
    CallError,
    CallNotFound,
    CallTerminated,
    MediaConflict,
    NoNetwork,
    NotSupportedForCall,
    OperationNotFound,
    ParticipantNotFound,
    PolicyForbids,
)
from ..ratelimit import PerSourceLimiter

log = logging.getLogger("mediamute.api")
REFUSALS_LOGGED = PerSourceLimiter(interval=10.0)
"""Refused requests are logged at most once per client address and status per 10 s (a fuzzer cannot flood the log)."""

STATUS_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "Forbidden",
    404: "itemNotFound",
    405: "MethodNotAllowed",
    409: "conflict",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "BadRequest",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


DOMAIN_ERRORS: dict[type[CallError], tuple[int, str]] = {
    CallError: (400, "BadRequest"),
    CallNotFound: (404, "9997"),  # what the real service answers for an unknown call id
    ParticipantNotFound: (404, "itemNotFound"),
    OperationNotFound: (404, "itemNotFound"),
    NoNetwork: (404, "itemNotFound"),  # no such sub-resource: the participant has no media connection
    CallTerminated: (409, "conflict"),
    NotSupportedForCall: (400, "BadRequest"),
    PolicyForbids: (403, "Forbidden"),
    MediaConflict: (400, "BadRequest"),
}
"""Each domain error's HTTP status and Graph error code (a subclass not listed answers as its nearest base)."""


class GraphError(Exception):
    """An error to answer in Graph's shape: status, code, message."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or STATUS_CODES.get(status, "BadRequest")

    @classmethod
    def of(cls, exc: CallError | GraphError) -> GraphError:
        """The Graph answer for an API error (itself) or a domain error (by `DOMAIN_ERRORS`)."""
        if isinstance(exc, GraphError):
            return exc
        status, code = next(DOMAIN_ERRORS[kind] for kind in type(exc).__mro__ if kind in DOMAIN_ERRORS)
        return cls(status, exc.message, code)


def error_body(request: Request, code: str, message: str) -> dict:
    inner = {
        "request-id": getattr(request.state, "request_id", None) or str(uuid.uuid4()),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
    }
    client_request_id = request.headers.get("client-request-id")
    if client_request_id:
        inner["client-request-id"] = client_request_id[:128]
    return {"error": {"code": code, "message": message, "innerError": inner}}


def error_response(
    request: Request, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    if status >= 500:
        log.error("%s %s -> %d %s", request.method, request.url.path, status, message)
    else:
        client = request.client.host if request.client else None
        suppressed = REFUSALS_LOGGED.allow((client, status))
        if suppressed is not None:
            log.warning(
                "%s %s -> %d %s (%d more %d answers to %s since the last line)",
                request.method, request.url.path, status, message, suppressed, status, client,
            )
    body = error_body(request, code or STATUS_CODES.get(status, "BadRequest"), message)
    all_headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    all_headers.update(headers or {})
    return JSONResponse(body, status_code=status, headers=all_headers or None)


def allowed_methods(request: Request) -> str:
    """RFC 9110's `Allow` for a 405: every method some route of the app serves on this path."""
    return ", ".join(sorted(request.app.state.route_templates.allowed(request.url.path)))


def _validation_message(exc: RequestValidationError) -> str:
    errors = exc.errors()
    for error in errors:
        if error.get("type") == "json_invalid":
            detail = (error.get("ctx") or {}).get("error", "")
            return f"The request body is not valid JSON: {detail}".rstrip(": ")
    parts = []
    for error in errors[:5]:
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{location or 'body'}: {error.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GraphError)
    async def _graph_error(request: Request, exc: GraphError) -> JSONResponse:
        return error_response(request, exc.status, exc.message, exc.code)

    @app.exception_handler(CallError)
    async def _call_error(request: Request, exc: CallError) -> JSONResponse:
        answer = GraphError.of(exc)
        return error_response(request, answer.status, answer.message, answer.code)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, 400, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404 and message == "Not Found":
            message = f"Resource not found for the segment '{request.url.path}'."
        headers = None
        if exc.status_code == 405:
            headers = {"Allow": allowed_methods(request)}
            message = f"The method {request.method} is not allowed on {request.url.path} (allowed: {headers['Allow']})."
        return error_response(request, exc.status_code, message, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "An internal error occurred; see the server log.")
