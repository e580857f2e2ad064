"""timeline.png: one lane per listener showing, over time, how much of each speaker was in that listener's mix
(per-speaker energy from the contributor audit), with the mute windows shaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .model import DemoRun, MuteWindow

FIGURE_SIZE = (12.0, 7.5)
DPI = 110
SMOOTH_TICKS = 5  # 100 ms moving average: speech levels are readable, a mute edge stays sharp


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
    listeners = list(run.participants)
    fig, axes = plt.subplots(len(listeners), 1, figsize=FIGURE_SIZE, dpi=DPI, sharex=True, squeeze=False)
    peak = max((float(np.max(_smooth(v))) for v in levels.values() if v.size), default=1.0) or 1.0
    for ax, listener in zip(axes[:, 0], listeners):
        others = [s for s in speakers if s != listener]
        ax.stackplot(
            times, *[_smooth(levels[s]) for s in others], colors=[colors[s] for s in others], labels=others, alpha=0.9,
            zorder=2,
        )
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
        ax.set_ylim(0, peak * 1.7)
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
    fig.legend(handles, speakers, loc="lower center", ncol=len(speakers), frameon=False, fontsize=9)
    axes[-1, 0].set_xlabel("seconds since everyone joined")
    axes[-1, 0].set_xlim(0, run.scenario.duration)
    fig.suptitle(f"{run.scenario.title}\nwho is in each listener's N-1 mix (contributor audit, 100 ms RMS)", fontsize=11, y=0.995)
    fig.tight_layout(rect=(0, 0.05, 1, 0.90))
    fig.savefig(path)
    plt.close(fig)
    return path
