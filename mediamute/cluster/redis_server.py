"""A private `redis-server` on a free loopback port: what `serve --workers` starts when given no Redis URL, and
what the tests and `mediamute bench --workers` start. No persistence (nothing is written to disk), stopped by PID.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time

INSTALL_HINT = (
    "redis-server is not installed: install Debian's package (`apt-get install redis-server`), "
    "or give the URL of a Redis you run with --redis redis://HOST:PORT/0"
)


class RedisServerError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class RedisServer:
    """`redis-server` as a child process, bound to 127.0.0.1, keeping nothing on disk."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.executable = shutil.which("redis-server")
        if self.executable is None:
            raise RedisServerError(INSTALL_HINT)
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="mediamute-redis-")

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, timeout: float = 10.0) -> "RedisServer":
        """Start it and wait (bounded) until it answers PING."""
        self.process = subprocess.Popen(
            [
                self.executable or "redis-server", "--port", str(self.port), "--bind", self.host,
                "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
                "--loglevel", "warning", "--dir", self._dir.name,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = (self.process.stderr.read() if self.process.stderr else b"").decode(errors="replace").strip()
                raise RedisServerError(f"redis-server exited at start (port {self.port}): {error}")
            if self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise RedisServerError(f"redis-server did not answer on {self.host}:{self.port} within {timeout:g} s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM by PID, then SIGKILL after `timeout`."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
