"""What a demo run proves: mute-to-silence as each listener heard it (per-speaker pilot filter on the received
audio), frames of a muted participant found in any mix (contributor audit; must be 0), gate drops, late ticks,
who talked while muted (and when), the notifications, and a one-line verdict. Written as report.json and report.md.

Every server-side figure is a question put to the run's `ContributorAudit`, which judges a tick by when its mix
was made: a tick that runs late across a mute or an unmute is filed on the side of the edge where it took its
frames, so a re-opened participant in a late tick is not a leak and a muted one in it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis import first_time_above, sustained, tone_amplitudes
from ..media.audit import ContributorAudit
from ..media.gate import GateCounters
from .callbacks import summarize
from .model import DemoRun, MuteWindow
from .timeline import plot_timeline

PRESENT_FRACTION = 0.3
"""A speaker is heard in a frame when its pilot reaches this fraction of its level before the action."""
MUTE_ACTIONS = {"mute", "app-mute"}
UNMUTE_ACTIONS = {"unmute", "self-unmute", "app-unmute"}
AUDIBLE_REFERENCE = 50.0
"""Below this pilot amplitude before the mute, the speaker was not audible (silent, or not yet talking)."""


# the mute windows -------------------------------------------------------------------------------------------
def mute_windows(run: DemoRun) -> list[MuteWindow]:
    """One window per successful mute, closed by the next successful unmute of the same speaker (if any)."""
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
                pilot_hz=run.pilot_of(result.target),
                mute=result,
                unmute=unmute,
                end=unmute.answered_at if unmute else run.ended_at,
            )
        )
    return windows


# the server side: the contributor audit ---------------------------------------------------------------------
def run_audit(run: DemoRun) -> ContributorAudit:
    """The run's contributor audit, rebuilt from every recorded tick in a ring that drops none of them."""
    audit = ContributorAudit(capacity=max(1, len(run.ticks)))
    for record in run.ticks:
        audit.append(record)
    return audit


def judge_mix(window: MuteWindow, audit: ContributorAudit) -> None:
    """Server-side figures of one window: leaked frames between the gate closing and re-opening, and how long
    after each request the first mix without (and then with) the speaker was made."""
    closed = window.mute.completed_server or window.mute.answered_at
    reopened = window.unmute.completed_server if window.unmute and window.unmute.completed_server else window.end
    window.leaked_frames = audit.frames_from(window.speaker_id, closed, reopened)
    without = audit.first_without(window.speaker_id, closed)
    if without is not None:
        window.server_mute_ms = (without.mixed_at - window.mute.sent_at) * 1000
    if window.unmute is not None and window.unmute.completed_server:
        back = audit.first_with(window.speaker_id, reopened)
        if back is not None:
            window.server_unmute_ms = (back.mixed_at - window.unmute.sent_at) * 1000


# the listeners' side: the received audio --------------------------------------------------------------------
def _heard_silence(times: np.ndarray, amps: np.ndarray, reference: float, start: float, end: float) -> float | None:
    """Playout time of the first frame in [start, end) after which the speaker stays below threshold until `end`.

    Runs of presence are found over the whole recording, then cut to the window: the frame played right at `start`
    that ends a run begun before it is the speaker heard, not a one-frame click."""
    window = (times >= start) & (times < end)
    if not window.any():
        return None
    present = sustained(amps, PRESENT_FRACTION * reference)[window]
    if not present.any():
        return float(times[window][0])
    last = np.flatnonzero(present)[-1]
    after = times[window][last + 1 :]
    return float(after[0]) if after.size else None


def _since_ms(at: float | None, start: float) -> float | None:
    return (at - start) * 1000 if at is not None else None


