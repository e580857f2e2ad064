"""The call's IVR queue: what the application's own participant plays (playPrompt, sendDtmfTones, recordResponse's
prompt and beep) and records (recordResponse), one operation after another, and cancelMediaProcessing.

Everything runs on the mix clock: the queue is the application participant's audio source, asked for one 20 ms
frame per tick, so a prompt is played frame by frame into the mix (through the application's gate: a muted
application is not heard, its prompts go on silently) and the recording timers count 20 ms frames of media, not
wall time. An operation ends on the tick after its last frame was mixed; the next one starts in that same tick, so
prompts follow each other without a gap. While nothing of the queue sounds (empty, or waiting for a prompt's media
to arrive), the application plays its base source (the call's `appSource`, silence by default).

Graph says playPrompt and recordResponse share one queue; sendDtmfTones joins it too (mediamute's choice): tones
follow the prompt before them, and cancelMediaProcessing cancels them, which Graph's `mediaOperationCanceled`
for sendDtmfTones implies. subscribeToTone is not in the queue and is never cancelled by it.

recordResponse records the mix the application hears: its N-1 mix from the mixer (every participant through its
gate, none on hold), so a server-muted participant is absent from the recording. Silence detection is a level
threshold with hysteresis on that mix (`SpeechDetector`). Stop tones come from `TONE_RECEIVED` (participants'
DTMF, emitted by the rtc layer's tone reception) while the recording runs.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..media.audio import FRAME_SAMPLES, FRAME_SECONDS, SAMPLE_RATE, SILENCE_DBFS, SILENT_FRAME, Frame
from ..media.mixer import MixTick
from ..sources import AudioSource
from .errors import CallTerminated, MediaConflict
from .model import Operation

if TYPE_CHECKING:
    from .call import Call

FRAMES_PER_SECOND = SAMPLE_RATE // FRAME_SAMPLES
MAX_SKIPPED_FRAMES = 3000
"""At most one minute of a prompt is skipped after a stall of the clock (a longer stall is not caught up)."""
MAX_QUEUED = 32
"""Operations playing or waiting in one call's queue; one more is refused (a bot in a loop cannot grow it)."""

DONE = "Action completed successfully."
CANCELLED = "Action failed, the operation was cancelled."
CANCEL_SUBCODE = 8508
MAX_DURATION_SUBCODE = 8515
"""The resultInfo subcodes Graph's examples show (operation cancelled; max record duration reached). Where Graph
shows none (the other ends of a recording), mediamute sends subcode 0 and lets `completionReason` say why."""

BEEP_HZ = 1000.0
BEEP_MS = 300
BEEP_AMPLITUDE = 8000


class PendingMedia(Protocol):
    """A prompt's audio being read (an asyncio Task or Future has this shape): done() says it arrived, result()
    gives 48 kHz mono int16 or raises why it could not be read, cancel() gives up on it."""

    def done(self) -> bool: ...

    def result(self) -> np.ndarray: ...

    def cancel(self) -> bool: ...


@dataclass
class ReadyMedia:
    """Audio already at hand, as a PendingMedia (a package sample, generated tones, tests)."""

    audio: np.ndarray

    def done(self) -> bool:
        return True

    def result(self) -> np.ndarray:
        return self.audio

    def cancel(self) -> bool:
        return False


RecordingStore = Callable[[np.ndarray], tuple[str, str]]
"""Keeps a finished recording (48 kHz mono int16) and says where the app may fetch it: (recordingLocation,
recordingAccessToken). The API layer provides it; the domain knows no URL."""


def beep() -> np.ndarray:
    """recordResponse's beep: BEEP_MS of a BEEP_HZ sine with soft edges."""
    t = np.arange(SAMPLE_RATE * BEEP_MS // 1000) / SAMPLE_RATE
    edge = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.005)
    return np.round(BEEP_AMPLITUDE * edge * np.sin(2 * np.pi * BEEP_HZ * t)).astype(np.int16)


