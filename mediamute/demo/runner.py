"""Plays a scenario for real: an in-process server on a free loopback port, a call created through the Graph
API, participants joining by WHIP, actions at their times, and everything recorded for the report."""

from __future__ import annotations

import asyncio
import io
import logging
import time
import wave
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import numpy as np

from ..calls.call import Call
from ..calls.stats import ParticipantStats, participant_stats
from ..client import CallParticipant
from ..media.jitter import JitterBufferSettings
from ..media.audit import TickRecord
from ..server import MediamuteServer
from ..settings import ServerSettings
from ..media.audio import FRAME_SAMPLES, SAMPLE_RATE
from ..sources import PilotSource, SilenceSource, load_wav, source_from_spec
from ..tokens import ALL_CALL_ROLES
from .callbacks import CallbackSink
from .model import ActionResult, DemoRun
from .scenario import ActionName, ActionSpec, Scenario

log = logging.getLogger(__name__)
G = "/v1.0/communications/calls"
JOIN_TIMEOUT = 15.0
UPDATE_PERIOD = 0.25
"""The live view redraws 4 times a second: enough to watch, cheap enough not to cost the mixer its ticks."""

LISTENER_JITTER = JitterBufferSettings(max_delay=0.1)
"""The demo's voices hear through a jitter buffer of at most 100 ms, a usual WebRTC listener's. They run in the
server's own process, whose loop stalls (a join's handshakes) would otherwise deepen their buffers as if the
network had jittered, and the report's heard mute-to-silence would measure the simulator's own pauses."""


