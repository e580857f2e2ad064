"""Request/reply between nodes over Redis pub/sub: a node relays an HTTP request to the call's owner and gets the
owner's answer back, unchanged.

Protocol (version 1, JSON, one message each way):
- request, PUBLISHed on `mediamute:relay:{owner}`: `{"v": 1, "id", "from", "method", "path", "query", "headers":
  [[name, value], ...], "body" (base64), "scheme", "server": [host, port], "client": [host, port], "requestId"}`;
- reply, PUBLISHed on `mediamute:reply:{from}`: `{"v": 1, "id", "status", "headers": [[name, value], ...],
  "body" (base64)}`.

PUBLISH answers how many subscribers got the message: 0 means the owner is not listening (dead or cut off from
Redis), known at once (`OwnerUnreachable`). A reply that does not come within the timeout is `RelayTimeout` (the
caller answers 504); a late reply is dropped. The owner handles each request in its own task, so a slow request
never holds up another, and answers even when its handler fails (a 500 in Graph's envelope, made by the API).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

from . import keys
from .registry import RedisUnavailable, Store

log = logging.getLogger("mediamute.cluster.relay")
VERSION = 1
RECONNECT_DELAY = 0.5


class RelayError(Exception):
    """A relayed request got no answer from the owner."""


class OwnerUnreachable(RelayError):
    """No subscriber on the owner's channel: the owner is dead or cut off from Redis."""


class RelayTimeout(RelayError):
    """The owner did not answer within the relay timeout."""


Headers = list[tuple[str, str]]


@dataclass
class RelayRequest:
    method: str
    path: str
    query: str
    headers: Headers
    body: bytes
    scheme: str = "http"
    server: tuple[str, int] | None = None
    client: tuple[str, int] | None = None
    request_id: str = ""
    origin: str = ""
    """The node that relayed it."""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def encode(self) -> str:
        return json.dumps({
            "v": VERSION, "id": self.id, "from": self.origin, "method": self.method, "path": self.path,
            "query": self.query, "headers": self.headers, "body": base64.b64encode(self.body).decode(),
            "scheme": self.scheme, "server": self.server, "client": self.client, "requestId": self.request_id,
        }, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: dict) -> "RelayRequest":
        return cls(
            method=raw["method"], path=raw["path"], query=raw.get("query", ""),
            headers=[(k, v) for k, v in raw.get("headers", [])], body=base64.b64decode(raw.get("body", "")),
            scheme=raw.get("scheme", "http"), server=tuple(raw["server"]) if raw.get("server") else None,
            client=tuple(raw["client"]) if raw.get("client") else None, request_id=raw.get("requestId", ""),
            origin=raw["from"], id=raw["id"],
        )


@dataclass
class RelayResponse:
    status: int
    headers: Headers
    body: bytes

    def encode(self, request_id: str) -> str:
        return json.dumps({
            "v": VERSION, "id": request_id, "status": self.status, "headers": self.headers,
            "body": base64.b64encode(self.body).decode(),
        }, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: dict) -> "RelayResponse":
        return cls(raw["status"], [(k, v) for k, v in raw.get("headers", [])], base64.b64decode(raw.get("body", "")))


Handler = Callable[[RelayRequest], Awaitable[RelayResponse]]


@dataclass
class RelayCounters:
    sent: int = 0
    answered: int = 0
    served: int = 0
    timeouts: int = 0
    unreachable: int = 0


class Relay:
    """This node's end of the relay: sends requests to owners, serves the requests relayed to it."""

    def __init__(self, store: Store, node_id: str, handler: Handler, timeout: float) -> None:
        self.store = store
        self.node_id = node_id
        self.handler = handler
        self.timeout = timeout
        self.counters = RelayCounters()
        self._pending: dict[str, asyncio.Future[RelayResponse]] = {}
        self._serving: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        # the subscriber waits on its socket without a read timeout: its own connection
        self._sub_redis = Redis.from_url(store.url, decode_responses=True, socket_connect_timeout=store.timeout)

    async def start(self) -> None:
        """Listen for requests and replies; returns once subscribed (or after the Redis bound, still retrying)."""
        self._listener = asyncio.get_running_loop().create_task(self._listen(), name=f"relay-{self.node_id}")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.store.timeout * 2):
                await self._subscribed.wait()

    @property
    def listening(self) -> bool:
        return self._subscribed.is_set()

    async def request(self, owner: str, request: RelayRequest) -> RelayResponse:
        """Relay `request` to `owner` and wait for its answer (bounded by the relay timeout)."""
        if not self._subscribed.is_set():
            raise RedisUnavailable("this node is not subscribed to its reply channel (Redis unreachable)")
        request.origin = self.node_id
        future: asyncio.Future[RelayResponse] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = future
        try:
            receivers = await self.store.bounded(self.store.redis.publish(keys.relay_channel(owner), request.encode()))
            if not receivers:
                self.counters.unreachable += 1
                raise OwnerUnreachable(f"node {owner} is not listening")
            self.counters.sent += 1
            try:
                async with asyncio.timeout(self.timeout):
                    answer = await future
                self.counters.answered += 1
                return answer
            except TimeoutError:
                self.counters.timeouts += 1
                raise RelayTimeout(f"node {owner} did not answer within {self.timeout:g} s") from None
        finally:
            self._pending.pop(request.id, None)

    async def _listen(self) -> None:
        channels = (keys.relay_channel(self.node_id), keys.reply_channel(self.node_id))
        while True:
            pubsub = self._sub_redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*channels)
                self._subscribed.set()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._on_message(message["channel"], message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self._subscribed.is_set():
                    log.warning("node %s: relay subscription lost (%s); resubscribing", self.node_id, exc)
                self._subscribed.clear()
                await asyncio.sleep(RECONNECT_DELAY)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), 1.0)

    def _on_message(self, channel: str, data: str) -> None:
        try:
            raw = json.loads(data)
            if raw.get("v") != VERSION:
                raise ValueError(f"relay protocol version {raw.get('v')!r}")
            if channel == keys.reply_channel(self.node_id):
                future = self._pending.get(raw["id"])
                if future is not None and not future.done():
                    future.set_result(RelayResponse.decode(raw))
                return
            request = RelayRequest.decode(raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("node %s: malformed relay message dropped (%s)", self.node_id, exc)
            return
        task = asyncio.get_running_loop().create_task(self._serve(request))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _serve(self, request: RelayRequest) -> None:
        self.counters.served += 1
        try:
            async with asyncio.timeout(self.timeout * 2):
                response = await self.handler(request)
        except TimeoutError:
            return  # the node that asked has answered 504 long ago
        try:
            await self.store.bounded(self.store.redis.publish(keys.reply_channel(request.origin), response.encode(request.id)))
        except RedisUnavailable as exc:
            log.warning("node %s: the answer to a relayed %s %s was lost: %s", self.node_id, request.method, request.path, exc)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        for task in list(self._serving):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._sub_redis.aclose(), 1.0)
