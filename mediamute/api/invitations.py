"""Graph's `participants: invite`, played by simulated participants: the invitation's checks, its ring, the answer
and the join, leaving after a set duration, and `replacesCallId`.

The request is answered at once with an `inviteParticipantsOperation` that runs; each invitee "answers" after its
ring delay and joins as a `rtc.simulated.SimulatedParticipant` (its packets take the WebRTC receive path). Invitees
whose ring delays are equal join together, in one roster update. The operation completes when the last of them
answers, and its completing notification comes before that last roster update, in the order of Graph's examples.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from ..calls.call import CALL_ENDED, Call, CallRegistry
from ..calls.errors import CallError, NotSupportedForCall
from ..calls.model import Operation, Participant, new_id
from ..media.jitter import JitterBufferSettings
from ..rtc.simulated import PacketLoop, PacketLoopCache, SimulatedParticipant, SimulatedSenders
from ..sources import SAMPLES_DIR
from . import schemas
from .errors import GraphError

log = logging.getLogger("mediamute.invitations")

DEFAULT_RING_DELAY = 1.5
"""Seconds an invitee rings before it answers, unless the invitation says (`mediamute.ringDelaySeconds`)."""
SAMPLE_VOICES = ("alice.wav", "bob.wav", "carol.wav", "dave.wav")
"""What an invitee says unless the invitation says (`mediamute.source`): the sample voices, in turn per call."""
IDENTITY_KEYS = ("user", "application", "device", "phone")
"""The identitySet keys Graph's invite response lists (null when unused)."""


@dataclass
class Invitee:
    """One invited identity, as it will join: its roster entry (made now, so its id is known at once), its
    source, when it answers, how long it stays."""

    participant: Participant
    source: str
    ring_delay: float
    duration: float | None
    echo: dict[str, Any]
    """Its invitationParticipantInfo as the operation shows it."""


@dataclass
class Invitation:
    """A checked invite request: who joins, and the call of ours it replaces (if it names one)."""

    invitees: list[Invitee]
    replaces: Call | None = None
    requested_at: float = field(default_factory=time.monotonic)

    @property
    def echo(self) -> list[dict[str, Any]]:
        return [invitee.echo for invitee in self.invitees]


def _option(name: str, *extensions: schemas.InviteeOptions | None) -> Any:
    """The first extension (the invitee's, then the request's) that sets `name`."""
    return next((getattr(e, name) for e in extensions if e is not None and getattr(e, name) is not None), None)


