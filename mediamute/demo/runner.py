"""Plays a scenario for real: an in-process server on a free loopback port, a call created through the Graph
API, participants joining by WHIP, actions at their times, and everything recorded for the report."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..calls.call import Call
from ..calls.stats import ParticipantStats, participant_stats
from ..client import CallParticipant
from ..media.audit import TickRecord
from ..server import MediamuteServer
from ..settings import ServerSettings
from ..sources import PilotSource, WavSource, source_from_spec
from ..tokens import ALL_CALL_ROLES
from .callbacks import CallbackSink
from .scenario import ActionSpec, Scenario

log = logging.getLogger(__name__)
G = "/v1.0/communications/calls"
JOIN_TIMEOUT = 15.0
UPDATE_PERIOD = 0.25
"""The live view redraws 4 times a second: enough to watch, cheap enough not to cost the mixer its ticks."""


@dataclass
class ActionResult:
    spec: ActionSpec
    target: str
    """Who the action acts on: a participant's name or the application's."""
    sent_at: float
    answered_at: float
    status: int | None
    """The HTTP status, or None for an action that is not a request (app-play)."""
    body: Any = None
    completed_server: float | None = None
    """Server monotonic time the operation completed (the gate changed), when there is one."""

    @property
    def ok(self) -> bool:
        return self.status is None or 200 <= self.status < 300


@dataclass
class DemoRun:
    """Everything a finished run leaves behind for the report."""

    scenario: Scenario
    call_id: str
    app_id: str
    app_name: str
    t0: float
    ended_at: float
    ids: dict[str, str]
    participants: dict[str, CallParticipant]
    ticks: list[TickRecord]
    actions: list[ActionResult]
    sink: CallbackSink
    final_stats: dict[str, ParticipantStats]
    late_ticks: int
    clock_ticks: int
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def name_of(self, participant_id: str) -> str:
        if participant_id == self.app_id:
            return self.app_name
        return next((n for n, i in self.ids.items() if i == participant_id), participant_id[:8])


class DemoRunner:
    """Runs one scenario; `on_update` (if given) is called ~10 times a second with live numbers."""

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
        self.t0 = 0.0
        self.phase = "starting"
        self._last_stats: list[ParticipantStats] = []

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
            try:
                return await self._play(http, token, started)
            finally:
                for participant in self.participants.values():
                    await participant.vanish()
                await self.sink.stop()
                await self.server.stop()

    async def _play(self, http: httpx.AsyncClient, token: str, started: float) -> DemoRun:
        scenario = self.scenario
        self.sink.jwks = (await http.get("/ext/keys")).json()
        response = await http.post(
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
        call_id, app_id = created["id"], created["myParticipantId"]
        call = self.server.registry.get(call_id)
        self.call = call
        call.play(PilotSource(source_from_spec("silence"), scenario.call.app_pilot_hz, amplitude=0))
        call.tick_listeners.append(self._tap)

        for spec in scenario.participants:
            voice = PilotSource(source_from_spec(spec.source), spec.pilot_hz or 9000.0)
            self.participants[spec.name] = CallParticipant(
                self.server.base_url, call_id, voice, display_name=spec.name, token=token
            )
        first = [p for name, p in self.participants.items() if not scenario.joins_late(name)]
        self.phase = "joining"
        for participant in first:  # one after the other: the roster (and its notifications) in scenario order
            await participant.join(timeout=JOIN_TIMEOUT)
        self.ids = {name: p.participant_id for name, p in self.participants.items() if p.participant_id}

        self.t0 = time.monotonic()
        self.phase = "running"
        updater = asyncio.get_running_loop().create_task(self._updates())
        try:
            for action in scenario.actions:
                await _sleep_until(self.t0 + action.at)
                self.actions.append(await self._perform(http, call, action))
            await _sleep_until(self.t0 + scenario.duration)
            final_stats = {p.display_name: p for p in self.live_stats()}
            late_ticks, clock_ticks = call.clock.late_ticks, call.clock.ticks
            self.phase = "ending"
            ended_at = time.monotonic()
            await http.delete(f"{G}/{call_id}")
            await self.sink.wait_for(
                lambda got: any(n.notification.get("changeType") == "deleted" and n.notification.get("resourceUrl") == f"/communications/calls/{call_id}" for n in got),
                timeout=5.0,
            )
        finally:
            updater.cancel()
            self.phase = "done"
        return DemoRun(
            scenario=scenario,
            call_id=call_id,
            app_id=app_id,
            app_name=scenario.call.app_name,
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

    def _tap(self, _deadline: float) -> None:
        """Keep every tick's contributor record (the mixer's own ring is bounded; a run must not lose any)."""
        assert self.call is not None
        record = self.call.mixer.audit.last()
        if record is not None:
            self.ticks.append(record)

    async def _updates(self) -> None:
        while True:
            if self.on_update is not None:
                self.on_update(self)
            await asyncio.sleep(UPDATE_PERIOD)  # a refresh rate, not a synchronisation

    async def _perform(self, http: httpx.AsyncClient, call: Call, action: ActionSpec) -> ActionResult:
        scenario = self.scenario
        name = action.participant or scenario.call.app_name
        participant = self.participants.get(action.participant or "")
        pid = self.ids.get(action.participant or "", "")
        body = {"clientContext": action.client_context} if action.client_context else {}
        sent = time.monotonic()
        response: httpx.Response | None = None
        if action.action == "mute":
            response = await http.post(f"{G}/{call.id}/participants/{pid}/mute", json=body)
        elif action.action == "unmute":
            response = await http.post(f"/ext/calls/{call.id}/participants/{pid}/unmute", json=body)
        elif action.action == "self-unmute":
            assert participant is not None
            response = await participant.self_unmute()
        elif action.action == "app-mute":
            response = await http.post(f"{G}/{call.id}/mute", json=body)
        elif action.action == "app-unmute":
            response = await http.post(f"{G}/{call.id}/unmute", json=body)
        elif action.action == "app-play":
            call.play(PilotSource(WavSource(action.source or "", loop=False), scenario.call.app_pilot_hz))
        elif action.action == "leave":
            assert participant is not None
            await participant.leave()
        elif action.action == "join":
            assert participant is not None
            await participant.join(timeout=JOIN_TIMEOUT)
            self.ids[name] = participant.participant_id or ""
        answered = time.monotonic()
        status = response.status_code if response is not None else None
        payload: Any = None
        completed = None
        if response is not None:
            try:
                payload = response.json()
            except ValueError:
                payload = response.text
            if isinstance(payload, dict) and "id" in payload and payload["id"] in call.operations:
                completed = call.operations[payload["id"]].completed_monotonic
        if response is not None and not response.is_success:
            log.warning("%s %s answered %d: %s", action.action, name, status, payload)
        return ActionResult(action, name, sent, answered, status, payload, completed)


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
