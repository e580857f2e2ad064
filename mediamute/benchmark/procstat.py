"""CPU time and memory of a process, and of the whole machine, from /proc (Linux only, no psutil)."""

from __future__ import annotations

import os
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid`, in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read().decode()
    # the command name (field 2) may hold spaces: split after its closing parenthesis
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid`."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass(frozen=True, slots=True)
class MachineTimes:
    busy: float
    total: float


def machine_times() -> MachineTimes:
    """Busy and total jiffies of all CPUs (first line of /proc/stat): how loaded the shared machine was."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return MachineTimes(busy=sum(values) - idle, total=sum(values))


class CpuWindow:
    """CPU used by a process between `start()` and `stop()`, as % of one core."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu0 = 0.0
        self._wall0 = 0.0
        self.percent = float("nan")

    def start(self, now: float) -> None:
        self._cpu0, self._wall0 = cpu_seconds(self.pid), now

    def stop(self, now: float) -> float:
        self.percent = 100.0 * (cpu_seconds(self.pid) - self._cpu0) / max(now - self._wall0, 1e-9)
        return self.percent
