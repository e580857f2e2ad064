"""The lean send path of the mix: a listener's packet leaves from the mixer tick in one synchronous call.

aiortc sends a track's packet through a chain of coroutines: `RTCRtpSender._run_rtp` awaits `track.recv()`, packs
the `av.Packet`, builds an `RtpPacket`, computes its header extensions (two `datetime.now()` for the NTP clock),
serializes it, and awaits `RTCDtlsTransport._send_rtp` (SRTP protect) → `RTCIceTransport._send` →
`aioice.Connection.sendto` → `StunProtocol.send_data` → `transport.sendto`. For a mix that is already encoded on
the event loop, all of that is per-packet Python with no work to wait for.

`LeanRtpSender` does the same on the wire in one call: the RTP header of the stream is built once by aiortc's own
serializer (payload type, marker, SSRC, the MID and abs-send-time extensions aiortc writes for audio); per packet
it patches the sequence number, the timestamp and the abs-send-time, protects the packet with the DTLS transport's
SRTP session (pylibsrtp) and writes it once to the nominated candidate pair's UDP transport. It keeps what
aiortc's sender keeps for RTCP sender reports and `getStats()` (packet and octet counts, the last RTP timestamp and
its NTP time) and the DTLS transport's byte and packet counters, so the SRs aiortc's `_run_rtcp` sends and both
ends' statistics stay true. aiortc's sender still runs (its RTCP task, its registration for the listener's reports)
but is never handed a packet.

When something else has wrapped the datagram path after SRTP (network impairment of the downlink, say), the lean
path hands the protected packet to `RTCIceTransport._send` as aiortc would, so that wrapper still sees every packet.

`check_send_seam()` verifies every aiortc/aioice internal this relies on; tests/test_aiortc_seam.py calls it, and
tests/test_rtp_send.py checks the bytes on the wire against aiortc's own packetizer. `MixOutlet` falls back to
aiortc's sender (the `MixTrack`) with a log line when the seam check fails.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import struct
import time
from collections.abc import Callable
from typing import Any

import aioice
import aioice.ice
import aiortc
import pylibsrtp
from aiortc import RTCDtlsTransport, RTCIceTransport, RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from ..media.outbound import OutboundCounters, SendPath
from .codec import opus_av_packet
from .gate_adapter import SUPPORTED_AIORTC
from .ice import SUPPORTED_AIOICE
from .mix_encoder import EncodedMix
from .tracks import MixTrack

log = logging.getLogger(__name__)

NTP_EPOCH_OFFSET = 2_208_988_800
"""Seconds from the NTP epoch (1900) to the Unix epoch (1970)."""
_RTP_HEADER = struct.Struct("!HI")
"""Sequence number and timestamp, at byte 2 of the RTP header."""

# aiortc's private names this module reads or keeps up to date (checked by check_send_seam)
SENDER_STARTED = "_RTCRtpSender__started"
SENDER_MID = "_RTCRtpSender__mid"
SENDER_EXTENSIONS_MAP = "_RTCRtpSender__rtp_header_extensions_map"
SENDER_NTP = "_RTCRtpSender__ntp_timestamp"
SENDER_RTP_TIMESTAMP = "_RTCRtpSender__rtp_timestamp"
SENDER_OCTETS = "_RTCRtpSender__octet_count"
SENDER_PACKETS = "_RTCRtpSender__packet_count"
DTLS_TX_BYTES = "_RTCDtlsTransport__tx_bytes"
DTLS_TX_PACKETS = "_RTCDtlsTransport__tx_packets"

_ORIGINAL_CONNECTION_SEND = aioice.Connection.send
_ORIGINAL_CONNECTION_SENDTO = aioice.Connection.sendto
_ORIGINAL_SEND_DATA = aioice.ice.StunProtocol.send_data


class SendSeamError(RuntimeError):
    """aiortc's or aioice's send path no longer looks the way the lean send path expects."""


def _require(source: str, *needles: str, where: str) -> None:
    missing = [n for n in needles if n not in source]
    if missing:
        raise SendSeamError(
            f"{where} changed: {missing[0]!r} not found; the lean send path cannot stand in for it "
            f"(supported aiortc {SUPPORTED_AIORTC}, aioice {SUPPORTED_AIOICE})"
        )


def check_send_seam() -> None:
    """Raise `SendSeamError` unless the aiortc/aioice internals the lean send path reproduces are as verified."""
    if aiortc.__version__ != SUPPORTED_AIORTC or aioice.__version__ != SUPPORTED_AIOICE:
        raise SendSeamError(
            f"aiortc {aiortc.__version__} / aioice {aioice.__version__} installed; the lean send path was verified "
            f"against aiortc {SUPPORTED_AIORTC} / aioice {SUPPORTED_AIOICE}"
        )
    _require(
        inspect.getsource(RTCRtpSender._run_rtp),
        "packet = RtpPacket(\n                        payload_type=codec.payloadType,",
        "packet.ssrc = self._ssrc",
        "packet.marker = (i == len(enc_frame.payloads) - 1) and 1 or 0",
        "packet.extensions.abs_send_time = (\n                        clock.current_ntp_time() >> 14\n                    ) & 0x00FFFFFF",
        "packet.extensions.mid = self.__mid",
        "if enc_frame.audio_level is not None:",
        "packet_bytes = packet.serialize(self.__rtp_header_extensions_map)",
        "await self.transport._send_rtp(packet_bytes)",
        "self.__ntp_timestamp = clock.current_ntp_time()",
        "self.__rtp_timestamp = packet.timestamp",
        "self.__octet_count += len(payload)",
        "self.__packet_count += 1",
        "timestamp = uint32_add(timestamp_origin, enc_frame.timestamp)",
        where="aiortc RTCRtpSender._run_rtp",
    )
    _require(inspect.getsource(RTCRtpSender._next_encoded_frame), "payloads, timestamp = self.__encoder.pack(data)",
             where="aiortc RTCRtpSender._next_encoded_frame")
    _require(
        inspect.getsource(RTCRtpSender.send),
        "self.__mid = parameters.muxId",
        "self.__rtp_header_extensions_map.configure(parameters)",
        "self.__started = True",
        where="aiortc RTCRtpSender.send",
    )
    _require(
        inspect.getsource(RTCRtpSender._run_rtcp),
        "ntp_timestamp=self.__ntp_timestamp",
        "rtp_timestamp=self.__rtp_timestamp",
        "packet_count=self.__packet_count & 0xFFFFFFFF",
        "octet_count=self.__octet_count & 0xFFFFFFFF",
        where="aiortc RTCRtpSender._run_rtcp",
    )
    _require(
        inspect.getsource(RTCDtlsTransport._send_rtp),
        "if self._state != State.CONNECTED:",
        "data = self._tx_srtp.protect(data)",
        "await self.transport._send(data)",
        "self.__tx_bytes += len(data)",
        "self.__tx_packets += 1",
        where="aiortc RTCDtlsTransport._send_rtp",
    )
    _require(inspect.getsource(RTCIceTransport.__init__), "self._send = self._connection.send",
             where="aiortc RTCIceTransport.__init__")
    _require(inspect.getsource(RTCPeerConnection), "codecs=transceiver._codecs,",
             where="aiortc RTCPeerConnection.__localRtp")
    _require(inspect.getsource(_ORIGINAL_CONNECTION_SENDTO), "active_pair = self._nominated.get(component)",
             "await active_pair.protocol.send_data(data, active_pair.remote_addr)", where="aioice Connection.sendto")
    _require(inspect.getsource(_ORIGINAL_SEND_DATA), "self.transport.sendto(data, addr)",
             where="aioice StunProtocol.send_data")


def ntp_time(wall: float) -> int:
    """A Unix time as a 64-bit NTP timestamp (what aiortc's `clock.current_ntp_time()` returns for now)."""
    seconds = int(wall)
    return ((seconds + NTP_EPOCH_OFFSET) << 32) | int((wall - seconds) * 4_294_967_296.0)


def header_template(
    payload_type: int, ssrc: int, mid: str | None, extensions: HeaderExtensionsMap
) -> tuple[bytearray, int]:
    """The stream's RTP header as aiortc's sender writes it for an audio packet (marker set, MID and abs-send-time
    extensions where negotiated, no audio level for a pre-encoded packet), with sequence number and timestamp 0;
    and the offset of the 3-byte abs-send-time value in it (-1 when that extension is not negotiated)."""

    def serialized(abs_send_time: int) -> bytes:
        packet = RtpPacket(payload_type=payload_type, marker=1, sequence_number=0, timestamp=0, ssrc=ssrc)
        packet.extensions.abs_send_time = abs_send_time
        packet.extensions.mid = mid
        return packet.serialize(extensions)

    low, high = serialized(0), serialized(0xFFFFFF)
    if len(low) != len(high):
        raise SendSeamError("aiortc's abs-send-time extension changes the header length")
    changed = [i for i, (a, b) in enumerate(zip(low, high)) if a != b]
    if not changed:
        return bytearray(low), -1
    if changed != list(range(changed[0], changed[0] + 3)):
        raise SendSeamError(f"aiortc's abs-send-time extension is not 3 consecutive bytes (at {changed})")
    return bytearray(low), changed[0]


_seam_verdict: str | None = None
"""None until checked; "" when the seam holds; else why the lean path cannot be used (checked once a process)."""


def lean_path_unavailable() -> str | None:
    """Why the lean send path cannot be used in this process (logged once), or None if it can."""
    global _seam_verdict
    if _seam_verdict is None:
        try:
            check_send_seam()
            _seam_verdict = ""
        except SendSeamError as exc:
            _seam_verdict = str(exc)
            log.warning("lean RTP send path unavailable, mixes go through aiortc's sender: %s", exc)
    return _seam_verdict or None


def unwrapped_send(ice: RTCIceTransport) -> Callable[..., Any] | None:
    """The datagram send aiortc bound on `ice` (its aioice connection's `send`), looking through a wrapper that
    says what it wraps (`wrapped_send` on the bound method's object: the downlink impairment, rtc/impairment.py)."""
    send = getattr(ice, "_send", None)
    wrapped = getattr(getattr(send, "__self__", None), "wrapped_send", None)
    return wrapped if wrapped is not None else send


class LeanRtpSender:
    """One listener's mix stream, sent synchronously: header patch → SRTP protect → one datagram write.

    Made by `attach` once aiortc's sender has started (connected, parameters negotiated); from then on aiortc's
    sender sends no RTP of its own, and this object is the stream's only source of RTP packets.
    """

    def __init__(
        self,
        sender: RTCRtpSender,
        payload_type: int,
        wall: Callable[[], float] = time.time,
        first_sequence: int | None = None,
        timestamp_origin: int | None = None,
    ) -> None:
        self._sender = sender
        self._dtls: RTCDtlsTransport = sender.transport
        self._ice: RTCIceTransport = self._dtls.transport
        self._connection: aioice.Connection = self._ice._connection
        self._plain_send = unwrapped_send(self._ice)
        """aioice's send as aiortc bound it: while `_send` is this, nothing wraps the datagram path."""
        self._srtp: pylibsrtp.Session = self._dtls._tx_srtp
        self._header, self._abs_send_time_at = header_template(
            payload_type, sender._ssrc, getattr(sender, SENDER_MID), getattr(sender, SENDER_EXTENSIONS_MAP)
        )
        self._wall = wall
        self._loop = asyncio.get_running_loop()
        self.sequence = random.randrange(32768) if first_sequence is None else first_sequence  # as aiortc: low half
        """The sequence number of the next packet."""
        self.timestamp_origin = random.getrandbits(32) if timestamp_origin is None else timestamp_origin
        self.packets = 0
        self.payload_bytes = 0
        self.dropped_not_connected = 0
        self.dropped_errors = 0
        self._pair: aioice.ice.CandidatePair | None = None
        self._addr: tuple[str, int] | None = None

    @classmethod
    def attach(cls, transceiver: RTCRtpTransceiver, wall: Callable[[], float] = time.time) -> "LeanRtpSender":
        """A lean sender for the transceiver's (started) sender; `SendSeamError` if it cannot stand in for it."""
        reason = lean_path_unavailable()
        if reason is not None:
            raise SendSeamError(reason)
        sender = transceiver.sender
        if not getattr(sender, SENDER_STARTED, False):
            raise SendSeamError("the RTP sender has not started: no negotiated parameters to send with yet")
        dtls = sender.transport
        if not isinstance(getattr(dtls, "_tx_srtp", None), pylibsrtp.Session):
            raise SendSeamError("the DTLS transport has no SRTP session to protect packets with")
        ice_send = unwrapped_send(dtls.transport)
        connection = dtls.transport._connection
        if getattr(ice_send, "__self__", None) is not connection or getattr(ice_send, "__func__", None) is not _ORIGINAL_CONNECTION_SEND:
            raise SendSeamError("RTCIceTransport._send is not its aioice connection's send (nor a wrapper of it that "
                                "names it) when the sender starts")
        if not isinstance(getattr(connection, "_nominated", None), dict):
            raise SendSeamError("aioice's Connection has no _nominated candidate pairs")
        if not isinstance(getattr(sender, SENDER_EXTENSIONS_MAP, None), HeaderExtensionsMap):
            raise SendSeamError("RTCRtpSender has no header extensions map")
        for name in (SENDER_NTP, SENDER_RTP_TIMESTAMP, SENDER_OCTETS, SENDER_PACKETS):
            if not isinstance(getattr(sender, name, None), int):
                raise SendSeamError(f"RTCRtpSender has no {name} counter")
        for name in (DTLS_TX_BYTES, DTLS_TX_PACKETS):
            if not isinstance(getattr(dtls, name, None), int):
                raise SendSeamError(f"RTCDtlsTransport has no {name} counter")
        codecs = getattr(transceiver, "_codecs", None)
        if not codecs or codecs[0].mimeType.lower() != "audio/opus":
            raise SendSeamError(f"the transceiver's first negotiated codec is not Opus ({codecs and codecs[0].mimeType})")
        return cls(sender, codecs[0].payloadType, wall)

    @property
    def ssrc(self) -> int:
        return self._sender._ssrc

    def _write(self, transport: asyncio.DatagramTransport, data: bytes) -> None:
        """The one datagram write (its own frame, so a sampling profiler can tell the syscall from the rest)."""
        transport.sendto(data, self._addr)

    def counters(self) -> OutboundCounters:
        return OutboundCounters("lean", self.packets, self.payload_bytes, self.dropped_not_connected, 0, self.dropped_errors)

    def send(self, payload: bytes, pts: int) -> bool:
        """Send one Opus payload whose media time is `pts` (1/48000 s): as aiortc would, at once. False if it was
        dropped (the connection is down, or protecting/writing failed), counted."""
        dtls = self._dtls
        if dtls._state is not DtlsState.CONNECTED:
            self.dropped_not_connected += 1
            return False
        pair = self._connection._nominated.get(1)
        if pair is None:
            self.dropped_not_connected += 1
            return False
        header = self._header
        timestamp = (self.timestamp_origin + pts) & 0xFFFFFFFF
        _RTP_HEADER.pack_into(header, 2, self.sequence, timestamp)
        ntp = ntp_time(self._wall())
        at = self._abs_send_time_at
        if at >= 0:
            header[at : at + 3] = ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")
        try:
            data = self._srtp.protect(bytes(header) + payload)
            if self._ice._send is self._plain_send and type(self._connection).sendto is _ORIGINAL_CONNECTION_SENDTO \
                    and type(pair.protocol).send_data is _ORIGINAL_SEND_DATA:
                if pair is not self._pair:
                    self._pair, self._addr = pair, pair.remote_addr
                self._write(pair.protocol.transport, data)
            else:  # a wrapper sits on the datagram path (e.g. downlink impairment): go through it, in order
                self._loop.create_task(self._ice._send(data))
        except (pylibsrtp.Error, OSError) as exc:
            self.dropped_errors += 1
            if self.dropped_errors == 1:
                log.warning("lean RTP send to SSRC %d failed: %s: %s", self.ssrc, type(exc).__name__, exc)
            return False
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.packets += 1
        self.payload_bytes += len(payload)
        sender = self._sender
        setattr(sender, SENDER_NTP, ntp)
        setattr(sender, SENDER_RTP_TIMESTAMP, timestamp)
        setattr(sender, SENDER_OCTETS, getattr(sender, SENDER_OCTETS) + len(payload))
        setattr(sender, SENDER_PACKETS, getattr(sender, SENDER_PACKETS) + 1)
        setattr(dtls, DTLS_TX_BYTES, getattr(dtls, DTLS_TX_BYTES) + len(data))
        setattr(dtls, DTLS_TX_PACKETS, getattr(dtls, DTLS_TX_PACKETS) + 1)
        return True


class MixOutlet:
    """Where a listener's encoded mix packets go (the `send` the call's `MixEncoding` is given): the lean sender once
    the connection is up, aiortc's sender (through the `MixTrack`) when the lean path cannot be used.

    Until the connection is up, packets are dropped and counted rather than queued: a listener should not start
    with stale audio. On the aiortc path nothing changes from before: packets queue in the `MixTrack` (drop-oldest).
    """

    def __init__(self, transceiver_of: Callable[[], RTCRtpTransceiver | None], track: MixTrack, lean: bool = True) -> None:
        self._transceiver_of = transceiver_of
        self.track = track
        self.lean: LeanRtpSender | None = None
        reason = lean_path_unavailable() if lean else "the lean send path is off"
        self.path: SendPath = "pending" if reason is None else "aiortc"
        self.dropped_not_connected = 0
        self._closed = False

    def __call__(self, mix: EncodedMix) -> None:
        lean = self.lean
        if self._closed:
            self.dropped_not_connected += 1
        elif lean is not None:
            lean.send(mix.payload, mix.pts)
        elif self.path == "aiortc":
            self.track.push(opus_av_packet(mix.payload, mix.pts))
        elif self._try_attach():
            self.lean.send(mix.payload, mix.pts)  # type: ignore[union-attr]
        elif self.path == "aiortc":
            self.track.push(opus_av_packet(mix.payload, mix.pts))
        else:
            self.dropped_not_connected += 1

    def _try_attach(self) -> bool:
        """Once aiortc's sender has started, put the lean sender in its place (or fall back, logged, for good)."""
        if self._closed:
            return False
        transceiver = self._transceiver_of()
        if transceiver is None or not getattr(transceiver.sender, SENDER_STARTED, False):
            return False
        try:
            self.lean = LeanRtpSender.attach(transceiver)
        except SendSeamError as exc:
            log.warning("lean RTP send path not installed for this listener, using aiortc's sender: %s", exc)
            self.path = "aiortc"
            return False
        self.path = "lean"
        return True

    def close(self) -> None:
        """The connection is closing: later packets are dropped (counted) here."""
        self._closed = True

    def counters(self) -> OutboundCounters:
        lean = self.lean
        if lean is not None:
            c = lean.counters()
            return OutboundCounters("lean", c.packets, c.payload_bytes,
                                    c.dropped_not_connected + self.dropped_not_connected, 0, c.dropped_errors)
        track = self.track
        return OutboundCounters(self.path, track.frames_sent, track.payload_bytes, self.dropped_not_connected,
                                track.dropped, 0)
