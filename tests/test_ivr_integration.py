"""Graph's media actions in a real call over WebRTC on loopback, checked on the audio (FFT) and the contributor
audit: prompts from a bot's local web server and from --media-dir heard by everyone, in order, and completed at a
real callback receiver; a recording that holds the talker and not the server-muted one; a participant on hold out
of every mix and hearing only its music, then back."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest

from mediamute.analysis import first_time_above, last_time_above, tone_amplitude, tone_amplitudes
from mediamute.calls.ivr import BEEP_AMPLITUDE
from mediamute.server import MediamuteServer
from mediamute.settings import ServerSettings

from .helpers import (
    A,
    CALLS,
    CallbackReceiver,
    MediaHost,
    admin_token,
    amplitude,
    assert_tone_returns,
    assert_tone_stops,
    create_call,
    hear_for,
    join_all,
    leave_all,
    tone_track,
    tone_wav,
    tones,
    wait_until,
    wav_audio,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def media_server(tmp_path) -> AsyncIterator[MediamuteServer]:
    media = tmp_path / "media"
    media.mkdir()
    (media / "tone-2500.wav").write_bytes(tone_wav(2500, 1.0, rate=48_000, channels=2))  # not Graph's format: taken too
    server = MediamuteServer(ServerSettings(port=0, log_level="warning", ephemeral_key=True, media_dir=str(media)))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def bot(media_server) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {admin_token(media_server)}"}
    async with httpx.AsyncClient(base_url=media_server.base_url, timeout=10.0, headers=headers) as client:
        yield client


def ended(operation_id: str):
    return lambda r: any(n["resourceUrl"].endswith(f"/operations/{operation_id}") for n in r.notifications())


def final(receiver: CallbackReceiver, operation_id: str) -> dict:
    return next(n for n in receiver.notifications() if n["resourceUrl"].endswith(f"/operations/{operation_id}"))["resourceData"]


async def end_call(bot: httpx.AsyncClient, receiver: CallbackReceiver, call_id: str) -> None:
    assert (await bot.delete(f"{CALLS}/{call_id}")).status_code == 204
    await receiver.wait_for(lambda r: r.notifications()[-1]["resourceUrl"] == f"/communications/calls/{call_id}")


async def test_prompts_are_heard_by_everyone_in_order_and_complete_at_the_callback(media_server, bot):
    async with MediaHost({"tone-1250.wav": tone_wav(1250, 1.0)}) as host, CallbackReceiver() as receiver:
        call_id = await create_call(bot, callbackUri=receiver.url)
        call = media_server.registry.get(call_id)
        a, b = await join_all(media_server, call_id, tones(440, 660))
        try:
            await hear_for([a, b], 0.5)
            sent = time.monotonic()
            body = {"prompts": [{"mediaInfo": {"uri": host.url("tone-1250.wav")}}, {"mediaInfo": {"uri": "tone-2500.wav"}}]}
            response = await bot.post(f"{CALLS}/{call_id}/playPrompt", json=body)
            assert response.status_code == 200 and response.json()["status"] == "running", response.text
            operation_id = response.json()["id"]
            await receiver.wait_for(ended(operation_id), timeout=10)
            done = final(receiver, operation_id)
            assert (done["status"], done["resultInfo"]["code"], done["completionReason"]) == ("completed", 200, "completedSuccessfully")
            await hear_for([a, b], 0.3)
            for listener in (a, b):
                times, low = tone_track(listener, 1250)
                high = tone_amplitudes(listener.recording.window()[1], 2500)
                start_low = first_time_above(times, low, 0.5 * A, sent)
                start_high = first_time_above(times, high, 0.5 * A, sent)
                assert start_low is not None and start_high is not None, listener.display_name
                end_low = last_time_above(times, low, 0.5 * A, sent, np.inf)
                assert start_low < end_low < start_high  # in order: the URL's prompt, then the media directory's
                assert end_low - start_low == pytest.approx(0.98, abs=0.08)  # one second each, gapless
                assert start_high - end_low == pytest.approx(0.02, abs=0.05)
                assert amplitude(listener, 1250, start_low + 0.2, start_low + 0.8) == pytest.approx(A, rel=0.1)
                assert amplitude(listener, 2500, start_high + 0.2, start_high + 0.8) == pytest.approx(A, rel=0.1)
                own = 440 if listener is a else 660
                assert amplitude(listener, own, start_low) < 0.03 * A  # N-1 as ever
            levels = [r.level_of(call.app.id) for r in call.mixer.audit]
            assert max(levels) == pytest.approx(A / math.sqrt(2), rel=0.02)  # the application's participant played it
        finally:
            await leave_all([a, b])
        await end_call(bot, receiver, call_id)


async def test_a_recording_holds_the_talker_and_not_the_server_muted_one(media_server, bot):
    async with CallbackReceiver() as receiver:
        call_id = await create_call(bot, callbackUri=receiver.url)
        call = media_server.registry.get(call_id)
        talker, muted = await join_all(media_server, call_id, tones(440, 660))
        try:
            await hear_for([talker, muted], 0.5)
            assert (await bot.post(f"{CALLS}/{call_id}/participants/{muted.participant_id}/mute", json={})).status_code == 200
            sent = time.monotonic()
            response = await bot.post(f"{CALLS}/{call_id}/recordResponse", json={"maxRecordDurationInSeconds": 2})
            assert response.status_code == 200, response.text
            operation_id = response.json()["id"]
            await receiver.wait_for(ended(operation_id), timeout=10)
            done = final(receiver, operation_id)
            assert (done["status"], done["resultInfo"]["subcode"], done["completionReason"]) == ("completed", 8515, "maxRecordDurationReached")
            # the beep (1 kHz, 300 ms) was played to the call ...
            times, beep = tone_track(talker, 1000)
            assert ((times > sent) & (beep > 0.5 * BEEP_AMPLITUDE)).sum() >= 10
            download = await bot.get(done["recordingLocation"], headers={"Authorization": f"Bearer {done['recordingAccessToken']}"})
            assert download.status_code == 200 and download.headers["content-type"] == "application/octet-stream"

            # a stop tone pressed over WebRTC (RFC 4733) ends the next recording; "1" is not one of its stop tones
            body = {"stopTones": ["#"], "maxRecordDurationInSeconds": 30, "playBeep": False}
            stopping = (await bot.post(f"{CALLS}/{call_id}/recordResponse", json=body)).json()["id"]
            await wait_until(lambda: call.mixer.slot(call.app.id).sink is not None, timeout=5)
            await talker.send_dtmf("1#")
            await receiver.wait_for(ended(stopping), timeout=10)
            stopped = final(receiver, stopping)
            assert (stopped["status"], stopped["completionReason"]) == ("completed", "stopToneDetected")
            assert "pound" in stopped["resultInfo"]["message"]
            short = await bot.get(stopped["recordingLocation"], headers={"Authorization": f"Bearer {stopped['recordingAccessToken']}"})
            assert 0 < wav_audio(short.content)[1].size / 16_000 < 3.0  # until the key, not 30 s
        finally:
            await leave_all([talker, muted])
        await end_call(bot, receiver, call_id)
    rate, samples = wav_audio(download.content)
    assert rate == 16_000 and samples.size == 2 * 16_000
    frames = [samples[i : i + 320] for i in range(0, samples.size - 320, 320)]  # 20 ms at 16 kHz
    heard = {f: np.median(tone_amplitudes_16k(frames, f)) for f in (440, 660, 1000)}
    assert heard[440] == pytest.approx(A, rel=0.1)  # the talker, at its level
    assert heard[660] < 0.03 * A  # not a trace of the server-muted participant
    assert heard[1000] < 0.03 * A  # ... nor of the beep: the recording is what the application hears


def tone_amplitudes_16k(frames: list[np.ndarray], frequency: float) -> np.ndarray:
    return np.array([tone_amplitude(frame, frequency, rate=16_000) for frame in frames])


async def test_a_held_participant_leaves_every_mix_and_hears_only_its_music(media_server, bot):
    async with MediaHost({"hold-1500.wav": tone_wav(1500, 0.5)}) as host, CallbackReceiver() as receiver:
        call_id = await create_call(bot, callbackUri=receiver.url)
        call = media_server.registry.get(call_id)
        a, b, c = await join_all(media_server, call_id, tones(440, 660, 880))
        try:
            await hear_for([a, b, c], 0.6)
            sent = time.monotonic()
            hold = {"customPrompt": {"mediaInfo": {"uri": host.url("hold-1500.wav")}}, "clientContext": "hold b"}
            response = await bot.post(f"{CALLS}/{call_id}/participants/{b.participant_id}/startHoldMusic", json=hold)
            assert response.status_code == 202, response.text
            start = response.json()["id"]
            await receiver.wait_for(ended(start), timeout=10)
            roster = [n for n in receiver.notifications() if n["resourceUrl"].endswith("/participants")][-1]["resourceData"][0]
            assert roster["id"] == b.participant_id and roster["mediaStreams"][0]["direction"] == "receiveOnly"
            await hear_for([a, b, c], 1.2)
            back_sent = time.monotonic()
            response = await bot.post(f"{CALLS}/{call_id}/participants/{b.participant_id}/stopHoldMusic", json={})
            assert response.status_code == 202, response.text
            stop = response.json()["id"]
            await receiver.wait_for(ended(stop), timeout=10)
            await hear_for([a, b, c], 1.2)

            held_from, held_until = call.operation(start).completed_monotonic, call.operation(stop).completed_monotonic
            for listener in (a, c):  # Bob's tone stops for the others and comes back
                assert_tone_stops(listener, 660, sent, until=back_sent)
                assert_tone_returns(listener, 660, back_sent)
            in_hold = (held_from + 0.3, back_sent)
            assert amplitude(b, 1500, *in_hold) == pytest.approx(A, rel=0.1)  # Bob hears the music ...
            for other in (440, 880):
                assert amplitude(b, other, *in_hold) < 0.03 * A  # ... and only the music
                assert amplitude(b, other, back_sent + 0.6) == pytest.approx(A, rel=0.1)  # the call again after
            assert amplitude(b, 1500, back_sent + 0.6) < 0.03 * A
            assert not call.participant(b.participant_id).server_muted  # held, never muted
            # the audit: no mix made between the two completions took a frame of Bob; Alice and Carol were mixed
            during = call.mixer.audit.between(held_from, held_until)
            assert len(during) > 50 and all(b.participant_id not in r.contributors for r in during)
            # ... while Alice's frames were mixed (all but the ticks her frame came late for, on a busy machine)
            assert sum(a.participant_id in r.contributors for r in during) > 0.8 * len(during)
            assert call.mixer.audit.frames_from(b.participant_id, held_until) > 25
        finally:
            await leave_all([a, b, c])
        await end_call(bot, receiver, call_id)