class Clip:
    """An audio array handed out 20 ms at a time, without copying it: once (the last frame padded with silence) or
    looping seamlessly (the last frame continues with the start)."""

    __slots__ = ("_audio", "_position", "_loop")

    def __init__(self, audio: np.ndarray, loop: bool = False) -> None:
        self._audio = audio
        self._position = 0
        self._loop = loop and audio.size > 0

    def next_frame(self) -> Frame | None:
        """The next frame, or None once a clip that does not loop has been played to its end."""
        audio, start = self._audio, self._position
        end = start + FRAME_SAMPLES
        if end <= audio.size:
            self._position = end
            return audio[start:end]
        if self._loop:
            self._position = end % audio.size
            return audio.take(np.arange(start, end) % audio.size)
        if start >= audio.size:
            return None
        self._position = audio.size
        return np.concatenate((audio[start:], np.zeros(end - audio.size, dtype=np.int16)))

    def looping_frame(self) -> Frame:
        """For a looping clip: the next frame, always one (the mixer's hold music)."""
        frame = self.next_frame()
        assert frame is not None, "looping_frame needs a looping clip with audio"
        return frame


# silence detection ------------------------------------------------------------------------------------------------
SPEECH_ON_DBFS = -40.0
"""A frame this loud or louder may start speech (-40 dBFS: quiet speech is -35 to -25, a codec's silence -90)."""
SPEECH_OFF_DBFS = -50.0
"""Once speech has started, frames below this are silence: 10 dB of hysteresis, so the tail of a word or a soft
syllable between loud ones does not count as a pause."""
SPEECH_ON_FRAMES = 3
"""Speech starts after this many consecutive frames at or above SPEECH_ON_DBFS (60 ms: a click is not speech)."""


@dataclass
class SpeechDetector:
    """Speech or silence in the recorded mix, frame by frame: a level threshold with hysteresis.

    Before speech: `SPEECH_ON_FRAMES` consecutive frames at or above `SPEECH_ON_DBFS` start it (the initial-silence
    timer stops). After: every frame below `SPEECH_OFF_DBFS` extends the current pause and any frame at or above it
    ends the pause (the max-silence timer counts the pause's frames)."""

    on_dbfs: float = SPEECH_ON_DBFS
    off_dbfs: float = SPEECH_OFF_DBFS
    on_frames: int = SPEECH_ON_FRAMES
    speech_started: bool = False
    loud_run: int = 0
    pause_frames: int = 0

    def push(self, frame: Frame) -> None:
        wide = frame.astype(np.float32)
        energy = float(np.dot(wide, wide)) / frame.size
        level = 10.0 * math.log10(energy / 32768.0**2) if energy > 0 else SILENCE_DBFS
        if not self.speech_started:
            self.loud_run = self.loud_run + 1 if level >= self.on_dbfs else 0
            self.speech_started = self.loud_run >= self.on_frames
        elif level < self.off_dbfs:
            self.pause_frames += 1
        else:
            self.pause_frames = 0


# queue items --------------------------------------------------------------------------------------------------------
class QueueItem:
    """One operation of the queue: `next_frame` is what the application plays this tick (None: nothing of its own),
    and the item finishes its operation through the call when it ends."""

    def __init__(self, queue: IvrQueue, operation: Operation) -> None:
        self.queue = queue
        self.call = queue.call
        self.operation = operation

    @property
    def finished(self) -> bool:
        return self.operation.finished

    def next_frame(self) -> Frame | None:
        raise NotImplementedError

    def cancel(self) -> None:
        """Finish the operation as cancelled (cancelMediaProcessing, or a barge-in), releasing what it holds."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the item holds (pending media, the mixer sink, event subscriptions). Idempotent."""


class PromptItem(QueueItem):
    """playPrompt: its prompts in order, each as soon as its media has arrived."""

    def __init__(self, queue: IvrQueue, operation: Operation, media: Sequence[PendingMedia]) -> None:
        super().__init__(queue, operation)
        self.media = list(media)
        self.index = 0
        self.clip: Clip | None = None

    def next_frame(self) -> Frame | None:
        while not self.finished:
            if self.clip is None:
                if self.index == len(self.media):
                    self.call.finish(self.operation, message=DONE, completion_reason="completedSuccessfully")
                    return None
                pending = self.media[self.index]
                if not pending.done():
                    return None  # still arriving: the base source plays meanwhile
                try:
                    self.clip = Clip(pending.result())
                except Exception as exc:  # the media could not be read: the operation fails with the reason
                    self.close()
                    self.call.finish(self.operation, "failed", 400, 0, f"Action failed, the prompt could not be played: {exc}")
                    return None
            frame = self.clip.next_frame()
            if frame is not None:
                return frame
            self.clip = None
            self.index += 1
        return None

    def cancel(self) -> None:
        self.close()
        self.call.finish(self.operation, "failed", 400, CANCEL_SUBCODE, CANCELLED, completion_reason="mediaOperationCanceled")

    def close(self) -> None:
        for pending in self.media[self.index :]:
            pending.cancel()


