"""The web client: a page at `/` and its static files (`/web/...`), shipped inside the package.

Plain JavaScript ES modules (`web/js/`, one job each, loaded by `<script type="module">`), no build step, no CDN:
the page joins a call by WHIP, plays the mix, shows the roster from the call's event stream and issues the Graph
mute requests with the token from its own URL (`?token=`).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from .errors import GraphError

router = APIRouter(tags=["web client"], include_in_schema=False)

WEB_DIR = Path(str(resources.files("mediamute") / "web"))
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def _shipped(web_dir: Path) -> dict[str, Path]:
    """The files the package ships under web/, by their path below it ("index.html", "js/main.js")."""
    if not web_dir.is_dir():
        return {}
    files = sorted(p for p in web_dir.rglob("*") if p.is_file() and p.suffix in MEDIA_TYPES)
    return {p.relative_to(web_dir).as_posix(): p for p in files}


# Only the files the package ships, looked up by name: nothing else on disk is reachable through these routes, and
# no part of a request's path is ever joined to a directory.
ASSETS = _shipped(WEB_DIR)


HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def _headers(request: Request) -> dict[str, str]:
    host = request.headers.get("host", "")
    if not HOST.match(host):  # never echo an odd Host header into the policy
        host = f"{request.url.hostname or '127.0.0.1'}:{request.url.port or 80}"
    return {
        # The page carries a token in its URL: never send it onwards as a referrer.
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self' ws://{host} wss://{host}; media-src 'self' blob: mediastream:; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
        ),
    }


def _asset(name: str, request: Request) -> Response:
    path = ASSETS.get(name)
    if path is None:
        raise GraphError(404, f"Resource not found for the segment '{request.url.path}'.", "itemNotFound")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=_headers(request))


@router.get("/")
async def index(request: Request) -> Response:
    """The page: create or join a call, hear it, watch the roster, mute people."""
    return _asset("index.html", request)


@router.get("/web/{name:path}")
async def asset(name: str, request: Request) -> Response:
    """A static file of the page: its style sheet and its ES modules (`/web/js/*.js`, served as JavaScript)."""
    return _asset(name, request)
