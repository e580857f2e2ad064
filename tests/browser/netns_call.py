"""The browser test proper. It runs only inside the network namespace that `test_browser_call.py` creates (the
name of this file keeps pytest from collecting it otherwise; it also skips when not in the namespace).

One call: two Python participants (440 Hz, 660 Hz) and headless Chromium on the page at `/`, whose fake microphone
plays a 1000 Hz WAV. The browser hears both tones (an AnalyserNode in the page, read through the test hooks that
`?testHooks=1` installs); the Python participants hear the browser. Keys pressed on the page's keypad (Chromium's
RTCDTMFSender) reach the call's callback as Graph's tone notifications. A Graph mute of the browser makes its tone
vanish at the others while the page shows the server-muted badge, a growing drop counter and, since its microphone
goes on, the talking-while-muted badge; the page's self-unmute button brings the tone back. A second call, created from
a page without the test hooks (as a user opens it) with allowSelfUnmute off, shows the Graph error when the page
tries to unmute itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import time
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest

from mediamute.client import CallParticipant
from mediamute.server import MediamuteServer
from mediamute.settings import ServerSettings
from mediamute.sources import ToneSource

from ..helpers import CALLS as G, CallbackReceiver, admin_token, hear_for, wait_until
from .levels import amplitude_since, recent_amplitude

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("MEDIAMUTE_IN_NETNS") != "1",
        reason="runs only inside the network namespace tests/browser/test_browser_call.py makes",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
ICE_ADDRESS = "10.77.0.1"  # the veth end inside the namespace: Chromium has no loopback candidates
CHROMIUM = os.environ.get("MEDIAMUTE_CHROMIUM") or "/usr/bin/chromium"
ALICE_HZ, BOB_HZ, BROWSER_HZ = 440.0, 660.0, 1000.0
BROWSER_AMPLITUDE = 9000  # of the fake microphone's WAV (int16)
TONE_AMPLITUDE = 8000  # ToneSource's default
SETTLE = 0.3  # seconds after a mute's 200 OK for frames already mixed and in flight to arrive

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


def write_tone_wav(path: Path, frequency: float, amplitude: int, seconds: float = 2.0, rate: int = 48000) -> Path:
    """A mono 16-bit WAV of a whole number of periods, so Chromium's looping of it has no click."""
    period = rate // math.gcd(int(frequency), rate)  # samples holding a whole number of periods
    n = int(seconds * rate) // period * period
    samples = np.round(amplitude * np.sin(2 * np.pi * frequency * np.arange(n) / rate)).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


@pytest.fixture
async def server():
    srv = MediamuteServer(ServerSettings(port=0, log_level="warning", ephemeral_key=True, ice_addresses=ICE_ADDRESS))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def key_notifications(receiver: CallbackReceiver) -> list[dict]:
    """The tone notifications (subscribeToTone) the call's callback got, in order."""
    return [n for n in receiver.notifications() if "toneInfo" in (n.get("resourceData") or {}) and "id" not in n["resourceData"]]


async def dropped_on_page(row) -> int:
    return int((await row.get_by_test_id("dropped-packets").inner_text()).replace(",", ""))


