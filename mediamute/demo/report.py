"""What a demo run proves: mute-to-silence as each listener heard it (per-speaker pilot filter on the received
audio), frames of a muted participant found in any mix (contributor audit; must be 0), gate drops, late ticks,
the notifications, and a one-line verdict. Written as report.json and report.md."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis import first_time_above, sustained, tone_amplitudes
from ..media.gate import GateCounters
from .runner import ActionResult, DemoRun

PRESENT_FRACTION = 0.3
"""A speaker is heard in a frame when its pilot reaches this fraction of its level before the action."""
MUTE_ACTIONS = {"mute": "participant", "app-mute": "app"}
UNMUTE_ACTIONS = {"unmute", "self-unmute", "app-unmute"}


@dataclass
class MuteWindow:
    speaker: str
    speaker_id: str
    pilot_hz: float
    mute: ActionResult
    unmute: ActionResult | None
    end: float
    """Monotonic end of the window: the unmute's answer, or the end of the call."""
    server_mute_ms: float | None = None
    leaked_frames: int = 0
    heard_ms: dict[str, float | None] = field(default_factory=dict)
    unmute_heard_ms: dict[str, float | None] = field(default_factory=dict)


def pilot_of(run: DemoRun, name: str) -> float:
    if name == run.app_name:
        return run.scenario.call.app_pilot_hz
    return next(p.pilot_hz for p in run.scenario.participants if p.name == name) or 0.0


def final_gate(run: DemoRun, name: str) -> GateCounters | None:
    """A participant's gate counters as the call's last stats saw them (None if it was not in the roster)."""
    final = run.final_stats.get(name)
    return final.gate if final is not None else None


def mute_windows(run: DemoRun) -> list[MuteWindow]:
    windows = []
    for index, result in enumerate(run.actions):
        if result.spec.action not in MUTE_ACTIONS or not result.ok:
            continue
        unmute = next(
            (r for r in run.actions[index + 1 :] if r.spec.action in UNMUTE_ACTIONS and r.target == result.target and r.ok),
            None,
        )
        speaker_id = run.app_id if result.target == run.app_name else run.ids[result.target]
        windows.append(
            MuteWindow(
                speaker=result.target,
                speaker_id=speaker_id,
                pilot_hz=pilot_of(run, result.target),
                mute=result,
                unmute=unmute,
                end=unmute.answered_at if unmute else run.ended_at,
            )
        )
    return windows


def _heard_silence(times: np.ndarray, amps: np.ndarray, reference: float, start: float, end: float) -> float | None:
    """Arrival time of the first frame after which the speaker stays below threshold until `end`."""
    window = (times >= start) & (times < end)
    if not window.any():
        return None
    present = sustained(amps[window], PRESENT_FRACTION * reference)
    if not present.any():
        return float(times[window][0])
    last = np.flatnonzero(present)[-1]
    after = times[window][last + 1 :]
    return float(after[0]) if after.size else None


def analyse(run: DemoRun) -> list[MuteWindow]:
    windows = mute_windows(run)
    for window in windows:
        completed = window.mute.completed_server or window.mute.answered_at
        reopened = window.unmute.completed_server if window.unmute and window.unmute.completed_server else window.end
        after = [t for t in run.ticks if t.at >= completed]
        first_without = next((t for t in after if window.speaker_id not in t.contributors), None)
        if first_without is not None:
            window.server_mute_ms = (first_without.at - window.mute.sent_at) * 1000
        window.leaked_frames = sum(1 for t in run.ticks if completed < t.at < reopened and window.speaker_id in t.contributors)
        for listener, participant in run.participants.items():
            if listener == window.speaker or not participant.recording.frames:
                continue
            times, frames = participant.recording.window()
            amps = tone_amplitudes(frames, window.pilot_hz)
            before = amps[(times >= window.mute.sent_at - 1.0) & (times < window.mute.sent_at)]
            reference = float(np.median(before)) if before.size else 0.0
            if reference < 50:  # the speaker was not audible before the mute (silent, or not yet talking)
                window.heard_ms[listener] = None
                continue
            silent_at = _heard_silence(times, amps, reference, window.mute.sent_at, window.end)
            window.heard_ms[listener] = (silent_at - window.mute.sent_at) * 1000 if silent_at is not None else None
            if window.unmute is not None:
                back = first_time_above(times, amps, PRESENT_FRACTION * reference, window.unmute.sent_at)
                window.unmute_heard_ms[listener] = (back - window.unmute.sent_at) * 1000 if back is not None else None
    return windows