def prompt_with_pilot(path: str, pilot_hz: float) -> bytes:
    """A prompt file as the demo's bot serves it: the WAV's voice plus the application's faint pilot tone (so each
    listener's audio shows when the application is heard), as a 48 kHz mono 16-bit WAV."""
    voice = load_wav(path).astype(np.int32)
    pilot = PilotSource(SilenceSource(), pilot_hz)
    frames = -(-voice.size // FRAME_SAMPLES)
    tone = np.concatenate([pilot.next_frame() for _ in range(frames)])[: voice.size]
    samples = np.clip(voice + tone, -32768, 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


class DemoRunner:
    """Runs one scenario as a client of an in-process server: the call, every mute and every prompt go through the
    HTTP API (a prompt is Graph's playPrompt of a file the demo's bot serves), the audit records through the
    server's in-process interface (`subscribe_audit`). `on_update` (if given) is called every UPDATE_PERIOD with
    live numbers."""

    def __init__(self, scenario: Scenario, on_update: Callable[["DemoRunner"], None] | None = None) -> None:
        self.scenario = scenario
        self.on_update = on_update
        self.server = MediamuteServer(ServerSettings(port=0, ephemeral_key=True, log_level="warning"))
        self.sink = CallbackSink()
        self.participants: dict[str, CallParticipant] = {}
        self.ids: dict[str, str] = {}
        self.ticks: list[TickRecord] = []
        self.actions: list[ActionResult] = []
        self.call: Call | None = None
        """Read only, for the live roster, the clock counters and the operations' completion times."""
        self.call_id = ""
        self.t0 = 0.0
        self.phase = "starting"
        self._last_stats: list[ParticipantStats] = []
        self._http: httpx.AsyncClient | None = None

    # live numbers for the view -------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return max(0.0, time.monotonic() - self.t0) if self.t0 else 0.0

    def live_stats(self) -> list[ParticipantStats]:
        """Per-participant live numbers; after the call ended, the last ones seen (the final roster)."""
        if self.call is None:
            return []
        if not self.call.terminated:
            self._last_stats = [participant_stats(self.call, p) for p in self.call.participants.values()]
        return self._last_stats

    # the run -------------------------------------------------------------------------------------------------
    async def run(self) -> DemoRun:
        started = time.monotonic()
        await self.server.start()
        await self.sink.start()
        token = self.server.signing_key.app_token(list(ALL_CALL_ROLES))
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=self.server.base_url, headers=headers, timeout=10.0) as http:
            self._http = http
            try:
                return await self._play(token, started)
            finally:
                for participant in self.participants.values():
                    await participant.vanish()
                await self.sink.stop()
                await self.server.stop()

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("the runner is not running")
        return self._http

    async def _play(self, token: str, started: float) -> DemoRun:
        """Set the call up, play the actions at their times, end the call, and hand back what was recorded."""
        app_id = await self._create_call()
        unsubscribe = self.server.subscribe_audit(self.call_id, self.ticks.append)
        self._make_participants(token)
        await self._join_first()
        self.t0 = time.monotonic()
        self.phase = "running"
        updater = asyncio.get_running_loop().create_task(self._updates())
        try:
            for action in self.scenario.actions:
                await _sleep_until(self.t0 + action.at)
                self.actions.append(await self._perform(action))
            await _sleep_until(self.t0 + self.scenario.duration)
            final_stats = {p.display_name: p for p in self.live_stats()}
            assert self.call is not None
            late_ticks, clock_ticks = self.call.clock.late_ticks, self.call.clock.ticks
            self.phase = "ending"
            ended_at = time.monotonic()
            await self._end_call()
        finally:
            updater.cancel()
            unsubscribe()
            self.phase = "done"
        return DemoRun(
            scenario=self.scenario,
            call_id=self.call_id,
            app_id=app_id,
            app_name=self.scenario.call.app_name,
            t0=self.t0,
            ended_at=ended_at,
            ids=self.ids,
            participants=self.participants,
            ticks=self.ticks,
            actions=self.actions,
            sink=self.sink,
            final_stats=final_stats,
            late_ticks=late_ticks,
            clock_ticks=clock_ticks,
            wall_seconds=time.monotonic() - started,
        )

    async def _create_call(self) -> str:
        """Create the call through the Graph API, with the demo's receiver as its callback; returns the app's id.
        The application plays a silent pilot until the scenario gives it something to say."""
        scenario = self.scenario
        self.sink.jwks = (await self.http.get("/ext/keys")).json()
        response = await self.http.post(
            G,
            json={
                "@odata.type": "#microsoft.graph.call",
                "callbackUri": self.sink.url,
                "requestedModalities": ["audio"],
                "subject": scenario.title,
                "mediamute": {
                    "allowSelfUnmute": scenario.call.allow_self_unmute,
                    "appDisplayName": scenario.call.app_name,
                },
            },
        )
        response.raise_for_status()
        created = response.json()
        self.call_id = created["id"]
        self.call = self.server.registry.get(self.call_id)
        for index, action in enumerate(scenario.actions):  # the bot's prompt files, ready before the clock starts
            if action.action == "app-play" and action.source:
                self.sink.media[f"prompt-{index}.wav"] = prompt_with_pilot(action.source, scenario.call.app_pilot_hz)
        return created["myParticipantId"]

    def _make_participants(self, token: str) -> None:
        for spec in self.scenario.participants:
            voice = PilotSource(source_from_spec(spec.source), spec.pilot_hz or 9000.0)
            self.participants[spec.name] = CallParticipant(
                self.server.base_url, self.call_id, voice, display_name=spec.name, token=token, network=spec.network,
                jitter=LISTENER_JITTER,
            )

    async def _join_first(self) -> None:
        """Join everyone who does not join by a scenario action, one after the other: the roster (and its
        notifications) in scenario order."""
        self.phase = "joining"
        for name, participant in self.participants.items():
            if not self.scenario.joins_late(name):
                await participant.join(timeout=JOIN_TIMEOUT)
        self.ids = {name: p.participant_id for name, p in self.participants.items() if p.participant_id}

    async def _end_call(self) -> None:
        """Delete the call and wait (bounded) for the receiver to get the call's `deleted` notification."""
        resource = f"/communications/calls/{self.call_id}"
        await self.http.delete(f"{G}/{self.call_id}")
        await self.sink.wait_for(
            lambda got: any(n.notification.get("changeType") == "deleted" and n.notification.get("resourceUrl") == resource for n in got),
            timeout=5.0,
        )

    async def _updates(self) -> None:
        while True:
            if self.on_update is not None:
                self.on_update(self)
            await asyncio.sleep(UPDATE_PERIOD)  # a refresh rate, not a synchronisation

    # the actions ---------------------------------------------------------------------------------------------
    async def _perform(self, action: ActionSpec) -> ActionResult:
        """Run one scenario action through its handler and record when it was sent and answered."""
        sent = time.monotonic()
        response = await ACTIONS[action.action](self, action)
        answered = time.monotonic()
        return self._result(action, sent, answered, response)

    def _result(self, action: ActionSpec, sent: float, answered: float, response: httpx.Response | None) -> ActionResult:
        name = action.participant or self.scenario.call.app_name
        if response is None:
            return ActionResult(action, name, sent, answered, None)
        try:
            payload: Any = response.json()
        except ValueError:
            payload = response.text
        completed = None
        operations = self.call.operations if self.call is not None else {}
        if isinstance(payload, dict) and payload.get("id") in operations:
            completed = operations[payload["id"]].completed_monotonic
        if not response.is_success:
            log.warning("%s %s answered %d: %s", action.action, name, response.status_code, payload)
        return ActionResult(action, name, sent, answered, response.status_code, payload, completed)

    def _participant(self, action: ActionSpec) -> CallParticipant:
        return self.participants[action.participant or ""]

    async def _post(self, path: str, action: ActionSpec) -> httpx.Response:
        body = {"clientContext": action.client_context} if action.client_context else {}
        return await self.http.post(path, json=body)

    async def _mute(self, action: ActionSpec) -> httpx.Response:
        pid = self.ids.get(action.participant or "", "")
        return await self._post(f"{G}/{self.call_id}/participants/{pid}/mute", action)

    async def _unmute(self, action: ActionSpec) -> httpx.Response:
        pid = self.ids.get(action.participant or "", "")
        return await self._post(f"/ext/calls/{self.call_id}/participants/{pid}/unmute", action)

    async def _self_unmute(self, action: ActionSpec) -> httpx.Response:
        return await self._participant(action).self_unmute()

    async def _app_mute(self, action: ActionSpec) -> httpx.Response:
        return await self._post(f"{G}/{self.call_id}/mute", action)

    async def _app_unmute(self, action: ActionSpec) -> httpx.Response:
        return await self._post(f"{G}/{self.call_id}/unmute", action)

    async def _app_play(self, action: ActionSpec) -> httpx.Response:
        """Graph's playPrompt, naming the prompt by its URL on the demo's bot server (answered `running`; the
        completing notification comes to the callback when it has been played)."""
        name = f"prompt-{self.scenario.actions.index(action)}.wav"
        prompt = {
            "@odata.type": "#microsoft.graph.mediaPrompt",
            "mediaInfo": {"@odata.type": "#microsoft.graph.mediaInfo", "uri": self.sink.media_url(name)},
        }
        body: dict[str, Any] = {"prompts": [prompt]}
        if action.client_context:
            body["clientContext"] = action.client_context
        return await self.http.post(f"{G}/{self.call_id}/playPrompt", json=body)

    async def _leave(self, action: ActionSpec) -> None:
        await self._participant(action).leave()

    async def _network(self, action: ActionSpec) -> httpx.Response:
        pid = self.ids.get(action.participant or "", "")
        return await self.http.put(f"/ext/calls/{self.call_id}/participants/{pid}/network", json=action.network_body())

    async def _join(self, action: ActionSpec) -> None:
        participant = self._participant(action)
        await participant.join(timeout=JOIN_TIMEOUT)
        self.ids[action.participant or ""] = participant.participant_id or ""


ActionHandler = Callable[[DemoRunner, ActionSpec], Awaitable[httpx.Response | None]]
ACTIONS: dict[ActionName, ActionHandler] = {
    "mute": DemoRunner._mute,
    "unmute": DemoRunner._unmute,
    "self-unmute": DemoRunner._self_unmute,
    "app-mute": DemoRunner._app_mute,
    "app-unmute": DemoRunner._app_unmute,
    "app-play": DemoRunner._app_play,
    "leave": DemoRunner._leave,
    "join": DemoRunner._join,
    "network": DemoRunner._network,
}
"""How each scenario action is performed: a request answered with an HTTP response, or None for one that is not."""


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
