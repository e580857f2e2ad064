"""The page's browser-free modules run under Node (no browser): the API client against a real server, the call model
on notifications. Skips without `node` (v18+, for its fetch); the browser tests cover the rest of the page.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket

import pytest

from mediamute.api.web import WEB_DIR

from ..helpers import admin_token

NODE = shutil.which("node")
NODE_TIMEOUT = 30.0

# Node's fetch has no page to resolve the page's relative URLs against: the wrapper does what a browser would (the
# page's origin is the server), and records what each request sent.
SCRIPT = r"""
const js = process.env.MM_JS;
const api = await import(`${js}/api.js`);
const { CallModel } = await import(`${js}/model.js`);
const nativeFetch = globalThis.fetch;
const sent = [];
const origin = (base) => (path, init) => {
  sent.push({ path, method: init.method, authorization: init.headers.Authorization || null,
              contentType: init.headers['Content-Type'] || null, body: init.body ?? null });
  return nativeFetch(new URL(path, base), init);
};
const failure = (e) => ({ isApiError: e instanceof api.ApiError, status: e.status, code: e.code, message: e.message,
                          requestId: e.requestId ?? null });
const token = process.env.MM_TOKEN;
const out = {};

globalThis.fetch = origin(process.env.MM_BASE);
const call = await api.createCall(token, false);
out.created = call.id;
out.joinToken = await api.joinToken(token, call.id);
try { await api.muteParticipant(token, call.id, 'nobody', 'node-check'); } catch (e) { out.muteUnknown = failure(e); }
try { await api.createCall(null, true); } catch (e) { out.noToken = failure(e); }
out.needsToken = await api.needsToken();
globalThis.fetch = origin(process.env.MM_CLOSED);
try { await api.createCall(token, true); } catch (e) { out.unreachable = failure(e); }
out.sent = sent;
out.refusal = failure(api.ApiError.fromEnvelope(403, { code: 'Forbidden', message: 'no', innerError: { 'request-id': 'r1' } }, 'x'));
out.refusalBare = failure(api.ApiError.fromEnvelope(403, {}, 'The event stream was refused.'));

// the model: roster updates by sequence number, deletions, the end of the call
const person = (id, name, seq, muted = false) => ({
  id, rosterSequenceNumber: seq, info: { identity: { user: { displayName: name } } },
  mediaStreams: [{ mediaType: 'audio', serverMuted: muted }] });
const app = { id: 'app', rosterSequenceNumber: 1, info: { identity: { application: { displayName: 'bot' } } } };
const url = '/communications/calls/c1/participants';
const model = new CallModel();
model.applySnapshot({ call: { id: 'c1', state: 'established' }, allowSelfUnmute: false,
                      participants: [app, person('a', 'Ann', 2), person('b', 'Ben', 3)] });
model.applyStats({ participants: [{ id: 'b', selfMuted: true }] });
const steps = {};
steps.newer = model.applyNotification({ resourceUrl: url, changeType: 'updated', resourceData: [person('a', 'Ann', 4, true)] }, 'c1');
steps.stale = model.applyNotification({ resourceUrl: url, changeType: 'updated', resourceData: [person('a', 'Ann', 3, false)] }, 'c1');
const aMuted = model.participants.get('a').mediaStreams[0].serverMuted;
steps.deleted = model.applyNotification({ resourceUrl: url, changeType: 'deleted', resourceData: [person('b', 'Ben', 5)] }, 'c1');
steps.otherCall = model.applyNotification({ resourceUrl: '/communications/calls/c2', changeType: 'updated', resourceData: { id: 'c2', state: 'terminated' } }, 'c1');
steps.tone = model.applyNotification({ resourceUrl: '/communications/calls/c1', changeType: 'updated',
  resourceData: { '@odata.type': '#microsoft.graph.call', state: 'established', toneInfo: { sequenceId: 1, tone: 'pound' } } }, 'c1');
const terminatedBefore = model.terminated;
const { keyOf, talkingWhileMuted } = await import(`${js}/model.js`);
out.keys = ['tone0', 'tone9', 'star', 'pound', 'a', 'd', 'flash'].map(keyOf);
out.talking = [talkingWhileMuted({ mediamute: { talkingWhileMuted: true } }), talkingWhileMuted(person('x', 'X', 1)),
               talkingWhileMuted({ mediamute: { talkingWhileMuted: false } })];
