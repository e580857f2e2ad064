"""The call domain stands alone: it imports neither the API nor rtc, its errors carry no HTTP status, and one table
in the API maps each of them to Graph's status and code."""

import ast
import asyncio
import inspect
import json
from pathlib import Path

import pytest
import websockets

import mediamute.calls
from mediamute.api.errors import DOMAIN_ERRORS, GraphError
from mediamute.calls import errors as domain_errors
from mediamute.calls.errors import CallError

from .helpers import admin_token

CALLS_DIR = Path(mediamute.calls.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, relative ones resolved against the mediamute.calls package."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = "mediamute.calls".split(".")[: 2 - (node.level - 1)]
                found.add(".".join(base + ([node.module] if node.module else [])))
            else:
                found.add(node.module or "")
    return found


@pytest.mark.parametrize("path", sorted(CALLS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_calls_imports_neither_api_nor_rtc_nor_a_web_framework(path):
    modules = imported_modules(path)
    assert modules, "the import scan found nothing: it is not looking at the source"
    forbidden = {m for m in modules if m.split(".")[:2] in (["mediamute", "api"], ["mediamute", "rtc"])}
    forbidden |= {m for m in modules if m.split(".")[0] in ("fastapi", "starlette", "aiortc", "aioice")}
    assert not forbidden, f"{path.name} imports {sorted(forbidden)}"


def domain_error_classes() -> list[type[CallError]]:
    return [c for _, c in inspect.getmembers(domain_errors, inspect.isclass) if issubclass(c, CallError)]


def test_domain_errors_carry_no_transport_status():
    for kind in domain_error_classes():
        assert not hasattr(kind, "status") and not hasattr(kind, "code"), kind.__name__


EXPECTED = {
    "CallError": (400, "BadRequest"),
    "CallNotFound": (404, "9997"),
    "ParticipantNotFound": (404, "itemNotFound"),
    "OperationNotFound": (404, "itemNotFound"),
    "CallTerminated": (409, "conflict"),
    "NotSupportedForCall": (400, "BadRequest"),
    "PolicyForbids": (403, "Forbidden"),
}


def test_every_domain_error_has_its_graph_status_and_code():
    kinds = domain_error_classes()
    assert {k.__name__ for k in kinds} == set(EXPECTED) == {k.__name__ for k in DOMAIN_ERRORS}
    for kind in kinds:
        exc = kind.__new__(kind)
        CallError.__init__(exc, f"{kind.__name__} happened")
        answer = GraphError.of(exc)
        assert (answer.status, answer.code) == EXPECTED[kind.__name__]
        assert answer.message == f"{kind.__name__} happened"


def test_an_unlisted_domain_error_answers_as_its_nearest_listed_base():
    class ParticipantGone(domain_errors.ParticipantNotFound):
        pass

    answer = GraphError.of(ParticipantGone("p1"))
    assert (answer.status, answer.code) == (404, "itemNotFound")
    assert "p1" in answer.message


def test_an_api_error_is_its_own_answer():
    error = GraphError(401, "no token", "InvalidAuthenticationToken")
    assert GraphError.of(error) is error


async def test_event_stream_answers_a_domain_error_from_the_table(server):
    """An unknown call on the event stream: CallNotFound, mapped by DOMAIN_ERRORS, as on the HTTP routes."""
    token = admin_token(server)
    url = server.base_url.replace("http", "ws") + f"/ext/calls/no-such-call/events?access_token={token}"
    async with websockets.connect(url, open_timeout=5) as ws:
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert message["type"] == "error" and message["status"] == 404
    assert message["error"]["code"] == "9997" and message["error"]["message"] == "Call not found."
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404


MEDIAMUTE_DIR = CALLS_DIR.parent


def package_imports(path: Path) -> set[str]:
    """Every module a source file of the mediamute package imports, relative ones resolved."""
    package = path.parent.relative_to(MEDIAMUTE_DIR.parent).parts
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - (node.level - 1)]) if node.level else []
            found.add(".".join(base + ([node.module] if node.module else [])))
    return found


@pytest.mark.parametrize("layer", ["api", "calls", "rtc", "media"])
def test_the_layers_below_the_cluster_know_nothing_of_it(layer):
    """`server` → `cluster` → `api` → `calls`: the cluster is infrastructure the server puts in front of the API, so
    the API, the domain, rtc and media import neither `mediamute.cluster` nor redis."""
    found = {path.name: package_imports(path) for path in sorted((MEDIAMUTE_DIR / layer).glob("*.py"))}
    assert sum(len(modules) for modules in found.values()) > len(found), "the import scan found nothing"
    bad = {name: sorted(m for m in modules if m.startswith("mediamute.cluster") or m.split(".")[0] == "redis")
           for name, modules in found.items()}
    assert not any(bad.values()), {name: modules for name, modules in bad.items() if modules}


def test_the_cluster_imports_no_layer_above_it():
    """The cluster may use the API and the domain, never the server, the CLI, the demo or the benchmark."""
    for path in sorted((MEDIAMUTE_DIR / "cluster").glob("*.py")):
        above = {m for m in package_imports(path) if m.split(".")[:2] in (
            ["mediamute", "server"], ["mediamute", "cli"], ["mediamute", "demo"], ["mediamute", "benchmark"])}
        assert not above, f"cluster/{path.name} imports {sorted(above)}"
