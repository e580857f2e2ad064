"""`mediamute serve --workers N`: N node processes on one machine behind one public port, coordinated through
Redis exactly as nodes on several machines are.

Design: the supervisor binds the public port once and every worker inherits that listening socket (each accepts
from it, beside its own port, which is its node URL for redirects, relays and the event-stream pipe). One bind
means one clear error if the port is taken, port 0 works, and a worker that dies leaves the public socket to the
others; `SO_REUSEPORT` would spread connections more evenly but lets any process of the same user bind the port
too. Every request on the public port is answered by whichever worker accepted it (relaying to the owner when the
call is elsewhere), so the spread of connections does not matter for correctness.

With no `--redis`, the supervisor starts a private `redis-server` on a free loopback port (`RedisServer`) and
stops it by PID on exit. A worker that dies is reported and started again (at most once every `RESTART_DELAY`
seconds); its calls are ended by the survivors within the node TTL.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis

from . import keys
from .redis_server import RedisServer

RESTART_DELAY = 5.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


def worker_count(value: str) -> int:
    """`auto` → one per core this process may run on; else a positive integer."""
    if value == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    count = int(value)
    if count < 1:
        raise ValueError("--workers must be at least 1 (or auto)")
    return count


def public_socket(host: str, port: int) -> socket.socket:
    """The listening socket all workers inherit (IPPROTO_TCP, so accepted sockets get TCP_NODELAY)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


@dataclass
class Workers:
    """The worker processes, started and stopped by PID."""

    count: int
    command: list[str]
    fd: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    restarted_at: list[float] = field(default_factory=list)

    def spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command, pass_fds=(self.fd,))

    def start(self) -> None:
        self.processes = [self.spawn() for _ in range(self.count)]
        self.restarted_at = [0.0] * self.count

    def watch(self, say) -> None:
        """Start again any worker that exited (at most once every RESTART_DELAY seconds each)."""
        now = time.monotonic()
        for i, process in enumerate(self.processes):
            code = process.poll()
            if code is not None and now - self.restarted_at[i] >= RESTART_DELAY:
                say(f"worker {i + 1} (pid {process.pid}) exited with {code}; starting it again")
                self.processes[i] = self.spawn()
                self.restarted_at[i] = now

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def wait_for_nodes(url: str, count: int, processes: Sequence[subprocess.Popen[bytes]], timeout: float) -> int:
    """Wait (bounded) until `count` nodes are registered; returns how many are."""
    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        deadline = time.monotonic() + timeout
        live = 0
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in processes):
                break
            members = client.smembers(keys.NODES)
            live = sum(client.exists(keys.node(m.decode())) for m in members)
            if live >= count:
                break
            time.sleep(0.1)
        return live
    finally:
        client.close()


def run_workers(
    count: int, host: str, port: int, redis_url: str | None, worker_args: list[str], say, banner
) -> int:
    """Run `count` nodes until SIGINT/SIGTERM; returns the exit code. `say(text)` prints a line, `banner(url,
    redis_url)` the ready message."""
    private: RedisServer | None = None
    try:
        sock = public_socket(host, port)
    except OSError as exc:
        say(f"cannot listen on {host}:{port}: {exc.strerror}")
        return 2
    if redis_url is None:
        private = RedisServer()  # raises RedisServerError with the install hint when redis-server is missing
        private.start()
        redis_url = private.url
        say(f"started redis-server (pid {private.pid}) at {redis_url}")
    command = [
        sys.executable, "-m", "mediamute.cli", "serve", "--host", host, "--port", "0", "--redis", redis_url,
        "--listen-fd", str(sock.fileno()), "--worker", *worker_args,
    ]
    workers = Workers(count, command, sock.fileno())
    stopping = False

    def on_signal(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        workers.start()
        live = wait_for_nodes(redis_url, count, workers.processes, START_TIMEOUT)
        if live < count:
            say(f"only {live} of {count} workers joined within {START_TIMEOUT:g} s; stopping")
            return 1
        public = f"http://{host}:{sock.getsockname()[1]}"
        banner(public, redis_url)
        while not stopping:
            time.sleep(0.2)
            workers.watch(say)
        return 0
    finally:
        workers.stop()
        sock.close()
        if private is not None:
            private.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
