"""`mediamute demo` end to end through the real CLI (shortened scenario), bad scenarios, and `mediamute join`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from mediamute.analysis import tone_amplitudes
from mediamute.calls.call import TONE_RECEIVED
from mediamute.demo.scenario import ScenarioError, load_scenario

from .helpers import A, admin_token, join_all, leave_all, tones

pytestmark = pytest.mark.integration
DATA = Path(__file__).parent / "data"
CLI = [sys.executable, "-m", "mediamute.cli"]


def run_demo(scenario: Path, out: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`mediamute demo` on a scenario file, without the live view, as its own process."""
    return subprocess.run([*CLI, "demo", "--scenario", str(scenario), "--out", str(out), "--no-live"],
                          capture_output=True, text=True, timeout=timeout)


def test_demo_runs_the_scenario_and_proves_the_mute(tmp_path):
    out = tmp_path / "demo"
    done = run_demo(DATA / "short-scenario.toml", out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS" in done.stdout
    for name in ("report.json", "report.md", "timeline.png", "notifications.jsonl",
                 "heard-by-alice.wav", "heard-by-bob.wav", "heard-by-carol.wav", "heard-by-dave.wav"):
        assert (out / name).is_file(), name

    import matplotlib.image

    image = matplotlib.image.imread(out / "timeline.png")
    assert image.shape[:2] == (825, 1320)  # 12 x 7.5 in at 110 dpi
    assert image.std() > 0.05  # not a blank canvas

    report = json.loads((out / "report.json").read_text())
    assert report["ok"] is True and report["verdict"].startswith("PASS")
    assert report["leakedFramesTotal"] == 0
    assert [m["speaker"] for m in report["mutes"]] == ["Bob", "Contoso bot"]
    bob = report["mutes"][0]
    assert set(bob["heardMuteToSilenceMs"]) == {"Alice", "Carol", "Dave"}  # Dave joined late, by a scenario action
    for mute in report["mutes"]:
        assert mute["leakedFrames"] == 0
        # made after the request was sent (one clock for both) and by the next tick or the one after
        assert mute["serverMuteMs"] is not None and 0 < mute["serverMuteMs"] <= 40
        for listener, ms in mute["heardMuteToSilenceMs"].items():
            assert ms is not None and 0 < ms < 250, (mute["speaker"], listener, ms)
    assert bob["serverUnmuteMs"] is not None and 0 < bob["serverUnmuteMs"] < 400  # Bob is mixed again
    assert report["mutes"][1]["serverUnmuteMs"] is None  # the app was never unmuted
    for listener, ms in bob["heardUnmuteToAudioMs"].items():
        assert ms is not None and ms < 400, (listener, ms)
    gates = {p["name"]: p for p in report["participants"]}
    assert gates["Bob"]["gateDroppedPackets"] > 40 and gates["Alice"]["gateDroppedPackets"] == 0

    with wave.open(str(out / "heard-by-alice.wav")) as wav:
        assert wav.getframerate() == 48000 and wav.getnframes() > 48000 * 3

    notes = [json.loads(line) for line in (out / "notifications.jsonl").read_text().splitlines()]
    assert all(n["signatureVerified"] for n in notes)
    roster = [
        (n["resourceData"][0]["info"]["identity"].get("user") or n["resourceData"][0]["info"]["identity"]["application"])["displayName"]
        + (" left" if n["changeType"] == "deleted" else " muted" if n["resourceData"][0]["isMuted"] else " live")
        + (" talking" if n["resourceData"][0]["mediamute"]["talkingWhileMuted"] else "")
        for n in notes
        if n["resourceUrl"].endswith("/participants")
    ]
    assert roster == [  # Bob's voice goes on while he is muted: talking while muted, until he unmutes himself
        "Alice live", "Bob live", "Carol live", "Dave live", "Bob muted", "Bob muted talking", "Bob live",
        "Contoso bot muted", "Carol left",
    ]
    (episode,) = report["talkingWhileMuted"]
    assert episode["participant"] == "Bob" and episode["ended"] == "unmuted"
    assert bob["mutedAt"] < episode["from"] < episode["to"] and episode["to"] >= bob["unmutedAt"]
    # the application's prompt: Graph's playPrompt, answered running, completed by its notification once played
    (prompt,) = report["operations"]
    assert (prompt["action"], prompt["operation"], prompt["answered"], prompt["status"]) == (
        "app-play", "playPromptOperation", "running", "completed")
    assert prompt["resultInfo"] == {"code": 200, "subcode": 0, "message": "Action completed successfully."}
    assert prompt["completionReason"] == "completedSuccessfully" and 5.0 < prompt["notifiedAt"] < 6.0  # 5.1 s long
    ended = [n for n in notes if n["resourceUrl"].endswith(f"/operations/{prompt['id']}")]
    assert len(ended) == 1 and ended[0]["changeType"] == "deleted"
    assert ended[0]["resourceData"]["@odata.type"] == "#microsoft.graph.playPromptOperation"
    assert "playPromptOperation" in (out / "report.md").read_text()
    assert notes[0]["resourceData"]["state"] == "established"
    assert notes[-1]["changeType"] == "deleted" and notes[-1]["resourceData"]["state"] == "terminated"
    times = [n["t"] for n in notes]
    assert times == sorted(times)


def test_the_bad_network_demo_shows_the_lossy_voice_rebuilt_and_concealed_and_its_mute_leaks_nothing(tmp_path):
    out = tmp_path / "bad"
    done = run_demo(DATA / "short-bad-network-scenario.toml", out)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["ok"] is True and report["leakedFramesTotal"] == 0
    carol_mute = report["mutes"][0]
    assert carol_mute["speaker"] == "Carol" and set(carol_mute["heardMuteToSilenceMs"]) == {"Alice", "Bob"}
    people = {p["name"]: p for p in report["participants"]}
    carol = people["Carol"]
    assert carol["network"] == {"preset": "lossy", "seed": 5}
    # ~10 % of her packets lost on the way in: each such frame rebuilt by FEC or concealed on the server, and her own
    # lossy downlink concealed at her end; the others, on a clean network, almost none
    assert carol["serverRecoveredFrames"] + carol["serverConcealedFrames"] >= 5, carol
    assert carol["heardConcealedFrames"] >= 5, carol
    assert report["concealedFramesTotal"] + report["recoveredFramesTotal"] >= 5
    for name in ("Alice", "Bob"):
        assert people[name]["serverConcealedFrames"] <= 5 and people[name]["network"] is None
    assert "## Losses and how they were met" in (out / "report.md").read_text()
    assert "Carol (" in done.stdout and "rebuilt by FEC" in done.stdout


def test_the_shipped_bad_network_scenario_is_found_by_name_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scenario = load_scenario("bad-network-scenario.toml")
    carol = next(p for p in scenario.participants if p.name == "Carol")
    assert carol.network == "lossy"
    assert [a.action for a in scenario.actions] == ["mute", "unmute", "mute", "network"]


@pytest.mark.parametrize(
    "content, suffix, message",
    [
        ('duration = 5\n[[participants]]\nname="A"\nsource="alice.wav"\n[[participants]]\nname="B"\nsource="bob.wav"\n'
         '[[actions]]\nat = 1\naction = "mute"\nparticipant = "Bobby"\n', ".toml",
         "actions[0].participant: 'Bobby' is not a participant (A, B)"),
        ('duration = 5\n[[participants]]\nname="A"\nsource="alice.wav"\n[[participants]]\nname="B"\nsource="nope.wav"\n',
         ".toml", "participants[1].source: 'nope.wav' is not"),
        ('{"duration": 5, "participants": [{"name": "A", "source": "silence"}, {"name": "B", "source": "silence"}],'
         ' "actions": [{"at": 9, "action": "mute", "participant": "A"}]}', ".json",
         "actions[0].at: 9.0 s is after the end of the scenario"),
        ('duration = 5\nparticipants = [{name = "A", source = "silence", volume = 3}]\n', ".toml",
         "participants[0].volume: Extra inputs are not permitted"),
        ("duration = [", ".toml", "not valid TOML"),
        ('{"participants": []}', ".json", "duration: Field required"),
    ],
)
def test_a_bad_scenario_is_refused_precisely_before_anything_starts(tmp_path, content, suffix, message):
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    done = run_demo(path, tmp_path / "o", timeout=60)
    assert done.returncode == 2
    assert message.split(":")[0] in " ".join(done.stdout.split())
    assert not (tmp_path / "o").exists()


def test_the_default_scenario_is_valid():
    scenario = load_scenario()
    assert [p.name for p in scenario.participants] == ["Alice", "Bob", "Carol", "Dave"]
    assert [a.action for a in scenario.actions] == ["mute", "app-play", "self-unmute", "app-mute"]
    assert scenario.actions[0].client_context == "d45324c1-fcb5-430a-902c-f20af696537c"


async def test_join_client_against_a_served_call(server, http, call_id, tmp_path):
    (listener,) = await join_all(server, call_id, tones(440))
    pressed: list[tuple[str, str]] = []
    server.registry.events.on(TONE_RECEIVED, lambda call, participant, tone: pressed.append((participant.display_name, tone)))
    record = tmp_path / "heard.wav"
    process = await asyncio.create_subprocess_exec(
        *CLI, "join", server.base_url, "--call", call_id, "--tone", "880", "--record", str(record),
        "--duration", "2.5", "--name", "terminal", "--token", admin_token(server), "--dtmf", "5#", "--dtmf-at", "0.5",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, output.decode()
        assert b"joined call" in output and b"pressed 5#" in output
        assert pressed == [("terminal", "tone5"), ("terminal", "pound")]
        with wave.open(str(record)) as wav:
            heard = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        frames = [heard[i : i + 960] for i in range(48000, heard.size - 960, 960)]
        assert float(np.median(tone_amplitudes(frames, 440))) == pytest.approx(A, rel=0.1)
        times, frames = listener.recording.window()
        amps = tone_amplitudes(frames, 880)
        assert (amps > 0.8 * A).sum() > 50  # the listener heard the terminal participant's tone for > 1 s
    finally:
        await leave_all([listener])


async def test_join_client_reports_a_refused_join(server, call_id):
    done = await asyncio.create_subprocess_exec(
        *CLI, "join", server.base_url, "--call", call_id, "--tone", "880", "--duration", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(done.communicate(), 60)
    assert done.returncode == 1
    assert b"HTTP 401" in output and b"Access token is empty" in output


def test_a_scenario_sets_networks_at_join_and_at_a_time(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text(
        'duration = 5\n[[participants]]\nname = "A"\nsource = "silence"\nnetwork = "wifi"\n'
        '[[participants]]\nname = "B"\nsource = "silence"\n'
        '[[actions]]\nat = 1\naction = "network"\nparticipant = "B"\nprofile = "lossy"\n'
        '[[actions]]\nat = 2\naction = "network"\nparticipant = "A"\nuplink = {loss = 0.2, seed = 3}\n'
    )
    scenario = load_scenario(path)
    assert scenario.participants[0].network == "wifi"
    assert scenario.actions[0].network_body() == {"uplink": "lossy", "downlink": "lossy"}
    assert scenario.actions[1].network_body() == {"uplink": {"loss": 0.2, "seed": 3}}


@pytest.mark.parametrize(
    "action, message",
    [
        ('action = "network"\nparticipant = "B"\nuplink = {loss = 2}', "actions[0].uplink.loss: must be at most 1, got 2"),
        ('action = "network"\nparticipant = "B"\nprofile = "satellite"', "actions[0].profile: unknown network preset 'satellite'"),
        ('action = "network"\nparticipant = "B"', "actions[0].profile: 'network' needs a profile"),
        ('action = "network"\nparticipant = "B"\nprofile = "wifi"\ndownlink = "good"', "give either profile"),
        ('action = "mute"\nparticipant = "B"\nprofile = "wifi"', "actions[0].profile: only a 'network' action takes a profile"),
        ('action = "network"\nprofile = "wifi"', "actions[0].participant: 'network' needs a participant"),
    ],
)
def test_a_bad_network_in_a_scenario_is_refused_naming_the_field(tmp_path, action, message):
    path = tmp_path / "bad.toml"
    path.write_text(
        'duration = 5\n[[participants]]\nname = "A"\nsource = "silence"\n[[participants]]\nname = "B"\n'
        f'source = "silence"\n[[actions]]\nat = 1\n{action}\n'
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert message in str(caught.value)


def test_join_and_bench_refuse_a_bad_network_before_starting():
    join = subprocess.run([*CLI, "join", "http://127.0.0.1:9", "--call", "c", "--network", '{"uplink": {"loss": 2}}'],
                          capture_output=True, text=True, timeout=60)
    assert join.returncode == 2
    assert "--network.uplink.loss: must be at most 1, got 2" in " ".join(join.stdout.split())
    bench = subprocess.run([*CLI, "bench", "--network", "wifi", "--network-role", "listener"], capture_output=True, text=True, timeout=60)
    assert bench.returncode == 2 and "'listener' is not a role" in " ".join((bench.stdout + bench.stderr).split())
