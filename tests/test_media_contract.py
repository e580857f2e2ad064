"""Graph's v1.0 pages for the media actions as contract tests: each page's request, response and completing
notification (call-playprompt, call-record, call-cancelmediaprocessing, call-senddtmftones,
participant-startholdmusic, participant-stopholdmusic), the recording download, and the errors Graph leaves to us.

The examples are copied from the pages, with what a local simulator must change said where it is changed: their
media URLs (cdn.contoso.com, bot.contoso.com) are not on this machine, so they become files of the test's media
directory (the untouched URL is a 400 that says why); their ids are any UUID; `@odata.etag` is not sent.
In-process app (no socket for the API), a real callback receiver, the mix clock running in real time."""

from __future__ import annotations

import copy

import httpx
import numpy as np
import pytest

from mediamute.api.recordings import RECORDING_AUDIENCE
from mediamute.media.audio import FRAME_SAMPLES
from mediamute.settings import ServerSettings
from mediamute.tokens import SigningKey

from .helpers import (
    CALLS,
    CallbackReceiver,
    InProcessMediamute,
    admin_token,
    assert_contains,
    assert_graph_error,
    join_without_media,
    listening,
    tone_wav,
    wait_until,
    wav_audio,
)

# call-playprompt.md -----------------------------------------------------------------------------------------------
PLAY_PROMPT_REQUEST = {
    "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c",
    "prompts": [
        {
            "@odata.type": "#microsoft.graph.mediaPrompt",
            "mediaInfo": {
                "@odata.type": "#microsoft.graph.mediaInfo",
                "uri": "https://cdn.contoso.com/beep.wav",
                "resourceId": "1D6DE2D4-CD51-4309-8DAA-70768651088E",
            },
        }
    ],
}
PLAY_PROMPT_RESPONSE = {
    "@odata.type": "#microsoft.graph.playPromptOperation",
    "id": "0fe0623f-d628-42ed-b4bd-8ac290072cc5",
    "status": "running",
    "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c",
}
PLAY_PROMPT_NOTIFICATION = {
    "@odata.type": "#microsoft.graph.commsNotifications",
    "value": [
        {
            "@odata.type": "#microsoft.graph.commsNotification",
            "changeType": "deleted",
            "resourceUrl": "/communications/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/0FE0623FD62842EDB4BD8AC290072CC5",
            "resourceData": {
                "@odata.type": "#microsoft.graph.playPromptOperation",
                "@odata.id": "/communications/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/0FE0623FD62842EDB4BD8AC290072CC5",
                "resultInfo": {
                    "@odata.type": "#microsoft.graph.resultInfo",
                    "code": 200,
                    "subcode": 0,
                    "message": "Action completed successfully.",
                },
                "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c",
                "status": "completed",
            },
        }
    ],
}
# call-record.md -----------------------------------------------------------------------------------------------------
RECORD_REQUEST = {
    "bargeInAllowed": True,
    "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c",
    "prompts": [
        {
            "@odata.type": "#microsoft.graph.mediaPrompt",
            "mediaInfo": {"uri": "https://cdn.contoso.com/beep.wav", "resourceId": "1D6DE2D4-CD51-4309-8DAA-70768651088E"},
        }
    ],
    "maxRecordDurationInSeconds": 10,
    "initialSilenceTimeoutInSeconds": 5,
    "maxSilenceTimeoutInSeconds": 2,
    "playBeep": True,
    "stopTones": ["#", "1", "*"],
}
RECORD_RESPONSE = {
    "@odata.type": "#microsoft.graph.recordOperation",
    "id": "0fe0623f-d628-42ed-b4bd-8ac290072cc5",
    "status": "running",
    "resultInfo": None,
    "recordingLocation": None,
    "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c",
}
RECORD_NOTIFICATION = {
    "@odata.type": "#microsoft.graph.commsNotifications",
    "value": [
        {
            "@odata.type": "#microsoft.graph.commsNotification",
            "changeType": "deleted",
            "resourceUrl": "/communications/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/0FE0623FD62842EDB4BD8AC290072CC5",
            "resourceData": {
                "@odata.type": "#microsoft.graph.recordOperation",
                "@odata.id": "/communications/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/0FE0623FD62842EDB4BD8AC290072CC5",
                "id": "0fe0623f-d628-42ed-b4bd-8ac290072cc5",
                "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c",
                "status": "completed",
                "resultInfo": {
                    "@odata.type": "#microsoft.graph.resultInfo",
                    "code": 200,
                    "subcode": 8515,
                    "message": "Action completed, max record duration reached.",
                },
                "recordingLocation": "https://file.location/17e3b46c-f61d-4f4d-9635-c626ef18e6ad",
                "recordingAccessToken": "<access-token>",
            },
        }
    ],
}
# call-cancelmediaprocessing.md ------------------------------------------------------------------------------------
CANCEL_REQUEST = {"clientContext": "clientContext-value"}
CANCEL_RESPONSE = {
    "@odata.type": "#microsoft.graph.cancelMediaProcessingOperation",
    "status": "completed",
    "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c",  # the page's response echoes another context than its request
    "id": "0fe0623f-d628-42ed-b4bd-8ac290072cc5",
}
CANCELLED_RECORD_NOTIFICATION = {
    "@odata.type": "#microsoft.graph.commsNotifications",
    "value": [
        {
            "@odata.type": "#microsoft.graph.commsNotification",
            "changeType": "deleted",
            "resourceUrl": "/communications/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/0FE0623FD62842EDB4BD8AC290072CC5",
            "resourceData": {
                "@odata.type": "#microsoft.graph.recordOperation",
                "@odata.id": "/communications/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/0FE0623FD62842EDB4BD8AC290072CC5",
                "id": "0fe0623f-d628-42ed-b4bd-8ac290072cc5",
                "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c",
                "status": "failed",
                "resultInfo": {
                    "@odata.type": "#microsoft.graph.resultInfo",
                    "code": 400,
                    "subcode": 8508,
                    "message": "Action failed, the operation was cancelled.",
                },
                "recordingLocation": "",
                "recordingAccessToken": "",
                "completionReason": "operationCanceled",
            },
        }
    ],
}
# call-senddtmftones.md ----------------------------------------------------------------------------------------------
DTMF_REQUEST = {
    "tones": ["tone1", "tone2", "tone3", "tone4", "tone5", "tone6", "tone7", "tone8", "tone9", "tone0", "star", "pound"],
    "delayBetweenTonesMs": 1000,
    "clientContext": "e0be71f1-a14f-4cec-b65a-e7aba5db7c53",
}
DTMF_RESPONSE = {
    "@odata.type": "#microsoft.graph.sendDtmfTonesOperation",
    "status": "running",
    "clientContext": "e0be71f1-a14f-4cec-b65a-e7aba5db7c53",
    "id": "d36fe651-9f50-484d-bd4b-1e6415eae448",
}


