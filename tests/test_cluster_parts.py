"""The cluster's parts alone: placement order, the relay's wire format, which paths name a call, and that the
embedded default never loads the cluster or redis (the layer rule is in test_layers.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import mediamute
from mediamute.cluster.placement import BUSY_CPU, least_loaded
from mediamute.cluster.registry import NodeInfo
from mediamute.cluster.relay import RelayRequest, RelayResponse
from mediamute.cluster.router import call_target

from .cluster_nodes import code_env

PACKAGE = Path(mediamute.__file__).parent


def node(node_id: str, calls: int = 0, participants: int = 0, capacity: int = 40, cpu: float = 0.1) -> NodeInfo:
    return NodeInfo(node_id, f"http://{node_id}", capacity, calls, participants, cpu, "kid")


def test_least_loaded_counts_calls_and_participants_per_capacity():
    assert least_loaded([node("a", calls=1, participants=10), node("b", calls=2, participants=2)]).id == "b"
    assert least_loaded([node("a", participants=10, capacity=100), node("b", participants=5, capacity=20)]).id == "a"


def test_least_loaded_skips_a_busy_cpu_unless_all_are_busy():
    assert least_loaded([node("a", cpu=BUSY_CPU), node("b", calls=3)]).id == "b"
    assert least_loaded([node("a", calls=1, cpu=0.99), node("b", calls=3, cpu=0.95)]).id == "a"


def test_least_loaded_ties_go_to_the_most_free_capacity_then_the_lowest_id():
    assert least_loaded([node("a", capacity=20), node("b", capacity=1000), node("c", capacity=10)]).id == "b"
    assert least_loaded([node("b"), node("a")]).id == "a"
    with pytest.raises(ValueError):
        least_loaded([])


def test_relay_messages_carry_bytes_and_headers_unchanged():
    body = bytes(range(256))
    request = RelayRequest("POST", "/v1.0/communications/calls/x/mute", "a=1&b=%20", [("host", "n1:80"), ("x-h", "é")],
                           body, server=("127.0.0.1", 80), client=("127.0.0.1", 5), request_id="rid", origin="n1")
    import json

    again = RelayRequest.decode(json.loads(request.encode()))
    assert (again.method, again.path, again.query, again.headers, again.body) == (request.method, request.path, request.query, request.headers, body)
    assert (again.server, again.client, again.request_id, again.origin, again.id) == (("127.0.0.1", 80), ("127.0.0.1", 5), "rid", "n1", request.id)
    response = RelayResponse(200, [("location", "http://n1/op"), ("request-id", "rid")], body)
    raw = json.loads(response.encode(request.id))
    assert raw["id"] == request.id and RelayResponse.decode(raw) == response


@pytest.mark.parametrize(("path", "target"), [
    ("/v1.0/communications/calls/abc-1", ("abc-1", "")),
    ("/beta/communications/calls/abc/participants/muteAll", ("abc", "/participants/muteAll")),
    ("/ext/calls/abc/stats", ("abc", "/stats")),
    ("/whip/abc", ("abc", "")),
    ("/whip/abc/p1", ("abc", "/p1")),
    ("/v1.0/communications/calls", None),
    ("/v2/communications/calls/abc", None),
    ("/metrics", None),
    ("/whip/" + "x" * 200, None),  # no Redis look-up for an absurd id: answered (404) where it came in
])
def test_which_paths_name_a_call(path, target):
    assert call_target(path) == target


def test_the_embedded_default_loads_neither_the_cluster_nor_redis():
    script = (
        "import asyncio, sys\n"
        "from mediamute.server import MediamuteServer\n"
        "from mediamute.settings import ServerSettings\n"
        "import mediamute.cli, mediamute.demo, mediamute.benchmark\n"
        "async def main():\n"
        "    async with MediamuteServer(ServerSettings(port=0, ephemeral_key=True, log_level='warning')):\n"
        "        pass\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'redis' or m.startswith('mediamute.cluster')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=code_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
