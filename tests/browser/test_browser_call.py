"""A real browser in a call: headless Chromium (Debian's package) driven by Playwright, on the page at `/`.

Chromium gathers no loopback ICE candidates, and the test must not touch the machine's other interfaces. So this
test makes a network namespace of its own with `lo` and a veth pair (10.77.0.1 <-> 10.77.0.2) inside it, and runs
the real test, `netns_call.py`, inside that namespace: the server (ICE host candidates on 10.77.0.1), the Python
participants and Chromium all live there, and the page is loaded from http://127.0.0.1 (a secure context). The
namespace is deleted afterwards, whatever happened.

Without Chromium (or Playwright, root, iproute2) the test skips with the reason, unless the environment variable
CI is set: then it fails. Playwright never downloads a browser here: it launches /usr/bin/chromium.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
INNER = Path(__file__).with_name("netns_call.py")
INNER_TIMEOUT = 300.0
COMMAND_TIMEOUT = 10.0
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/lib/chromium/chromium")
SERVER_ADDRESS, PEER_ADDRESS = "10.77.0.1", "10.77.0.2"


def chromium_path() -> str | None:
    for path in (os.environ.get("MEDIAMUTE_CHROMIUM"), *CHROMIUM_PATHS):
        if path and os.access(path, os.X_OK):
            return path
    return None


def missing_prerequisite() -> str | None:
    if chromium_path() is None:
        return "Debian's chromium is not installed (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install playwright; never `playwright install`)"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "making a network namespace for the browser needs root"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    return None


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, timeout=COMMAND_TIMEOUT, capture_output=True, text=True)


def make_namespace(name: str) -> None:
    ip("netns", "add", name)
    inside = ("netns", "exec", name, "ip")
    ip(*inside, "link", "set", "lo", "up")
    ip(*inside, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
    ip(*inside, "addr", "add", f"{SERVER_ADDRESS}/24", "dev", "v0")
    ip(*inside, "addr", "add", f"{PEER_ADDRESS}/24", "dev", "v1")
    ip(*inside, "link", "set", "v0", "up")
    ip(*inside, "link", "set", "v1", "up")


def delete_namespace(name: str) -> None:
    """End whatever still runs inside our namespace (only processes the test started live there), then delete it."""
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, timeout=COMMAND_TIMEOUT).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=COMMAND_TIMEOUT)


def test_browser_joins_hears_mutes_and_self_unmutes_inside_a_netns():
    reason = missing_prerequisite()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the browser test must run, but {reason}")
        pytest.skip(reason)
    namespace = f"mmtest-{secrets.token_hex(4)}"
    try:
        make_namespace(namespace)
        env = {**os.environ, "MEDIAMUTE_IN_NETNS": "1", "MEDIAMUTE_CHROMIUM": chromium_path() or ""}
        command = [
            "ip", "netns", "exec", namespace,
            sys.executable, "-m", "pytest", str(INNER.relative_to(ROOT)), "-p", "no:cacheprovider", "-rA", "-s",
        ]
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        try:
            output, _ = process.communicate(timeout=INNER_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the group this test started: pytest, Playwright, Chromium
            output, _ = process.communicate(timeout=COMMAND_TIMEOUT)
            print(output)
            pytest.fail(f"the browser test inside {namespace} did not finish within {INNER_TIMEOUT:.0f} s")
        print(output)
        summary = output.strip().splitlines()[-1] if output.strip() else ""
        assert process.returncode == 0, f"the browser test inside the namespace failed:\n{output[-8000:]}"
        assert re.search(r"\b\d+ passed\b", summary) and "skipped" not in summary, summary
    finally:
        delete_namespace(namespace)