def dtmf_notification(reason: str) -> dict:
    """The page's three notifications differ only in completionReason (successful case, error cases 1 and 2)."""
    return {
        "@odata.type": "#microsoft.graph.commsNotifications",
        "value": [
            {
                "@odata.type": "#microsoft.graph.commsNotification",
                "changeType": "deleted",
                "resourceUrl": "/communications/calls/481f3600-983e-4276-9b59-c1b30ec8d125/operations/d36fe651-9f50-484d-bd4b-1e6415eae448",
                "resourceData": {
                    "@odata.type": "#microsoft.graph.sendDtmfTonesOperation",
                    "status": "completed",
                    "completionReason": reason,
                    "clientContext": "e0be71f1-a14f-4cec-b65a-e7aba5db7c53",
                    "id": "d36fe651-9f50-484d-bd4b-1e6415eae448",
                },
            }
        ],
    }


# participant-startholdmusic.md / participant-stopholdmusic.md (their requests end objects with a trailing comma,
# which is not JSON: verbatim they are a 400 that says so; the tests send them without)
START_HOLD_REQUEST_VERBATIM = b"""{
  "customPrompt": {
    "@odata.type": "#microsoft.graph.mediaPrompt",
    "mediaInfo": {
      "@odata.type": "#microsoft.graph.mediaInfo",
      "uri": "https://bot.contoso.com/onHold.wav",
    },
  },
  "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c",
}"""
START_HOLD_REQUEST = {
    "customPrompt": {
        "@odata.type": "#microsoft.graph.mediaPrompt",
        "mediaInfo": {"@odata.type": "#microsoft.graph.mediaInfo", "uri": "https://bot.contoso.com/onHold.wav"},
    },
    "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c",
}
STOP_HOLD_REQUEST = {"clientContext": "d45324c1-fcb5-430a-902c-f20af696537c"}


