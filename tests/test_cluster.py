"""A cluster of three `mediamute serve --redis` processes (A, B, C) on 127.0.0.1 and a real redis-server, started
once for the module: placement, the WHIP redirect, a relayed mute proved on the audio and the owner's audit, the
event stream through another node, a Redis outage, a relay timeout, and a node killed.

Capacities make placement predictable: equally loaded nodes are told apart by free capacity, so an empty cluster
places a call on B (capacity 1000), and with B holding a call, the next goes to A (20) rather than C (10).
The node TTL is 3 s (a heartbeat every second) and the relay timeout 1 s.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis.asyncio as aioredis
import websockets
from aiortc import RTCPeerConnection

from mediamute.client import CallParticipant
from mediamute.cluster import keys
from mediamute.cluster.placement import BUSY_CPU
from mediamute.cluster.redis_server import RedisServer
from mediamute.sources import ToneSource
from mediamute.tokens import ALL_CALL_ROLES, SigningKey

from .cluster_nodes import Node, redis_or_skip, start_node
from .helpers import CALLS, A as AMPLITUDE, CallbackReceiver, amplitude, assert_graph_error, assert_tone_stops, hear_for, least_heard, leave_all

pytestmark = pytest.mark.integration

NODE_TTL = 3.0
HEARTBEAT = 1.0
RELAY_TIMEOUT = 1.0
DEAD_NODE_BOUND = NODE_TTL + 2 * HEARTBEAT + 2.0
"""Kill → `deleted` notification: the TTL runs out after the last heartbeat (≤ TTL), a survivor's next heartbeat
reaps (≤ 1 heartbeat later, one more for the round in flight), and the POST is delivered (2 s of slack)."""


@dataclass
class Cluster:
    redis: RedisServer
    a: Node
    b: Node
    c: Node
    key: SigningKey

    @property
    def token(self) -> str:
        return self.key.app_token(list(ALL_CALL_ROLES))

    def client(self, node: Node, **kwargs: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=node.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10.0, **kwargs)

    async def idle(self, timeout: float = 5.0) -> None:
        """Wait until every node's heartbeat reports no call (earlier tests' calls ended) and a CPU below busy
        (the nodes' start-up is over), so placement starts from an empty cluster."""
        client = aioredis.Redis.from_url(self.redis.url, decode_responses=True, socket_timeout=2)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    nodes = [await client.hgetall(keys.node(n.node_id)) for n in (self.a, self.b, self.c)]
                    if all(n["calls"] == "0" and float(n["cpu"]) < BUSY_CPU for n in nodes if n):
                        return
                    await asyncio.sleep(0.1)
        finally:
            await client.aclose()

    async def loads(self) -> dict[str, dict[str, str]]:
        """Each node's registration as Redis holds it now (for a failure message)."""
        client = aioredis.Redis.from_url(self.redis.url, decode_responses=True, socket_timeout=2)
        try:
            return {n.name: await client.hgetall(keys.node(n.node_id)) for n in (self.a, self.b, self.c)}
        finally:
            await client.aclose()

    async def owner(self, call_id: str) -> str | None:
        client = aioredis.Redis.from_url(self.redis.url, decode_responses=True, socket_timeout=2)
        try:
            return await client.hget(keys.call(call_id), "node")
        finally:
            await client.aclose()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    logs = tmp_path_factory.mktemp("cluster")
    server = redis_or_skip()
    key_file = logs / "signing-key.pem"
    key = SigningKey.load_or_create(key_file)
    common = ("--node-ttl", str(NODE_TTL), "--relay-timeout", str(RELAY_TIMEOUT))
    nodes = [
        start_node("A", server.url, key_file, logs, "--capacity", "20", *common),
        start_node("B", server.url, key_file, logs, "--capacity", "1000", *common),
        start_node("C", server.url, key_file, logs, "--capacity", "10", *common),
    ]
    try:
        for node in nodes:
            node.wait_ready()
        yield Cluster(server, *nodes, key=key)
    finally:
        for node in nodes:
            node.stop()
        server.close()


async def create(http: httpx.AsyncClient, **body: object) -> str:
    response = await http.post(CALLS, json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def stats(cluster: Cluster, node: Node, call_id: str, **params: object) -> dict:
    async with cluster.client(node) as http:
        response = await http.get(f"/ext/calls/{call_id}/stats", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def metric(exposition: str, series: str) -> float:
    line = next(line for line in exposition.splitlines() if line.startswith(series + " "))
    return float(line.rsplit(" ", 1)[1])


async def whip_offer() -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def test_a_call_created_on_a_is_placed_on_b_joined_through_a_and_muted_through_c(cluster: Cluster) -> None:
    a, b, c = cluster.a, cluster.b, cluster.c
    await cluster.idle()
    async with cluster.client(a) as via_a:
        call_id = await create(via_a)
    assert await cluster.owner(call_id) == b.node_id

    # a WHIP offer posted to A is redirected to B's WHIP URL, with a join token of its own
    pc, offer = await whip_offer()
    try:
        async with cluster.client(a) as via_a:
            response = await via_a.post(f"/whip/{call_id}", params={"displayName": "x"}, content=offer,
                                        headers={"Content-Type": "application/sdp"})
    finally:
        await pc.close()
    assert response.status_code == 307, response.text
    location = httpx.URL(response.headers["Location"])
    assert str(location).startswith(f"{b.url}/whip/{call_id}?")
    assert location.params["displayName"] == "x"
    assert cluster.key.decode(location.params["access_token"], ("mediamute:whip",))["mm:call"] == call_id

    # participants joining through A's URL land on B (their sessions resolve there)
    talker = CallParticipant(a.url, call_id, ToneSource(440), display_name="talker", token=cluster.token)
    listener = CallParticipant(a.url, call_id, ToneSource(660), display_name="listener", token=cluster.token)
    await asyncio.gather(talker.join(), listener.join())
    try:
        assert talker.location and talker.location.startswith(f"{b.url}/whip/{call_id}/")
        await hear_for(listener, 1.5)
        assert least_heard(listener, 440, time.monotonic() - 1.3, time.monotonic()) > 0.5 * AMPLITUDE

        # a Graph mute sent to C is relayed to B: its 200 means B's gate closed before it answered
        async with cluster.client(c) as via_c:
            sent = time.monotonic()
            muted = await via_c.post(f"{CALLS}/{call_id}/participants/{talker.participant_id}/mute", json={"clientContext": "c"})
            answered = time.monotonic()
        assert muted.status_code == 200, muted.text
        operation = muted.json()
        assert operation["@odata.type"] == "#microsoft.graph.muteParticipantOperation" and operation["status"] == "completed"
        assert muted.headers["Location"].startswith(f"{c.url}/v1.0/communications/calls/{call_id}/operations/")
        assert muted.headers["request-id"] == muted.headers["request-id"].strip() and len(muted.headers["request-id"]) == 36

        await hear_for(listener, 1.5)
        assert_tone_stops(listener, 440, sent)
        after = await stats(cluster, b, call_id, since=answered, limit=3000)  # B's own audit, read from B
        assert len(after["audit"]) >= 50
        leaked = [r for r in after["audit"] if talker.participant_id in r["contributors"]]
        assert leaked == [], f"{len(leaked)} frames of the muted talker mixed after the 200 OK"
        gate = next(p for p in after["participants"] if p["id"] == talker.participant_id)["gate"]
        assert gate["open"] is False and gate["droppedPackets"] > 0

        # the operation resolves on every node, by its Location (C) and by its path
        for node in (a, b, c):
            async with cluster.client(node) as http:
                for url in (muted.headers["Location"], f"{node.url}{CALLS}/{call_id}/operations/{operation['id']}"):
                    got = await http.get(url)
                    assert got.status_code == 200, got.text
                    assert got.json()["id"] == operation["id"] and got.json()["clientContext"] == "c"

        # each node reports itself on its own /metrics: C relayed, B served, both reach Redis
        async with httpx.AsyncClient(timeout=5) as http:
            scraped = {n.name: (await http.get(f"{n.url}/metrics")).text for n in (b, c)}
        assert f'mediamute_cluster_node{{node_id="{c.node_id}",url="{c.url}"}} 1.0' in scraped["C"]
        assert metric(scraped["C"], 'mediamute_cluster_relay_requests_total{direction="sent",outcome="answered"}') >= 1
        assert metric(scraped["B"], 'mediamute_cluster_relay_requests_total{direction="served",outcome="received"}') >= 1
        assert metric(scraped["C"], "mediamute_cluster_redis_up") == 1

        # the event stream through A is B's stream
        url = a.url.replace("http", "ws") + f"/ext/calls/{call_id}/events?access_token={cluster.token}"
        async with websockets.connect(url, open_timeout=5) as ws:
            snapshot = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert snapshot["type"] == "snapshot" and snapshot["call"]["id"] == call_id
        names = {p["info"]["identity"]["user"]["displayName"] for p in snapshot["participants"] if p["info"]["identity"].get("user")}
        assert {"talker", "listener"} <= names
    finally:
        await leave_all([talker, listener])
    async with cluster.client(c) as via_c:
        assert (await via_c.delete(f"{CALLS}/{call_id}")).status_code == 204


async def test_whip_answers_cors_for_a_page_that_follows_the_redirect(cluster: Cluster) -> None:
    """A page on one node that follows a join redirect to another port posts cross-origin (with Origin: null
    after the redirect): the owner answers the preflight and lets the page read the answer's headers."""
    async with httpx.AsyncClient(base_url=cluster.b.url, timeout=5) as http:
        preflight = await http.options("/whip/some-call?displayName=x", headers={
            "Origin": "null", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
        refused = await http.post("/whip/some-call", content="v=0\r\n", headers={"Content-Type": "application/sdp", "Origin": "null"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "content-type" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert refused.headers["Access-Control-Allow-Origin"] == "*"  # errors too, so the page can show them
    assert_graph_error(refused, 401)


def others(cluster: Cluster, owner_id: str | None) -> tuple[Node, list[Node]]:
    """The node holding a call, and the other two."""
    nodes = [cluster.a, cluster.b, cluster.c]
    owner = next(n for n in nodes if n.node_id == owner_id)
    return owner, [n for n in nodes if n is not owner]


async def test_redis_outage_calls_keep_mixing_api_answers_503_then_recovers(cluster: Cluster) -> None:
    async with cluster.client(cluster.a) as via_a:
        call_id = await create(via_a)
    owner, (elsewhere, _) = others(cluster, await cluster.owner(call_id))
    talker = CallParticipant(owner.url, call_id, ToneSource(440), display_name="talker", token=cluster.token)
    listener = CallParticipant(owner.url, call_id, ToneSource(660), display_name="listener", token=cluster.token)
    await asyncio.gather(talker.join(), listener.join())
    try:
        await hear_for(listener, 1.0)
        cluster.redis.stop()
        stopped = time.monotonic()
        async with cluster.client(elsewhere) as http:
            # what needs Redis answers 503 in Graph's envelope: a call held elsewhere, a new call
            assert_graph_error(await http.get(f"{CALLS}/{call_id}"), 503, "ServiceUnavailable", "redis")
            assert_graph_error(await http.post(CALLS, json={}), 503, "ServiceUnavailable")
        async with cluster.client(owner) as http:  # the call's own node still answers for it, and still mutes
            assert (await http.get(f"{CALLS}/{call_id}")).status_code == 200
        await hear_for(listener, 2.0)
        outage = (stopped, time.monotonic())
        cluster.redis.start()
        # the nodes rejoin (the owner writes its call back) and the API recovers
        async with cluster.client(elsewhere) as http:
            async with asyncio.timeout(20):
                while (await http.get(f"{CALLS}/{call_id}")).status_code != 200:
                    await asyncio.sleep(0.2)
            async with asyncio.timeout(10):
                while (created := await http.post(CALLS, json={})).status_code != 201:
                    await asyncio.sleep(0.2)
            assert (await http.delete(f"{CALLS}/{created.json()['id']}")).status_code == 204
        assert await cluster.owner(call_id) == owner.node_id
        # the call kept mixing through the outage: the owner ticked on (50 a second) with the talker in the mix, and
        # the listener heard it. (Ticks without the talker are frames this test's own client sent late: on a loaded
        # machine they run to a tenth or more; mixing that stopped would leave none with the talker.)
        mixed = [r for r in (await stats(cluster, owner, call_id, since=outage[0], limit=3000))["audit"] if r["mixedAt"] <= outage[1]]
        assert len(mixed) >= 0.9 * (outage[1] - outage[0]) * 50
        with_talker = [r for r in mixed if talker.participant_id in r["contributors"]]
        assert len(with_talker) >= 0.5 * len(mixed), f"only {len(with_talker)} of {len(mixed)} ticks mixed the talker"
        assert amplitude(listener, 440, *outage) == pytest.approx(AMPLITUDE, rel=0.1)
    finally:
        await leave_all([talker, listener])
    async with cluster.client(elsewhere) as http:
        assert (await http.delete(f"{CALLS}/{call_id}")).status_code == 204


async def test_a_relay_the_owner_does_not_answer_is_a_504(cluster: Cluster) -> None:
    async with cluster.client(cluster.a) as via_a:
        call_id = await create(via_a)
    owner, (elsewhere, _) = others(cluster, await cluster.owner(call_id))
    os.kill(owner.pid, signal.SIGSTOP)  # the owner hangs (well within its TTL): it gets the request, never answers
    try:
        async with cluster.client(elsewhere) as http:
            sent = time.monotonic()
            response = await http.get(f"{CALLS}/{call_id}")
            waited = time.monotonic() - sent
    finally:
        os.kill(owner.pid, signal.SIGCONT)
    assert_graph_error(response, 504, "GatewayTimeout", "did not answer")
    assert waited >= RELAY_TIMEOUT
    async with cluster.client(elsewhere) as http:
        assert (await http.get(f"{CALLS}/{call_id}")).status_code == 200
        assert (await http.delete(f"{CALLS}/{call_id}")).status_code == 204


async def test_a_killed_node_s_calls_end_within_the_bound_and_others_are_undisturbed(cluster: Cluster) -> None:
    await cluster.idle()
    async with CallbackReceiver() as receiver:
        async with cluster.client(cluster.c) as via_c:
            doomed = await create(via_c, callbackUri=receiver.url)
            victim, survivors = others(cluster, await cluster.owner(doomed))
            survivor = await create(via_c)  # the victim now holds a call more: this one goes elsewhere
        home, _ = others(cluster, await cluster.owner(survivor))
        assert home is not victim, await cluster.loads()
        speakers = [CallParticipant(home.url, survivor, ToneSource(f), display_name=f"s{f}", token=cluster.token) for f in (440, 660)]
        await asyncio.gather(*(p.join() for p in speakers))
        try:
            await hear_for(speakers, 1.0)
            late_before = (await stats(cluster, home, survivor, limit=0))["clock"]["late_ticks"]
            killed = time.monotonic()
            victim.kill()

            def call_deleted(r: CallbackReceiver) -> bool:
                return any(n["changeType"] == "deleted" and n["resourceUrl"] == f"/communications/calls/{doomed}"
                           for n in r.notifications())

            await receiver.wait_for(call_deleted, timeout=DEAD_NODE_BOUND + 5)
            ended_after = time.monotonic() - killed
            assert ended_after <= DEAD_NODE_BOUND, f"the call was reported ended {ended_after:.1f} s after the kill"
            deleted = [n for n in receiver.notifications() if n["changeType"] == "deleted"]
            assert deleted[0]["resourceData"]["state"] == "terminated"

            for node in survivors:  # every survivor answers the call as terminated
                async with cluster.client(node) as http:
                    got = await http.get(f"{CALLS}/{doomed}")
                    assert got.status_code == 200 and got.json()["state"] == "terminated", got.text
                    assert_graph_error(await http.post(f"{CALLS}/{doomed}/mute", json={}), 409, "conflict")
                    participants = await http.get(f"{CALLS}/{doomed}/participants")
                    assert participants.status_code == 200 and participants.json()["value"] == []
                    fresh = await create(http)  # new calls go to the living
                    assert await cluster.owner(fresh) in {n.node_id for n in survivors}
                    assert (await http.delete(f"{CALLS}/{fresh}")).status_code == 204

            # the call on a surviving node went on undisturbed: no late tick since the kill, ticks mixing both
            # speakers (but for frames a loaded client sent late, as in the outage test), each hearing the other
            await hear_for(speakers, 0.5)
            since_kill = (killed, time.monotonic())
            after = await stats(cluster, home, survivor, since=killed, limit=3000)
            assert after["clock"]["late_ticks"] == late_before, f"late ticks on {home.name} since the kill (max lateness {after['clock']['max_lateness']:.3f} s)"
            mixed = [r for r in after["audit"] if r["mixedAt"] <= since_kill[1]]
            assert len(mixed) >= 0.9 * (since_kill[1] - since_kill[0]) * 50
            both = [r for r in mixed if {p.participant_id for p in speakers} <= set(r["contributors"])]
            assert len(both) >= 0.5 * len(mixed), f"only {len(both)} of {len(mixed)} ticks mixed both speakers"  # as above
            for p, other in ((speakers[0], 660), (speakers[1], 440)):
                assert amplitude(p, other, *since_kill) == pytest.approx(AMPLITUDE, rel=0.1)
            sent = [n for n in receiver.notifications() if n["changeType"] == "deleted"]
            assert len(sent) == 1, f"the dead node's call was reported ended {len(sent)} times"
        finally:
            await leave_all(speakers)
    async with cluster.client(home) as http:
        assert (await http.delete(f"{CALLS}/{survivor}")).status_code == 204
