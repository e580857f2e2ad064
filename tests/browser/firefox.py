"""Debian's headless Firefox (`firefox-esr`) on a fresh profile, driven over its built-in Marionette protocol with
the PyPI package `marionette_driver` (no geckodriver).

The profile's `user.js` turns off Firefox's background networking (updates, telemetry, safe browsing, remote
settings, captive-portal and connectivity checks, prefetching, ...), so Firefox reaches nothing but the page the
test opens on 127.0.0.1. It lets WebRTC gather loopback candidates (without mDNS obfuscation), lets the page play
audio without a gesture and answers getUserMedia with a fake device without asking. This machine has no sound
device, so Firefox's audio runs on its mock audio backend (see PREFS).

marionette_driver blocks on its socket, and the server under test runs in the test's event loop: so every call goes
through `Firefox.run`, which hands it to one worker thread and awaits it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

FIREFOX_NAMES = ("firefox-esr",)
STARTUP_TIMEOUT = 60.0
SHUTDOWN_TIMEOUT = 10.0
SOCKET_TIMEOUT = 60  # one Marionette command

# Everything that makes Firefox talk to the network on its own, off; WebRTC and autoplay as the test needs them.
PREFS: dict[str, bool | int | str] = {
    # first run, start page, default-browser checks
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.page": 0,
    "browser.startup.homepage": "about:blank",
    "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "",
    "startup.homepage_welcome_url.additional": "",
    "browser.aboutwelcome.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.newtabpage.activity-stream.feeds.section.topstories": False,
    "browser.newtabpage.activity-stream.feeds.topsites": False,
    "browser.newtabpage.activity-stream.feeds.telemetry": False,
    "browser.newtabpage.activity-stream.telemetry": False,
    "browser.newtabpage.activity-stream.default.sites": "",
    "browser.topsites.contile.enabled": False,
    "browser.uitour.enabled": False,
    "browser.tabs.warnOnClose": False,
    # updates
    "app.update.enabled": False,
    "app.update.auto": False,
    "app.update.checkInstallTime": False,
    "app.update.disabledForTesting": True,
    "app.update.url": "",
    "app.update.url.override": "",
    "app.update.staging.enabled": False,
    "app.update.service.enabled": False,
    "extensions.update.enabled": False,
    "extensions.update.autoUpdateDefault": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.blocklist.enabled": False,
    "extensions.systemAddon.update.enabled": False,
    "extensions.systemAddon.update.url": "",
    "browser.search.update": False,
    "browser.search.geoip.url": "",
    "media.gmp-manager.url": "",
    "media.gmp-manager.updateEnabled": False,
    "media.gmp-gmpopenh264.enabled": False,
    "media.gmp-gmpopenh264.autoupdate": False,
    "media.gmp-widevinecdm.enabled": False,
    "media.gmp-widevinecdm.autoupdate": False,
    "services.settings.server": "",  # honoured only with MOZ_REMOTE_SETTINGS_DEVTOOLS=1 in the environment (below)
    "security.remote_settings.crlite_filters.enabled": False,
    "security.remote_settings.intermediates.enabled": False,
    "security.OCSP.enabled": 0,
    # telemetry, health report, studies
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.archive.enabled": False,
    "toolkit.telemetry.server": "",
    "toolkit.telemetry.newProfilePing.enabled": False,
    "toolkit.telemetry.shutdownPingSender.enabled": False,
    "toolkit.telemetry.updatePing.enabled": False,
    "toolkit.telemetry.bhrPing.enabled": False,
    "toolkit.telemetry.firstShutdownPing.enabled": False,
    "toolkit.telemetry.coverage.opt-out": True,
    "toolkit.coverage.opt-out": True,
    "toolkit.coverage.endpoint.base": "",
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.policy.firstRunURL": "",
    "app.normandy.enabled": False,
    "app.normandy.api_url": "",
    "app.shield.optoutstudies.enabled": False,
    "browser.ping-centre.telemetry": False,
    "browser.discovery.enabled": False,
    "identity.fxaccounts.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    # safe browsing
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.downloads.remote.enabled": False,
    "browser.safebrowsing.passwords.enabled": False,
    "browser.safebrowsing.provider.google.updateURL": "",
    "browser.safebrowsing.provider.google.gethashURL": "",
    "browser.safebrowsing.provider.google4.updateURL": "",
    "browser.safebrowsing.provider.google4.gethashURL": "",
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    "browser.safebrowsing.provider.mozilla.gethashURL": "",
    # network probes, region, prefetching, DNS over HTTPS, proxies
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.region.network.url": "",
    "browser.region.update.enabled": False,
    "geo.provider.network.url": "",
    "geo.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.predictor.enabled": False,
    "network.http.speculative-parallel-limit": 0,
    "browser.urlbar.speculativeConnect.enabled": False,
    "browser.places.speculativeConnect.enabled": False,
    "network.trr.mode": 5,
    "network.proxy.type": 0,
    # WebRTC: no permission prompts, fake devices, loopback candidates. Firefox offers a page that neither captures
    # nor holds a microphone permission only the default-route address (found by a UDP connect to 8.8.8.8, which
    # sends nothing), and never loopback: the page's test tone captures nothing. With the microphone allowed by
    # default it offers every host address, 127.0.0.1 included (`media.peerconnection.ice.force_interface` has no
    # effect in this build); the test passes only the 127.0.0.1 candidates on to the server and checks the pair.
    "media.navigator.permission.disabled": True,
    "media.navigator.streams.fake": True,
    "permissions.default.microphone": 1,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    # This machine has no sound device (no /dev/snd, no PulseAudio server): with a real cubeb context an
    # AudioContext's resume() never settles, so the page would hang before joining. Firefox's mock cubeb context
    # (a test backend with its own clock) runs the audio graph without a device.
    "media.cubeb.force_mock_context": True,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
}


def firefox_path() -> str | None:
    explicit = os.environ.get("MEDIAMUTE_FIREFOX")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in FIREFOX_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def missing_prerequisite() -> str | None:
    if firefox_path() is None:
        return "Debian's firefox-esr is not installed (apt-get install firefox-esr)"
    if importlib.util.find_spec("marionette_driver") is None:
        return "the marionette_driver package is not installed (pip install marionette_driver)"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_profile(directory: Path, marionette_port: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    prefs = {**PREFS, "marionette.port": marionette_port}
    lines = [f"user_pref({json.dumps(name)}, {json.dumps(value)});" for name, value in prefs.items()]
    (directory / "user.js").write_text("\n".join(lines) + "\n")
    return directory


class Firefox:
    """`async with Firefox(workdir) as ff:` starts firefox-esr and a Marionette session; always kills it after."""

    def __init__(self, workdir: Path, width: int = 1280, height: int = 900) -> None:
        self.workdir = workdir
        self.profile = workdir / "profile"
        self.log_path = workdir / "firefox.log"
        self.width, self.height = width, height
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.client: Any = None  # marionette_driver.marionette.Marionette
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="marionette")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a blocking marionette_driver function on the worker thread, without stalling the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def __aenter__(self) -> "Firefox":
        from marionette_driver.marionette import Marionette

        write_profile(self.profile, self.port)
        binary = firefox_path()
        assert binary is not None
        env = {
            **os.environ,
            # release builds ignore `services.settings.server` without this, and poll Mozilla's server (a DNS query
            # for firefox.settings.services.mozilla.com at the least)
            "MOZ_REMOTE_SETTINGS_DEVTOOLS": "1",
            "MOZ_HEADLESS": "1",
            "MOZ_HEADLESS_WIDTH": str(self.width),
            "MOZ_HEADLESS_HEIGHT": str(self.height),
        }
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [binary, "--headless", "--marionette", "--no-remote", "--profile", str(self.profile), "about:blank"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: Firefox and its content processes end together
            )
        try:
            self.client = Marionette(
                host="127.0.0.1", port=self.port, startup_timeout=int(STARTUP_TIMEOUT), socket_timeout=SOCKET_TIMEOUT
            )
            await self.run(self.client.start_session)
            await self.run(self.client.set_window_rect, width=self.width, height=self.height)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self.client is not None and self.client.session_id is not None:
            try:
                await asyncio.wait_for(self.run(self.client.delete_session), SHUTDOWN_TIMEOUT)
            except Exception:
                pass
        self.kill()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def kill(self) -> None:
        """End the Firefox this object started (its process group), politely first, then for sure."""
        process, self.process = self.process, None
        if process is None:
            return
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, SHUTDOWN_TIMEOUT)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait)
                if sig == signal.SIGTERM:
                    # the leader is gone; its content processes may not be: end the rest of the group
                    try:
                        os.killpg(process.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                break
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # --- page helpers (all through the worker thread)

    async def navigate(self, url: str) -> None:
        await self.run(self.client.navigate, url)

    async def js(self, script: str, *args: Any) -> Any:
        """Run `script` (a function body; `arguments` holds args) in the page's own scope; a promise is awaited."""
        return await self.run(
            self.client.execute_script, script, script_args=list(args), new_sandbox=False, sandbox=None
        )

    async def wait_for_js(self, script: str, *args: Any, timeout: float, interval: float = 0.1, what: str = "") -> Any:
        """Poll `script` until it returns something truthy (and return it), bounded by `timeout`."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            last = await self.js(script, *args)
            if last:
                return last
            if time.monotonic() >= deadline:
                raise TimeoutError(f"waited {timeout:g} s for {what or script!r}; last result {last!r}")
            await asyncio.sleep(interval)

    async def page_report(self) -> str:
        """What the page shows and knows, for a failure's report (never raises)."""
        script = """
            const text = (s) => { const e = document.querySelector(s); return e ? e.innerText.trim() : null; };
            let debug = null;
            try { debug = window.mediamuteDebug.state(); } catch (err) { debug = String(err); }
            return JSON.stringify({
                url: location.href, connection: text('[data-testid=connection-state]'),
                progress: text('#join-progress'),
                errors: text('[data-testid=errors]'), activity: text('#activity'), debug,
            }, null, 1);
        """
        try:
            return await asyncio.wait_for(self.js(script), 10)
        except Exception as err:  # the page or Firefox may be gone
            return f"(no page report: {err!r})"

    async def click(self, selector: str) -> None:
        from marionette_driver.by import By

        element = await self.run(self.client.find_element, By.CSS_SELECTOR, selector)
        await self.run(element.click)

    async def type_into(self, selector: str, text: str) -> None:
        from marionette_driver.by import By

        element = await self.run(self.client.find_element, By.CSS_SELECTOR, selector)
        await self.run(element.clear)
        await self.run(element.send_keys, text)

    async def screenshot(self, path: Path) -> Path:
        png = await self.run(self.client.screenshot, format="binary", full=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        return path