def hold_response(kind: str) -> dict:
    return {
        "@odata.type": f"#microsoft.graph.{kind}",
        "id": "0fe0623f-d628-42ed-b4bd-8ac290072cc5",
        "status": "running",
        "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c",
    }


def hold_notification(kind: str) -> dict:
    path = "communications/calls/e141b67c-90fd-455d-858b-b48a40b9cc8d/operations/0fe0623f-d628-42ed-b4bd-8ac290072cc5"
    return {
        "@odata.type": "#microsoft.graph.commsNotifications",
        "value": [
            {
                "@odata.type": "#microsoft.graph.commsNotification",
                "changeType": "deleted",
                "resourceUrl": path,
                "resourceData": {
                    "@odata.type": f"#microsoft.graph.{kind}",
                    "@odata.id": path,
                    "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c",
                    "status": "completed",
                },
            }
        ],
    }


OPERATION_PATHS = ("$.value[0].resourceUrl", "$.value[0].resourceData.@odata.id")
"""The examples' operation paths use other ids (and the hold pages drop the leading '/'): checked on their own."""


def local(example: dict, **uris: str) -> dict:
    """A copy of a page's request with its media URLs replaced by the test's own (`prompts=` or `customPrompt=`)."""
    body = copy.deepcopy(example)
    if "prompts" in uris:
        for prompt in body["prompts"]:
            prompt["mediaInfo"]["uri"] = uris["prompts"]
    if "customPrompt" in uris:
        body["customPrompt"]["mediaInfo"]["uri"] = uris["customPrompt"]
    return body


