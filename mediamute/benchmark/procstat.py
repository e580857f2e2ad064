"""CPU time and memory of a process, and of the whole machine, from /proc (Linux only, no psutil)."""

from __future__ import annotations

import os
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MAIN_THREAD = "main"
"""How `CpuWindow` names a process's main thread (the kernel calls it after the executable): mediamute's event loop."""


def _stat_cpu_seconds(path: str) -> float:
    """utime + stime from a /proc `stat` file (a process's: all its threads; a task's: that thread)."""
    with open(path, "rb") as f:
        raw = f.read().decode()
    # the command name (field 2) may hold spaces: split after its closing parenthesis
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid`, in seconds."""
    return _stat_cpu_seconds(f"/proc/{pid}/stat")


def thread_cpu_seconds(pid: int) -> dict[int, tuple[str, float]]:
    """Per thread of `pid` (by thread id): its name (`comm`, as Python's `threading` names it on Linux, 15 chars)
    and its utime + stime in seconds. Threads that end while being read are left out."""
    threads: dict[int, tuple[str, float]] = {}
    for entry in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{entry}/comm") as f:
                name = f.read().strip()
            threads[int(entry)] = (name, _stat_cpu_seconds(f"/proc/{pid}/task/{entry}/stat"))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return threads


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


@dataclass(frozen=True, slots=True)
class ThreadCpu:
    """One thread's share of the window: % of one core (100 = a whole core for the whole window)."""

    tid: int
    name: str
    percent: float


class CpuWindow:
    """CPU used by a process between `start()` and `stop()`, as % of one core, in total and per thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu0 = 0.0
        self._threads0: dict[int, tuple[str, float]] = {}
        self._wall0 = 0.0
        self.percent = float("nan")
        self.threads: list[ThreadCpu] = []
        """Every thread alive at `stop()`, busiest first (a thread started in the window counts from zero)."""

    def start(self, now: float) -> None:
        self._cpu0, self._threads0, self._wall0 = cpu_seconds(self.pid), thread_cpu_seconds(self.pid), now

    def stop(self, now: float) -> float:
        wall = max(now - self._wall0, 1e-9)
        self.percent = 100.0 * (cpu_seconds(self.pid) - self._cpu0) / wall
        threads = []
        for tid, (name, seconds) in thread_cpu_seconds(self.pid).items():
            before = self._threads0.get(tid, (name, 0.0))[1]
            label = MAIN_THREAD if tid == self.pid else name
            threads.append(ThreadCpu(tid, label, 100.0 * (seconds - before) / wall))
        self.threads = sorted(threads, key=lambda t: -t.percent)
        return self.percent
