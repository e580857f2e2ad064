"""API faults on request: an ASGI middleware that refuses a request with 429 Too Many Requests or 503 Service
Unavailable, `Retry-After` and Graph's error envelope, before it reaches its route, so the action is not performed
(a refused mute leaves the gate open). Which requests, how often and with what status: the fault spec in force for
the call the path names (`/…/communications/calls/{id}…`, `/ext/calls/{id}…`, `/whip/{id}…`), else the server's
(`api.faults.FaultBook`). Only Graph's routes unless the spec names `ext` or `whip`; never `/metrics`, the docs or
the web page. Installed inside the Graph-conventions middleware, so a refusal carries `request-id` like any answer.
"""

from __future__ import annotations

import logging
import re

from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ..ratelimit import PerSourceLimiter
from .errors import STATUS_CODES, error_body
from .faults import FaultBook, RouteKind

log = logging.getLogger("mediamute.faults")
LOGGED = PerSourceLimiter(interval=10.0)

ROUTES: tuple[tuple[RouteKind, re.Pattern[str]], ...] = (
    ("graph", re.compile(r"^/(?:v1\.0|beta)/communications/calls(?:/([^/]+))?")),
    ("graph", re.compile(r"^/(?:v1\.0|beta)/")),
    ("ext", re.compile(r"^/ext/calls/([^/]+)")),
    ("ext", re.compile(r"^/ext/")),
    ("whip", re.compile(r"^/whip/([^/]+)")),
)
"""Route kinds by path, and the call id a path names (group 1, if any)."""
MESSAGES = {
    429: "Too many requests: retry after {seconds} s (an injected fault, mediamute faults.api).",
    503: "The service is unavailable: retry after {seconds} s (an injected fault, mediamute faults.api).",
}


def classify(path: str) -> tuple[RouteKind, str | None] | None:
    """The route kind of `path` and the call id it names, or None for a path no API fault applies to."""
    for kind, pattern in ROUTES:
        match = pattern.match(path)
        if match:
            return kind, (match.group(1) if pattern.groups else None)
    return None


class ApiFaultInjection:
    """Refuses the requests the fault book draws, before routing."""

    def __init__(self, app: ASGIApp, book: FaultBook) -> None:
        self.app = app
        self.book = book

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = classify(scope["path"])
            if route is not None:
                drawn = self.book.draw_api(route[1], route[0])
                if drawn is not None:
                    await self._refuse(scope, receive, send, *drawn)
                    return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, retry_after: int) -> None:
        request = Request(scope, receive)
        suppressed = LOGGED.allow(status)
        if suppressed is not None:
            log.info("injected fault: %s %s -> %d (%d more %d since the last line)", request.method, request.url.path, status, suppressed, status)
        body = error_body(request, STATUS_CODES[status], MESSAGES[status].format(seconds=retry_after))
        response = JSONResponse(body, status_code=status, headers={"Retry-After": str(retry_after)})
        await response(scope, receive, send)