def notification_summary(run: DemoRun) -> list[dict[str, Any]]:
    rows = []
    for entry in run.sink.received:
        note = entry.notification
        data = note.get("resourceData")
        who: list[str] = []
        if isinstance(data, list):
            for participant in data:
                identity = participant.get("info", {}).get("identity", {})
                person = identity.get("user") or identity.get("application") or {}
                stream = (participant.get("mediaStreams") or [{}])[0]
                who.append(f"{person.get('displayName')} isMuted={participant.get('isMuted')} serverMuted={stream.get('serverMuted')}")
        elif isinstance(data, dict):
            who.append(f"call state={data.get('state')}")
        rows.append(
            {
                "t": round(entry.at - run.t0, 3),
                "changeType": note.get("changeType"),
                "resourceUrl": note.get("resourceUrl"),
                "summary": "; ".join(who),
                "signatureVerified": entry.verified,
            }
        )
    return rows


def build_report(run: DemoRun, windows: list[MuteWindow], max_mute_ms: float) -> dict[str, Any]:
    heard = [ms for w in windows for ms in w.heard_ms.values() if ms is not None]
    leaks = sum(w.leaked_frames for w in windows)
    failed = [f"{a.spec.action} {a.target} → HTTP {a.status}" for a in run.actions if not a.ok]
    unmeasured = [f"{w.speaker}→{listener}" for w in windows for listener, ms in w.heard_ms.items() if ms is None]
    unsigned = sum(1 for n in run.sink.received if not n.verified)
    problems = []
    if leaks:
        problems.append(f"{leaks} frames of a muted participant were mixed")
    if heard and max(heard) > max_mute_ms:
        problems.append(f"slowest mute-to-silence {max(heard):.0f} ms > {max_mute_ms:.0f} ms")
    if failed:
        problems.append("actions failed: " + ", ".join(failed))
    if unmeasured:
        problems.append("mute-to-silence not measurable for " + ", ".join(unmeasured))
    if unsigned:
        problems.append(f"{unsigned} notifications failed signature checks")
    if not windows:
        problems.append("the scenario muted nobody")
    verdict_ok = not problems
    verdict = (
        f"PASS: {len(windows)} mute(s), 0 leaked frames, every listener heard silence within "
        f"{max(heard):.0f} ms (limit {max_mute_ms:.0f} ms)"
        if verdict_ok and heard
        else "FAIL: " + "; ".join(problems)
    )
    return {
        "title": run.scenario.title,
        "callId": run.call_id,
        "durationSeconds": run.scenario.duration,
        "wallSeconds": round(run.wall_seconds, 2),
        "participants": [
            {
                "name": name,
                "id": run.ids.get(name),
                "pilotHz": pilot_of(run, name),
                "gateDroppedPackets": gate.dropped_packets if (gate := final_gate(run, name)) else None,
                "gatePassedPackets": gate.passed_packets if gate else None,
            }
            for name in [*run.participants, run.app_name]
        ],
        "actions": [
            {
                "at": a.spec.at,
                "action": a.spec.action,
                "target": a.target,
                "label": a.spec.label,
                "status": a.status,
                "requestMs": round((a.answered_at - a.sent_at) * 1000, 1),
            }
            for a in run.actions
        ],
        "mutes": [
            {
                "speaker": w.speaker,
                "mutedAt": round(w.mute.sent_at - run.t0, 3),
                "unmutedAt": round(w.unmute.sent_at - run.t0, 3) if w.unmute else None,
                "serverMuteMs": round(w.server_mute_ms, 1) if w.server_mute_ms is not None else None,
                "leakedFrames": w.leaked_frames,
                "heardMuteToSilenceMs": {k: (round(v, 1) if v is not None else None) for k, v in w.heard_ms.items()},
                "heardUnmuteToAudioMs": {k: (round(v, 1) if v is not None else None) for k, v in w.unmute_heard_ms.items()},
            }
            for w in windows
        ],
        "leakedFramesTotal": leaks,
        "maxHeardMuteToSilenceMs": round(max(heard), 1) if heard else None,
        "lateTicks": run.late_ticks,
        "ticks": run.clock_ticks,
        "notifications": notification_summary(run),
        "verdict": verdict,
        "ok": verdict_ok,
    }


