"""Issue 12's "done means": the sample bot flow (samples/bot_flow.py: prompt → record → tones → hold → invite → mute,
with the documentation's request bodies) run as its own process against a real `mediamute serve` process on a free
loopback port, and what it recorded (`--json`) checked step by step; plus the create-call answer the flow showed was
not Graph's (no `Location`, the bot's `source` replaced), in-process."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mediamute.tokens import SigningKey

from .cluster_nodes import code_env
from .helpers import CALLS, assert_graph_error

bot_flow = importlib.import_module("mediamute.samples.bot_flow")  # samples/ is mediamute/samples/ (package data)
SAMPLE = Path(bot_flow.__file__)

LISTENING = re.compile(rb"listening on (http://127\.0\.0\.1:\d+)")
START_TIMEOUT = 30.0

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def mediamute_serve(key_file: Path, workdir: Path) -> AsyncIterator[str]:
    """`mediamute serve` as a user starts it (the code under test, a free port, a key file of its own); yields its
    URL once it says it listens, stops it by PID (SIGTERM, then SIGKILL)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mediamute.cli", "serve", "--port", "0", "--key-file", str(key_file),
        "--log-level", "warning", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=code_env(), cwd=workdir,
    )
    output: list[bytes] = []
    drainer: asyncio.Task[None] | None = None
    assert process.stdout is not None
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while not (found := LISTENING.search(b"".join(output))):
                line = await process.stdout.readline()
                if not line:
                    raise RuntimeError(f"mediamute serve exited with {await process.wait()}: {b''.join(output)[-2000:]!r}")
                output.append(line)

        async def drain() -> None:  # keep reading, so the server never blocks on a full pipe
            assert process.stdout is not None
            while line := await process.stdout.readline():
                output.append(line)

        drainer = asyncio.get_running_loop().create_task(drain())
        yield found[1].decode()
        assert process.returncode is None, f"the server died during the flow: {b''.join(output)[-2000:]!r}"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        if drainer is not None:
            await asyncio.wait_for(drainer, 5)
    assert b"Traceback" not in b"".join(output), b"".join(output)[-3000:].decode(errors="replace")


# (step, HTTP status, @odata.type, status as answered, status in the completing notification)
EXPECTED_STEPS = [
    ("create call", 201, "#microsoft.graph.call", None, None),
    ("invite", 200, "#microsoft.graph.inviteParticipantsOperation", "running", "completed"),
    ("caller joins", 201, None, None, None),
    ("playPrompt", 200, "#microsoft.graph.playPromptOperation", "running", "completed"),
    ("recordResponse", 200, "#microsoft.graph.recordOperation", "running", "completed"),
    ("subscribeToTone", 200, "#microsoft.graph.subscribeToToneOperation", "completed", None),
    ("sendDtmfTones", 200, "#microsoft.graph.sendDtmfTonesOperation", "running", "completed"),
    ("startHoldMusic", 202, "#microsoft.graph.startHoldMusicOperation", "running", "completed"),
    ("stopHoldMusic", 202, "#microsoft.graph.stopHoldMusicOperation", "running", "completed"),
    ("mute", 200, "#microsoft.graph.muteParticipantOperation", "completed", None),
    ("unmute", 200, "#microsoft.graph.unmuteParticipantOperation", "completed", None),
    ("hang up", 204, None, None, None),
]


