"""Real cluster parts for the cluster tests: a private `redis-server` and `mediamute serve --redis` node processes,
each started on a free loopback port with `PYTHONPATH` pointing at the code under test, and stopped by PID."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import mediamute
from mediamute.cluster.redis_server import RedisServer, RedisServerError

CODE_ROOT = Path(mediamute.__file__).resolve().parents[1]
READY = re.compile(r"node (?P<id>[0-9a-f]+) ready at (?P<url>\S+) \(pid (?P<pid>\d+)\)")
START_TIMEOUT = 60.0


def redis_or_skip() -> RedisServer:
    """A started private redis-server; skipped with the reason when Debian's redis-server is missing (but under
    CI=true, where .ci/run installs it, a missing one fails)."""
    try:
        return RedisServer().start()
    except RedisServerError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(str(exc))


def code_env() -> dict[str, str]:
    """The environment of a child process that must run the code under test (not an installed copy)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CODE_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class Node:
    """One `mediamute serve --redis` process."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    node_id: str = ""
    url: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = START_TIMEOUT) -> "Node":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = READY.search(self.log.read_text(errors="replace"))
            if match:
                self.node_id, self.url = match["id"], match["url"]
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"node {self.name} exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"node {self.name} not ready within {timeout:g} s:\n{self.log.read_text()[-3000:]}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM by PID (a clean leave), SIGKILL after `timeout`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def kill(self) -> None:
        """SIGKILL by PID: the node dies without a word."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


def start_node(name: str, redis_url: str, key_file: Path, logs: Path, *args: str) -> Node:
    log = logs / f"node-{name}.log"
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "mediamute.cli", "serve", "--port", "0", "--redis", redis_url, "--key-file",
         str(key_file), "--worker", "--log-level", "warning", *args],
        stdout=handle, stderr=subprocess.STDOUT, env=code_env(), cwd=logs,
    )
    handle.close()
    return Node(name, process, log)
