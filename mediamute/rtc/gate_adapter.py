"""The one place mediamute reaches into aiortc: the mute gate installed in an RTCRtpReceiver's jitter buffer.

aiortc has no public hook between receiving an RTP packet and decoding it. In `RTCRtpReceiver._handle_rtp_packet`
(aiortc 1.16.0) a packet is first counted in the receive statistics that feed RTCP receiver reports, then
depayloaded and handed to the private jitter buffer (`self.__jitter_buffer.add(packet)`), whose output goes to the
decoder thread. Replacing that jitter buffer with `GatedJitterBuffer` puts the gate exactly where it belongs:
after the statistics (so a dropped packet is still "received" and RTCP reports no loss) and before the jitter
buffer and the decoder (so a muted participant is never decoded nor mixed).

`check_receiver_seam()` verifies the internals this relies on; tests/test_aiortc_seam.py calls it so an aiortc
upgrade that moves them fails loudly instead of silently un-muting everyone.
"""

from __future__ import annotations

import inspect

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

from ..media.gate import MuteGate

JITTER_BUFFER_ATTR = "_RTCRtpReceiver__jitter_buffer"
SUPPORTED_AIORTC = "1.16.0"


class ReceiverSeamError(RuntimeError):
    """aiortc's receiver no longer looks the way the gate adapter expects."""


class GatedJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer behind a `MuteGate`: a closed gate drops packets before they are buffered.

    On re-open the buffer is emptied and its origin forgotten. Without that, aiortc's buffer still waits for the
    sequence numbers it lost while muted; after a short gap it stalls until its window wraps and then keeps
    extra packets queued, adding latency for the rest of the call.
    """

    def __init__(self, gate: MuteGate, capacity: int, prefetch: int, reset_on_open: bool = True) -> None:
        super().__init__(capacity=capacity, prefetch=prefetch, is_video=False)
        self.gate = gate
        self.resets = 0
        self.last_audio_level: int | None = None
        """The sender's audio level (RFC 6464, -dBov) of the latest packet, dropped or not."""
        if reset_on_open:
            gate.on_open(lambda _gate: self.reset())

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        level = packet.extensions.audio_level
        if level is not None:
            self.last_audio_level = level[1]
        if not self.gate.admit(len(packet.payload)):
            return False, None
        return super().add(packet)

    def reset(self) -> None:
        """Forget every buffered packet and the expected next sequence number."""
        if self._origin is not None:
            self.remove(self.capacity)
        self._origin = None
        self.resets += 1


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
    init_source = inspect.getsource(RTCRtpReceiver.__init__)
    if "self.__jitter_buffer = JitterBuffer(" not in init_source:
        raise ReceiverSeamError("RTCRtpReceiver no longer creates its jitter buffer as self.__jitter_buffer")


def install_gate(receiver: RTCRtpReceiver, gate: MuteGate, reset_on_open: bool = True) -> GatedJitterBuffer:
    """Replace the receiver's jitter buffer by a gated one with the same capacity and prefetch."""
    current = getattr(receiver, JITTER_BUFFER_ATTR, None)
    if isinstance(current, GatedJitterBuffer):
        return current
    if not isinstance(current, JitterBuffer):
        raise ReceiverSeamError(
            f"RTCRtpReceiver has no {JITTER_BUFFER_ATTR} JitterBuffer (found {type(current).__name__}); "
            f"supported aiortc: {SUPPORTED_AIORTC}"
        )
    gated = GatedJitterBuffer(gate, capacity=current.capacity, prefetch=current._prefetch, reset_on_open=reset_on_open)
    setattr(receiver, JITTER_BUFFER_ATTR, gated)
    return gated
