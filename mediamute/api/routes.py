"""The app's route table as full path templates: which route a request reached, and which methods a path allows.

FastAPI's included route objects do not carry their include prefix (and one router is included under both /v1.0
and /beta), so the table is built as the app includes each router, with Starlette's public `compile_path`. The
metrics label requests by it; the 405 handler answers RFC 9110's `Allow` from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.routing import BaseRoute, compile_path
from starlette.types import Scope

UNMATCHED = "unmatched"
"""The route label of a request no route matched."""


class RouteTemplates:
    """The app's routes as full path templates (prefix included), to label a request by the route it reached.

    Built from the routers as the app includes them (`add(router.routes, prefix)`), with Starlette's public
    `compile_path`: FastAPI's own route objects do not carry the include prefix, and one router is included under
    several prefixes (/v1.0 and /beta)."""

    def __init__(self) -> None:
        self._entries: list[tuple[BaseRoute, re.Pattern[str], frozenset[str], str]] = []

    def add(self, routes: Iterable[BaseRoute], prefix: str = "") -> None:
        for route in routes:
            path = getattr(route, "path", None)
            if isinstance(path, str):  # an included router has none: its routes are added with their prefix
                regex, template, _ = compile_path(prefix + path)
                self._entries.append((route, regex, frozenset(getattr(route, "methods", None) or ()), template))

    def allowed(self, path: str) -> frozenset[str]:
        """Every method the resource at `path` serves: RFC 9110's `Allow` for a 405 (Starlette's own names only the
        first route whose path matched, and FastAPI's included routes do not carry their prefix). Where templates
        overlap (`participants/muteAll` also fits `participants/{participant_id}`), the resource is the one whose
        template names the most of the path literally, i.e. has the fewest parameters."""
        matching = [(t.count("{"), methods) for _route, regex, methods, t in self._entries if regex.match(path)]
        if not matching:
            return frozenset()
        fewest = min(params for params, _ in matching)
        return frozenset().union(*(methods for params, methods in matching if params == fewest))

    def template(self, scope: Scope) -> str:
        """The template of the route that answered (`scope["route"]`, under the prefix the path has), else of the
        first route whose path matches (a request answered before routing, or a 405), else "unmatched"."""
        path, method, answered = scope["path"], scope["method"], scope.get("route")
        by_path = None
        for route, regex, methods, template in self._entries:
            if not regex.match(path):
                continue
            if answered is not None:
                if route is answered:
                    return template
            elif method in methods:
                return template
            by_path = by_path or template
        return by_path or UNMATCHED