def judge_listeners(window: MuteWindow, run: DemoRun) -> None:
    """For every other listener with a recording: how long after the mute (and the unmute) the speaker's pilot
    went silent (and came back) in what it received. None where the speaker was not audible before the mute."""
    for listener, participant in run.participants.items():
        if listener == window.speaker or not participant.recording.frames:
            continue
        times, frames = participant.recording.window()
        amps = tone_amplitudes(frames, window.pilot_hz)
        before = amps[(times >= window.mute.sent_at - 1.0) & (times < window.mute.sent_at)]
        reference = float(np.median(before)) if before.size else 0.0
        if reference < AUDIBLE_REFERENCE:
            window.heard_ms[listener] = None
            continue
        silent_at = _heard_silence(times, amps, reference, window.mute.sent_at, window.end)
        window.heard_ms[listener] = _since_ms(silent_at, window.mute.sent_at)
        if window.unmute is not None:
            back = first_time_above(times, amps, PRESENT_FRACTION * reference, window.unmute.sent_at)
            window.unmute_heard_ms[listener] = _since_ms(back, window.unmute.sent_at)


def analyse(run: DemoRun) -> list[MuteWindow]:
    """Every mute window of the run, judged on the audit and on what each listener received."""
    windows = mute_windows(run)
    audit = run_audit(run)
    for window in windows:
        judge_mix(window, audit)
        judge_listeners(window, run)
    return windows


# the report -------------------------------------------------------------------------------------------------
def notification_summary(run: DemoRun) -> list[dict[str, Any]]:
    return [
        {
            "t": round(entry.at - run.t0, 3),
            "changeType": entry.notification.get("changeType"),
            "resourceUrl": entry.notification.get("resourceUrl"),
            "summary": summarize(entry.notification),
            "signatureVerified": entry.verified,
        }
        for entry in run.sink.received
    ]


def operations_section(run: DemoRun) -> list[dict[str, Any]]:
    """Every action answered with a running operation (the app's playPrompt), and how it ended, from the
    completing notification the callback received (Graph's `deleted` on the operation)."""
    rows = []
    for result in run.actions:
        body = result.body
        if not (isinstance(body, dict) and body.get("status") == "running" and "id" in body):
            continue
        suffix = f"/operations/{body['id']}"
        note = next((n for n in run.sink.received if str(n.notification.get("resourceUrl", "")).endswith(suffix)), None)
        data = (note.notification.get("resourceData") or {}) if note is not None else {}
        info = data.get("resultInfo") or {}
        rows.append(
            {
                "at": result.spec.at,
                "action": result.spec.action,
                "label": result.spec.label,
                "operation": str(body.get("@odata.type", "")).rsplit(".", 1)[-1],
                "id": body["id"],
                "answered": body["status"],
                "status": data.get("status"),
                "resultInfo": {k: info.get(k) for k in ("code", "subcode", "message")} if info else None,
                "completionReason": data.get("completionReason"),
                "notifiedAt": round(note.at - run.t0, 3) if note is not None else None,
            }
        )
    return rows


def heard_times(windows: list[MuteWindow]) -> list[float]:
    """Every measured mute-to-silence (ms), over all windows and listeners."""
    return [ms for w in windows for ms in w.heard_ms.values() if ms is not None]


def problems(run: DemoRun, windows: list[MuteWindow], max_mute_ms: float) -> list[str]:
    """Everything that makes the run fail, in words; empty for a pass."""
    heard = heard_times(windows)
    leaks = sum(w.leaked_frames for w in windows)
    failed = [f"{a.spec.action} {a.target} → HTTP {a.status}" for a in run.actions if not a.ok]
    unmeasured = [f"{w.speaker}→{listener}" for w in windows for listener, ms in w.heard_ms.items() if ms is None]
    unsigned = sum(1 for n in run.sink.received if not n.verified)
    found = []
    for operation in operations_section(run):
        if operation["status"] is None:
            found.append(f"{operation['operation']} of {operation['at']:g} s never completed (no notification)")
        elif operation["status"] != "completed":
            found.append(f"{operation['operation']} of {operation['at']:g} s {operation['status']}: {(operation['resultInfo'] or {}).get('message')}")
    if leaks:
        found.append(f"{leaks} frames of a muted participant were mixed")
    if heard and max(heard) > max_mute_ms:
        found.append(f"slowest mute-to-silence {max(heard):.0f} ms > {max_mute_ms:.0f} ms")
    if failed:
        found.append("actions failed: " + ", ".join(failed))
    if unmeasured:
        found.append("mute-to-silence not measurable for " + ", ".join(unmeasured))
    if windows and not heard and not unmeasured:
        found.append("no listener recorded the muted speakers")
    if unsigned:
        found.append(f"{unsigned} notifications failed signature checks")
    if not windows:
        found.append("the scenario muted nobody")
    return found


