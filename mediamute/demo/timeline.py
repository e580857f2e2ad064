"""timeline.png: one lane per listener showing, over time, how much of each speaker was in that listener's mix
(per-speaker energy from the contributor audit), with the mute windows shaded, and under each lane a rug of the
frames that were not the speaker's own audio: rebuilt from in-band FEC or concealed by the server's receive path
(from the audit, in the speaker's colour), and concealed by the listener's own jitter buffer (black)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .model import REPAIRS, DemoRun, MuteWindow

FIGURE_SIZE = (12.0, 7.5)
DPI = 110
SMOOTH_TICKS = 5  # 100 ms moving average: speech levels are readable, a mute edge stays sharp
RUG_ROWS = {"recovered": -0.09, "concealed": -0.20, "heard": -0.31}
"""Heights (× the lanes' peak) of the rug rows under each lane: frames the server rebuilt by FEC, frames it
concealed, frames the listener's own buffer concealed."""


def _smooth(values: np.ndarray) -> np.ndarray:
    kernel = np.ones(SMOOTH_TICKS) / SMOOTH_TICKS
    return np.convolve(values, kernel, mode="same")


def plot_timeline(run: DemoRun, windows: list[MuteWindow], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speakers = [*run.participants, run.app_name]
    colors = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(speakers)}
    ticks = run.ticks
    times = np.array([t.at - run.t0 for t in ticks])  # the ticks' deadlines: media time, evenly spaced
    levels = {name: np.zeros(len(ticks)) for name in speakers}
    for i, record in enumerate(ticks):
        for pid, level in zip(record.contributors, record.levels):
            name = run.name_of(pid)
            if name in levels:
                levels[name][i] = level
    repaired = _repaired_by_speaker(run, speakers)
    listeners = list(run.participants)
    fig, axes = plt.subplots(len(listeners), 1, figsize=FIGURE_SIZE, dpi=DPI, sharex=True, squeeze=False)
    peak = max((float(np.max(_smooth(v))) for v in levels.values() if v.size), default=1.0) or 1.0
    any_rug = False
    for ax, listener in zip(axes[:, 0], listeners):
        others = [s for s in speakers if s != listener]
        ax.stackplot(
            times, *[_smooth(levels[s]) for s in others], colors=[colors[s] for s in others], labels=others, alpha=0.9,
            zorder=2,
        )
        for speaker in others:
            for kind, marker in (("recovered", "^"), ("concealed", "|")):
                at = times[repaired[speaker][kind]]
                any_rug |= at.size > 0
                ax.plot(at, np.full(at.size, RUG_ROWS[kind] * peak), linestyle="none", marker=marker,
                        markersize=5 if marker == "^" else 7, markeredgewidth=1.5, color=colors[speaker], zorder=3)
        heard = _concealed_by_listener(run, listener)
        any_rug |= heard.size > 0
        ax.plot(heard, np.full(heard.size, RUG_ROWS["heard"] * peak), linestyle="none", marker="|", markersize=7,
                markeredgewidth=1.5, color="black", zorder=3)
        for window in windows:
            if window.speaker == listener:
                continue
            start = window.mute.sent_at - run.t0
            end = window.end - run.t0
            ax.axvspan(start, end, facecolor=colors[window.speaker], alpha=0.10, linewidth=0, zorder=0)
            ax.axvline(start, color=colors[window.speaker], linewidth=1.6, zorder=3)
            ax.text(start + 0.05, peak * 1.62, f"{window.speaker} muted", fontsize=8.5, color=colors[window.speaker],
                    va="top", fontweight="bold")
        for action in run.actions:
            ax.axvline(action.sent_at - run.t0, color="0.3", linewidth=0.8, linestyle="--")
        ax.set_ylim(RUG_ROWS["heard"] * peak * 1.2 if any_rug else 0, peak * 1.7)
        ax.set_ylabel(f"heard by\n{listener}", rotation=0, ha="right", va="center", fontsize=10)
        ax.set_yticks([])
        ax.spines[["top", "right", "left"]].set_visible(False)
    top = axes[0, 0]
    for action in run.actions:
        label = action.spec.label or f"{action.spec.action} {action.target}"
        top.annotate(
            label, xy=(action.sent_at - run.t0, peak * 1.7), xytext=(0, 4), textcoords="offset points",
            fontsize=7.5, rotation=18, ha="left", va="bottom", annotation_clip=False,
        )
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[s]) for s in speakers]
    labels = list(speakers)
    if any_rug:
        from matplotlib.lines import Line2D

        handles += [Line2D([], [], linestyle="none", marker="^", color="0.4", markersize=5),
                    Line2D([], [], linestyle="none", marker="|", color="0.4", markersize=7),
                    Line2D([], [], linestyle="none", marker="|", color="black", markersize=7)]
        labels += ["rebuilt by FEC (server)", "concealed (server)", "concealed by the listener"]
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False, fontsize=8.5)
    axes[-1, 0].set_xlabel("seconds since everyone joined")
    axes[-1, 0].set_xlim(0, run.scenario.duration)
    fig.suptitle(f"{run.scenario.title}\nwho is in each listener's N-1 mix (contributor audit, 100 ms RMS)", fontsize=11, y=0.995)
    fig.tight_layout(rect=(0, 0.05, 1, 0.90))
    fig.savefig(path)
    plt.close(fig)
    return path


def _repaired_by_speaker(run: DemoRun, speakers: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Per speaker, the indexes of the ticks whose frame of it the server rebuilt by FEC or concealed (the audit)."""
    found = {s: {kind: np.zeros(0, dtype=int) for kind in REPAIRS} for s in speakers}
    for pid, kinds in run.repaired_ticks().items():
        name = run.name_of(pid)
        if name in found:
            found[name] = {kind: np.asarray(ticks, dtype=int) for kind, ticks in kinds.items()}
    return found


def _concealed_by_listener(run: DemoRun, listener: str) -> np.ndarray:
    """Playout times (since t0) of the frames the listener's own jitter buffer concealed (its downlink's losses)."""
    recording = run.participants[listener].recording
    times = recording.playout_times()
    concealed = np.asarray(recording.concealed, dtype=bool)
    return times[concealed] - run.t0 if times.size else np.zeros(0)
