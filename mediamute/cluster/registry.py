"""Nodes in Redis: each node's registration, its heartbeat (load report + TTL renewal), its clean leave, and the
survivors' reaping of a node that stopped heartbeating.

A node is alive while its hash `mediamute:node:{id}` exists: every heartbeat rewrites it and renews its TTL, so a
node that dies (or is cut off from Redis) vanishes `node_ttl` seconds after its last heartbeat. Every node checks
the `mediamute:nodes` set on each heartbeat; the first survivor to take a dead node's reap lock (SET NX) ends its
calls in Redis and hands each to `on_orphan` (which sends the `deleted` notification once, guarded per call).

Every Redis command is bounded (`Store.bounded`): a node cut off from Redis keeps its calls mixing, answers 503
for what needs Redis, and rejoins when Redis answers again (`heartbeat` then reports a rejoin, and the node writes
its calls back).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.asyncio.retry import Retry

from . import keys

log = logging.getLogger("mediamute.cluster")
T = TypeVar("T")


class RedisUnavailable(Exception):
    """Redis did not answer within the bound (down, unreachable, or too slow)."""


class Store:
    """The node's Redis client with a bound on every command: one immediate retry on a fresh connection (a pooled
    connection may have died with a Redis restart), then `RedisUnavailable`."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.redis: Redis = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
        self.errors = 0
        """Redis commands that failed or timed out (on /metrics)."""

    async def bounded(self, awaitable: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await awaitable
        except (RedisError, OSError, TimeoutError) as exc:
            self.errors += 1
            raise RedisUnavailable(f"Redis at {self.url} did not answer: {exc or type(exc).__name__}") from None

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.redis.aclose(), self.timeout)
        except (RedisError, OSError, TimeoutError):
            pass


@dataclass(frozen=True)
class NodeInfo:
    """A live node as its last heartbeat described it."""

    id: str
    url: str
    capacity: int
    calls: int
    participants: int
    cpu: float
    """The node process's CPU over the last heartbeat interval, as a fraction of one core."""
    kid: str
    """The id of the key that signs its tokens: every node of a cluster must share one."""

    @property
    def load(self) -> float:
        """How full the node is: (calls + participants) per capacity (a call counts like a participant: it has its
        application participant and its own mix clock)."""
        return (self.calls + self.participants) / max(1, self.capacity)

    @classmethod
    def from_hash(cls, node_id: str, fields: dict[str, str]) -> "NodeInfo":
        return cls(
            id=node_id,
            url=fields.get("url", ""),
            capacity=int(fields.get("capacity", 1)),
            calls=int(fields.get("calls", 0)),
            participants=int(fields.get("participants", 0)),
            cpu=float(fields.get("cpu", 0.0)),
            kid=fields.get("kid", ""),
        )


@dataclass(frozen=True)
class LocalLoad:
    calls: int
    participants: int


class CpuMeter:
    """This process's CPU (all threads) between two readings, as a fraction of one core."""

    def __init__(self) -> None:
        self._cpu = time.process_time()
        self._wall = time.monotonic()

    def read(self) -> float:
        """The share since the last reading (0 for a window under 0.1 s: too short to mean anything)."""
        cpu, wall = time.process_time(), time.monotonic()
        if wall - self._wall < 0.1:
            return 0.0
        share = (cpu - self._cpu) / (wall - self._wall)
        self._cpu, self._wall = cpu, wall
        return round(share, 3)


OrphanHandler = Callable[[str, dict[str, str]], Awaitable[None]]
"""Called by the reaping node for each live call of a dead node: (call id, its record as it was)."""


