"""DTMF (RFC 4733 telephone-event) through aiortc, which knows nothing of it: negotiating it, receiving it before
anything tries to decode it, and sending it on a participant's audio stream. Every reach into aiortc for DTMF is in
this module, behind `check_dtmf_seam()` (tests/test_aiortc_seam.py calls it).

**Negotiation.** aiortc answers only the codecs of its module-level table `aiortc.codecs.CODECS`
(`RTCPeerConnection.setRemoteDescription` intersects the offer with `CODECS[kind]`), so a browser's
`telephone-event/48000` and `/8000` fell out of the answer and its RTCDTMFSender stayed disabled.
`register_telephone_event()` adds both to that table, for every later peer connection of the process: the server's
peer and the Python client call it before they negotiate, so the server answers them and the client offers them.
`prefer_voice_codec` keeps them behind the voice codec, because aiortc's sender sends with the first negotiated
codec.

**Receiving** (server). Event packets share the audio stream's SSRC and sequence numbers, so aiortc routes them to
the audio receiver, counts them in its receive statistics (RTCP stays honest) and hands them to the receiver's
jitter-buffer seam like any audio packet, where the receive path would take them for Opus. `ToneTap`
wraps whatever sits at that seam (`install_tone_tap`, after the receive path's `install_receive_path`): telephone-event
payload types go to a `ToneReceiver` (RFC 4733's receiver rule, `media.telephone_event`) and never further, so
they never reach the gate, the decoder, the mixer or a recording; everything else passes through unchanged. The
gate's counters therefore count audio packets only, and tones are read whether the gate is open or not.

**Sending** (client). aiortc has no RTCDTMFSender and keeps its sequence number in a local variable of
`RTCRtpSender._run_rtp`. `DtmfSender` sits where that sender's packets leave it, on its DTLS transport's
`_send_rtp` (as `sender_faults.SenderFaults` does): it notes the audio stream's last sequence number and
timestamp, inserts each event packet with the next sequence number (renumbering the audio packets after it by
one, so the stream stays gapless), the SSRC of the audio stream, and timestamps on the audio stream's clock.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiortc import RTCDtlsTransport, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc import codecs as aiortc_codecs
from aiortc import rtcpeerconnection
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, is_rtcp

from ..media.telephone_event import (
    KeyPress,
    PlannedPacket,
    ToneCounters,
    ToneReceiver,
    plan_key_presses,
)
from ..ratelimit import PerSourceLimiter
from .gate_adapter import SUPPORTED_AIORTC, ReceiverSeamError, check_receiver_seam
from .gate_adapter import _replace_jitter_buffer as replace_jitter_buffer  # the one swap of that seam, shared

log = logging.getLogger(__name__)

TELEPHONE_EVENT = "audio/telephone-event"
TELEPHONE_EVENT_CODECS = (
    RTCRtpCodecParameters(mimeType=TELEPHONE_EVENT, clockRate=48000, channels=1, payloadType=110, parameters={"0-16": None}),
    RTCRtpCodecParameters(mimeType=TELEPHONE_EVENT, clockRate=8000, channels=1, payloadType=126, parameters={"0-16": None}),
)
"""What mediamute offers and answers: events 0-16 (DTMF and flash) at Opus's clock and at 8 kHz (Firefox offers only
that one), on the payload types Chromium uses."""
SENDER_EXTENSIONS_ATTR = "_RTCRtpSender__rtp_header_extensions_map"
RTP_SEQ_MOD = 1 << 16
TIMESTAMP_MOD = 1 << 32
_MALFORMED_LOG = PerSourceLimiter(interval=10.0)


def check_dtmf_seam() -> None:
    """Raise `ReceiverSeamError` unless aiortc still negotiates from `CODECS`, routes event packets to the audio
    receiver's jitter-buffer seam with their payload intact, sends with its first codec, and numbers and sends
    its packets where `DtmfSender` expects."""
    audio = aiortc_codecs.CODECS.get("audio")
    if not isinstance(audio, list) or not all(isinstance(c, RTCRtpCodecParameters) for c in audio):
        raise ReceiverSeamError(f"aiortc.codecs.CODECS['audio'] is no longer a list of codecs (supported aiortc: {SUPPORTED_AIORTC})")
    if rtcpeerconnection.CODECS is not aiortc_codecs.CODECS:
        raise ReceiverSeamError("aiortc's peer connection no longer negotiates from aiortc.codecs.CODECS")
    negotiate = inspect.getsource(RTCPeerConnection.setRemoteDescription)
    if "find_common_codecs(CODECS[media.kind]" not in negotiate:
        raise ReceiverSeamError(f"aiortc no longer intersects offers with CODECS[kind] (supported aiortc: {SUPPORTED_AIORTC})")
    if aiortc_codecs.depayload(TELEPHONE_EVENT_CODECS[0], b"\x01\x0a\x03\xc0") != b"\x01\x0a\x03\xc0":
        raise ReceiverSeamError("aiortc's depayload no longer passes a telephone-event payload through unchanged")
    check_receiver_seam()  # statistics, then the jitter-buffer seam ToneTap wraps, then the decoder
    receive = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    known_at = receive.find("codec = self.__codecs.get(packet.payload_type)")
    if known_at < 0 or known_at > receive.find("self.__jitter_buffer.add(packet)"):
        raise ReceiverSeamError("aiortc's receiver no longer looks the packet's codec up by payload type before its jitter buffer")
    send = inspect.getsource(RTCRtpSender.send)
    if "self._run_rtp(parameters.codecs[0])" not in send:
        raise ReceiverSeamError("aiortc's sender no longer sends with the first negotiated codec; prefer_voice_codec is moot")
    local_rtp = inspect.getsource(RTCPeerConnection._RTCPeerConnection__localRtp)  # type: ignore[attr-defined]
    if "codecs=transceiver._codecs" not in local_rtp:
        raise ReceiverSeamError("aiortc no longer answers and sends with transceiver._codecs")
    run = inspect.getsource(RTCRtpSender._run_rtp)
    for needle in ("packet.ssrc = self._ssrc", "packet.serialize(self.__rtp_header_extensions_map)",
                   "await self.transport._send_rtp(packet_bytes)"):
        if needle not in run:
            raise ReceiverSeamError(f"aiortc RTCRtpSender._run_rtp no longer has {needle!r} (supported aiortc: {SUPPORTED_AIORTC})")
    if "self.__rtp_header_extensions_map = rtp.HeaderExtensionsMap()" not in inspect.getsource(RTCRtpSender.__init__):
        raise ReceiverSeamError("aiortc's sender no longer keeps its header extension map in __rtp_header_extensions_map")
    if not inspect.iscoroutinefunction(RTCDtlsTransport._send_rtp):
        raise ReceiverSeamError(f"RTCDtlsTransport._send_rtp is no longer a coroutine (supported aiortc: {SUPPORTED_AIORTC})")


def register_telephone_event() -> None:
    """Add telephone-event/48000 and /8000 to aiortc's codec table (once): every later offer and answer has them."""
    audio = aiortc_codecs.CODECS["audio"]
    for codec in TELEPHONE_EVENT_CODECS:
        if not any(c.mimeType.lower() == TELEPHONE_EVENT and c.clockRate == codec.clockRate for c in audio):
            audio.append(codec)


