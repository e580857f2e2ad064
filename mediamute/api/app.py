"""The HTTP application: Graph routes under /v1.0 and /beta, WHIP, and the extensions."""

from __future__ import annotations

from fastapi import FastAPI

from .. import __version__
from ..calls.call import CallRegistry
from ..settings import ServerSettings
from . import ext, graph, whip
from .errors import install_error_handlers
from .state import AppState

GRAPH_PREFIXES = ("/v1.0", "/beta")


def create_app(registry: CallRegistry, settings: ServerSettings) -> FastAPI:
    app = FastAPI(
        title="mediamute",
        version=__version__,
        description="A media-plane simulator of server-side mute with a Microsoft Graph-shaped calls API.",
    )
    app.state.mediamute = AppState(registry=registry, settings=settings)
    install_error_handlers(app)
    for prefix in GRAPH_PREFIXES:
        app.include_router(graph.router, prefix=prefix)
    app.include_router(whip.router)
    app.include_router(ext.router)
    return app
