"""The ASGI router in front of a cluster node's API: any node answers any request.

For each request naming a call (`/v1.0|/beta/communications/calls/{id}…`, `/ext/calls/{id}…`, `/whip/{id}…`):
- a call this node holds (in its own registry) is answered here, without asking Redis;
- a call held by another node is relayed to it over Redis and its answer returned unchanged (status, headers such
  as `Location`, body); the owner builds its URLs from the request's own `Host`, so `Location` names the node the
  client addressed (with `--workers`, the public port), and every node resolves it;
- a WHIP join (`POST /whip/{id}`) for a call held elsewhere gets `307 Temporary Redirect` to the owner's WHIP URL
  (RFC 9725), so media flows straight to the owner. Browsers and httpx drop `Authorization` on a redirect to
  another origin, so the redirect carries a short-lived join token for that call in `access_token` (minted only
  after this node checked the caller's token as the owner would); `/whip/` answers CORS (`OPTIONS` preflight,
  `Access-Control-Allow-Origin: *`), which a page following the redirect to another port needs;
- the event stream (WebSocket) of a call held elsewhere is piped to the owner's stream (node to node);
- a call whose node died is answered from its record (terminated): GET the call → the terminated call, GET its
  participants → none, anything else → 409, as for any terminated call;
- a call the cluster does not know is answered here (404, as Graph would).

A new call (`POST …/communications/calls`) is placed on the least-loaded live node: created here, or relayed to
that node, which creates it and records the mapping before it answers.

Redis unreachable: what needs it answers 503 in Graph's envelope (calls held here still answer); a relay that times
out answers 504; the owner gone quiet answers 503 with `Retry-After`. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import websockets
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..api.auth import Principal
from ..api.errors import GraphError, error_body, error_response
from ..api.ext import call_reader
from ..api.urls import metadata
from ..api.whip import authorise_join
from ..calls.errors import CallError
from .placement import CallRecord, least_loaded
from .registry import RedisUnavailable
from .relay import OwnerUnreachable, RelayRequest, RelayResponse, RelayTimeout

if TYPE_CHECKING:
    from .node import ClusterNode

log = logging.getLogger("mediamute.cluster")

CALL_ID = r"(?P<id>[A-Za-z0-9._~-]{1,128})"
CALL_PATHS = (
    re.compile(rf"^/(?:v1\.0|beta)/communications/calls/{CALL_ID}(?P<rest>/.*)?$"),
    re.compile(rf"^/ext/calls/{CALL_ID}(?P<rest>/.*)?$"),
    re.compile(rf"^/whip/{CALL_ID}(?P<rest>/.*)?$"),
)
CREATE_PATH = re.compile(r"^/(?:v1\.0|beta)/communications/calls/?$")
GRAPH_CALL_PATH = CALL_PATHS[0]
RELAYED = "mediamute.relayed_from"
"""Scope state key of a request that came over the relay (never set by a client): it is answered here, never
relayed or placed again."""
MAX_RELAYED_BODY = 1 << 20
REDIRECT_TOKEN_LIFETIME = 120.0
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, DELETE",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
}


def call_target(path: str) -> tuple[str, str] | None:
    """(call id, the rest of the path) for a path that names a call."""
    for pattern in CALL_PATHS:
        match = pattern.match(path)
        if match:
            return match["id"], match["rest"] or ""
    return None


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int = MAX_RELAYED_BODY) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def replay(body: bytes) -> Receive:
    """A `receive` that hands the app `body` once, then waits (an answer is on its way; nobody disconnects)."""
    sent = False
    never = asyncio.Event()

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await never.wait()
        return {"type": "http.disconnect"}

    return receive


class Captured:
    """An ASGI answer kept whole (status, headers, body) instead of sent."""

    def __init__(self) -> None:
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.parts: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.parts.append(message.get("body", b""))

    @property
    def body(self) -> bytes:
        return b"".join(self.parts)

    async def forward(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


class ClusterRouter:
    """ASGI middleware: answers here, relays, redirects, places, or answers for a dead node (module docstring)."""

    def __init__(self, app: ASGIApp, node: "ClusterNode") -> None:
        self.app = app
        self.node = node

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    # HTTP ---------------------------------------------------------------------------------------------------
    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.app  # what Request.app names for the errors answered here (the API sets it again)
        state = scope.setdefault("state", {})
        path, method = scope["path"], scope["method"]
        if path.startswith("/whip/"):
            if method == "OPTIONS":
                await Response(status_code=204, headers=CORS_HEADERS)(scope, receive, send)
                return
            send = with_cors(send)
        if method == "POST" and CREATE_PATH.match(path):
            await self._create(scope, receive, send)
            return
        target = call_target(path)
        if target is None or RELAYED in state or target[0] in self.node.calls.calls:
            await self.app(scope, receive, send)
            return
        call_id, rest = target
        try:
            owner = await self.node.directory.owner(call_id)
        except RedisUnavailable as exc:
            await self._redis_down(scope, receive, send, exc)
            return
        if owner is None and self.node.registry.settling:
            await self._error(
                scope, receive, send, 503,
                f"Call {call_id} is not known to the cluster yet: its nodes are rejoining after a Redis outage.",
                headers={"Retry-After": str(max(1, round(self.node.settings.node_ttl)))},
            )
            return
        if owner is None or owner == self.node.node_id:
            await self.app(scope, receive, send)
            return
        if method == "POST" and path.startswith("/whip/") and rest in ("", "/"):
            await self._redirect_join(scope, receive, send, call_id, owner)
            return
        await self._relay(scope, receive, send, call_id, owner)

    async def _relay(self, scope: Scope, receive: Receive, send: Send, call_id: str, owner: str) -> None:
        try:
            body = await read_body(receive)
        except BodyTooLarge:
            await self._error(scope, receive, send, 413, f"A request body may not exceed {MAX_RELAYED_BODY} bytes.")
            return
        try:
            answer = await self.node.relay.request(owner, relay_request(scope, body))
        except OwnerUnreachable:
            await self._owner_gone(scope, receive, send, call_id, owner)
            return
        except RelayTimeout:
            await self._error(
                scope, receive, send, 504,
                f"The node that holds call {call_id} did not answer within {self.node.settings.relay_timeout:g} s; "
                "the request may or may not have taken effect.", code="GatewayTimeout",
            )
            return
        except RedisUnavailable as exc:
            await self._redis_down(scope, receive, send, exc)
            return
        await forward(answer, send)

    async def _owner_gone(self, scope: Scope, receive: Receive, send: Send, call_id: str, owner: str) -> None:
        """The owner does not listen: answer for a call its death ended, else 503 until it is reaped."""
        self.node.directory.forget(call_id)
        try:
            record = await self.node.directory.record(call_id)
        except RedisUnavailable as exc:
            await self._redis_down(scope, receive, send, exc)
            return
        if record is not None and record.terminated:
            await self._tombstone(scope, receive, send, record)
            return
        bound = self.node.settings.node_ttl + self.node.settings.heartbeat
        await self._error(
            scope, receive, send, 503,
            f"The node that holds call {call_id} ({owner}) is not reachable; if it stopped, its calls are ended "
            f"within {bound:g} s.", headers={"Retry-After": str(max(1, round(bound)))},
        )

    async def _tombstone(self, scope: Scope, receive: Receive, send: Send, record: CallRecord) -> None:
        """Answer for a call whose node died, as this API answers for any terminated call."""
        request = Request(scope, receive)
        try:
            call_reader(request, record.call_id)
        except GraphError as exc:
            await self._error(scope, receive, send, exc.status, exc.message, code=exc.code)
            return
        rest = call_target(scope["path"])[1].rstrip("/")  # type: ignore[index]
        graph = GRAPH_CALL_PATH.match(scope["path"]) is not None
        if scope["method"] == "GET" and graph and rest == "":
            body = {"@odata.context": metadata(request, "communications/calls/$entity"), **record.resource()}
            await self._answer(scope, receive, send, JSONResponse(body))
        elif scope["method"] == "GET" and graph and rest == "/participants":
            context = metadata(request, f"communications/calls('{record.call_id}')/participants")
            await self._answer(scope, receive, send, JSONResponse({"@odata.context": context, "value": []}))
        else:
            await self._error(
                scope, receive, send, 409,
                f"Call {record.call_id} has been terminated: the node that held it stopped.", code="conflict",
            )

    async def _redirect_join(self, scope: Scope, receive: Receive, send: Send, call_id: str, owner: str) -> None:
        """307 to the owner's WHIP URL, with a short join token when tokens are checked (see the module doc)."""
        request = Request(scope, receive)
        try:
            principal: Principal = authorise_join(request, call_id)
            owner_url = await self.node.registry.node_url(owner)
        except (GraphError, CallError) as exc:
            answer = GraphError.of(exc)
            await self._error(scope, receive, send, answer.status, answer.message, code=answer.code)
            return
        except RedisUnavailable as exc:
            await self._redis_down(scope, receive, send, exc)
            return
        if owner_url is None:
            await self._owner_gone(scope, receive, send, call_id, owner)
            return
        query = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True) if k != "access_token"]
        if principal.kind != "anonymous":
            query.append(("access_token", self.node.signing_key.join_token(call_id, REDIRECT_TOKEN_LIFETIME)))
        location = f"{owner_url.rstrip('/')}{scope['path']}" + (f"?{urlencode(query)}" if query else "")
        await self._answer(scope, receive, send, Response(status_code=307, headers={"Location": location}))

    async def _create(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Place a new call: here, or on the least-loaded live node (which then creates and records it)."""
        if RELAYED not in scope["state"]:
            try:
                nodes = await self.node.registry.live_nodes()
                chosen = least_loaded(nodes) if nodes else None
                if chosen is not None:
                    await self.node.directory.counted_on(chosen.id)
            except RedisUnavailable as exc:
                await self._redis_down(scope, receive, send, exc)
                return
            if chosen is not None and chosen.id != self.node.node_id:
                try:
                    body = await read_body(receive)
                except BodyTooLarge:
                    await self._error(scope, receive, send, 413, f"A request body may not exceed {MAX_RELAYED_BODY} bytes.")
                    return
                try:
                    answer = await self.node.relay.request(chosen.id, relay_request(scope, body))
                except OwnerUnreachable:  # placed on a node that just died: this node takes the call
                    receive = replay(body)
                except RelayTimeout:
                    await self._error(scope, receive, send, 504, f"Node {chosen.id} did not answer within "
                                      f"{self.node.settings.relay_timeout:g} s; the call may or may not exist.", code="GatewayTimeout")
                    return
                except RedisUnavailable as exc:
                    await self._redis_down(scope, receive, send, exc)
                    return
                else:
                    await forward(answer, send)
                    return
        await self._create_here(scope, receive, send)

    async def _create_here(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Create the call in this node's API, record it in Redis, then answer (an unrecorded call is ended: 503)."""
        captured = Captured()
        await self.app(scope, receive, captured.send)
        if captured.status == 201:
            resource: dict[str, Any] = json.loads(captured.body)
            resource.pop("@odata.context", None)
            try:
                await self.node.directory.created(resource["id"], resource, resource.get("callbackUri"))
            except RedisUnavailable as exc:
                with contextlib.suppress(CallError):
                    await self.node.calls.get(resource["id"]).end()
                await self._error(scope, receive, send, 503, f"The call could not be recorded in the cluster: {exc}")
                return
        await captured.forward(send)

    async def _redis_down(self, scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
        await self._error(scope, receive, send, 503, f"The cluster's Redis is unreachable: {exc}")

    async def _answer(self, scope: Scope, receive: Receive, send: Send, response: Response) -> None:
        response.headers["request-id"] = scope["state"].setdefault("request_id", new_request_id())
        await response(scope, receive, send)

    async def _error(
        self, scope: Scope, receive: Receive, send: Send, status: int, message: str,
        code: str | None = None, headers: dict[str, str] | None = None,
    ) -> None:
        scope["state"].setdefault("request_id", new_request_id())
        request = Request(scope, receive)
        response = error_response(request, status, message, code, headers)
        if "client-request-id" in request.headers:
            response.headers["client-request-id"] = request.headers["client-request-id"][:128]
        await self._answer(scope, receive, send, response)

    # WebSocket (the event stream) ---------------------------------------------------------------------------
    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = call_target(scope["path"])
        if target is None or target[0] in self.node.calls.calls:
            await self.app(scope, receive, send)
            return
        call_id = target[0]
        try:
            owner = await self.node.directory.owner(call_id)
            owner_url = await self.node.registry.node_url(owner) if owner and owner != self.node.node_id else None
        except RedisUnavailable as exc:
            await refuse_stream(scope, receive, send, 503, f"The cluster's Redis is unreachable: {exc}")
            return
        if owner is None or owner == self.node.node_id:
            await self.app(scope, receive, send)
            return
        if owner_url is None:
            await refuse_stream(scope, receive, send, 503, f"The node that holds call {call_id} is not reachable.")
            return
        await pipe_stream(scope, receive, send, owner_url)


def new_request_id() -> str:
    return str(uuid.uuid4())


def relay_request(scope: Scope, body: bytes) -> RelayRequest:
    return RelayRequest(
        method=scope["method"],
        path=scope["path"],
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
        body=body,
        scheme=scope.get("scheme", "http"),
        server=tuple(scope["server"]) if scope.get("server") else None,
        client=tuple(scope["client"]) if scope.get("client") else None,
        request_id=scope["state"].setdefault("request_id", new_request_id()),
    )


async def forward(answer: RelayResponse, send: Send) -> None:
    """Send the owner's answer as it is: status, headers, body."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def with_cors(send: Send) -> Send:
    """WHIP answers readable by a page of another origin (a page following a join redirect to the owner)."""

    async def send_with_cors(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if not any(k.lower() == b"access-control-allow-origin" for k, _ in headers):
                headers.append((b"access-control-allow-origin", b"*"))
            message = {**message, "headers": headers}
        await send(message)

    return send_with_cors


async def refuse_stream(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    """As the API refuses a stream: accept, send Graph's error shape, close with 4000 + status."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    body = error_body(Request({**scope, "type": "http"}), GraphError(status, message).code, message)
    await send({"type": "websocket.send", "text": json.dumps({"type": "error", "status": status, **body})})
    await send({"type": "websocket.close", "code": 4000 + status})


async def pipe_stream(scope: Scope, receive: Receive, send: Send, owner_url: str, open_timeout: float = 5.0) -> None:
    """Pipe the client's WebSocket to the same stream on the owner, both ways, until either side closes."""
    query = scope.get("query_string", b"").decode("latin-1")
    url = owner_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1).rstrip("/") + scope["path"]
    url += f"?{query}" if query else ""
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"authorization"}
    await receive()  # websocket.connect
    try:
        upstream = await websockets.connect(url, additional_headers=headers, open_timeout=open_timeout, max_size=None)
    except (OSError, TimeoutError, websockets.WebSocketException) as exc:
        await send({"type": "websocket.accept"})
        message = f"The node that holds this call is not reachable ({exc})."
        body = error_body(Request({**scope, "type": "http"}), "ServiceUnavailable", message)
        await send({"type": "websocket.send", "text": json.dumps({"type": "error", "status": 503, **body})})
        await send({"type": "websocket.close", "code": 4503})
        return
    await send({"type": "websocket.accept"})

    async def downstream() -> None:
        try:
            async for message in upstream:
                key = "text" if isinstance(message, str) else "bytes"
                await send({"type": "websocket.send", key: message})
            code = upstream.close_code or 1000
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else 1011
        await send({"type": "websocket.close", "code": code})

    async def upstream_pump() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message["type"] == "websocket.receive":
                await upstream.send(message.get("text") if message.get("text") is not None else message.get("bytes", b""))

    tasks = [asyncio.ensure_future(downstream()), asyncio.ensure_future(upstream_pump())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(upstream.close(), 2.0)