class SegmentStream:
    """Audio that arrives as consecutive segments (an iterator of arrays), handed out 20 ms at a time: a segment
    is made only when the frames reach it, and the last frame is padded with silence."""

    __slots__ = ("_segments", "_pending")

    def __init__(self, segments: Iterator[np.ndarray]) -> None:
        self._segments = segments
        self._pending = np.zeros(0, dtype=np.int16)

    def next_frame(self) -> Frame | None:
        while self._pending.size < FRAME_SAMPLES:
            segment = next(self._segments, None)
            if segment is None:
                if not self._pending.size:
                    return None
                segment = np.zeros(FRAME_SAMPLES - self._pending.size, dtype=np.int16)
            self._pending = np.concatenate((self._pending, segment)) if self._pending.size else segment
        frame, self._pending = self._pending[:FRAME_SAMPLES], self._pending[FRAME_SAMPLES:]
        return frame


class DtmfItem(QueueItem):
    """sendDtmfTones: the tones, made segment by segment as they are played."""

    def __init__(self, queue: IvrQueue, operation: Operation, segments: Iterator[np.ndarray]) -> None:
        super().__init__(queue, operation)
        self.stream = SegmentStream(segments)

    def next_frame(self) -> Frame | None:
        frame = self.stream.next_frame()
        if frame is None:
            self.call.finish(self.operation, message=DONE, completion_reason="completedSuccessfully")
        return frame

    def cancel(self) -> None:
        # Graph's sendDtmfTones page: a cancelled send still ends `completed`, with completionReason saying so
        self.call.finish(
            self.operation, "completed", 200, CANCEL_SUBCODE, "Action completed, the tones were cancelled before "
            "all were sent.", completion_reason="mediaOperationCanceled",
        )


@dataclass(frozen=True)
class RecordSettings:
    """recordResponse's parameters, validated by the API (seconds 1..120, Graph's limits)."""

    prompt: PendingMedia | None = None
    play_beep: bool = True
    initial_silence_timeout: int = 5
    max_silence_timeout: int = 5
    max_record_duration: int = 5
    stop_tones: frozenset[str] = field(default_factory=frozenset)
    """Graph tone names (`pound`, `tone1`, ...) that end the recording when a participant sends one."""
    barge_in_allowed: bool = False