class Invitations:
    """Every invitation of one server: checks them, rings them, seats the invitees and makes them leave."""

    def __init__(self, registry: CallRegistry, jitter: JitterBufferSettings | None = None) -> None:
        self.registry = registry
        self.jitter = jitter
        """The jitter-buffer settings of every participant's receive path (the server's), invitees' included."""
        self.senders = SimulatedSenders()
        self.loops = PacketLoopCache(SAMPLES_DIR)
        self._tasks: dict[str, set[asyncio.Task[None]]] = {}
        self._reserved: dict[str, set[str]] = {}
        """Per call, the participant ids promised to invitees that have not joined yet."""
        self._voices: dict[str, int] = {}
        registry.events.on(CALL_ENDED, self._call_ended)

    # the request --------------------------------------------------------------------------------------------
    def plan(self, call: Call, body: schemas.InviteParticipantsBody) -> Invitation:
        """Check an invite request against the call and Graph's rules; raise a Graph or domain error otherwise."""
        infos = list(body.participants)
        if call.options.peer_to_peer and len(infos) > 1:
            raise NotSupportedForCall("Inviting multiple participants in one request is only supported for group calls.")
        replaces = self._replaced_call(call, infos[0].replaces_call_id)
        if replaces is not None:
            infos = infos[:1]  # replacing a call (of ours), Graph reads the first invitee only
        reserved = self._reserved.setdefault(call.id, set())
        chosen: set[str] = set()
        invitees = []
        for index, info in enumerate(infos):
            participant_id = info.participant_id or new_id()
            if participant_id in chosen:
                raise GraphError(400, f"participants[{index}].participantId {participant_id} is given twice.")
            if participant_id in call.participants or participant_id in reserved:
                raise GraphError(409, f"participants[{index}].participantId {participant_id} is already in this call.")
            chosen.add(participant_id)
            invitees.append(self._invitee(call, info, participant_id, body.mediamute))
        return Invitation(invitees, replaces)

    def _replaced_call(self, call: Call, replaces_call_id: str | None) -> Call | None:
        """The call of ours `replacesCallId` names, if any (another service's call id is echoed and left alone)."""
        if replaces_call_id is None:
            return None
        if replaces_call_id == call.id:
            raise GraphError(400, "participants[0].replacesCallId names this very call; a call cannot replace itself.")
        return self.registry.calls.get(replaces_call_id)

    def _invitee(
        self, call: Call, info: schemas.InvitationParticipantInfo, participant_id: str, defaults: schemas.InviteeOptions | None
    ) -> Invitee:
        identity_set = info.identity
        identity = identity_set.invitee
        wire = {"@odata.type": "#microsoft.graph.identity"}
        wire.update(identity.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"odata_type"}))
        if call.options.tenant_id and "tenantId" not in wire:
            wire["tenantId"] = call.options.tenant_id
        identities: dict[str, Any] = {"@odata.type": "#microsoft.graph.identitySet"}
        identities.update({key: None for key in IDENTITY_KEYS})
        identities[identity_set.kind] = wire
        echo = {
            "@odata.type": "#microsoft.graph.invitationParticipantInfo",
            "endpointType": info.endpoint_type,
            "identity": identities,
            "participantId": participant_id,
            "replacesCallId": info.replaces_call_id,
            "hidden": info.hidden,
            "removeFromDefaultAudioRoutingGroup": info.remove_from_default_audio_routing_group,
        }
        display_name = identity.display_name or identity.id or "Guest"
        participant = Participant(
            display_name=display_name[:64],
            id=participant_id,
            user_id=identity.id or new_id(),
            identity=identities,
            hidden=bool(info.hidden),
        )
        source = _option("source", info.mediamute, defaults) or self._next_voice(call.id)
        ring_delay = _option("ring_delay_seconds", info.mediamute, defaults)
        return Invitee(
            participant=participant,
            source=source,
            ring_delay=DEFAULT_RING_DELAY if ring_delay is None else float(ring_delay),
            duration=_option("duration_seconds", info.mediamute, defaults),
            echo=echo,
        )

    def _next_voice(self, call_id: str) -> str:
        turn = self._voices.get(call_id, 0)
        self._voices[call_id] = turn + 1
        return SAMPLE_VOICES[turn % len(SAMPLE_VOICES)]

    # ringing and joining ------------------------------------------------------------------------------------
    def start(self, call: Call, operation: Operation, invitation: Invitation) -> None:
        """Ring the invitees of a planned invitation whose operation has begun."""
        self._reserved.setdefault(call.id, set()).update(i.participant.id for i in invitation.invitees)
        self._spawn(call.id, self._ring(call, operation, invitation), f"invite-{operation.id}")

    def _spawn(self, call_id: str, coroutine: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.setdefault(call_id, set()).add(task)

        def done(finished: asyncio.Task[None]) -> None:
            tasks = self._tasks.get(call_id)
            if tasks is not None:
                tasks.discard(finished)
                if not tasks:
                    del self._tasks[call_id]

        task.add_done_callback(done)

    async def _ring(self, call: Call, operation: Operation, invitation: Invitation) -> None:
        try:
            specs = sorted({i.source for i in invitation.invitees})
            loops = dict(zip(specs, await asyncio.gather(*(self.loops.get(spec) for spec in specs))))
        except Exception as exc:  # a source that cannot be encoded fails the invitation, not the server
            log.exception("call %s: invitation %s: cannot encode its sources", call.id, operation.id)
            self._release(call.id, invitation)
            call.finish(operation, "failed", 500, 0, f"The invitees' audio could not be prepared: {exc}")
            return
        groups = [list(g) for _, g in groupby(sorted(invitation.invitees, key=lambda i: i.ring_delay), key=lambda i: i.ring_delay)]
        for number, group in enumerate(groups, start=1):
            await asyncio.sleep(max(0.0, invitation.requested_at + group[0].ring_delay - time.monotonic()))
            if call.terminated or operation.finished:
                return
            if number == len(groups):  # Graph's order: the operation completes, then the roster lists the newcomers
                call.finish(operation, "completed", 200, 0, "The invitees joined the call.")
            self._seat(call, group, loops)
        if invitation.replaces is not None and invitation.replaces.options.peer_to_peer and not invitation.replaces.terminated:
            log.info("call %s: the invitee left peer-to-peer call %s, which ends", call.id, invitation.replaces.id)
            await invitation.replaces.end()

    def _seat(self, call: Call, group: list[Invitee], loops: dict[str, PacketLoop]) -> None:
        """The invitees of `group` answer: each gets its media, all join in one roster update."""
        members = []
        for invitee in group:
            participant = invitee.participant
            self._reserved.get(call.id, set()).discard(participant.id)
            media = SimulatedParticipant(
                participant.id, participant.gate, loops[invitee.source], self.jitter,
                on_muted_level=lambda level, pid=participant.id: call.heard_while_muted(pid, -float(level)),
            )
            members.append((participant, None, media))
        try:
            call.join_all(members)
        except CallError:
            return
        for _participant, _sink, media in members:
            media.start(self.senders)
        for invitee in group:
            if invitee.duration is not None:
                self._spawn(call.id, self._leave_after(call, invitee.participant.id, invitee.duration), f"leave-{invitee.participant.id}")

    async def _leave_after(self, call: Call, participant_id: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if not call.terminated and participant_id in call.participants:
            log.info("call %s: simulated participant %s leaves after %.1f s", call.id, participant_id, seconds)
            await call.remove(participant_id)

    def _release(self, call_id: str, invitation: Invitation) -> None:
        self._reserved.get(call_id, set()).difference_update(i.participant.id for i in invitation.invitees)

    def _call_ended(self, call: Call) -> None:
        """A call's end stops its ringing and its timed leaves (its operations fail with the call)."""
        for task in self._tasks.get(call.id, ()):
            task.cancel()
        self._reserved.pop(call.id, None)
        self._voices.pop(call.id, None)

    async def close(self) -> None:
        """Stop every invitation task and the pacing (the server stops; its calls have ended)."""
        tasks = [task for tasks in self._tasks.values() for task in tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        await self.senders.close()