@pytest.fixture
async def media_api(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    (media / "beep.wav").write_bytes(tone_wav(1000, 0.2))
    (media / "onHold.wav").write_bytes(tone_wav(600, 1.0))
    settings = ServerSettings(log_level="warning", ephemeral_key=True, media_dir=str(media))
    async with InProcessMediamute(settings) as api:
        yield api


@pytest.fixture
async def graph(media_api):
    async with media_api.client(admin_token(media_api)) as client:
        yield client


class Flow:
    """A call with a callback receiver: the notifications of each operation, and the call's end inside it."""

    def __init__(self, http: httpx.AsyncClient, receiver: CallbackReceiver, call_id: str) -> None:
        self.http, self.receiver, self.call_id = http, receiver, call_id

    @property
    def path(self) -> str:
        return f"{CALLS}/{self.call_id}"

    def operation_path(self, operation_id: str) -> str:
        return f"/communications/calls/{self.call_id}/operations/{operation_id}"

    async def notification(self, operation_id: str, timeout: float = 10.0) -> dict:
        """The batch (as delivered) that carries the operation's completing notification, alone in its value."""
        path = self.operation_path(operation_id)
        await self.receiver.wait_for(lambda r: any(n["resourceUrl"] == path for n in r.notifications()), timeout)
        (found,) = [n for n in self.receiver.notifications() if n["resourceUrl"] == path]
        return {"@odata.type": "#microsoft.graph.commsNotifications", "value": [found]}

    def check(self, example: dict, delivered: dict, operation_id: str, placeholders: tuple[str, ...] = ()) -> None:
        assert_contains(example, delivered, placeholders=OPERATION_PATHS + placeholders)
        data = delivered["value"][0]
        assert data["resourceUrl"] == data["resourceData"]["@odata.id"] == self.operation_path(operation_id)
        assert data["resourceData"]["id"] == operation_id


async def open_flow(http: httpx.AsyncClient, receiver: CallbackReceiver) -> Flow:
    created = await http.post(CALLS, json={"callbackUri": receiver.url})
    assert created.status_code == 201, created.text
    return Flow(http, receiver, created.json()["id"])


async def close_flow(flow: Flow) -> None:
    assert (await flow.http.delete(flow.path)).status_code == 204
    await flow.receiver.wait_for(lambda r: r.notifications()[-1]["changeType"] == "deleted"
                                 and r.notifications()[-1]["resourceUrl"] == f"/communications/calls/{flow.call_id}")


async def test_play_prompt_page(media_api, graph):
    async with CallbackReceiver() as receiver:
        flow = await open_flow(graph, receiver)
        verbatim = await graph.post(f"{flow.path}/playPrompt", json=PLAY_PROMPT_REQUEST)
        assert_graph_error(verbatim, 400, "BadRequest", "cdn.contoso.com/beep.wav is not on this machine")
        assert not media_api.registry.get(flow.call_id).operations  # refused: no operation

        response = await graph.post(f"{flow.path}/playPrompt", json=local(PLAY_PROMPT_REQUEST, prompts="beep.wav"))
        assert response.status_code == 200, response.text
        body = response.json()
        assert_contains(PLAY_PROMPT_RESPONSE, body)
        assert body["resultInfo"] is None and "completionReason" not in body
        assert response.headers["Location"] == f"{media_api.base_url}{flow.path}/operations/{body['id']}"
        flow.check(PLAY_PROMPT_NOTIFICATION, await flow.notification(body["id"]), body["id"])
        resolved = (await graph.get(response.headers["Location"])).json()
        assert (resolved["status"], resolved["completionReason"]) == ("completed", "completedSuccessfully")

        unreadable = {"prompts": [{"mediaInfo": {"uri": "http://127.0.0.1:1/nothing-listens.wav"}}]}
        failed = (await graph.post(f"{flow.path}/playPrompt", json=unreadable)).json()
        data = (await flow.notification(failed["id"]))["value"][0]["resourceData"]
        assert (data["status"], data["resultInfo"]["code"]) == ("failed", 400)
        assert "nothing-listens.wav" in data["resultInfo"]["message"] and "ConnectError" in data["resultInfo"]["message"]
        await close_flow(flow)


async def test_record_response_page_and_the_recording_download(media_api, graph):
    async with CallbackReceiver() as receiver:
        flow = await open_flow(graph, receiver)
        call = media_api.registry.get(flow.call_id)
        caller = join_without_media(call, "Caller")
        response = await graph.post(f"{flow.path}/recordResponse", json=local(RECORD_REQUEST, prompts="beep.wav"))
        assert response.status_code == 200, response.text
        body = response.json()
        assert_contains(RECORD_RESPONSE, body)
        assert response.headers["Location"].endswith(f"{flow.path}/operations/{body['id']}")
        # the page's stopTones ["#", "1", "*"]: the caller presses # once the prompt and the beep have played
        await wait_until(lambda: call.mixer.slot(call.app.id).sink is not None, timeout=5)
        call.receive_tone(caller.id, "pound")  # what the rtc layer's tone reception calls (TONE_RECEIVED)
        stopped = (await flow.notification(body["id"]))["value"][0]["resourceData"]
        assert (stopped["status"], stopped["completionReason"], stopped["resultInfo"]["code"]) == ("completed", "stopToneDetected", 200)

        # the page's notification: the max record duration reached (1 s here, nobody speaking)
        short = {"maxRecordDurationInSeconds": 1, "playBeep": False, "clientContext": RECORD_REQUEST["clientContext"]}
        record = (await graph.post(f"{flow.path}/recordResponse", json=short)).json()
        delivered = await flow.notification(record["id"])
        flow.check(RECORD_NOTIFICATION, delivered, record["id"],
                   ("$.value[0].resourceData.recordingLocation", "$.value[0].resourceData.recordingAccessToken"))
        data = delivered["value"][0]["resourceData"]
        assert data["completionReason"] == "maxRecordDurationReached"

        # GET {recordingLocation} with Authorization: Bearer {recordingAccessToken}
        location, token = data["recordingLocation"], data["recordingAccessToken"]
        assert location.startswith(f"{media_api.base_url}/ext/calls/{flow.call_id}/recordings/")
        async with media_api.client() as bot:
            download = await bot.get(location, headers={"Authorization": f"Bearer {token}"})
            assert download.status_code == 200 and download.headers["content-type"] == "application/octet-stream"
            rate, samples = wav_audio(download.content)
            assert rate == 16_000 and samples.size == 16_000 and not samples.any()  # 1 s of the silence it heard
            other_token = stopped["recordingAccessToken"]
            recording_id = location.rsplit("/", 1)[-1]

            def recording_token(subject: str, lifetime: float = 60.0) -> str:
                claims = {"aud": RECORDING_AUDIENCE, "mm:kind": "recording", "sub": subject}
                return media_api.signing_key.sign(claims, lifetime)

            refusals = [
                (None, 401, "empty"),
                ("not-a-jwt", 401, "validation failure"),
                (SigningKey.generate().app_token(["Calls.AccessMedia.All"]), 401, "validation failure"),
                (recording_token(recording_id, lifetime=-10), 401, "expired"),
                (admin_token(media_api), 403, "not a recording access token"),
                (other_token, 403, "another recording"),
            ]
            for bearer, status, words in refusals:
                headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
                assert_graph_error(await bot.get(location, headers=headers), status, message_part=words)
            gone = "00000000-0000-0000-0000-000000000000"
            response = await bot.get(f"/ext/calls/{flow.call_id}/recordings/{gone}", headers={"Authorization": f"Bearer {recording_token(gone)}"})
            assert_graph_error(response, 404, "itemNotFound")
            other_call = location.replace(flow.call_id, "another-call")  # the right recording under another call
            assert_graph_error(await bot.get(other_call, headers={"Authorization": f"Bearer {token}"}), 404)
        await close_flow(flow)


async def test_cancel_media_processing_page(media_api, graph):
    async with CallbackReceiver() as receiver:
        flow = await open_flow(graph, receiver)
        record = (await graph.post(f"{flow.path}/recordResponse", json={
            "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c", "maxRecordDurationInSeconds": 60,
            "initialSilenceTimeoutInSeconds": 60})).json()
        prompt = (await graph.post(f"{flow.path}/playPrompt", json={"prompts": [{"mediaInfo": {"uri": "prompt.wav"}}]})).json()
        response = await graph.post(f"{flow.path}/cancelMediaProcessing", json=CANCEL_REQUEST)
        assert response.status_code == 200, response.text
        assert_contains(CANCEL_RESPONSE, response.json(), placeholders=("$.clientContext",))
        assert response.json()["clientContext"] == "clientContext-value"
        flow.check(CANCELLED_RECORD_NOTIFICATION, await flow.notification(record["id"]), record["id"])
        cancelled = (await flow.notification(prompt["id"]))["value"][0]["resourceData"]
        assert (cancelled["status"], cancelled["resultInfo"]["subcode"], cancelled["completionReason"]) == (
            "failed", 8508, "mediaOperationCanceled")
        ids = [n["resourceUrl"].rsplit("/", 1)[-1] for n in receiver.notifications() if "/operations/" in n["resourceUrl"]]
        assert ids == [record["id"], prompt["id"]]  # in queue order; the cancel itself (completed) notifies nothing
        assert (await graph.post(f"{flow.path}/cancelMediaProcessing")).status_code == 200  # no body, nothing to cancel
        await close_flow(flow)


async def test_send_dtmf_tones_page(media_api, graph):
    async with CallbackReceiver() as receiver:
        flow = await open_flow(graph, receiver)
        # the page posts to the OData-qualified action name
        response = await graph.post(f"{flow.path}/microsoft.graph.sendDtmfTones", json=DTMF_REQUEST)
        assert response.status_code == 200, response.text
        body = response.json()
        assert_contains(DTMF_RESPONSE, body)
        assert response.headers["Location"].endswith(f"{flow.path}/operations/{body['id']}")
        await graph.post(f"{flow.path}/cancelMediaProcessing", json={})
        flow.check(dtmf_notification("mediaOperationCanceled"), await flow.notification(body["id"]), body["id"])  # error case 1

        quick = (await graph.post(f"{flow.path}/sendDtmfTones", json={**DTMF_REQUEST, "tones": ["tone1", {"tone": "pound"}],
                                                                          "delayBetweenTonesMs": 0})).json()
        flow.check(dtmf_notification("completedSuccessfully"), await flow.notification(quick["id"]), quick["id"])
        beta = await graph.post(f"/beta/communications/calls/{flow.call_id}/sendDtmfTones", json={"tones": ["d"]})
        assert beta.status_code == 200 and f"/beta/communications/calls/{flow.call_id}/operations/" in beta.headers["Location"]
        await flow.notification(beta.json()["id"])
        await close_flow(flow)


async def test_hold_music_pages(media_api, graph):
    async with CallbackReceiver() as receiver:
        flow = await open_flow(graph, receiver)
        call = media_api.registry.get(flow.call_id)
        held, heard = listening(call, "Held")
        start_path = f"{flow.path}/participants/{held.id}/startHoldMusic"
        verbatim = await graph.post(start_path, content=START_HOLD_REQUEST_VERBATIM, headers={"Content-Type": "application/json"})
        assert_graph_error(verbatim, 400, message_part="not valid JSON")
        refused = await graph.post(start_path, json=START_HOLD_REQUEST)
        assert_graph_error(refused, 400, message_part="bot.contoso.com/onHold.wav is not on this machine")

        response = await graph.post(start_path, json=local(START_HOLD_REQUEST, customPrompt="onHold.wav"))
        assert response.status_code == 202, response.text
        body = response.json()
        assert_contains(hold_response("startHoldMusicOperation"), body)
        assert response.headers["Location"] == f"{media_api.base_url}{flow.path}/operations/{body['id']}"
        flow.check(hold_notification("startHoldMusicOperation"), await flow.notification(body["id"]), body["id"])
        roster = [n for n in receiver.notifications() if n["resourceUrl"].endswith("/participants")]
        assert roster[-1]["resourceData"][0]["id"] == held.id
        assert roster[-1]["resourceData"][0]["mediaStreams"][0]["direction"] == "receiveOnly"  # mediamute's hold mark
        assert receiver.notifications().index(roster[-1]) < len(receiver.notifications()) - 1  # before the operation's

        response = await graph.post(f"{flow.path}/participants/{held.id}/stopHoldMusic", json=STOP_HOLD_REQUEST)
        assert response.status_code == 202, response.text
        body = response.json()
        assert_contains(hold_response("stopHoldMusicOperation"), body)
        flow.check(hold_notification("stopHoldMusicOperation"), await flow.notification(body["id"]), body["id"])
        roster = [n for n in receiver.notifications() if n["resourceUrl"].endswith("/participants")]
        assert roster[-1]["resourceData"][0]["mediaStreams"][0]["direction"] == "sendReceive"

        # without customPrompt: the package's hold-music.wav, exactly, looped
        started = len(heard)
        default = (await graph.post(start_path)).json()
        await flow.notification(default["id"])
        await wait_until(lambda: len(heard) > started + 30, timeout=5)
        music = media_api.app.state.media.library.sample("hold-music.wav")
        first = next(i for i in range(started, len(heard)) if np.array_equal(heard[i], music[:FRAME_SAMPLES]))
        for offset in range(1, 20):
            piece = music[offset * FRAME_SAMPLES : (offset + 1) * FRAME_SAMPLES]
            assert np.array_equal(heard[first + offset], piece), offset
        await close_flow(flow)


@pytest.mark.parametrize(
    "action, body, words",
    [
        ("playPrompt", {"prompts": [{"mediaInfo": {"uri": "prompt.wav"}}] * 21}, "prompts: List should have at most 20 items"),
        ("playPrompt", {"prompts": []}, "prompts: List should have at least 1 item"),
        ("playPrompt", {}, "prompts: Field required"),
        ("playPrompt", {"prompts": [{"mediaInfo": {"uri": "ftp://127.0.0.1/a.wav"}}]}, "'ftp' scheme is not supported"),
        ("playPrompt", {"prompts": [{"mediaInfo": {"uri": "../../etc/passwd"}}]}, "no '..'"),
        ("playPrompt", {"prompts": [{"mediaInfo": {"uri": "prompt.wav"}}, {"mediaInfo": {"uri": "nope.wav"}}]},
         "prompts[1].mediaInfo.uri: nope.wav: no file nope.wav under the media directory"),
        ("playPrompt", {"prompts": [{"mediaInfo": {"uri": "file:///etc/passwd"}}]}, "outside the media directory"),
        ("recordResponse", {"initialSilenceTimeoutInSeconds": 0}, "initialSilenceTimeoutInSeconds: Input should be greater than or equal to 1"),
        ("recordResponse", {"maxSilenceTimeoutInSeconds": 121}, "maxSilenceTimeoutInSeconds: Input should be less than or equal to 120"),
        ("recordResponse", {"maxRecordDurationInSeconds": "5"}, "maxRecordDurationInSeconds: Input should be a valid integer"),
        ("recordResponse", {"maxRecordDurationInSeconds": 5.5}, "maxRecordDurationInSeconds: Input should be a valid integer"),
        ("recordResponse", {"prompts": [{"mediaInfo": {"uri": "prompt.wav"}}] * 2}, "prompts: List should have at most 1 item"),
        ("recordResponse", {"stopTones": ["#", "hash"]}, "stopTones.1: Value error, 'hash' is not a DTMF tone"),
        ("recordResponse", {"playBeep": "yes"}, "playBeep: Input should be a valid boolean"),
        ("sendDtmfTones", {"tones": ["tone1", "tone10"]}, "tones.1: Value error, 'tone10' is not one of Graph's tone names"),
        ("sendDtmfTones", {"tones": []}, "tones: List should have at least 1 item"),
        ("sendDtmfTones", {"tones": ["tone1"], "delayBetweenTonesMs": 10_001}, "delayBetweenTonesMs: Input should be less than or equal to 10000"),
        ("sendDtmfTones", {"tones": ["tone1"] * 101}, "tones: List should have at most 100 items"),
        ("cancelMediaProcessing", {"clientContext": "x" * 257}, "clientContext: String should have at most 256 characters"),
    ],
)
async def test_bad_media_requests_are_400s_that_name_the_problem(media_api, graph, action, body, words):
    call_id = (await graph.post(CALLS, json={})).json()["id"]
    response = await graph.post(f"{CALLS}/{call_id}/{action}", json=body)
    assert_graph_error(response, 400, "BadRequest", words)
    assert not media_api.registry.get(call_id).operations  # nothing started, nothing lost


async def test_hold_music_errors_graph_leaves_to_us(media_api, graph):
    call_id = (await graph.post(CALLS, json={})).json()["id"]
    call = media_api.registry.get(call_id)
    bob, carol = join_without_media(call, "Bob"), join_without_media(call, "Carol")

    def hold(pid: str, verb: str = "startHoldMusic"):
        return graph.post(f"{CALLS}/{call_id}/participants/{pid}/{verb}", json={})

    assert (await hold(bob.id)).status_code == 202
    assert_graph_error(await hold(carol.id), 400, "BadRequest", "only one participant of a call can be on hold at a time")
    assert_graph_error(await hold(bob.id), 400, "BadRequest", "already on hold")
    assert_graph_error(await hold(carol.id, "stopHoldMusic"), 400, "BadRequest", f"Participant {carol.id} is not on hold")
    assert_graph_error(await hold(call.app.id), 400, "BadRequest", "application's own participant cannot be put on hold")
    assert_graph_error(await hold("no-such-participant"), 404, "itemNotFound")
    for uri, words in (("https://bot.contoso.com/onHold.wav", "customPrompt.mediaInfo.uri: Value error, https://bot"),
                       ("nope.wav", "customPrompt.mediaInfo.uri: nope.wav: no file")):
        music = {"customPrompt": {"mediaInfo": {"uri": uri}}}
        response = await graph.post(f"{CALLS}/{call_id}/participants/{carol.id}/startHoldMusic", json=music)
        assert_graph_error(response, 400, message_part=words)
    assert len(call.operations) == 1  # only the first start
    assert (await graph.delete(f"{CALLS}/{call_id}")).status_code == 204
    assert_graph_error(await hold(bob.id, "stopHoldMusic"), 409, "conflict")
    response = await graph.post(f"{CALLS}/{call_id}/playPrompt", json={"prompts": [{"mediaInfo": {"uri": "prompt.wav"}}]})
    assert_graph_error(response, 409, "conflict")
