"""Many processes, many machines: mediamute nodes coordinated through Redis (`mediamute serve --redis URL`).

A call lives on one node (one process, one event loop). Nodes register in Redis with a heartbeat and a TTL
(`registry`); a new call goes to the least-loaded live node and Redis maps each call to its node (`placement`); any
node answers any API request, relaying it over Redis to the call's owner and returning the owner's answer unchanged
(`relay`, routed by the ASGI `router` in front of the API); WHIP joins are redirected (307) to the owner so media
goes straight there. `node` ties these together for the server; `supervisor` runs `--workers N` nodes behind one
public port, with a `redis-server` of its own when no Redis URL is given.

Without `--redis` nothing here is imported: the embedded default is one process and needs no Redis.
Layers: `server` → `cluster` → `api` → `calls`; the API knows nothing of the cluster.
"""
