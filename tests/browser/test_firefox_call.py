"""A real Firefox in a call: Debian's headless `firefox-esr` on the page at `/`, driven over Marionette.

Firefox gathers loopback ICE candidates when `media.peerconnection.ice.loopback` is on and the page may use the
microphone (see `firefox.py`), so unlike the Chromium test this one runs on plain 127.0.0.1 with the usual `server`
fixture. Firefox then offers the machine's other addresses too; a hook the test installs in the page passes the
page's WHIP offer on with its 127.0.0.1 candidates only, and the test checks that the ICE pair in use is 127.0.0.1
at both ends. The profile keeps Firefox's own background networking off.

One Python participant sends 440 Hz; Firefox joins from the printed-style URL with the page's built-in test tone at
1000 Hz. The Python participant hears the page's tone at its level, the page hears 440 Hz (its analyser, read by
`window.mediamuteDebug`, which the page installs only for `?testHooks=1`), a Graph mute of Firefox silences its tone at the Python participant while the page shows
"Muted by server", and the page's "Unmute myself" button brings the tone back.

Without firefox-esr or marionette_driver the test skips with the reason, unless the environment variable CI is
set: then it fails (as the Chromium test does).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mediamute.client import CallParticipant
from mediamute.sources import ToneSource

from ..helpers import CALLS as G, admin_token, create_call, hear_for, wait_until
from .firefox import Firefox, missing_prerequisite
from .levels import amplitude_since, recent_amplitude

pytestmark = [
    pytest.mark.integration,
    # marionette_driver's dependencies (mozinfo, mozrunner) use deprecated APIs on import
    pytest.mark.filterwarnings("ignore::DeprecationWarning:mozinfo.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:mozrunner.*"),
]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
PYTHON_HZ, FIREFOX_HZ = 440.0, 1000.0
PAGE_TONE_AMPLITUDE = 0.25 * 32768  # web/js/audio.js: an oscillator (amplitude 1) through a gain of 0.25, as int16
HEARD_DB = -45.0  # the page's analyser level (dB) that counts as hearing a tone, as in the Chromium test
SETTLE = 0.3  # seconds after a mute's 200 OK for frames already mixed and in flight to arrive


def require_prerequisites() -> None:
    reason = missing_prerequisite()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the Firefox test must run, but {reason}")
        pytest.skip(reason)


def selected_pair(participant) -> tuple[str, str]:
    """(local, remote) address of the ICE pair the server's end of a participant's connection uses (aioice's)."""
    transceiver = next(t for t in participant.media.pc.getTransceivers() if t.kind == "audio")
    connection = transceiver.receiver.transport.transport._connection  # aiortc's RTCIceTransport -> aioice
    pair = connection._nominated[1]
    return pair.local_candidate.host, pair.remote_addr[0]


def by_testid(name: str, within: str | None = None) -> str:
    own = f'[data-testid="{name}"]'
    return f'[data-testid="{within}"] {own}' if within else own


EL = "const e = document.querySelector(arguments[0]); "  # scripts on the element that arguments[0] selects
VISIBLE = EL + "return Boolean(e && !e.hidden && e.getClientRects().length);"
HIDDEN = EL + "return Boolean(e && (e.hidden || !e.getClientRects().length));"
TEXT = EL + "return e ? e.textContent.trim() : null;"
TEXT_IS = EL + "return Boolean(e && e.textContent.trim() === arguments[1]);"
JS_COUNT_AT_LEAST = EL + "return Boolean(e && Number(e.textContent.replace(/,/g, '')) >= arguments[1]);"
JS_TONE_ABOVE = (
    "const l = window.mediamuteDebug.toneLevelsDb([arguments[0]]); return l !== null && l[arguments[0]] > arguments[1];"
)
# Firefox offers every host address (127.0.0.1, ::1 and the machine's others); this hook, installed in the page by the
# test, passes the page's WHIP offer on with only its UDP 127.0.0.1 candidates, so that the server never checks (nor
# sends media to) any other address. It changes no line of the page and no other byte of the offer.
JS_LOOPBACK_OFFERS_ONLY = r"""
    if (window.__mmOffers) return true;
    window.__mmOffers = [];
    const original = window.fetch.bind(window);
    window.fetch = function (resource, init) {
        if (init && typeof init.body === 'string' && init.body.startsWith('v=0')) {
            const lines = init.body.split('\r\n');
            const isCandidate = (l) => l.startsWith('a=candidate:');
            const keep = (l) => !isCandidate(l) || / udp \d+ 127\.0\.0\.1 \d+ typ host/i.test(l);
            const offered = lines.filter(isCandidate);
            window.__mmOffers.push({ offered, kept: offered.filter(keep) });
            init = { ...init, body: lines.filter(keep).join('\r\n') };
        }
        return original(resource, init);
    };
    return true;
"""
JS_MEASURE = "return window.mediamuteDebug.measureTonesDb(arguments[0], arguments[1]);"


async def test_firefox_joins_hears_is_muted_and_self_unmutes(server, http, tmp_path):
    require_prerequisites()
    ARTIFACTS.mkdir(exist_ok=True)
    token = admin_token(server)
    call_id = await create_call(http)
    python = CallParticipant(server.base_url, call_id, ToneSource(PYTHON_HZ), "Python", token=token)
    await python.join()
    firefox = Firefox(tmp_path)
    try:
        async with firefox as ff:
            try:
                await firefox_in_the_call(ff, server, http, call_id, token, python)
            except BaseException:
                print("page report:", await ff.page_report())
                raise
    except BaseException:
        print("firefox log (tail):\n" + firefox.log_tail())
        raise
    finally:
        firefox.kill()
        python.recording.save_wav(ARTIFACTS / "firefox-test-python-heard.wav")
        await python.leave()


async def firefox_in_the_call(ff: Firefox, server, http, call_id: str, token: str, python: CallParticipant) -> None:
    call = server.registry.get(call_id)

    # --- join from the URL `mediamute serve` prints, with the page's test tone at a known frequency
    await ff.navigate(f"{server.base_url}/?token={token}&call={call_id}&testHooks=1")  # window.mediamuteDebug
    await ff.wait_for_js(TEXT_IS, by_testid("call-id"), call_id, timeout=10, what="the call id")
    assert "Firefox/" in await ff.js("return navigator.userAgent;")
    assert "token=" not in await ff.js("return location.href;")  # the page keeps the token out of the address bar
    await ff.type_into(by_testid("display-name"), "Firefox")
    await ff.click(by_testid("source-tone"))
    await ff.type_into("#tone-frequency", str(int(FIREFOX_HZ)))
    assert await ff.js(JS_LOOPBACK_OFFERS_ONLY)
    await ff.click(by_testid("join"))
    offers = await ff.wait_for_js("return window.__mmOffers.length && window.__mmOffers;", timeout=15, what="the offer")
    addresses = sorted({line.split()[4] for line in offers[0]["offered"]})
    print(f"the page offered candidates on {addresses}; the hook passed on {offers[0]['kept']}")
    assert len(offers) == 1 and offers[0]["kept"], offers
    await ff.wait_for_js(TEXT_IS, by_testid("connection-state"), "connected", timeout=20, what="'connected'")
    assert await ff.js(TEXT, "#me-source") == f"test tone {int(FIREFOX_HZ)} Hz"
    debug = await ff.js("return window.mediamuteDebug.state();")
    print("page state:", debug)
    me = debug["participantId"]
    assert me and me in call.participants
    assert call.participant(me).display_name == "Firefox"
    # the media path is loopback at both ends
    pair = selected_pair(call.participant(me))
    assert pair == ("127.0.0.1", "127.0.0.1"), pair
    row = f"participant-{me}"
    await ff.wait_for_js(VISIBLE, f'[data-testid="{row}"]', timeout=10, what="Firefox's own roster row")
    assert await ff.js(HIDDEN, by_testid("badge-server-muted", row))

    # --- the page hears the Python participant's 440 Hz, and not its own tone (N-1)
    await ff.wait_for_js(JS_TONE_ABOVE, PYTHON_HZ, HEARD_DB, timeout=15, what="440 Hz in the page's analyser")
    levels = await ff.js(JS_MEASURE, [PYTHON_HZ, FIREFOX_HZ], 1000)
    print("the page hears (median dB per tone over 1 s):", levels)
    heard = levels[str(int(PYTHON_HZ))]
    assert heard > HEARD_DB, levels
    assert levels[str(int(FIREFOX_HZ))] < heard - 20, levels

    # --- the Python participant hears the page's 1000 Hz at the level the page sends
    await wait_until(lambda: recent_amplitude(python, FIREFOX_HZ) > 0.5 * PAGE_TONE_AMPLITUDE, timeout=15)
    await hear_for(python, 0.5)
    heard_before = recent_amplitude(python, FIREFOX_HZ, 25)
    print(f"the Python participant hears Firefox's tone at {heard_before:.0f} (sent at {PAGE_TONE_AMPLITUDE:.0f})")
    assert 0.7 * PAGE_TONE_AMPLITUDE < heard_before < 1.3 * PAGE_TONE_AMPLITUDE, heard_before

    # --- a Graph mute of Firefox: its tone vanishes at the Python participant; the page shows the badge
    gate = call.participant(me).gate
    response = await http.post(f"{G}/{call_id}/participants/{me}/mute", json={"clientContext": "firefox-test"})
    muted_ok = time.monotonic()
    assert response.status_code == 200, response.text
    assert not gate.is_open
    await ff.wait_for_js(VISIBLE, by_testid("badge-server-muted", row), timeout=10, what="the server-muted badge")
    assert await ff.js(TEXT, by_testid("badge-server-muted", row)) == "Muted by server"
    assert await ff.js(VISIBLE, by_testid("self-unmute", row))
    assert await ff.js(HIDDEN, by_testid("badge-self-muted", row))
    dropped_at, dropped = time.monotonic(), gate.dropped_packets
    await hear_for(python, 1.0)
    # Firefox keeps sending its 20 ms packets and the gate drops them (its audio runs on the mock backend's clock,
    # which runs a little slow: ~46 packets a second, fewer on a loaded machine); the page shows the drops growing
    rate = (gate.dropped_packets - dropped) / (time.monotonic() - dropped_at)
    print(f"the gate drops {rate:.0f} packets/s from Firefox")
    assert gate.dropped_packets >= dropped + 10, (dropped, gate.dropped_packets)
    await ff.wait_for_js(
        JS_COUNT_AT_LEAST, by_testid("dropped-packets", row), dropped + 25, timeout=10, what="the page's drop counter"
    )
    # none of it reaches the Python participant
    silenced = amplitude_since(python, FIREFOX_HZ, muted_ok + SETTLE)
    print(f"while muted, the Python participant hears Firefox's tone at {silenced:.1f}")
    assert silenced < 0.03 * PAGE_TONE_AMPLITUDE, silenced
    assert call.mixer.audit.frames_from(me, muted_ok) == 0
    # the page still hears the call while muted
    levels_muted = await ff.js(JS_MEASURE, [PYTHON_HZ], 300)
    assert levels_muted[str(int(PYTHON_HZ))] > HEARD_DB, levels_muted
    screenshot = await ff.screenshot(ARTIFACTS / "firefox-muted.png")
    print("screenshot of the muted state:", screenshot)

    # --- the page's "Unmute myself" restores the audio
    assert await ff.js(TEXT, by_testid("self-unmute", row)) == "Unmute myself"
    await ff.click(by_testid("self-unmute", row))
    await ff.wait_for_js(HIDDEN, by_testid("badge-server-muted", row), timeout=10, what="the badge to go")
    assert gate.is_open
    unmuted = time.monotonic()
    await wait_until(lambda: recent_amplitude(python, FIREFOX_HZ) > 0.5 * PAGE_TONE_AMPLITUDE, timeout=10)
    print(f"Firefox's tone is back {time.monotonic() - unmuted:.2f} s after the self-unmute")

    # --- leaving from the page removes the participant
    await ff.click(by_testid("leave"))
    await wait_until(lambda: me not in call.participants, timeout=10)
