"""Absolute URLs the Graph responses carry (`Location`, `@odata.context`), built from the request's own prefix."""

from __future__ import annotations

from starlette.requests import Request


def graph_root(request: Request) -> str:
    """`http://host:port/v1.0` or `…/beta`: whichever prefix the request came in on."""
    prefix = request.url.path.split("/communications/")[0]
    if prefix not in ("/v1.0", "/beta"):
        prefix = "/v1.0"
    return f"{str(request.base_url).rstrip('/')}{prefix}"


def metadata(request: Request, fragment: str) -> str:
    return f"{graph_root(request)}/$metadata#{fragment}"


def operation_location(request: Request, call_id: str, operation_id: str) -> str:
    return f"{graph_root(request)}/communications/calls/{call_id}/operations/{operation_id}"