async def test_the_sample_bot_flow_runs_against_mediamute_serve(tmp_path):
    """The README's two commands: `mediamute serve`, then `python samples/bot_flow.py --server … --token … --json …`
    (a process of its own, as a bot is: it shares no state with this test's process)."""
    key_file = tmp_path / "signing-key.pem"
    token = SigningKey.load_or_create(key_file).app_token(list(bot_flow.ROLES))  # as `mediamute token --role …`
    record = tmp_path / "flow.json"
    async with mediamute_serve(key_file, tmp_path) as url:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(SAMPLE), "--server", url, "--token", token, "--json", str(record),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=code_env(), cwd=tmp_path,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, stderr.decode(errors="replace")[-3000:]
    lines = stdout.decode().splitlines()
    flow = json.loads(record.read_text())
    assert flow["failure"] is None
    steps = {step["name"]: step for step in flow["steps"]}
    assert [step["name"] for step in flow["steps"]] == [e[0] for e in EXPECTED_STEPS]
    for name, status, odata_type, answered, final in EXPECTED_STEPS:
        step = steps[name]
        got = (step["status"], step["odata_type"], step["operation_status"], step["final_status"])
        assert got == (status, odata_type, answered, final), name
        if final is not None:
            assert 0 < step["completed_after"] < bot_flow.WAIT + bot_flow.RECORD_SECONDS + 6, name
    assert len(lines) == len(EXPECTED_STEPS) + 1 and lines[3].startswith(" 4 playPrompt")
    assert lines[-1].startswith(f"bot flow done: {len(EXPECTED_STEPS)} steps")

    # the prompt played whole (prompt.wav lasts 5.09 s) before it was completed
    assert steps["playPrompt"]["completed_after"] >= 5.0
    assert steps["playPrompt"]["details"]["resultInfo"]["code"] == 200
    # the recording: the max duration reached (Graph's 200/8515), downloaded with its token, the invitee's voice in it
    details = steps["recordResponse"]["details"]
    assert details["completionReason"] == "maxRecordDurationReached"
    assert (details["resultInfo"]["code"], details["resultInfo"]["subcode"]) == (200, 8515)
    recording = details["recording"]
    assert (recording["rate"], recording["channels"], recording["sample_bits"]) == (16_000, 1, 16)
    assert recording["seconds"] == pytest.approx(bot_flow.RECORD_SECONDS, abs=0.03)
    assert recording["rms_dbfs"] >= bot_flow.RECORDING_MIN_DBFS
    assert details["contentType"] == "application/octet-stream"
    # the caller's keys arrived as Graph's tone notifications, in order, with increasing sequenceIds
    tones = steps["subscribeToTone"]["details"]["tones"]
    assert [t["tone"] for t in tones] == bot_flow.CALLER_TONES
    sequence = [t["sequenceId"] for t in tones]
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence)
    assert steps["sendDtmfTones"]["details"]["completionReason"] == "completedSuccessfully"
    # hold: the roster said so both ways
    assert steps["startHoldMusic"]["details"]["direction"] == "receiveOnly"
    assert steps["stopHoldMusic"]["details"]["direction"] == "sendReceive"
    # the mute: the documented roster notification, isMuted and the stream's serverMuted; then lifted
    muted, unmuted = steps["mute"]["details"]["participant"], steps["unmute"]["details"]["participant"]
    assert (muted["isMuted"], muted["mediaStreams"][0]["serverMuted"]) == (True, True)
    assert (unmuted["isMuted"], unmuted["mediaStreams"][0]["serverMuted"]) == (False, False)
    assert muted["id"] == unmuted["id"] == steps["invite"]["details"]["participantId"]
    assert muted["info"]["identity"]["user"]["id"] == bot_flow.INVITEE_ID
    location = rf"http://127\.0\.0\.1:\d+/v1\.0/communications/calls/{flow['callId']}/operations/[0-9a-f-]{{36}}"
    assert re.fullmatch(location, steps["mute"]["details"]["location"])

    # every callback verified; the last is the call's end
    exchanges = flow["exchanges"]
    batches = [e for e in exchanges if e["kind"] == "notification"]
    assert batches and all(batch["verified"] is True for batch in batches)
    last = batches[-1]["body"]["value"][-1]
    assert (last["changeType"], last["resourceUrl"], last["resourceData"]["state"]) == (
        "deleted", f"/communications/calls/{flow['callId']}", "terminated")
    # the create body was exactly the documentation's example 3 but for its callbackUri
    created = next(e for e in exchanges if e["kind"] == "request" and e["path"] == CALLS)
    assert created["body"] == bot_flow.create_call_body(created["body"]["callbackUri"])


async def test_create_call_answers_as_graph_documents_it(api, api_http):
    """Graph's create-call example 3 verbatim: 201 with a Location naming the call, and the bot's `source` echoed
    (its application identity becomes the app's participant); `mediamute.appDisplayName` still wins; a source
    whose displayName is not a string is a 400 naming the field."""
    body = bot_flow.create_call_body("https://bot.contoso.com/callback")
    body.pop("callbackUri")  # not on this machine
    response = await api_http.post(CALLS, json=body)
    assert response.status_code == 201, response.text
    call = response.json()
    assert response.headers["Location"] == f"{api.base_url}{CALLS}/{call['id']}"
    assert (await api_http.get(response.headers["Location"])).json()["id"] == call["id"]
    sent = body["source"]["identity"]["application"]
    assert call["source"]["identity"]["application"] | {"@odata.type": "#microsoft.graph.identity"} == {
        "@odata.type": "#microsoft.graph.identity", "displayName": sent["displayName"], "id": sent["id"]}
    roster = (await api_http.get(f"{CALLS}/{call['id']}/participants")).json()["value"]
    (app,) = [p for p in roster if p["id"] == call["myParticipantId"]]
    assert app["info"]["identity"]["application"]["displayName"] == "TestBot"

    named = await api_http.post("/beta/communications/calls", json=body | {"mediamute": {"appDisplayName": "IVR"}})
    assert named.headers["Location"].endswith(f"/beta/communications/calls/{named.json()['id']}")
    assert named.json()["source"]["identity"]["application"] | {"@odata.type": None} == {
        "@odata.type": None, "displayName": "IVR", "id": sent["id"]}
    plain = (await api_http.post(CALLS, json={})).json()
    assert plain["source"]["identity"]["application"]["displayName"] == "mediamute application"

    bad = body | {"source": {"identity": {"application": {"displayName": 7}}}}
    assert_graph_error(await api_http.post(CALLS, json=bad), 400, "BadRequest",
                       "source.identity.application.displayName: must be a string")
    assert len(api.registry.calls) == 3  # nothing created by the refused one