class NodeRegistry:
    """This node's registration in Redis, and the view of the other nodes."""

    def __init__(self, store: Store, node_id: str, url: str, capacity: int, kid: str, node_ttl: float) -> None:
        self.store = store
        self.node_id = node_id
        self.url = url
        self.capacity = capacity
        self.kid = kid
        self.node_ttl = node_ttl
        self.started = time.time()
        self.cpu = CpuMeter()
        self.connected_since: float | None = None
        """Monotonic time of the first heartbeat of the current connection to Redis (None while cut off)."""

    def _fields(self, load: LocalLoad) -> dict[str, Any]:
        return {
            "url": self.url,
            "capacity": self.capacity,
            "calls": load.calls,
            "participants": load.participants,
            "cpu": self.cpu.read(),
            "kid": self.kid,
            "started": self.started,
            "heartbeat": time.time(),
        }

    async def heartbeat(self, load: LocalLoad) -> bool:
        """Write this node's load and renew its TTL; True when the node was not registered (first heartbeat, or
        back after Redis lost it or cut it off): the caller then writes its calls back."""
        key = keys.node(self.node_id)
        pipe = self.store.redis.pipeline(transaction=True)
        pipe.exists(key)
        pipe.hset(key, mapping=self._fields(load))
        pipe.pexpire(key, int(self.node_ttl * 1000))
        pipe.sadd(keys.NODES, self.node_id)
        try:
            existed, *_ = await self.store.bounded(pipe.execute())
        except RedisUnavailable:
            if self.connected_since is not None:
                log.warning("node %s: Redis unreachable; calls keep mixing, the API answers 503 for what needs Redis", self.node_id)
            self.connected_since = None
            raise
        rejoined = self.connected_since is None or not existed
        if rejoined:  # (again) in the cluster from now: the other nodes may still be writing their calls back
            self.connected_since = time.monotonic()
        return rejoined

    @property
    def settling(self) -> bool:
        """Within one TTL of (re)joining: a call Redis does not know may belong to a node not yet back."""
        return self.connected_since is None or time.monotonic() - self.connected_since < self.node_ttl

    async def leave(self) -> None:
        """Clean leave: the node and its call set disappear at once (its calls were ended before)."""
        pipe = self.store.redis.pipeline(transaction=True)
        pipe.delete(keys.node(self.node_id), keys.node_calls(self.node_id))
        pipe.srem(keys.NODES, self.node_id)
        await self.store.bounded(pipe.execute())

    async def live_nodes(self) -> list[NodeInfo]:
        """Every node whose registration has not expired."""
        ids = sorted(await self.store.bounded(self.store.redis.smembers(keys.NODES)))
        if not ids:
            return []
        pipe = self.store.redis.pipeline(transaction=False)
        for node_id in ids:
            pipe.hgetall(keys.node(node_id))
        hashes = await self.store.bounded(pipe.execute())
        return [NodeInfo.from_hash(node_id, fields) for node_id, fields in zip(ids, hashes) if fields]

    async def node_url(self, node_id: str) -> str | None:
        """A live node's URL (None: it is not registered, i.e. dead or gone)."""
        return await self.store.bounded(self.store.redis.hget(keys.node(node_id), "url"))

    async def check_key(self) -> None:
        """Refuse to join a cluster whose live nodes sign tokens with another key: tokens would work on some nodes
        only. Raises ValueError naming both key ids."""
        for node in await self.live_nodes():
            if node.id != self.node_id and node.kid and node.kid != self.kid:
                raise ValueError(
                    f"this node signs with key {self.kid}, but node {node.id} ({node.url}) of the cluster signs with "
                    f"{node.kid}: every node must use the same key file (--key-file or $MEDIAMUTE_KEY_FILE)"
                )

    async def reap_dead(self, on_orphan: OrphanHandler) -> list[str]:
        """End the calls of every node that stopped heartbeating; returns the ids of the nodes reaped here.

        Only after this node has been connected for a full `node_ttl`: after Redis comes back, every live node gets
        one TTL to re-register before anyone is taken for dead."""
        if self.settling:
            return []
        members = [m for m in await self.store.bounded(self.store.redis.smembers(keys.NODES)) if m != self.node_id]
        if not members:
            return []
        pipe = self.store.redis.pipeline(transaction=False)
        for node_id in members:
            pipe.exists(keys.node(node_id))
        alive = await self.store.bounded(pipe.execute())
        reaped = []
        for node_id, exists in zip(members, alive):
            if not exists and await self._reap(node_id, on_orphan):
                reaped.append(node_id)
        return reaped

    async def _reap(self, node_id: str, on_orphan: OrphanHandler) -> bool:
        redis = self.store.redis
        won = await self.store.bounded(redis.set(keys.reap_lock(node_id), self.node_id, nx=True, ex=keys.REAP_LOCK_TTL))
        if not won:
            return False
        call_ids = await self.store.bounded(redis.smembers(keys.node_calls(node_id)))
        log.warning("node %s: node %s stopped heartbeating; ending its %d call(s)", self.node_id, node_id, len(call_ids))
        for call_id in sorted(call_ids):
            record = await self.store.bounded(redis.hgetall(keys.call(call_id)))
            if not record or record.get("node") != node_id or record.get("state") == "terminated":
                continue
            await self.store.bounded(mark_terminated(redis, call_id, record, ended_by="reaper"))
            try:
                await on_orphan(call_id, record)
            except Exception:  # one call's notification must not stop the others being ended
                log.exception("node %s: notifying the end of call %s failed", self.node_id, call_id)
        pipe = redis.pipeline(transaction=True)
        pipe.delete(keys.node_calls(node_id))
        pipe.srem(keys.NODES, node_id)
        await self.store.bounded(pipe.execute())
        return True


def terminated_resource(record: dict[str, str]) -> dict[str, Any]:
    """The call's Graph resource from its record, in state `terminated`."""
    resource = json.loads(record.get("resource") or "{}")
    resource["state"] = "terminated"
    if not resource.get("resultInfo"):
        resource["resultInfo"] = {
            "@odata.type": "#microsoft.graph.resultInfo", "code": 500, "subcode": 0,
            "message": "The call ended: the mediamute node that held it stopped.",
        }
    return resource


async def mark_terminated(redis: Redis, call_id: str, record: dict[str, str], ended_by: str) -> None:
    """A call's record says `terminated` (its resource too) and expires after `ENDED_TTL`."""
    pipe = redis.pipeline(transaction=True)
    pipe.hset(
        keys.call(call_id),
        mapping={"state": "terminated", "endedBy": ended_by, "resource": json.dumps(terminated_resource(record))},
    )
    pipe.expire(keys.call(call_id), keys.ENDED_TTL)
    await pipe.execute()