steps.ended = model.applyNotification({ resourceUrl: '/communications/calls/c1', changeType: 'updated', resourceData: { id: 'c1', state: 'terminated' } }, 'c1');
out.model = { steps, aMuted, terminatedBefore, terminated: model.terminated, people: model.people,
              ids: [...model.participants.keys()], statsIds: [...model.stats.keys()], nameOfA: model.nameOf('a'),
              nameOfGone: model.nameOf('b'), allowSelfUnmute: model.allowSelfUnmute };
console.log(JSON.stringify(out));
"""


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_node(env: dict[str, str]) -> dict:
    process = await asyncio.create_subprocess_exec(
        NODE, "--input-type=module", "-e", SCRIPT,
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), NODE_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode()
    return json.loads(stdout)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
async def test_the_api_client_and_the_call_model_under_node(server):
    token = admin_token(server)
    out = await run_node({
        "MM_JS": (WEB_DIR / "js").as_uri(),
        "MM_BASE": server.base_url,
        "MM_TOKEN": token,
        "MM_CLOSED": f"http://127.0.0.1:{closed_port()}",
    })

    # the API client: what it sent, and what it made of the server's answers
    assert server.registry.get(out["created"]).options.allow_self_unmute is False
    claims = server.signing_key.decode(out["joinToken"], audiences=("mediamute:whip",))
    assert claims["mm:kind"] == "join" and claims["mm:call"] == out["created"]
    create, invite, mute, tokenless, probe, unreachable = out["sent"]
    assert create == {"path": "/v1.0/communications/calls", "method": "POST", "authorization": f"Bearer {token}",
                      "contentType": "application/json", "body": '{"mediamute":{"allowSelfUnmute":false}}'}
    assert invite["path"] == f"/ext/calls/{out['created']}/joinTokens" and invite["authorization"] == f"Bearer {token}"
    assert mute["path"] == f"/v1.0/communications/calls/{out['created']}/participants/nobody/mute"
    assert json.loads(mute["body"]) == {"clientContext": "node-check"}
    assert tokenless["authorization"] is None and tokenless["body"] == "{}"
    assert probe == {"path": "/ext/calls/-/stats", "method": "GET", "authorization": None, "contentType": None, "body": None}
    assert unreachable["path"] == "/v1.0/communications/calls"
    # Graph's error envelope, as the server sent it, becomes the ApiError the page shows
    assert out["muteUnknown"]["isApiError"] and out["muteUnknown"]["status"] == 404
    assert out["muteUnknown"]["code"] == "itemNotFound" and out["muteUnknown"]["requestId"]
    assert "nobody" in out["muteUnknown"]["message"]
    assert out["noToken"]["isApiError"] and out["noToken"]["status"] == 401 and out["noToken"]["requestId"]
    assert out["needsToken"] is True
    assert out["unreachable"]["status"] == 0 and out["unreachable"]["code"] == "NetworkError"
    assert out["unreachable"]["message"].startswith("The server cannot be reached (")
    assert out["refusal"] == {"isApiError": True, "status": 403, "code": "Forbidden", "message": "no", "requestId": "r1"}
    assert out["refusalBare"]["message"] == "The event stream was refused." and out["refusalBare"].get("code") is None  # undefined

    # the call model: a newer roster entry wins, a stale one is ignored, a deletion says who left, another call's
    # resource and a tone notification change nothing, this call's termination says it ended
    model = out["model"]
    assert model["steps"] == {"newer": [], "stale": [], "deleted": [{"left": "b"}], "otherCall": [], "tone": [], "ended": [{"ended": True}]}
    assert out["keys"] == ["0", "9", "*", "#", "A", "D", "flash"]  # Graph's tone names as the keys pressed
    assert out["talking"] == [True, False, False]  # mediamute's extension property on a participant
    assert model["aMuted"] is True
    assert model["terminatedBefore"] is False and model["terminated"] is True
    assert model["ids"] == ["app", "a"] and model["statsIds"] == []
    assert model["people"] == 1  # the application is not a person
    assert model["nameOfA"] == "Ann" and model["nameOfGone"] == "b"
    assert model["allowSelfUnmute"] is False
