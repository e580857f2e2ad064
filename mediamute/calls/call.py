"""A call: its roster, its mixer and clock, and the mute actions, with the events each change emits.

Everything here runs on the event loop thread, so a mute is atomic with respect to mixer ticks: when `mute()`
returns, the participant's gate is closed and its queued frames are gone, and no later tick can mix it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pyee import EventEmitter

from ..media.clock import MixClock
from ..media.mixer import FrameSink, Mixer, PendingPull, PendingTick
from ..media.netem import NetworkSpec, NetworkState
from ..sources import AudioSource, SilenceSource
from .errors import (
    CallNotFound,
    CallTerminated,
    NoNetwork,
    NotSupportedForCall,
    OperationNotFound,
    ParticipantNotFound,
    PolicyForbids,
)
from .hold import HoldMusic
from .ivr import IvrQueue
from .model import MediaSession, Operation, Participant, ToneInfo, new_id, utc_now

log = logging.getLogger(__name__)

CallState = Literal["establishing", "established", "terminating", "terminated"]

# Event names (payload: the Call, then the participant(s) or operation concerned).
PARTICIPANT_JOINED = "participant_joined"
PARTICIPANT_UPDATED = "participant_updated"
PARTICIPANT_LEFT = "participant_left"
OPERATION_COMPLETED = "operation_completed"
OPERATION_FINISHED = "operation_finished"
"""An operation answered `running` has completed or failed (payload: the Call, the Operation): Graph notifies it."""
TONE_RECEIVED = "tone_received"
"""A participant sent a DTMF tone (payload: the Call, the Participant, Graph's tone name: `tone0`..`tone9`, `star`,
`pound`, `a`..`d`, `flash`). Emitted by `Call.receive_tone` (the rtc layer's tone reception calls it), for every
press, subscribed or not; under a subscribeToTone, `call.tone_info` is already this press's when it is emitted.
Read by subscribeToTone's notifications and recordResponse's stopTones."""
CALL_UPDATED = "call_updated"
CALL_ENDED = "call_ended"


class CallEncoding(Protocol):
    """A call's outbound encoding (rtc's `MixEncoding`), made once per call by the factory the server gives the
    registry: the call owns it, so its listeners share one encode of the shared mix, and calls never imports rtc."""

    def listener(self, send: Callable[[Any], None]) -> FrameSink: ...

    def tick_done(self) -> None:
        """The mixer has handed every sink its mix for this tick: encode and send them (now or on other cores)."""
        ...

    def stats(self) -> dict[str, float] | None: ...

    def decode(self, jobs: Sequence[PendingPull], done: Callable[[], None]) -> None:
        """Run a tick's prepared decodes (the receive paths' libopus work: on other cores, or inline for a few)
        and call `done()` on the event loop once they all ran."""
        ...


@dataclass
class CallOptions:
    """What the creator of a call chooses."""

    callback_uri: str | None = None
    peer_to_peer: bool = False
    allow_self_unmute: bool = True
    subject: str | None = None
    app_display_name: str = "mediamute application"
    app_user_id: str | None = None
    """The application's identity id (the `source` a bot creates its call with); None: a new one."""
    app_source: AudioSource | None = None
    tenant_id: str | None = None
    requested_modalities: list[str] = field(default_factory=lambda: ["audio"])
    targets: list[dict] | None = None
    chat_info: dict | None = None
    meeting_info: dict | None = None
    inbox_frames: int = 5


