"""One node of a cluster: what the server starts when it is given `--redis`.

It registers the node, beats its heart (load report, TTL renewal, rejoin after a Redis outage, reaping of dead
nodes), keeps each local call's record in Redis as the call starts and ends, serves the requests other nodes relay
to it, and puts the `ClusterRouter` in front of the API. It never blocks the event loop: every Redis command is
bounded, and a node cut off from Redis keeps mixing its calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import httpx
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message

from ..api import schemas
from ..api.notifications import CallbackDelivery, DeliveryPolicy, NotificationHub
from ..api.resources import call_resource
from ..calls import call as call_events
from ..calls.call import Call, CallRegistry
from ..settings import ClusterSettings
from ..tokens import SigningKey
from . import keys
from .placement import CallDirectory
from .registry import LocalLoad, NodeRegistry, RedisUnavailable, Store, terminated_resource
from .relay import Relay, RelayRequest, RelayResponse
from .router import RELAYED, ClusterRouter

log = logging.getLogger("mediamute.cluster")


class ClusterError(Exception):
    """The node cannot join the cluster (Redis unreachable at start, or another signing key); says why."""


class ClusterNode:
    def __init__(
        self, settings: ClusterSettings, calls: CallRegistry, signing_key: SigningKey, hub: NotificationHub
    ) -> None:
        self.settings = settings
        self.calls = calls
        self.signing_key = signing_key
        self.hub = hub
        self.node_id = uuid.uuid4().hex[:12]
        self.store = Store(settings.redis_url, settings.redis_timeout)
        self.directory = CallDirectory(self.store, self.node_id)
        self.registry: NodeRegistry
        self.relay = Relay(self.store, self.node_id, self._serve_relayed, settings.relay_timeout)
        self.router: ClusterRouter | None = None
        self.redis_up = False
        self.reaped_calls = 0
        self.live_nodes = 0
        self._heartbeat: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[Any]] = set()
        self._http: httpx.AsyncClient | None = None

    @property
    def url(self) -> str:
        return self.registry.url

    def wrap(self, app: ASGIApp) -> ClusterRouter:
        self.router = ClusterRouter(app, self)
        return self.router

    async def start(self, url: str) -> None:
        """Join: check the signing key against the live nodes, register, subscribe to the relay, start beating."""
        self.registry = NodeRegistry(
            self.store, self.node_id, self.settings.node_url or url, self.settings.capacity,
            self.signing_key.key_id, self.settings.node_ttl,
        )
        try:
            await self.registry.check_key()
            await self.registry.heartbeat(self._load())
        except RedisUnavailable as exc:
            await self.store.close()
            raise ClusterError(f"cannot join the cluster: {exc}") from None
        except ValueError as exc:
            await self.store.close()
            raise ClusterError(f"cannot join the cluster: {exc}") from None
        self.redis_up = True
        # made now: an httpx client loads its TLS context (~0.1 s of blocking), which must not happen while
        # reaping, beside live calls' mix clocks
        self._http = httpx.AsyncClient(trust_env=False)
        await self.relay.start()
        self.calls.events.on(call_events.CALL_ENDED, self._call_ended)
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat(), name=f"heartbeat-{self.node_id}")
        log.info("node %s joined the cluster at %s as %s", self.node_id, self.settings.redis_url, self.url)

    def _load(self) -> LocalLoad:
        live = [c for c in self.calls.calls.values() if not c.terminated]
        return LocalLoad(calls=len(live), participants=sum(len(c.participants) - 1 for c in live))

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat)
            try:
                rejoined = await self.registry.heartbeat(self._load())
                if rejoined:
                    log.info("node %s: (re)joined the cluster; writing its calls back", self.node_id)
                    await self._resync()
                self.redis_up = True
                reaped = await self.registry.reap_dead(self._orphaned)
                if reaped:
                    log.warning("node %s: reaped dead node(s) %s", self.node_id, ", ".join(reaped))
                self.live_nodes = len(await self.registry.live_nodes())
            except RedisUnavailable:
                self.redis_up = False
            except Exception:  # the heartbeat must go on whatever one round met
                log.exception("node %s: heartbeat failed", self.node_id)

    async def _resync(self) -> None:
        """Back in the cluster: write each local call's record again (Redis may have lost them), and end a live
        call the cluster ended while this node was cut off (a survivor already told the app it ended)."""
        for call in list(self.calls.calls.values()):
            record = await self.directory.record(call.id)
            if call.terminated:
                await self.directory.ended(call.id, call_resource(call).wire())
            elif record is None:
                await self.directory.created(call.id, call_resource(call).wire(), call.options.callback_uri)
            elif record.node != self.node_id or record.terminated:
                log.warning("node %s: call %s was ended by the cluster while this node was cut off; ending it", self.node_id, call.id)
                await call.end()

    def _call_ended(self, call: Call) -> None:
        """A local call ended: its record says so (a bounded write in its own task; the rejoin repairs a miss)."""
        resource = call_resource(call).wire()
        task = asyncio.get_running_loop().create_task(self._write_ended(call.id, resource))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write_ended(self, call_id: str, resource: dict[str, Any]) -> None:
        with contextlib.suppress(RedisUnavailable):
            await self.directory.ended(call_id, resource)

    async def _orphaned(self, call_id: str, record: dict[str, str]) -> None:
        """A dead node's call ended here: send its `deleted` notification, once in the whole cluster."""
        self.reaped_calls += 1
        uri = record.get("callbackUri")
        if not uri:
            return
        first = await self.store.bounded(
            self.store.redis.set(keys.call_deleted_sent(call_id), self.node_id, nx=True, ex=keys.ENDED_TTL)
        )
        if not first:
            return
        assert self._http is not None
        notification = schemas.CommsNotification(
            change_type="deleted", resource_url=f"/communications/calls/{call_id}", resource_data=terminated_resource(record)
        )
        delivery = CallbackDelivery(call_id, uri, self.signing_key, self._http, DeliveryPolicy())
        delivery.enqueue(notification)
        task = asyncio.get_running_loop().create_task(delivery.close(drain_timeout=30.0))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def install_metrics(self, app: Any) -> None:
        """This node's cluster numbers on its own `/metrics` (each node reports itself)."""
        metrics = getattr(app.state, "metrics", None)
        if metrics is not None:
            metrics.registry.register(ClusterCollector(self))

    async def _serve_relayed(self, request: RelayRequest) -> RelayResponse:
        """Answer a request another node relayed, through this node's own router and API (the same handlers as
        a direct request: a relayed mute's answer is sent after the gate closed)."""
        assert self.router is not None
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": request.scheme,
            "path": request.path,
            "raw_path": request.path.encode(),
            "query_string": request.query.encode("latin-1"),
            "root_path": "",
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers],
            "client": request.client,
            "server": request.server,
            "state": {"request_id": request.request_id or str(uuid.uuid4()), RELAYED: request.origin},
        }
        status = 500
        headers: list[tuple[str, str]] = []
        body: list[bytes] = []
        delivered = False

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": request.body, "more_body": False}
            await asyncio.Event().wait()  # nobody disconnects: the answer goes back over Redis
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])]
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))

        await self.router(scope, receive, send)
        return RelayResponse(status, headers, b"".join(body))

    async def stop(self) -> None:
        """Leave cleanly: the calls (ended before by the server) are recorded as ended, the node disappears."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        if self._writes:
            await asyncio.wait(list(self._writes), timeout=self.settings.redis_timeout * 3)
        with contextlib.suppress(RedisUnavailable):
            for call in list(self.calls.calls.values()):
                if call.terminated:
                    await self.directory.ended(call.id, call_resource(call).wire())
            await self.registry.leave()
        await self.relay.close()
        for task in list(self._writes):
            task.cancel()
        if self._http is not None:
            await self._http.aclose()
        await self.store.close()


class ClusterCollector:
    """`mediamute_cluster_*`: this node's id and URL, Redis reachability and errors, live nodes, relay counters."""

    def __init__(self, node: ClusterNode) -> None:
        self.node = node

    def collect(self) -> list[Metric]:
        node = self.node
        info = GaugeMetricFamily("mediamute_cluster_node", "This node of the cluster (always 1).", labels=["node_id", "url"])
        info.add_metric([node.node_id, node.url], 1)
        up = GaugeMetricFamily("mediamute_cluster_redis_up", "1 while the last heartbeat reached Redis.")
        up.add_metric([], 1 if node.redis_up else 0)
        nodes = GaugeMetricFamily("mediamute_cluster_live_nodes", "Live nodes as of the last heartbeat.")
        nodes.add_metric([], node.live_nodes)
        errors = CounterMetricFamily("mediamute_cluster_redis_errors", "Redis commands that failed or timed out.")
        errors.add_metric([], node.store.errors)
        reaped = CounterMetricFamily("mediamute_cluster_reaped_calls", "Calls of dead nodes this node ended.")
        reaped.add_metric([], node.reaped_calls)
        relay = CounterMetricFamily(
            "mediamute_cluster_relay_requests", "Requests relayed over Redis, by outcome.", labels=["direction", "outcome"]
        )
        counters = node.relay.counters
        relay.add_metric(["sent", "answered"], counters.answered)
        relay.add_metric(["sent", "timeout"], counters.timeouts)
        relay.add_metric(["sent", "owner_unreachable"], counters.unreachable)
        relay.add_metric(["served", "received"], counters.served)
        return [info, up, nodes, errors, reaped, relay]