def is_telephone_event(codec: RTCRtpCodecParameters) -> bool:
    return codec.mimeType.lower() == TELEPHONE_EVENT


def negotiated_events(transceiver: RTCRtpTransceiver) -> dict[int, int]:
    """The negotiated telephone-event payload types and their clock rates (empty before or without negotiation)."""
    return {c.payloadType: c.clockRate for c in transceiver._codecs if is_telephone_event(c)}


def prefer_voice_codec(transceiver: RTCRtpTransceiver) -> None:
    """Keep telephone-event behind the voice codecs in the negotiated list, whatever order the offer had: aiortc's
    sender sends with the first one, and cannot encode audio as events. Call it before the answer is created."""
    codecs = transceiver._codecs
    transceiver._codecs = [c for c in codecs if not is_telephone_event(c)] + [c for c in codecs if is_telephone_event(c)]


# receiving ---------------------------------------------------------------------------------------------------------
ToneHandler = Callable[[KeyPress], None]


class ToneTap(JitterBuffer):
    """In front of the receiver's jitter-buffer seam: telephone-event packets are read here and go no further; every
    other packet goes to `inner` (the receive path: gate, sequence validation, jitter buffer, decoder) as if the tap were not there."""

    def __init__(self, inner: JitterBuffer, event_types: dict[int, int], on_press: ToneHandler, name: str = "") -> None:
        super().__init__(capacity=2)  # never used: packets go to `inner` or to a ToneReceiver
        self.inner = inner
        self.event_types = event_types
        """Payload type -> clock rate of each negotiated telephone-event format."""
        self.on_press = on_press
        self.name = name
        self.counters = ToneCounters()
        """Shared by the receivers of every event payload type."""
        self._receivers: dict[int, ToneReceiver] = {}

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        if packet.payload_type not in self.event_types:
            return self.inner.add(packet)
        receiver = self._receivers.get(packet.payload_type)
        if receiver is None:
            receiver = self._receivers[packet.payload_type] = ToneReceiver(self.event_types[packet.payload_type])
            receiver.counters = self.counters
        malformed = self.counters.malformed
        for press in receiver.receive(packet.ssrc, packet.timestamp, bool(packet.marker), packet.payload):
            self.on_press(press)
        if self.counters.malformed != malformed:
            suppressed = _MALFORMED_LOG.allow(self.name)
            if suppressed is not None:
                more = f" ({suppressed} more since the last line)" if suppressed else ""
                log.warning("participant %s: malformed telephone-event payload of %d bytes dropped%s", self.name, len(packet.payload), more)
        return False, None


