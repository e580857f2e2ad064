"""Where calls live: the least-loaded live node gets a new call, and Redis maps every call to its node.

A call never moves, so a node caches the owner of a call once it has read it (bounded); a cached owner that no
longer answers is read again (the record may say the call was ended by a survivor).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from . import keys
from .registry import NodeInfo, Store, mark_terminated


BUSY_CPU = 0.85
"""A node using this share of its one core or more is full, whatever it holds: its mix clock is about to run late."""


def least_loaded(nodes: list[NodeInfo]) -> NodeInfo:
    """The node with the lowest load (calls and participants per capacity), skipping nodes whose CPU is at
    `BUSY_CPU` or more unless all are; among equally loaded nodes the one with the most free capacity, then the
    lowest id (so concurrent placers agree). CPU only excludes: a moment's CPU is too noisy to rank by."""
    if not nodes:
        raise ValueError("no live node")
    return min(nodes, key=lambda n: (n.cpu >= BUSY_CPU, round(n.load, 3), n.calls + n.participants - n.capacity, n.id))


@dataclass(frozen=True)
class CallRecord:
    """What Redis holds of a call (`mediamute:call:{id}`)."""

    call_id: str
    node: str
    state: str
    fields: dict[str, str]

    @property
    def terminated(self) -> bool:
        return self.state == "terminated"

    def resource(self) -> dict[str, Any]:
        return json.loads(self.fields.get("resource") or "{}")


class CallDirectory:
    """The call → node mapping in Redis, with a bounded local cache of owners."""

    def __init__(self, store: Store, node_id: str, cache_size: int = 10_000) -> None:
        self.store = store
        self.node_id = node_id
        self.cache_size = cache_size
        self._owners: OrderedDict[str, str] = OrderedDict()

    def cached_owner(self, call_id: str) -> str | None:
        return self._owners.get(call_id)

    def _remember(self, call_id: str, node_id: str) -> None:
        self._owners[call_id] = node_id
        self._owners.move_to_end(call_id)
        while len(self._owners) > self.cache_size:
            self._owners.popitem(last=False)

    def forget(self, call_id: str) -> None:
        self._owners.pop(call_id, None)

    async def record(self, call_id: str) -> CallRecord | None:
        fields = await self.store.bounded(self.store.redis.hgetall(keys.call(call_id)))
        if not fields or "node" not in fields:
            return None
        self._remember(call_id, fields["node"])
        return CallRecord(call_id, fields["node"], fields.get("state", ""), fields)

    async def owner(self, call_id: str) -> str | None:
        """The node holding the call (from the cache when known), or None for a call the cluster does not know."""
        cached = self._owners.get(call_id)
        if cached is not None:
            return cached
        found = await self.record(call_id)
        return found.node if found else None

    async def created(self, call_id: str, resource: dict[str, Any], callback_uri: str | None) -> None:
        """This node holds a new call: its record and its place in the node's call set."""
        redis = self.store.redis
        pipe = redis.pipeline(transaction=True)
        pipe.hset(
            keys.call(call_id),
            mapping={"node": self.node_id, "state": "established", "resource": json.dumps(resource),
                     "callbackUri": callback_uri or ""},
        )
        pipe.sadd(keys.node_calls(self.node_id), call_id)
        await self.store.bounded(pipe.execute())
        self._remember(call_id, self.node_id)

    async def counted_on(self, node_id: str) -> None:
        """A call is being placed on `node_id`: count it in that node's load now, so the next placement (before
        the node's next heartbeat, which writes the true count) sees it."""
        await self.store.bounded(self.store.redis.hincrby(keys.node(node_id), "calls", 1))

    async def ended(self, call_id: str, resource: dict[str, Any]) -> None:
        """A call of this node ended here: its record says so (and expires), it leaves the node's call set."""
        record = {"resource": json.dumps(resource)}
        await self.store.bounded(mark_terminated(self.store.redis, call_id, record, ended_by="owner"))
        await self.store.bounded(self.store.redis.srem(keys.node_calls(self.node_id), call_id))