class Call:
    """One group (or peer-to-peer) call with its own mixer on a 20 ms clock."""

    def __init__(
        self,
        options: CallOptions,
        events: EventEmitter,
        call_id: str | None = None,
        encoding: CallEncoding | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = call_id or new_id()
        self.options = options
        self.events = events
        self.state: CallState = "established"
        self.created_at = utc_now()
        self.roster_sequence = 0
        self.encoding = encoding
        """Turns a listener's packet sender into its mixer sink (`encoding.listener(send)`); None: no rtc."""
        self._now = clock
        """One monotonic clock for the mix deadlines, the mix times and the operations' completion times."""
        self.mixer = Mixer(inbox_frames=options.inbox_frames, clock=clock)
        self.clock = MixClock(self._tick, clock=clock)
        self.participants: dict[str, Participant] = {}
        self.operations: dict[str, Operation] = {}
        self.tick_listeners: list[Callable[[float], None]] = []
        self.tone_subscription: Operation | None = None
        """The first subscribeToTone's operation: from then on each key press is numbered and notified."""
        self.tone_info: ToneInfo | None = None
        """The latest key press under the subscription (Graph's call `toneInfo`)."""
        self._tone_sequence = 0
        self._decoding: PendingTick | None = None
        """The tick whose decodes are out on other threads (begun, not yet mixed)."""
        self._deferred: float | None = None
        """A tick's deadline that came while the previous tick's decodes were out: run when they are back."""
        self.deferred_ticks = 0
        """Ticks that had to wait for the previous tick's decodes (the pool was behind by a period)."""
        self._talkers: set[Participant] = set()
        """Participants whose talking-while-muted detector says they are talking (polled each tick)."""
        self.ivr = IvrQueue(self, options.app_source or SilenceSource())
        """The IVR queue (playPrompt, recordResponse, sendDtmfTones, cancelMediaProcessing): the app's voice."""
        self.hold = HoldMusic(self)
        """startHoldMusic / stopHoldMusic: who is on hold, hearing only its music."""
        self.app = Participant(
            display_name=options.app_display_name, kind="application", source=self.ivr,
            user_id=options.app_user_id or new_id(),
        )
        self._add(self.app, sink=None, media=None)

    # lifecycle ----------------------------------------------------------------------------------------------
    @property
    def terminated(self) -> bool:
        return self.state in ("terminating", "terminated")

    def start(self) -> None:
        self.clock.start()

    def encoding_counters(self) -> dict[str, float] | None:
        """The outbound encoding's counters, JSON-ready (None without an encoding or before the first mix)."""
        return self.encoding.stats() if self.encoding is not None else None

    async def end(self) -> None:
        """End the call: every participant's media closed, the clock stopped, state `terminated`."""
        if self.terminated:
            return
        self.state = "terminating"
        self.ivr.stop()
        self.hold.stop_all()
        for operation in list(self.operations.values()):
            if not operation.finished:
                self.finish(operation, "failed", 500, 0, "The call ended before the operation completed.")
        for participant in list(self.participants.values()):
            self._drop(participant)
            if participant.media is not None:
                try:
                    await participant.media.close()
                except Exception:  # a broken peer must not keep the call alive
                    log.exception("closing participant %s failed", participant.id)
        await self.clock.stop()
        self.state = "terminated"
        self.events.emit(CALL_ENDED, self)

    def _tick(self, deadline: float) -> None:
        """One tick of the mix clock. With an encoding, the receive paths' decodes may run on other threads: the
        mixer's `begin_tick` prepares them here, and the tick is mixed (`finish_tick`) when they are back on the
        loop, where a frame whose participant was muted meanwhile is discarded. Ticks never overlap: one due while
        the last one's decodes are out waits for them."""
        if self._decoding is not None:
            self._deferred = deadline
            self.deferred_ticks += 1
            return
        source = self.app.source
        if source is not None and self.app.id in self.participants:
            self.mixer.push(self.app.id, source.next_frame())
        if self.encoding is None:
            self.mixer.tick(deadline)
            self._mixed(deadline)
            return
        pending = self._decoding = self.mixer.begin_tick(deadline)
        try:
            self.encoding.decode(pending.jobs, lambda: self._finish_tick(pending, deadline))
        except Exception:
            self._decoding = None
            raise

    def _finish_tick(self, pending: PendingTick, deadline: float) -> None:
        """The tick's decodes are back (on the loop): mix it, then run a tick that came due meanwhile."""
        self._decoding = None
        if self.state == "terminated":
            return
        try:
            self.mixer.finish_tick(pending)
            self._mixed(deadline)
        except Exception:  # a broken tick must not stop the call's audio
            log.exception("mixer tick failed")
        if self._deferred is not None:
            deferred, self._deferred = self._deferred, None
            self._tick(deferred)

    def _mixed(self, deadline: float) -> None:
        """After a tick's mix: encode and send it, then the tick listeners and the talking detectors."""
        if self.encoding is not None:
            self.encoding.tick_done()
        for listener in self.tick_listeners:
            listener(deadline)
        if self._talkers:  # a muted talker whose packets stopped coming stops talking too
            for participant in list(self._talkers):
                if participant.talking.poll(deadline):
                    self._talking_changed(participant)

    # roster -------------------------------------------------------------------------------------------------
    def _bump(self, participant: Participant) -> None:
        self.roster_sequence += 1
        participant.roster_sequence = self.roster_sequence

    def _add(self, participant: Participant, sink: FrameSink | None, media: MediaSession | None) -> None:
        participant.media = media
        # a mute starts a fresh detection; an unmute (or a leave) ends any episode, in the update it sends
        participant.gate.on_close(lambda _gate: self._stop_talking(participant))
        participant.gate.on_open(lambda _gate: self._stop_talking(participant))
        source = media.frame_source if media is not None else None
        self.mixer.add(participant.id, participant.gate, sink, source)
        self.participants[participant.id] = participant
        self._bump(participant)

    def join(self, participant: Participant, sink: FrameSink | None, media: MediaSession | None) -> Participant:
        """Add a connected participant to the roster and the mix (pulled through `media.frame_source` per tick)."""
        if self.terminated:
            raise CallTerminated(self.id)
        self._add(participant, sink, media)
        self.events.emit(PARTICIPANT_JOINED, self, participant)
        return participant

    def join_all(self, members: Sequence[tuple[Participant, FrameSink | None, MediaSession | None]]) -> list[Participant]:
        """Add several connected participants at once (invitees who answered together): one roster update lists
        them all, as Graph's invite notification does."""
        if self.terminated:
            raise CallTerminated(self.id)
        for participant, sink, media in members:
            self._add(participant, sink, media)
        joined = [participant for participant, _sink, _media in members]
        if joined:
            self.events.emit(PARTICIPANT_JOINED, self, *joined)
        return joined

    def participant(self, participant_id: str) -> Participant:
        try:
            return self.participants[participant_id]
        except KeyError:
            raise ParticipantNotFound(participant_id) from None

    def _drop(self, participant: Participant) -> None:
        self.participants.pop(participant.id, None)
        self.mixer.remove(participant.id)
        participant.gate.close()  # nothing of a removed participant may be mixed, even if packets still arrive
        self._stop_talking(participant)  # (its gate may have been closed already: a muted participant leaving)

    async def remove(self, participant_id: str) -> Participant:
        """Remove a participant: its media is dropped at once, then its connection closed."""
        participant = self.participant(participant_id)
        if participant.kind == "application":
            raise NotSupportedForCall("The application's own participant cannot be removed; delete the call.")
        self._drop(participant)
        self._bump(participant)
        self.events.emit(PARTICIPANT_LEFT, self, participant)
        if participant.media is not None:
            await participant.media.close()
        return participant

    # mute ---------------------------------------------------------------------------------------------------
    def _record(self, operation: Operation) -> Operation:
        operation.completed_monotonic = self._now()
        self.operations[operation.id] = operation
        self.events.emit(OPERATION_COMPLETED, self, operation)
        return operation

    def begin(self, operation: Operation) -> Operation:
        """Record an operation that is answered `running` and ends later, through `finish`."""
        operation.status = "running"
        operation.answered_running = True
        self.operations[operation.id] = operation
        return operation

    def finish(
        self,
        operation: Operation,
        status: Literal["completed", "failed"] = "completed",
        code: int = 200,
        subcode: int = 0,
        message: str = "",
        completion_reason: str | None = None,
        **details: Any,
    ) -> Operation:
        """End a running operation with Graph's `resultInfo` (and type-specific `details`), once; emits
        OPERATION_FINISHED so its completing notification is sent. A second call changes nothing."""
        if operation.finished:
            return operation
        operation.status = status
        operation.result_code, operation.result_subcode, operation.result_message = code, subcode, message
        operation.completion_reason = completion_reason
        operation.details.update(details)
        operation.completed_monotonic = self._now()
        self.events.emit(OPERATION_FINISHED, self, operation)
        return operation

    def mute(self, participant_id: str, client_context: str | None = None) -> Operation:
        """Server-mute a participant: its gate closes and its queued audio is discarded before this returns."""
        if self.terminated:
            raise CallTerminated(self.id)
        participant = self.participant(participant_id)
        if self.options.peer_to_peer and participant.kind == "remote":
            raise NotSupportedForCall("Participant mute is only supported for group calls.")
        if participant.gate.close():
            self._bump(participant)
            self.events.emit(PARTICIPANT_UPDATED, self, participant)
        return self._record(Operation("muteParticipant", participant.id, client_context))

    def unmute(self, participant_id: str, client_context: str | None = None) -> Operation:
        """Lift a server mute: the gate re-opens, so the participant's next packets are decoded and mixed."""
        if self.terminated:
            raise CallTerminated(self.id)
        participant = self.participant(participant_id)
        if participant.gate.open():
            self._bump(participant)
            self.events.emit(PARTICIPANT_UPDATED, self, participant)
        return self._record(Operation("unmuteParticipant", participant.id, client_context))

    def mute_all(self, participant_ids: list[str], client_context: str | None = None) -> Operation:
        """Graph beta's muteAll: server-mute the listed participants (all remote ones if none are listed)."""
        if self.terminated:
            raise CallTerminated(self.id)
        if self.options.peer_to_peer:
            raise NotSupportedForCall("Participant mute is only supported for group calls.")
        targets = [self.participant(pid) for pid in participant_ids] if participant_ids else [
            p for p in self.participants.values() if p.kind == "remote"
        ]
        changed = [p for p in targets if p.gate.close()]
        for participant in changed:
            self._bump(participant)
        if changed:
            self.events.emit(PARTICIPANT_UPDATED, self, *changed)
        return self._record(Operation("comms", "", client_context))

    def self_unmute(self, participant_id: str) -> Operation:
        """A participant lifts its own server mute from its client, if the call's policy allows it."""
        participant = self.participant(participant_id)
        if participant.server_muted and not self.options.allow_self_unmute:
            raise PolicyForbids("This call does not allow participants to unmute themselves (allowSelfUnmute is false).")
        return self.unmute(participant_id, None)

    def set_self_muted(self, participant_id: str, muted: bool) -> Participant:
        """Record what a participant's client says of its own microphone (no gate change: that is the client's)."""
        if self.terminated:
            raise CallTerminated(self.id)
        participant = self.participant(participant_id)
        if participant.self_muted != muted:
            participant.self_muted = muted
            self._bump(participant)
            self.events.emit(PARTICIPANT_UPDATED, self, participant)
        return participant

    # network ------------------------------------------------------------------------------------------------
    def network(self, participant_id: str) -> NetworkState:
        """A participant's network now: both directions' profiles and impairment counters."""
        state = self._media(participant_id).network
        assert state is not None  # _media checked it
        return state

    def set_network(self, participant_id: str, spec: NetworkSpec) -> NetworkState:
        """Impair a participant's network (per direction, from its next datagram on); no roster change."""
        if self.terminated:
            raise CallTerminated(self.id)
        state = self._media(participant_id).set_network(spec)
        log.info("call %s: participant %s network set", self.id, participant_id)
        return state

    def _media(self, participant_id: str) -> MediaSession:
        participant = self.participant(participant_id)
        if participant.media is None or participant.media.network is None:
            if participant.kind == "application":
                raise NoNetwork("The application's own participant runs inside the server: it has no network.")
            raise NoNetwork(f"Participant {participant_id} has no media connection, so no network.")
        return participant.media

    # tones and talking while muted ---------------------------------------------------------------------------
    def subscribe_to_tone(self, client_context: str | None = None) -> Operation:
        """Graph's subscribeToTone: answered `completed`; from now on every key press is numbered (`tone_info`)
        and notified. Subscribing again changes nothing but records another operation (Graph has no unsubscribe)."""
        if self.terminated:
            raise CallTerminated(self.id)
        operation = self._record(Operation("subscribeToTone", "", client_context))
        if self.tone_subscription is None:
            self.tone_subscription = operation
        return operation

    def receive_tone(self, participant_id: str, tone: str) -> ToneInfo | None:
        """A participant pressed a key (its RFC 4733 event arrived), muted or not: emits TONE_RECEIVED. Under a
        subscription the press gets the call's next sequence id and becomes `tone_info` (returned); else None."""
        participant = self.participants.get(participant_id)
        if participant is None or self.terminated:
            return None
        info = None
        if self.tone_subscription is not None:
            self._tone_sequence += 1
            info = self.tone_info = ToneInfo(self._tone_sequence, tone, participant.id, participant.server_muted)
        self.events.emit(TONE_RECEIVED, self, participant, tone)
        return info

    def heard_while_muted(self, participant_id: str, level_dbov: float) -> None:
        """The RFC 6464 level of a packet a participant's closed gate dropped: its talking-while-muted detector
        reads it, and a change (started or stopped talking) is a roster update."""
        participant = self.participants.get(participant_id)
        if participant is None or participant.gate.is_open:
            return
        if participant.talking.feed(level_dbov, self._now()):
            self._talking_changed(participant)

    def _talking_changed(self, participant: Participant) -> None:
        if participant.talking.talking:
            self._talkers.add(participant)
        else:
            self._talkers.discard(participant)
        if participant.id in self.participants and not self.terminated:
            self._bump(participant)  # the participant resource changed (its extension): a roster update like any
            self.events.emit(PARTICIPANT_UPDATED, self, participant)

    def _stop_talking(self, participant: Participant) -> None:
        """End a talking-while-muted episode without an update of its own: the mute change that ends it sends one."""
        participant.talking.reset(self._now())
        self._talkers.discard(participant)

    def operation(self, operation_id: str) -> Operation:
        try:
            return self.operations[operation_id]
        except KeyError:
            raise OperationNotFound(operation_id) from None


class CallRegistry:
    """Every call this server has created, live or ended (an ended one still answers GET), and their event bus."""

    def __init__(
        self, events: EventEmitter | None = None, encoding_factory: Callable[[], CallEncoding] | None = None
    ) -> None:
        self.events = events or EventEmitter()
        self.calls: dict[str, Call] = {}
        self._encoding_factory = encoding_factory
        """Makes each new call's own outbound encoding (the server passes rtc's `MixEncoding`)."""

    def create(self, options: CallOptions | None = None, call_id: str | None = None) -> Call:
        encoding = self._encoding_factory() if self._encoding_factory is not None else None
        call = Call(options or CallOptions(), self.events, call_id=call_id, encoding=encoding)
        self.calls[call.id] = call
        call.start()
        self.events.emit(CALL_UPDATED, call)
        return call

    def get(self, call_id: str) -> Call:
        try:
            return self.calls[call_id]
        except KeyError:
            raise CallNotFound(call_id) from None

    def live(self, call_id: str) -> Call:
        call = self.get(call_id)
        if call.terminated:
            raise CallTerminated(call_id)
        return call

    async def close(self) -> None:
        for call in list(self.calls.values()):
            await call.end()