def install_tone_tap(transceiver: RTCRtpTransceiver, on_press: ToneHandler, name: str = "") -> ToneTap:
    """Put a `ToneTap` in front of the receiver's jitter-buffer seam (once; after the receive path is installed)."""
    events = negotiated_events(transceiver)
    return replace_jitter_buffer(transceiver.receiver, ToneTap, lambda current: ToneTap(current, events, on_press, name))


# sending -----------------------------------------------------------------------------------------------------------
class DtmfUnavailable(RuntimeError):
    """DTMF cannot be sent: telephone-event was not negotiated at the audio codec's clock, or nothing is sent yet."""


@dataclass(frozen=True, slots=True)
class SentEvent:
    """One telephone-event packet as it left the sender (before SRTP)."""

    sequence_number: int
    timestamp: int
    marker: bool
    payload_type: int
    ssrc: int
    payload: bytes
    sent_at: float


class DtmfSender:
    """RFC 4733 events on one aiortc sender's audio stream (installed once per transceiver, after negotiation).

    The events keep the audio stream's time, as a browser's do: a key sequence starts at the next audio packet
    (its timestamp is the first press's start), and each event packet goes out just before the first audio
    packet whose timestamp reaches the packet's planned time. So the events are paced by the audio itself, and
    their timestamps sit on its timeline however late a loaded machine sends it.
    """

    AUDIO_WAIT = 2.0
    """How long `send` waits for audio to carry the sequence, beyond the sequence's own length."""

    def __init__(self, transceiver: RTCRtpTransceiver, clock: Callable[[], float] = time.monotonic) -> None:
        check_dtmf_seam()
        sender = transceiver.sender
        voice = next((c for c in transceiver._codecs if not is_telephone_event(c)), None)
        event = next((c for c in transceiver._codecs if is_telephone_event(c) and voice is not None and c.clockRate == voice.clockRate), None)
        if event is None:
            raise DtmfUnavailable(
                "telephone-event at the audio codec's clock rate was not negotiated: the server's answer has none"
            )
        self.sender = sender
        self.payload_type = event.payloadType
        self.clock_rate = event.clockRate
        self.mid = transceiver.mid
        self.sent: deque[SentEvent] = deque(maxlen=2000)
        """The latest event packets sent, oldest first (what tests compare with RFC 4733)."""
        self.renumbered = 0
        """Audio packets whose sequence number was moved to make room for events."""
        self._extensions: HeaderExtensionsMap = getattr(sender, SENDER_EXTENSIONS_ATTR)
        self._clock = clock
        self._offset = 0
        self._last_seq: int | None = None
        self._pending: deque[PlannedPacket] = deque()
        """The packets of the sequence being sent, not yet sent."""
        self._base: int | None = None
        """The sequence's first press's start on the audio clock (set by the first audio packet after `send`)."""
        self._current: list[SentEvent] = []
        self._done: asyncio.Event | None = None
        self._busy = asyncio.Lock()
        transport = sender.transport
        self._send: Callable[[bytes], Awaitable[None]] = transport._send_rtp
        transport._send_rtp = self._send_rtp  # type: ignore[method-assign]  # an instance attribute shadows it

    async def send(self, keys: str, duration_ms: int = 100, gap_ms: int = 70) -> list[SentEvent]:
        """Send `keys` (0-9, *, #, A-D; `,` pauses 2 s) as RFC 4733 key presses, in real time; returns the packets.

        One sequence at a time: a second call waits for the first to finish."""
        plan = plan_key_presses(keys, self.clock_rate, duration_ms, gap_ms)  # refuses bad keys before sending any
        if not plan:
            return []
        async with self._busy:
            self._current = []
            self._base = None
            self._done = asyncio.Event()
            self._pending.extend(plan)
            try:
                async with asyncio.timeout(plan[-1].at_ms / 1000 + self.AUDIO_WAIT):
                    await self._done.wait()
            except TimeoutError:
                self._pending.clear()
                raise DtmfUnavailable("the audio stream stopped before the keys were sent: is the connection up?") from None
            return list(self._current)

    async def _send_rtp(self, data: bytes) -> None:
        """Every packet the transport sends passes here. This sender's audio packets carry the pending events out
        (just before themselves) and are renumbered past them."""
        if is_rtcp(data) or len(data) < 12 or struct.unpack_from("!I", data, 8)[0] != self.sender._ssrc:
            await self._send(data)
            return
        timestamp = struct.unpack_from("!I", data, 4)[0]
        due = self._due(timestamp) if self._pending else []
        packets = [self._event_packet(planned) for planned in due]  # numbered before this audio packet
        seq = (struct.unpack_from("!H", data, 2)[0] + self._offset) % RTP_SEQ_MOD
        if self._offset:
            data = data[:2] + struct.pack("!H", seq) + data[4:]
            self.renumbered += 1
        self._last_seq = seq
        if due and not self._pending and self._done is not None:
            self._done.set()
        for packet in packets:
            await self._send(packet)
        await self._send(data)

    def _due(self, timestamp: int) -> list[PlannedPacket]:
        """The pending packets whose planned time the audio clock has reached at `timestamp`."""
        if self._base is None:
            self._base = timestamp  # the first press starts with this audio packet
        elapsed = (timestamp - self._base) % TIMESTAMP_MOD
        units_per_ms = self.clock_rate // 1000
        due = []
        while self._pending and self._pending[0].at_ms * units_per_ms <= elapsed:
            due.append(self._pending.popleft())
        return due

    def _event_packet(self, planned: PlannedPacket) -> bytes:
        assert self._base is not None
        seq = ((self._last_seq if self._last_seq is not None else -1) + 1) % RTP_SEQ_MOD
        self._last_seq = seq
        self._offset += 1  # the audio packets after this one move up by one
        packet = RtpPacket(
            payload_type=self.payload_type,
            marker=int(planned.marker),
            sequence_number=seq,
            timestamp=(self._base + planned.timestamp) % TIMESTAMP_MOD,
            ssrc=self.sender._ssrc,
            payload=planned.report.pack(),
        )
        packet.extensions.mid = self.mid
        event = SentEvent(seq, packet.timestamp, planned.marker, self.payload_type, packet.ssrc, packet.payload, self._clock())
        self.sent.append(event)
        self._current.append(event)
        return packet.serialize(self._extensions)