class RecordItem(QueueItem):
    """recordResponse: its prompt, the beep, then the mix the application hears until a limit, a pause or a stop
    tone ends it (or a cancel)."""

    def __init__(self, queue: IvrQueue, operation: Operation, settings: RecordSettings, store: RecordingStore) -> None:
        super().__init__(queue, operation)
        self.settings = settings
        self.store = store
        self.phase = "prompt" if settings.prompt is not None else "beep" if settings.play_beep else "record"
        self.clip: Clip | None = None
        self.detector = SpeechDetector()
        self.recorded: list[Frame] = []
        """The frames heard so far (copies): memory grows with what is recorded, not with the maximum asked for."""
        self._listening = False
        self._position: int | None = None
        """The mix grid position of the last frame recorded: a jump means the clock skipped periods."""

    # the application's side: prompt and beep, then nothing of its own while it listens
    def next_frame(self) -> Frame | None:
        if self.phase == "prompt":
            frame = self._prompt_frame()
            if frame is not None or self.finished:
                return frame
            self.phase = "beep" if self.settings.play_beep else "record"
        if self.phase == "beep":
            if self.clip is None:
                self.clip = Clip(self.queue.beep)
            frame = self.clip.next_frame()
            if frame is not None:
                return frame
            self.phase = "record"
        if self.phase == "record" and not self._listening:
            self._listen()
        return None

    def _prompt_frame(self) -> Frame | None:
        prompt = self.settings.prompt
        assert prompt is not None
        if self.clip is None:
            if not prompt.done():
                return None  # still arriving: the phase waits, and the recording's timers have not started
            try:
                self.clip = Clip(prompt.result())
            except Exception as exc:
                self._fail("playPromptFailed", 400, 0, f"Action failed, the prompt could not be played: {exc}")
                return None
        frame = self.clip.next_frame()
        if frame is None:
            self.clip = None
        return frame

    # the recording's side: the application's N-1 mix, one frame per tick
    def _listen(self) -> None:
        from .call import TONE_RECEIVED  # call.py builds the queue, so it is imported here, not at the top

        self._listening = True
        self.call.mixer.set_sink(self.call.app.id, self._heard)
        if self.settings.stop_tones:
            self.call.events.on(TONE_RECEIVED, self._tone)

    def _heard(self, tick: MixTick, frame: Frame, shared: bool) -> None:
        """The application's mix of this tick. Periods the clock skipped since the last one (a stalled loop: nobody
        heard anything then) are recorded as silence, so the recording and its timers keep wall time."""
        last, self._position = self._position, tick.position
        if last is not None:
            for _ in range(min(tick.position - last - 1, MAX_SKIPPED_FRAMES)):
                if self._record(SILENT_FRAME):
                    return
        self._record(frame.copy())

    def _record(self, frame: Frame) -> bool:
        """Add one frame and apply the timers; True once the recording has ended."""
        if self.finished:
            return True
        self.recorded.append(frame)
        frames = len(self.recorded)
        self.detector.push(frame)
        settings = self.settings
        if not self.detector.speech_started:
            if frames >= settings.initial_silence_timeout * FRAMES_PER_SECOND:
                self._fail("initialSilenceTimeout", 400, 0, "Action failed, no speech before the initial silence timeout.")
        elif self.detector.pause_frames >= settings.max_silence_timeout * FRAMES_PER_SECOND:
            self._complete("maxSilenceTimeout", 0, "Action completed, max silence timeout reached.")
        if not self.finished and frames >= settings.max_record_duration * FRAMES_PER_SECOND:
            self._complete("maxRecordDurationReached", MAX_DURATION_SUBCODE, "Action completed, max record duration reached.")
        return self.finished

    def _tone(self, call: Call, participant: object, tone: str) -> None:
        if call is self.call and not self.finished and tone in self.settings.stop_tones:
            self._complete("stopToneDetected", 0, f"Action completed, stop tone detected ({tone}).")

    # endings
    def _complete(self, reason: str, subcode: int, message: str) -> None:
        self.close()
        audio = np.concatenate(self.recorded) if self.recorded else np.zeros(0, dtype=np.int16)
        self.recorded = []
        try:
            location, token = self.store(audio)
        except Exception as exc:  # the store refused (e.g. the server is stopping): the recording is lost
            self.call.finish(self.operation, "failed", 500, 0, f"Action failed, the recording could not be kept: {exc}",
                             completion_reason="unspecifiedError", recordingLocation="", recordingAccessToken="")
            return
        self.call.finish(self.operation, "completed", 200, subcode, message, completion_reason=reason,
                         recordingLocation=location, recordingAccessToken=token)

    def _fail(self, reason: str, code: int, subcode: int, message: str) -> None:
        self.close()
        self.recorded = []
        self.call.finish(self.operation, "failed", code, subcode, message, completion_reason=reason,
                         recordingLocation="", recordingAccessToken="")

    def cancel(self) -> None:
        self._fail("operationCanceled", 400, CANCEL_SUBCODE, CANCELLED)

    def close(self) -> None:
        from .call import TONE_RECEIVED

        if self.settings.prompt is not None and self.phase == "prompt":
            self.settings.prompt.cancel()
        if self._listening:
            self._listening = False
            if self.call.app.id in self.call.mixer:
                self.call.mixer.set_sink(self.call.app.id, None)
            if self.settings.stop_tones:
                self.call.events.remove_listener(TONE_RECEIVED, self._tone)


