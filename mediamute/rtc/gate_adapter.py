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
dropped packet is still "received" and RTCP reports no loss) and before any buffering or decoding (so a muted
participant is never buffered, decoded nor mixed). The replacement is mediamute's own receive path
(`receive.ReceivePath`): the gate, RTP sequence validation, an adaptive jitter buffer and a libopus decoder pulled
by the playout clock; nothing goes to aiortc's decoder thread. (The benchmark's cheap clients install one with a
closed gate, so they count and drop what they hear.)

`check_receiver_seam()` verifies the internals this relies on; tests/test_aiortc_seam.py calls it so an aiortc
upgrade that moves them fails loudly instead of silently un-muting everyone.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TypeVar

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from ..media.gate import MuteGate

JITTER_BUFFER_ATTR = "_RTCRtpReceiver__jitter_buffer"
SUPPORTED_AIORTC = "1.16.0"


class ReceiverSeamError(RuntimeError):
    """aiortc's receiver no longer looks the way the gate adapter expects."""


class GateFront:
    """What every replacement does first with a packet: note the sender's level, then ask the gate."""

    gate: MuteGate
    last_audio_level: int | None
    """The sender's audio level (RFC 6464, -dBov) of the latest packet, dropped or not."""
    on_dropped_level: Callable[[int], None] | None = None
    """Called with the level of each packet the closed gate drops (talking while muted), if set."""

    def _admit(self, packet: RtpPacket) -> bool:
        level = packet.extensions.audio_level
        if level is not None:
            self.last_audio_level = level[1]
        if self.gate.admit(len(packet.payload)):
            return True
        if level is not None and self.on_dropped_level is not None:
            self.on_dropped_level(level[1])
        return False


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
            "aiortc no longer depayloads into packet._data before the jitter buffer; the receive path cannot "
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


def install_receive_path(receiver: RTCRtpReceiver, path: _Replacement) -> _Replacement:
    """Put `path` (a `receive.ReceivePath`) in place of the receiver's jitter buffer; once per receiver (a second
    call returns the path already installed)."""
    return _replace_jitter_buffer(receiver, type(path), lambda _current: path)