def write_markdown(report: dict[str, Any], path: Path) -> None:
    lines = [f"# {report['title']}", "", f"**{report['verdict']}**", ""]
    lines += [
        f"Call `{report['callId']}`, {report['durationSeconds']:g} s scenario, {report['ticks']} mixer ticks, "
        f"{report['lateTicks']} late; server start to call end took {report['wallSeconds']:.1f} s.",
        "",
        "## Mutes",
        "",
        "| speaker | muted at | server: first mix without (ms) | frames leaked | heard silence (ms, per listener) | heard again after unmute (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for m in report["mutes"]:
        heard = ", ".join(f"{k} {v:.0f}" if v is not None else f"{k} n/a" for k, v in m["heardMuteToSilenceMs"].items())
        back = ", ".join(f"{k} {v:.0f}" if v is not None else f"{k} n/a" for k, v in m["heardUnmuteToAudioMs"].items()) or "—"
        server = f"{m['serverMuteMs']:.1f}" if m["serverMuteMs"] is not None else "n/a"
        lines.append(f"| {m['speaker']} | {m['mutedAt']:.2f} s | {server} | {m['leakedFrames']} | {heard} | {back} |")
    lines += ["", "## Gates", "", "| participant | packets passed | packets dropped |", "|---|---|---|"]
    for p in report["participants"]:
        lines.append(f"| {p['name']} | {p['gatePassedPackets']} | {p['gateDroppedPackets']} |")
    lines += ["", "## Actions", "", "| t (s) | action | target | HTTP | took (ms) |", "|---|---|---|---|---|"]
    for a in report["actions"]:
        status = a["status"] if a["status"] is not None else "—"
        lines.append(f"| {a['at']:.1f} | {a['action']} | {a['target']} | {status} | {a['requestMs']:.1f} |")
    lines += ["", "## Notifications received by the callback", ""]
    for n in report["notifications"]:
        mark = "signed ✓" if n["signatureVerified"] else "UNVERIFIED"
        lines.append(f"- {n['t']:6.2f} s `{n['changeType']}` {n['resourceUrl']} — {n['summary']} ({mark})")
    lines += [
        "",
        "How it is measured: every voice carries a faint pilot tone above the speech band; the listener's received "
        "audio is filtered at the muted speaker's pilot, and mute-to-silence is the time from sending the mute request "
        "to the first received frame after which that speaker stays silent. Leaked frames come from the server's "
        "contributor audit (which participants went into each 20 ms mix).",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_outputs(run: DemoRun, out: Path, max_mute_ms: float) -> dict[str, Any]:
    """Write the WAVs, notifications.jsonl, timeline.png, report.json and report.md; return the report."""
    from .timeline import plot_timeline

    out.mkdir(parents=True, exist_ok=True)
    windows = analyse(run)
    for name, participant in run.participants.items():
        participant.recording.save_wav(out / f"heard-by-{name.lower()}.wav")
    with (out / "notifications.jsonl").open("w", encoding="utf-8") as handle:
        for entry in run.sink.received:
            handle.write(json.dumps({"t": round(entry.at - run.t0, 4), "signatureVerified": entry.verified, **entry.notification}) + "\n")
    plot_timeline(run, windows, out / "timeline.png")
    report = build_report(run, windows, max_mute_ms)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_markdown(report, out / "report.md")
    return report