# the queue ------------------------------------------------------------------------------------------------------------
class IvrQueue(AudioSource):
    """One call's IVR queue, and the application participant's voice: each tick, the head operation's frame, or the
    base source's when the head has none (or the queue is empty)."""

    def __init__(self, call: Call, base: AudioSource) -> None:
        self.call = call
        self.base = base
        self.items: deque[QueueItem] = deque()
        self.beep = beep()
        self._stopped = False
        self._last_deadline: float | None = None
        self._behind = 0.0
        """Periods the clock has run beyond the ticks it made (a fraction carried over), owed as skipped frames."""
        call.tick_listeners.append(self._keep_time)

    # the voice (AudioSource) ------------------------------------------------------------------------------------
    def next_frame(self) -> Frame:
        self.frames_made += 1
        frame = self._advance()
        return frame if frame is not None else self.base.next_frame()

    def _advance(self) -> Frame | None:
        """The head operation's next frame (None: it has none this tick), moving on to the next operation as each
        one ends."""
        items = self.items
        while items:
            item = items[0]
            frame = item.next_frame()
            if item.finished:  # it ended this tick: the next one starts now, without a gap
                items.popleft()
                item.close()
                continue
            return frame
        return None

    def _keep_time(self, deadline: float) -> None:
        """After each tick: when the clock skipped periods (it resynchronises when late rather than bursting), skip
        as many frames of what is playing, so a prompt keeps its duration in wall time; the part that fell in the
        stall is lost, as it would be from any real-time player. (A recording fills such a gap with silence.)"""
        last, self._last_deadline = self._last_deadline, deadline
        if last is None:
            return
        self._behind += (deadline - last) / FRAME_SECONDS - 1.0  # a resynchronised deadline is some periods late
        if not self.items:
            self._behind = 0.0  # nothing plays: nothing to catch up
            return
        skip = min(int(self._behind + 1e-6), MAX_SKIPPED_FRAMES)  # (1e-6: float sums of periods fall just short)
        self._behind -= skip
        for _ in range(skip):
            self._advance()

    @property
    def describe(self) -> str:
        return f"IVR queue over {self.base.describe}"

    # the actions --------------------------------------------------------------------------------------------------
    def play_prompt(self, media: Sequence[PendingMedia], client_context: str | None) -> Operation:
        """playPrompt: answered `running`; completed once every prompt has been played (failed if one cannot be read)."""
        self._admit()
        return self._enqueue(lambda op: PromptItem(self, op, media), Operation("playPrompt", self.call.app.id, client_context))

    def send_dtmf_tones(self, segments: Iterable[np.ndarray], client_context: str | None) -> Operation:
        """sendDtmfTones: the tones' audio (`dtmf.dtmf_segments`) played in turn; completed with completionReason
        `completedSuccessfully`."""
        self._admit()
        operation = Operation("sendDtmfTones", self.call.app.id, client_context)
        return self._enqueue(lambda op: DtmfItem(self, op, iter(segments)), operation)

    def record_response(self, settings: RecordSettings, store: RecordingStore, client_context: str | None) -> Operation:
        """recordResponse: answered `running`; ends with its recording's location (or failed, see RecordItem).
        With `barge_in_allowed` it cancels what is playing and queued, and starts at once."""
        if settings.barge_in_allowed:
            self._check_live()
            self.cancel_all()
        self._admit()
        operation = Operation("record", self.call.app.id, client_context)
        return self._enqueue(lambda op: RecordItem(self, op, settings, store), operation)

    def cancel(self, client_context: str | None) -> Operation:
        """cancelMediaProcessing: every running and queued operation ends as cancelled (their notifications go
        first); answered with a `completed` cancelMediaProcessingOperation."""
        self._check_live()
        self.cancel_all()
        return self.call._record(Operation("cancelMediaProcessing", self.call.app.id, client_context))

    def cancel_all(self) -> None:
        while self.items:
            item = self.items.popleft()
            item.cancel()
            item.close()

    def stop(self) -> None:
        """The call ends: drop every item (their operations are failed by the call) and play nothing more."""
        self._stopped = True
        while self.items:
            self.items.popleft().close()

    # helpers ------------------------------------------------------------------------------------------------------
    def _check_live(self) -> None:
        if self._stopped or self.call.terminated:
            raise CallTerminated(self.call.id)

    def _admit(self) -> None:
        self._check_live()
        if len(self.items) >= MAX_QUEUED:
            raise MediaConflict(
                f"The call's media queue is full ({MAX_QUEUED} operations playing or waiting): wait for some to "
                "complete, or cancelMediaProcessing."
            )

    def _enqueue(self, make: Callable[[Operation], QueueItem], operation: Operation) -> Operation:
        self.call.begin(operation)
        self.items.append(make(operation))
        return operation