async def test_browser_participant(server, tmp_path):
    from playwright.async_api import async_playwright, expect

    token = admin_token(server)
    ARTIFACTS.mkdir(exist_ok=True)
    microphone = write_tone_wav(tmp_path / "browser-mic-1000hz.wav", BROWSER_HZ, BROWSER_AMPLITUDE)
    console: list[str] = []
    async with contextlib.AsyncExitStack() as stack, httpx.AsyncClient(
        base_url=server.base_url, timeout=10.0, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        receiver = await stack.enter_async_context(CallbackReceiver())
        response = await http.post(G, json={"callbackUri": receiver.url})
        assert response.status_code == 201, response.text
        call_id = response.json()["id"]
        assert (await http.post(f"{G}/{call_id}/subscribeToTone", json={"clientContext": "browser-keys"})).status_code == 200
        call = server.registry.get(call_id)
        alice = CallParticipant(server.base_url, call_id, ToneSource(ALICE_HZ), "Alice", token=token, ice_addresses=ICE_ADDRESS)
        bob = CallParticipant(server.base_url, call_id, ToneSource(BOB_HZ), "Bob", token=token, ice_addresses=ICE_ADDRESS)
        await asyncio.gather(alice.join(), bob.join())
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM,
                    headless=True,
                    args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={microphone}"],
                    timeout=30_000,
                )
                try:
                    context = await browser.new_context(viewport={"width": 1280, "height": 900})
                    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.base_url)
                    context.set_default_timeout(15_000)
                    expect.set_options(timeout=15_000)
                    page = await context.new_page()
                    page.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
                    page.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))

                    # --- join from the page: token and call from the URL, the fake microphone as the source
                    await page.goto(f"{server.base_url}/?token={token}&call={call_id}&testHooks=1")  # window.mediamuteDebug
                    await expect(page.get_by_test_id("call-id")).to_have_text(call_id)
                    await page.get_by_test_id("display-name").fill("Browser")
                    await page.get_by_test_id("source-mic").check()
                    await page.get_by_test_id("join").click()
                    await expect(page.get_by_test_id("connection-state")).to_have_text("connected", timeout=20_000)
                    me = await page.evaluate("window.mediamuteDebug.state().participantId")
                    assert me and me in call.participants
                    assert call.participant(me).display_name == "Browser"
                    row = page.get_by_test_id(f"participant-{me}")
                    await expect(page.locator("#roster > li")).to_have_count(4)  # the app, Alice, Bob, the browser
                    await expect(page.locator("#roster > li .name")).to_contain_text(["Browser", "Alice", "Bob"])
                    await expect(row.get_by_test_id("badge-server-muted")).to_be_hidden()

                    # --- the browser hears both tones, and not its own (N-1)
                    await page.wait_for_function(
                        "([a, b]) => { const l = window.mediamuteDebug.toneLevelsDb([a, b]);"
                        " return l !== null && l[a] > -45 && l[b] > -45; }",
                        arg=[ALICE_HZ, BOB_HZ],
                        timeout=15_000,
                    )
                    levels = await page.evaluate("(f) => window.mediamuteDebug.measureTonesDb(f, 1000)", [ALICE_HZ, BOB_HZ, BROWSER_HZ])
                    print("the browser hears (median dB per tone over 1 s):", levels)
                    heard = min(levels[str(int(ALICE_HZ))], levels[str(int(BOB_HZ))])
                    assert heard > -45, levels
                    assert levels[str(int(BROWSER_HZ))] < heard - 20, levels  # its own tone is not in its mix

                    # --- the Python participants hear the browser's 1000 Hz
                    for p in (alice, bob):
                        await wait_until(lambda p=p: recent_amplitude(p, BROWSER_HZ) > 0.5 * BROWSER_AMPLITUDE, timeout=15)
                    await hear_for([alice, bob], 0.5)
                    heard_before = {p.display_name: round(recent_amplitude(p, BROWSER_HZ, 25)) for p in (alice, bob)}
                    print(f"the Python participants hear the browser's tone (sent at {BROWSER_AMPLITUDE}):", heard_before)
                    assert min(heard_before.values()) > 0.7 * BROWSER_AMPLITUDE, heard_before
                    # the page shows what the server receives from the browser
                    await expect(row.locator(".level-value")).to_have_text(re.compile(r"^-?\d+ dB$"))
                    assert await dropped_on_page(row) == 0
                    # an invite link: this page's address with a join token for the call
                    await page.locator(".me button.invite").click()
                    await expect(page.locator("#activity")).to_contain_text("invite link copied")
                    invite = await page.evaluate("navigator.clipboard.readText()")
                    assert invite.startswith(f"{server.base_url}/?call={call_id}&token="), invite
                    claims = server.signing_key.decode(invite.rsplit("token=", 1)[1], audiences=("mediamute:whip",))
                    assert claims["mm:kind"] == "join" and claims["mm:call"] == call_id

                    # --- keys on the page's keypad: Chromium's RTCDTMFSender, read by the server, notified to the app
                    await expect(page.get_by_test_id("keypad")).to_be_visible()  # telephone-event was negotiated
                    for key in "1#":
                        await page.locator(f"#keypad .key[data-key='{key}']").click()
                        await receiver.wait_for(lambda r, n=len(key_notifications(receiver)): len(key_notifications(r)) == n + 1)
                    tones = [n["resourceData"] for n in key_notifications(receiver)]
                    assert [(t["toneInfo"]["sequenceId"], t["toneInfo"]["tone"]) for t in tones] == [(1, "tone1"), (2, "pound")]
                    assert {t["mediamute"]["participantId"] for t in tones} == {me}
                    await expect(page.locator("#activity")).to_contain_text("you pressed # · notified to the app as tone #2")

                    # --- mute the browser through the Graph API
                    gate = call.participant(me).gate
                    response = await http.post(f"{G}/{call_id}/participants/{me}/mute", json={"clientContext": "browser-test"})
                    muted_ok = time.monotonic()
                    assert response.status_code == 200, response.text
                    assert not gate.is_open
                    await expect(row.get_by_test_id("badge-server-muted")).to_be_visible()
                    await expect(row.get_by_test_id("self-unmute")).to_be_visible()
                    await expect(row.get_by_test_id("badge-self-muted")).to_be_hidden()
                    # its microphone goes on: the levels in the dropped packets' headers say it talks while muted
                    await expect(row.get_by_test_id("badge-talking-while-muted")).to_be_visible()
                    # the drop counter on the page grows (the browser keeps sending; the gate drops)
                    shown = await dropped_on_page(row)
                    await page.wait_for_function(
                        "([id, n]) => Number(document.querySelector(`[data-testid='participant-${id}'] "
                        "[data-testid=dropped-packets]`).textContent.replace(/,/g, '')) >= n + 25",
                        arg=[me, shown],
                        timeout=10_000,
                    )
                    # ... and so does the server's gate counter
                    first = (await http.get(f"/ext/calls/{call_id}/stats", params={"limit": 0})).json()
                    dropped_first = next(p for p in first["participants"] if p["id"] == me)["gate"]["droppedPackets"]
                    await wait_until(lambda: gate.dropped_packets >= dropped_first + 25, timeout=5)
                    later = (await http.get(f"/ext/calls/{call_id}/stats", params={"limit": 0})).json()
                    entry = next(p for p in later["participants"] if p["id"] == me)
                    assert entry["serverMuted"] and entry["gate"]["droppedPackets"] > dropped_first > 0
                    assert entry["receivedLevelDbov"] is not None  # still received, not mixed
                    # the browser's tone is gone at both Python participants; their other tone is still there
                    await hear_for([alice, bob], 1.0)
                    for p, other in ((alice, BOB_HZ), (bob, ALICE_HZ)):
                        assert amplitude_since(p, BROWSER_HZ, muted_ok + SETTLE) < 0.03 * BROWSER_AMPLITUDE, p.display_name
                        assert amplitude_since(p, other, muted_ok + SETTLE) > 0.8 * TONE_AMPLITUDE, p.display_name
                    assert call.mixer.audit.frames_from(me, muted_ok) == 0
                    # the browser still hears the call while muted
                    levels_muted = await page.evaluate("(f) => window.mediamuteDebug.measureTonesDb(f, 300)", [ALICE_HZ, BOB_HZ])
                    assert min(levels_muted.values()) > -45, levels_muted
                    screenshot = ARTIFACTS / "browser-muted.png"
                    await page.screenshot(path=str(screenshot), full_page=True, animations="disabled")
                    print("screenshot of the muted state:", screenshot)

                    # --- the page's self-unmute button restores the audio
                    await row.get_by_test_id("self-unmute").click()
                    await expect(row.get_by_test_id("badge-server-muted")).to_be_hidden()
                    await expect(row.get_by_test_id("badge-talking-while-muted")).to_be_hidden()
                    assert gate.is_open
                    unmuted = time.monotonic()
                    for p in (alice, bob):
                        await wait_until(lambda p=p: recent_amplitude(p, BROWSER_HZ) > 0.5 * BROWSER_AMPLITUDE, timeout=10)
                    print(f"the browser's tone is back {time.monotonic() - unmuted:.2f} s after the self-unmute")
                    await expect(row.locator(".badge-live")).to_be_visible()

                    # --- self mute is the client's own: silence goes out, the gate stays open, the badge differs
                    dropped_open = gate.dropped_packets
                    await page.get_by_test_id("toggle-mic").click()
                    await expect(row.get_by_test_id("badge-self-muted")).to_be_visible()
                    await expect(row.get_by_test_id("badge-server-muted")).to_be_hidden()
                    await wait_until(lambda: call.participant(me).self_muted, timeout=5)
                    await wait_until(lambda: recent_amplitude(alice, BROWSER_HZ) < 0.03 * BROWSER_AMPLITUDE, timeout=5)
                    assert gate.is_open and gate.dropped_packets == dropped_open
                    await page.get_by_test_id("toggle-mic").click()
                    await expect(row.get_by_test_id("badge-self-muted")).to_be_hidden()
                    await wait_until(lambda: recent_amplitude(alice, BROWSER_HZ) > 0.5 * BROWSER_AMPLITUDE, timeout=5)
                    await page.screenshot(path=str(ARTIFACTS / "browser-unmuted.png"), full_page=True, animations="disabled")

                    # --- a call that forbids self-unmute, created from the page; the refusal is shown as Graph's message
                    # (a page as a user opens it, without the test hooks: it never loads them and needs none of them)
                    strict = await context.new_page()
                    strict.on("console", lambda m: console.append(f"[strict {m.type}] {m.text}"))
                    strict_scripts: list[str] = []
                    strict.on("request", lambda r: strict_scripts.append(r.url) if r.resource_type == "script" else None)
                    await strict.goto(f"{server.base_url}/?token={token}")
                    await strict.locator("#allow-self-unmute").uncheck()
                    await strict.get_by_test_id("create-call").click()
                    await expect(strict.get_by_test_id("call-id")).not_to_be_empty()
                    strict_call_id = await strict.get_by_test_id("call-id").inner_text()
                    assert server.registry.get(strict_call_id).options.allow_self_unmute is False
                    assert "token=" not in strict.url  # the token is kept out of the address bar
                    await strict.get_by_test_id("display-name").fill("Strict")
                    await strict.get_by_test_id("source-tone").check()
                    await strict.get_by_test_id("join").click()
                    await expect(strict.get_by_test_id("connection-state")).to_have_text("connected", timeout=20_000)
                    strict_me = await strict.locator("#roster > li.is-me").get_attribute("data-participant-id")
                    assert strict_me in server.registry.get(strict_call_id).participants
                    assert await strict.evaluate("typeof window.mediamuteDebug") == "undefined"
                    assert f"{server.base_url}/web/js/main.js" in strict_scripts, strict_scripts
                    assert not [u for u in strict_scripts if "testhooks" in u], strict_scripts
                    strict_row = strict.get_by_test_id(f"participant-{strict_me}")
                    await strict_row.get_by_test_id("mute").click()  # the page's own Graph mute request
                    await expect(strict_row.get_by_test_id("badge-server-muted")).to_be_visible()
                    await strict_row.get_by_test_id("self-unmute").click()
                    error = strict.get_by_test_id("errors").locator(".error-message").first
                    await expect(error).to_contain_text("allowSelfUnmute is false")
                    await expect(strict_row.get_by_test_id("badge-server-muted")).to_be_visible()
                    assert server.registry.get(strict_call_id).participant(strict_me).server_muted
                    await strict.screenshot(path=str(ARTIFACTS / "browser-self-unmute-refused.png"), full_page=True, animations="disabled")
                    await strict.get_by_test_id("leave").click()
                    await wait_until(lambda: strict_me not in server.registry.get(strict_call_id).participants, timeout=5)

                    # --- leaving from the page removes the participant
                    await page.get_by_test_id("leave").click()
                    await wait_until(lambda: me not in call.participants, timeout=5)
                    await http.delete(f"{G}/{call_id}")  # its last notification delivered while the receiver is up
                    await receiver.wait_for(lambda r: any(n["changeType"] == "deleted" and n["resourceUrl"].count("/") == 3 for n in r.notifications()))
                finally:
                    await browser.close()
        finally:
            print("\n".join(["page console:", *console[-60:]]))
            alice.recording.save_wav(ARTIFACTS / "browser-test-alice-heard.wav")
            bob.recording.save_wav(ARTIFACTS / "browser-test-bob-heard.wav")
            await asyncio.gather(alice.leave(), bob.leave(), return_exceptions=True)
