"""The mute gate's reach into aiortc: what it installs in place of an RTCRtpReceiver's jitter buffer.

Every reach into aiortc/aioice internals lives in `mediamute/rtc/`, each behind a seam check: this one (the
receiver), `ice.py` (aioice's host-address gathering and its datagram entry point), `rtp_send.py` (the lean send
path of the mix: the sender's counters, the DTLS transport's SRTP session, the nominated candidate pair), and the
test support `sender_faults.py` (makes a real sender jump its RTP numbering) and `wire_tap.py` (reads a real peer's
packets after SRTP).

aiortc has no public hook between receiving an RTP packet and decoding it. In `RTCRtpReceiver._handle_rtp_packet`
(aiortc 1.16.0) a packet is first counted in the receive statistics that feed RTCP receiver reports, then
depayloaded and handed to the private jitter buffer (`self.__jitter_buffer.add(packet)`), whose output goes to the
decoder thread. Replacing that jitter buffer puts the gate exactly where it belongs: after the statistics (so a
dropped packet is still "received" and RTCP reports no loss) and before any decoding (so a muted participant is
never decoded nor mixed). The replacement, `InlineDecoder`, is the gate, then RTP sequence validation, then an
Opus decode on arrival straight into the mixer inbox: no 80 ms prefetch, no decoder thread, and nothing held back
that could stall after a mute. (The benchmark's cheap clients install it with a closed gate, so they count and
drop what they hear.)

`check_receiver_seam()` verifies the internals this relies on; tests/test_aiortc_seam.py calls it so an aiortc
upgrade that moves them fails loudly instead of silently un-muting everyone.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import TypeVar

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

from ..media.audio import Frame
from ..media.gate import MuteGate
from ..media.sequence import SequenceCounters, SequenceValidator
from .codec import MonoOpusDecoder

JITTER_BUFFER_ATTR = "_RTCRtpReceiver__jitter_buffer"
SUPPORTED_AIORTC = "1.16.0"


class ReceiverSeamError(RuntimeError):
    """aiortc's receiver no longer looks the way the gate adapter expects."""


class _GateFront:
    """What every replacement does first with a packet: note the sender's level, then ask the gate."""

    gate: MuteGate
    last_audio_level: int | None
    """The sender's audio level (RFC 6464, -dBov) of the latest packet, dropped or not."""

    def _admit(self, packet: RtpPacket) -> bool:
        level = packet.extensions.audio_level
        if level is not None:
            self.last_audio_level = level[1]
        return self.gate.admit(len(packet.payload))


FrameHandler = Callable[[Frame, float], None]
"""Receives each decoded 20 ms mono frame with the monotonic time its RTP packet arrived."""


class InlineDecoder(_GateFront, JitterBuffer):
    """The gate, then sequence validation and an Opus decode on the event loop, in place of aiortc's jitter buffer.

    aiortc's audio path holds four packets back (an 80 ms prefetch that only reorders, never smooths timing),
    then hops each frame to a decoder thread and back through `run_coroutine_threadsafe` and a track queue.
    Here an admitted packet is checked by an RFC 3550 A.1 `SequenceValidator` (duplicates and late packets are
    dropped, a far jump or another SSRC only once two packets confirm it) and decoded at once (≈ 20 µs, mono)
    into `on_frame`; the mixer's bounded inbox is the only buffer. Nothing is returned to aiortc, so its decoder
    thread stays idle and its track never yields a frame (it still ends when the peer goes).
    """

    def __init__(self, gate: MuteGate, on_frame: FrameHandler, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(capacity=2, prefetch=0, is_video=False)
        self.gate = gate
        self.on_frame = on_frame
        self.decoder = MonoOpusDecoder()
        self.sequence = SequenceValidator()
        """Per-reason counts of what the gate let through but the stream's order refused: `sequence.counters`."""
        self.last_audio_level = None
        self.frames = 0
        self._clock = clock

    @property
    def sequence_counters(self) -> SequenceCounters:
        """Accepted packets, drops by reason (duplicates, late, jumps/SSRCs pending), restarts and SSRC changes."""
        return self.sequence.counters

    @property
    def late(self) -> int:
        """Packets dropped as too late to play (behind the newest by at most MAX_MISORDER)."""
        return self.sequence.counters.late

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        if not self._admit(packet):  # the gate first: a muted participant's packets are not even validated
            return False, None
        arrived = self._clock()
        if not self.sequence.check(packet.ssrc, packet.sequence_number).accepted:
            return False, None
        for mono in self.decoder.decode(packet._data):  # type: ignore[attr-defined]  # set by aiortc's depayload
            self.frames += 1
            self.on_frame(mono, arrived)
        return False, None


def check_receiver_seam() -> None:
    """Raise `ReceiverSeamError` unless aiortc's receiver still has the seam the gate is installed in."""
    source = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    stats_at = source.find("self.__remote_streams[packet.ssrc].add(packet)")
    buffer_at = source.find("self.__jitter_buffer.add(packet)")
    decode_at = source.find("self.__decoder_queue.put(")
    if min(stats_at, buffer_at, decode_at) < 0:
        raise ReceiverSeamError(
            "aiortc RTCRtpReceiver._handle_rtp_packet no longer feeds statistics, then the jitter buffer, then "
            f"the decoder queue; the mute gate cannot be installed (supported aiortc: {SUPPORTED_AIORTC})"
        )
    if not stats_at < buffer_at < decode_at:
        raise ReceiverSeamError(
            "aiortc's receive path changed order: receive statistics must come before the jitter buffer, "
            f"and the jitter buffer before the decoder (supported aiortc: {SUPPORTED_AIORTC})"
        )
    if "packet._data = depayload(" not in source or source.find("packet._data = depayload(") > buffer_at:
        raise ReceiverSeamError(
            "aiortc no longer depayloads into packet._data before the jitter buffer; the inline decoder cannot "
            f"read the Opus payload (supported aiortc: {SUPPORTED_AIORTC})"
        )
    init_source = inspect.getsource(RTCRtpReceiver.__init__)
    if "self.__jitter_buffer = JitterBuffer(" not in init_source:
        raise ReceiverSeamError("RTCRtpReceiver no longer creates its jitter buffer as self.__jitter_buffer")


_Replacement = TypeVar("_Replacement", bound=JitterBuffer)


def _replace_jitter_buffer(
    receiver: RTCRtpReceiver, kind: type[_Replacement], make: Callable[[JitterBuffer], _Replacement]
) -> _Replacement:
    """Swap the receiver's private jitter buffer for `make(current)`, once; refuse loudly if it is not there."""
    current = getattr(receiver, JITTER_BUFFER_ATTR, None)
    if isinstance(current, kind):
        return current
    if not isinstance(current, JitterBuffer):
        raise ReceiverSeamError(
            f"RTCRtpReceiver has no {JITTER_BUFFER_ATTR} JitterBuffer (found {type(current).__name__}); "
            f"supported aiortc: {SUPPORTED_AIORTC}"
        )
    replacement = make(current)
    setattr(receiver, JITTER_BUFFER_ATTR, replacement)
    return replacement


def install_inline_decoder(receiver: RTCRtpReceiver, gate: MuteGate, on_frame: FrameHandler) -> InlineDecoder:
    """Replace the receiver's jitter buffer by the gate and an inline decoder feeding `on_frame`."""
    return _replace_jitter_buffer(receiver, InlineDecoder, lambda _current: InlineDecoder(gate, on_frame))
