"""Bearer-token checks per action, as Graph does them: application roles in `roles`; delegated tokens refused.

401: no token, a malformed one, a bad signature, an expired one. 403: a valid token without the role the action
needs, or a delegated token (`scp`, no `roles`) where only application permissions are supported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jwt
from fastapi import Request
from starlette.requests import HTTPConnection

from ..tokens import ALL_CALL_ROLES, GRAPH_AUDIENCE, SigningKey, canonical_role
from .errors import GraphError

FORBIDDEN = "Authorization_RequestDenied"
UNAUTHENTICATED = "InvalidAuthenticationToken"
WHIP_AUDIENCE = "mediamute:whip"


@dataclass(frozen=True)
class Principal:
    """Who is calling: an application with roles, or a WHIP joiner/participant bound to one call."""

    kind: str  # "app" | "join" | "session" | "anonymous" (auth off)
    roles: frozenset[str] = frozenset()
    call_id: str | None = None
    participant_id: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)

    def has_any(self, roles: Iterable[str]) -> bool:
        """Holds one of `roles`: compared case-insensitively, the seed page's plural spellings being the same roles."""
        wanted = {canonical_role(r) for r in roles}
        return any(canonical_role(r) in wanted for r in self.roles)


ANONYMOUS = Principal(kind="anonymous", roles=frozenset(ALL_CALL_ROLES))


def bearer_token(request: Request, allow_query: bool = False) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GraphError(401, "The Authorization header must be 'Bearer <token>'.", UNAUTHENTICATED)
        return token.strip()
    if allow_query:
        return request.query_params.get("access_token") or None
    return None


def authenticate(request: Request, allow_query: bool = False) -> Principal:
    """Decode the request's bearer token into a Principal (any audience mediamute issues)."""
    state = request.app.state.mediamute
    if not state.settings.auth:
        return ANONYMOUS
    token = bearer_token(request, allow_query)
    if token is None:
        raise GraphError(401, "Access token is empty.", UNAUTHENTICATED)
    key: SigningKey = state.signing_key
    try:
        claims = key.decode(token, audiences=(GRAPH_AUDIENCE, WHIP_AUDIENCE))
    except jwt.ExpiredSignatureError:
        raise GraphError(401, "Lifetime validation failed, the token is expired.", UNAUTHENTICATED) from None
    except jwt.InvalidTokenError as exc:
        raise GraphError(401, f"Access token validation failure: {exc}.", UNAUTHENTICATED) from None
    kind = claims.get("mm:kind", "app")
    if kind == "app":
        roles = claims.get("roles")
        if roles is not None and not (isinstance(roles, list) and all(isinstance(r, str) for r in roles)):
            raise GraphError(401, "Access token validation failure: 'roles' must be a list of strings.", UNAUTHENTICATED)
        return Principal(kind="app", roles=frozenset(roles or ()), claims=claims)
    if kind in ("join", "session"):
        return Principal(kind=kind, call_id=claims.get("mm:call"), participant_id=claims.get("sub"), claims=claims)
    raise GraphError(401, "Access token validation failure: this token is not for the API.", UNAUTHENTICATED)


def require_app_roles(principal: Principal, roles: Iterable[str]) -> None:
    roles = tuple(roles)
    if principal.kind == "anonymous":
        return
    if principal.kind != "app":
        raise GraphError(403, "This action needs an application token; a WHIP join/session token cannot do it.", FORBIDDEN)
    if "scp" in principal.claims and "roles" not in principal.claims:
        raise GraphError(
            403,
            "Delegated permissions are not supported for this API; use an application token with one of the "
            f"roles {', '.join(roles)}.",
            FORBIDDEN,
        )
    if not principal.has_any(roles):
        raise GraphError(
            403, f"Insufficient privileges to complete the operation: requires one of {', '.join(roles)}.", FORBIDDEN
        )


def roles(*accepted: str) -> Callable[[Request], Principal]:
    """A FastAPI dependency: the caller must be an application holding one of `accepted`."""

    def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        require_app_roles(principal, accepted)
        return principal

    dependency.__name__ = "requires_" + "_or_".join(r.replace(".", "") for r in accepted)
    return dependency


def call_reader(connection: HTTPConnection, call_id: str, allow_query: bool = False) -> Principal:
    """Who may read a call's live numbers (stats, event stream, networks): apps with any calls role, or a
    join/session token of this very call."""
    principal = authenticate(connection, allow_query=allow_query)  # type: ignore[arg-type]
    if principal.kind == "app":
        require_app_roles(principal, ALL_CALL_ROLES)
    else:
        for_call(principal, call_id)
    return principal


def for_call(principal: Principal, call_id: str, participant_id: str | None = None) -> None:
    """A join/session token acts only in its own call (and a session token only for its own participant)."""
    if principal.kind in ("anonymous", "app"):
        return
    if principal.call_id != call_id:
        raise GraphError(403, "This token is for another call.", FORBIDDEN)
    if participant_id is not None and principal.kind == "session" and principal.participant_id != participant_id:
        raise GraphError(403, "This session token acts for another participant.", FORBIDDEN)