def verdict(windows: list[MuteWindow], found: list[str], max_mute_ms: float) -> str:
    if found:
        return "FAIL: " + "; ".join(found)
    return (
        f"PASS: {len(windows)} mute(s), 0 leaked frames, every listener heard silence within "
        f"{max(heard_times(windows)):.0f} ms (limit {max_mute_ms:.0f} ms)"
    )


def _ms(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def final_gate(run: DemoRun, name: str) -> GateCounters | None:
    """A participant's gate counters as the call's last stats saw them (None if it was not in the roster)."""
    final = run.final_stats.get(name)
    return final.gate if final is not None else None


def participants_section(run: DemoRun) -> list[dict[str, Any]]:
    repaired = run.repaired_ticks()
    networks = {spec.name: spec.network for spec in run.scenario.participants}
    out = []
    for name in [*run.participants, run.app_name]:
        pid = run.ids.get(name) if name != run.app_name else run.app_id
        gate = final_gate(run, name)
        listener = run.participants.get(name)
        heard = listener.jitter_stats().counters if listener is not None else None
        out.append({
            "name": name,
            "id": pid,
            "pilotHz": run.pilot_of(name),
            "network": networks.get(name),
            "gateDroppedPackets": gate.dropped_packets if gate else None,
            "gatePassedPackets": gate.passed_packets if gate else None,
            "serverRecoveredFrames": len(repaired.get(pid or "", {}).get("recovered", ())),
            "serverConcealedFrames": len(repaired.get(pid or "", {}).get("concealed", ())),
            "heardRecoveredFrames": heard.recovered if heard is not None else None,
            "heardConcealedFrames": int(sum(listener.recording.concealed)) if listener is not None else None,
        })
    return out


def actions_section(run: DemoRun) -> list[dict[str, Any]]:
    return [
        {
            "at": a.spec.at,
            "action": a.spec.action,
            "target": a.target,
            "label": a.spec.label,
            "status": a.status,
            "requestMs": round((a.answered_at - a.sent_at) * 1000, 1),
        }
        for a in run.actions
    ]


def mutes_section(run: DemoRun, windows: list[MuteWindow]) -> list[dict[str, Any]]:
    return [
        {
            "speaker": w.speaker,
            "mutedAt": round(w.mute.sent_at - run.t0, 3),
            "unmutedAt": round(w.unmute.sent_at - run.t0, 3) if w.unmute else None,
            "serverMuteMs": _ms(w.server_mute_ms),
            "serverUnmuteMs": _ms(w.server_unmute_ms),
            "leakedFrames": w.leaked_frames,
            "heardMuteToSilenceMs": {k: _ms(v) for k, v in w.heard_ms.items()},
            "heardUnmuteToAudioMs": {k: _ms(v) for k, v in w.unmute_heard_ms.items()},
        }
        for w in windows
    ]


def talking_while_muted_section(run: DemoRun) -> list[dict[str, Any]]:
    """Every talking-while-muted episode, as the callback's participant updates tell it (mediamute's extension
    property): who, from when (s after the start) to when, and what ended it (unmuted, left, quiet, call ended)."""
    episodes: list[dict[str, Any]] = []
    open_by_id: dict[str, dict[str, Any]] = {}
    for entry in run.sink.received:
        note = entry.notification
        data = note.get("resourceData")
        if not (note.get("resourceUrl", "").endswith("/participants") and isinstance(data, list)):
            continue
        at = round(entry.at - run.t0, 3)
        for participant in data:
            pid = participant.get("id", "")
            talking = bool((participant.get("mediamute") or {}).get("talkingWhileMuted")) and note.get("changeType") != "deleted"
            episode = open_by_id.get(pid)
            if talking and episode is None:
                open_by_id[pid] = episode = {"participant": run.name_of(pid), "from": at, "to": None, "ended": None}
                episodes.append(episode)
            elif not talking and episode is not None:
                stream = (participant.get("mediaStreams") or [{}])[0]
                episode["to"] = at
                episode["ended"] = "left" if note.get("changeType") == "deleted" else "quiet" if stream.get("serverMuted") else "unmuted"
                del open_by_id[pid]
    for episode in open_by_id.values():
        episode["ended"] = "call ended"
    return episodes


def build_report(run: DemoRun, windows: list[MuteWindow], max_mute_ms: float) -> dict[str, Any]:
    """The report as JSON-ready data: the sections, the totals and the verdict."""
    found = problems(run, windows, max_mute_ms)
    heard = heard_times(windows)
    return {
        "title": run.scenario.title,
        "callId": run.call_id,
        "durationSeconds": run.scenario.duration,
        "wallSeconds": round(run.wall_seconds, 2),
        "participants": participants_section(run),
        "actions": actions_section(run),
        "mutes": mutes_section(run, windows),
        "talkingWhileMuted": talking_while_muted_section(run),
        "leakedFramesTotal": sum(w.leaked_frames for w in windows),
        "recoveredFramesTotal": sum(len(r.recovered) for r in run.ticks),
        "concealedFramesTotal": sum(len(r.concealed) for r in run.ticks),
        "maxHeardMuteToSilenceMs": round(max(heard), 1) if heard else None,
        "lateTicks": run.late_ticks,
        "ticks": run.clock_ticks,
        "operations": operations_section(run),
        "notifications": notification_summary(run),
        "verdict": verdict(windows, found, max_mute_ms),
        "ok": not found,
    }


def write_markdown(report: dict[str, Any], path: Path) -> None:
    lines = [f"# {report['title']}", "", f"**{report['verdict']}**", ""]
    lines += [
        f"Call `{report['callId']}`, {report['durationSeconds']:g} s scenario, {report['ticks']} mixer ticks, "
        f"{report['lateTicks']} late; server start to call end took {report['wallSeconds']:.1f} s.",
        "",
        "## Mutes",
        "",
        "| speaker | muted at | server: first mix without (ms) | frames leaked | heard silence (ms, per listener) "
        "| server: first mix with again (ms) | heard again after unmute (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in report["mutes"]:
        heard = ", ".join(f"{k} {v:.0f}" if v is not None else f"{k} n/a" for k, v in m["heardMuteToSilenceMs"].items())
        back = ", ".join(f"{k} {v:.0f}" if v is not None else f"{k} n/a" for k, v in m["heardUnmuteToAudioMs"].items()) or "—"
        server = f"{m['serverMuteMs']:.1f}" if m["serverMuteMs"] is not None else "n/a"
        server_back = f"{m['serverUnmuteMs']:.1f}" if m["serverUnmuteMs"] is not None else "—"
        lines.append(
            f"| {m['speaker']} | {m['mutedAt']:.2f} s | {server} | {m['leakedFrames']} | {heard} | {server_back} | {back} |"
        )
    lines += ["", "## Talking while muted", ""]
    if report["talkingWhileMuted"]:
        lines += [
            "Read from the audio level (RFC 6464) in the headers of the packets the closed gate dropped: nothing was "
            "decoded. Sent as participant updates with `\"mediamute\": {\"talkingWhileMuted\": true}`.",
            "",
            "| participant | from | to | ended by |",
            "|---|---|---|---|",
        ]
        for episode in report["talkingWhileMuted"]:
            until = f"{episode['to']:.2f} s" if episode["to"] is not None else "—"
            lines.append(f"| {episode['participant']} | {episode['from']:.2f} s | {until} | {episode['ended']} |")
    else:
        lines.append("Nobody talked while muted.")
    lines += ["", "## Gates", "", "| participant | packets passed | packets dropped |", "|---|---|---|"]
    for p in report["participants"]:
        lines.append(f"| {p['name']} | {p['gatePassedPackets']} | {p['gateDroppedPackets']} |")
    lines += [
        "", "## Losses and how they were met", "",
        "| participant | network | its voice at the server: rebuilt by FEC / concealed | what it heard: rebuilt by FEC "
        "/ concealed by its own buffer |",
        "|---|---|---|---|",
    ]
    for p in report["participants"]:
        network = p["network"] if isinstance(p["network"], str) else json.dumps(p["network"]) if p["network"] else "perfect"
        heard = "—" if p["heardConcealedFrames"] is None else f"{p['heardRecoveredFrames']} / {p['heardConcealedFrames']}"
        lines.append(f"| {p['name']} | {network} | {p['serverRecoveredFrames']} / {p['serverConcealedFrames']} | {heard} |")
    lines += ["", "## Actions", "", "| t (s) | action | target | HTTP | took (ms) |", "|---|---|---|---|---|"]
    for a in report["actions"]:
        status = a["status"] if a["status"] is not None else "—"
        lines.append(f"| {a['at']:.1f} | {a['action']} | {a['target']} | {status} | {a['requestMs']:.1f} |")
    if report["operations"]:
        lines += ["", "## Operations answered `running`, and their completing notifications", "",
                  "| t (s) | action | operation | answered | ended | resultInfo | completionReason | notified at |",
                  "|---|---|---|---|---|---|---|---|"]
        for o in report["operations"]:
            info = o["resultInfo"] or {}
            result = f"{info.get('code')}/{info.get('subcode')} {info.get('message') or ''}".strip() if info else "—"
            notified = f"{o['notifiedAt']:.2f} s" if o["notifiedAt"] is not None else "never"
            lines.append(f"| {o['at']:.1f} | {o['action']} | {o['operation']} | {o['answered']} | {o['status'] or '—'} "
                         f"| {result} | {o['completionReason'] or '—'} | {notified} |")
    lines += ["", "## Notifications received by the callback", ""]
    for n in report["notifications"]:
        mark = "signed ✓" if n["signatureVerified"] else "UNVERIFIED"
        lines.append(f"- {n['t']:6.2f} s `{n['changeType']}` {n['resourceUrl']} — {n['summary']} ({mark})")
    lines += [
        "",
        "How it is measured: every voice carries a faint pilot tone above the speech band; the listener's received "
        "audio is filtered at the muted speaker's pilot, and mute-to-silence is the time from sending the mute request "
        "to the first received frame after which that speaker stays silent. Leaked frames and the server's times come "
        "from its contributor audit (which participants went into each 20 ms mix, and when that mix was made). "
        "Frames rebuilt or concealed: a lost packet of a voice is rebuilt from the next packet's in-band FEC or "
        "concealed by the server's receive path, and every listener gets that frame; a listener's own jitter buffer "
        "conceals what its downlink lost.",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_notifications(run: DemoRun, path: Path) -> None:
    """Every notification the callback received, one JSON object a line, with its arrival time and check."""
    with path.open("w", encoding="utf-8") as handle:
        for entry in run.sink.received:
            handle.write(json.dumps({"t": round(entry.at - run.t0, 4), "signatureVerified": entry.verified, **entry.notification}) + "\n")


def write_outputs(run: DemoRun, out: Path, max_mute_ms: float) -> dict[str, Any]:
    """Write the WAVs, notifications.jsonl, timeline.png, report.json and report.md; return the report."""
    out.mkdir(parents=True, exist_ok=True)
    windows = analyse(run)
    for name, participant in run.participants.items():
        participant.recording.save_wav(out / f"heard-by-{name.lower()}.wav")
    write_notifications(run, out / "notifications.jsonl")
    plot_timeline(run, windows, out / "timeline.png")
    report = build_report(run, windows, max_mute_ms)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_markdown(report, out / "report.md")
    return report
