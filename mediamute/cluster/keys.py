"""What Redis holds for a mediamute cluster: every key and channel name, in one place (the README's table).

| key | type | holds | lifetime |
|---|---|---|---|
| `mediamute:nodes` | set | ids of the nodes that joined and have not left or been reaped | until left/reaped |
| `mediamute:node:{node}` | hash | `url`, `capacity`, `calls`, `participants`, `cpu`, `kid`, `started`, `heartbeat` | TTL `node_ttl`, renewed by every heartbeat |
| `mediamute:node:{node}:calls` | set | ids of the calls the node holds | until the node leaves or is reaped |
| `mediamute:call:{call}` | hash | `node`, `state`, `callbackUri`, `resource` (the Graph call, JSON), `endedBy` | none while live; `ENDED_TTL` once terminated |
| `mediamute:reap:{node}` | string | the surviving node that reaps a dead one (SET NX) | `REAP_LOCK_TTL` |
| `mediamute:call:{call}:deleted` | string | set once the `deleted` notification of a reaped call was sent (SET NX) | `ENDED_TTL` |

Channels (pub/sub): `mediamute:relay:{node}` carries requests to a node, `mediamute:reply:{node}` the answers to
the node that asked.
"""

from __future__ import annotations

PREFIX = "mediamute"
NODES = f"{PREFIX}:nodes"
ENDED_TTL = 3600
"""Seconds a terminated call's record stays (GET answers the terminated call; afterwards 404, as Graph would)."""
REAP_LOCK_TTL = 60
"""Seconds one surviving node holds the right to reap a dead node (long enough to finish, short enough to retry)."""


def node(node_id: str) -> str:
    return f"{PREFIX}:node:{node_id}"


def node_calls(node_id: str) -> str:
    return f"{PREFIX}:node:{node_id}:calls"


def call(call_id: str) -> str:
    return f"{PREFIX}:call:{call_id}"


def call_deleted_sent(call_id: str) -> str:
    return f"{PREFIX}:call:{call_id}:deleted"


def reap_lock(node_id: str) -> str:
    return f"{PREFIX}:reap:{node_id}"


def relay_channel(node_id: str) -> str:
    return f"{PREFIX}:relay:{node_id}"


def reply_channel(node_id: str) -> str:
    return f"{PREFIX}:reply:{node_id}"
