"""Hold music: `participant: startHoldMusic` / `stopHoldMusic`, at most one participant of a call on hold (Graph).

A held participant leaves everyone's mix and hears only its music: the mixer refuses its frames and hands its
sink the music instead of its N-1 mix (`Mixer.hold`). It is not muted: its gate stays as it was, so when it comes
back it is heard again (or not, if it was server-muted meanwhile). Both actions are answered `running` (Graph's
202) and take effect on the next tick after the request, or, for a customPrompt, on the first tick after its media
has arrived; then the participant's roster entry is updated and the operation completes (its notification).

Graph's participant has no hold property. mediamute shows the hold in the roster as the participant's audio
stream direction: `receiveOnly` while held (it hears the music, sends nothing into the call), `sendReceive` again
after, each change a roster `updated` notification with a new rosterSequenceNumber, before the operation's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import CallTerminated, MediaConflict, NotSupportedForCall
from .ivr import CANCEL_SUBCODE, DONE, Clip, PendingMedia
from .model import Operation

if TYPE_CHECKING:
    from .call import Call


@dataclass
class _Starting:
    operation: Operation
    music: PendingMedia


class HoldMusic:
    """One call's hold state: who is on hold (or about to be), and the start/stop operations still running."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.participant_id: str | None = None
        """Who is on hold, or about to be (a start is running): the one participant Graph allows."""
        self.applied = False
        """The mixer holds `participant_id` (its music plays, its frames are refused)."""
        self._starting: _Starting | None = None
        self._stopping: Operation | None = None
        call.tick_listeners.append(self._on_tick)

    # the actions --------------------------------------------------------------------------------------------------
    def start(self, participant_id: str, music: PendingMedia, client_context: str | None) -> Operation:
        """startHoldMusic: the participant is held, hearing `music` looped, from the tick after it is ready."""
        self._check_live()
        participant = self.call.participant(participant_id)
        if participant.kind == "application":
            raise NotSupportedForCall("The application's own participant cannot be put on hold.")
        if self.participant_id == participant_id:
            raise MediaConflict(f"Participant {participant_id} is already on hold.")
        if self.participant_id is not None:
            raise MediaConflict(
                f"Participant {self.participant_id} is on hold: only one participant of a call can be on hold at a "
                "time; stopHoldMusic that participant first."
            )
        operation = self.call.begin(Operation("startHoldMusic", participant_id, client_context))
        self.participant_id = participant_id
        self._starting = _Starting(operation, music)
        return operation

    def stop(self, participant_id: str, client_context: str | None) -> Operation:
        """stopHoldMusic: the participant is back in the call (mixed, hearing the mix) from the next tick."""
        self._check_live()
        self.call.participant(participant_id)
        if self.participant_id != participant_id:
            raise MediaConflict(f"Participant {participant_id} is not on hold.")
        if self._stopping is not None:
            raise MediaConflict(f"Participant {participant_id} is already being taken off hold.")
        self._stopping = self.call.begin(Operation("stopHoldMusic", participant_id, client_context))
        return self._stopping

    def stop_all(self) -> None:
        """The call ends: forget the hold (the call fails the running operations, and drops every mixer slot)."""
        if self._starting is not None:
            self._starting.music.cancel()
        self.participant_id, self.applied, self._starting, self._stopping = None, False, None, None

    # the tick (after the mix: what changes here is heard from the next tick) ----------------------------------------
    def _on_tick(self, _deadline: float) -> None:
        if self._starting is None and self._stopping is None:
            if self.applied and self.participant_id not in self.call.participants:
                self.participant_id, self.applied = None, False  # it left while held: its slot is gone
            return
        pid = self.participant_id
        if pid not in self.call.participants:
            self._participant_left()
        elif self._stopping is not None:
            self._take_off_hold(pid)
        elif self._starting is not None and self._starting.music.done():
            self._put_on_hold(pid, self._starting)

    def _put_on_hold(self, participant_id: str, starting: _Starting) -> None:
        self._starting = None
        try:
            music = Clip(starting.music.result(), loop=True)
        except Exception as exc:  # the customPrompt could not be read: the participant stays in the call
            self.participant_id = None
            self.call.finish(starting.operation, "failed", 400, 0, f"Action failed, the hold music could not be played: {exc}")
            return
        self.call.mixer.hold(participant_id, music.looping_frame)
        self.applied = True
        self._roster_update(participant_id, True)
        self.call.finish(starting.operation, message=DONE)

    def _take_off_hold(self, participant_id: str) -> None:
        stopping, self._stopping = self._stopping, None
        assert stopping is not None
        if self._starting is not None:  # stopped before its music arrived: the start never took effect
            self._starting.music.cancel()
            self.call.finish(self._starting.operation, "failed", 400, CANCEL_SUBCODE,
                             "Action failed, stopHoldMusic came before the hold music started.")
            self._starting = None
        if self.applied:
            self.call.mixer.release(participant_id)
            self.applied = False
            self._roster_update(participant_id, False)
        self.participant_id = None
        self.call.finish(stopping, message=DONE)

    def _participant_left(self) -> None:
        message = "Action failed, the participant left the call."
        if self._starting is not None:
            self._starting.music.cancel()
            self.call.finish(self._starting.operation, "failed", 404, 0, message)
        if self._stopping is not None:
            self.call.finish(self._stopping, "failed", 404, 0, message)
        self.stop_all()

    def _roster_update(self, participant_id: str, on_hold: bool) -> None:
        from .call import PARTICIPANT_UPDATED  # call.py builds this controller, so it is imported here

        participant = self.call.participants[participant_id]
        participant.on_hold = on_hold
        self.call._bump(participant)
        self.call.events.emit(PARTICIPANT_UPDATED, self.call, participant)

    def _check_live(self) -> None:
        if self.call.terminated:
            raise CallTerminated(self.call.id)
