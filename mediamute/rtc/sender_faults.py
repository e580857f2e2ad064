"""Test support: make a real aiortc RTCRtpSender misbehave the way real senders and networks do (jump its sequence
numbers, change its SSRC, lose or reorder packets) without touching aiortc's files.

aiortc keeps a sender's sequence number in a local variable of `RTCRtpSender._run_rtp`, so there is no attribute
to bump. The packet still passes through one place before SRTP: `await self.transport._send_rtp(packet_bytes)`,
the sender's DTLS transport. `SenderFaults` wraps that method on the transport instance and rewrites the plain
RTP header of this sender's packets (sequence number: bytes 2-3, SSRC: bytes 8-11); the SSRC change also sets
`sender._ssrc`, which aiortc reads for every packet and for its RTCP sender reports, so the whole sender changes.
Everything after (SRTP, ICE, the network, the server) is real. `check_sender_seam()` fails loudly if aiortc moves
these internals; tests/test_aiortc_seam.py calls it.
"""

from __future__ import annotations

import inspect
import struct
from collections.abc import Awaitable, Callable

from aiortc import RTCDtlsTransport, RTCRtpSender
from aiortc.rtp import is_rtcp

from .gate_adapter import SUPPORTED_AIORTC, ReceiverSeamError

RTP_SEQ_MOD = 1 << 16


def check_sender_seam() -> None:
    """Raise `ReceiverSeamError` unless aiortc's sender still stamps `self._ssrc` and sends through `_send_rtp`."""
    source = inspect.getsource(RTCRtpSender._run_rtp)
    if "packet.ssrc = self._ssrc" not in source or "await self.transport._send_rtp(packet_bytes)" not in source:
        raise ReceiverSeamError(
            "aiortc RTCRtpSender._run_rtp no longer stamps self._ssrc and sends through transport._send_rtp; "
            f"SenderFaults cannot rewrite its packets (supported aiortc: {SUPPORTED_AIORTC})"
        )
    if not inspect.iscoroutinefunction(RTCDtlsTransport._send_rtp):
        raise ReceiverSeamError(f"RTCDtlsTransport._send_rtp is no longer a coroutine (supported aiortc: {SUPPORTED_AIORTC})")


class SenderFaults:
    """Rewrites one real sender's outgoing RTP between packetisation and SRTP; installed once per sender."""

    def __init__(self, sender: RTCRtpSender) -> None:
        check_sender_seam()
        self.sender = sender
        self.seq_offset = 0
        """Added (mod 2**16) to every later packet's sequence number."""
        self.rewritten = 0
        self.last_sent_seq: int | None = None
        """The sequence number on the wire of this sender's latest RTP packet."""
        self._odd_packets = 0
        self._odd_offset = 0
        self._lose: tuple[int, int] | None = None
        self._reorder: tuple[int, int] | None = None
        self._held: bytes | None = None
        self.packets = 0
        """RTP packets of this sender seen so far (lost ones included)."""
        self.lost = 0
        self.reordered = 0
        transport = sender.transport
        self._send: Callable[[bytes], Awaitable[None]] = transport._send_rtp
        transport._send_rtp = self._send_rtp  # type: ignore[method-assign]  # an instance attribute shadows it

    def jump(self, by: int) -> None:
        """From the next packet on, number packets `by` further (the sender restarted its numbering)."""
        self.seq_offset = (self.seq_offset + by) % RTP_SEQ_MOD

    def odd_packet(self, by: int, count: int = 1) -> None:
        """Number only the next `count` packets `by` further; the packets after them are numbered as before."""
        self._odd_packets, self._odd_offset = count, by

    def lose_every(self, every: int, offset: int = 0) -> None:
        """From now on, do not send packet n (counted from the first seen) when n % every == offset."""
        self._lose = (every, offset)

    def reorder_every(self, every: int, offset: int = 0) -> None:
        """From now on, hold packet n when n % every == offset and send it right after the next one (one 20 ms late)."""
        self._reorder = (every, offset)

    def change_ssrc(self, ssrc: int, seq_by: int = 0) -> None:
        """From the next packet on, send as another SSRC (RTCP too), its numbering moved by `seq_by`."""
        self.sender._ssrc = ssrc
        self.jump(seq_by)

    async def _send_rtp(self, data: bytes) -> None:
        if not is_rtcp(data) and len(data) >= 12 and struct.unpack_from("!I", data, 8)[0] == self.sender._ssrc:
            offset = self.seq_offset
            if self._odd_packets:
                self._odd_packets -= 1
                offset += self._odd_offset
            seq = (struct.unpack_from("!H", data, 2)[0] + offset) % RTP_SEQ_MOD
            if offset % RTP_SEQ_MOD:
                data = data[:2] + struct.pack("!H", seq) + data[4:]
                self.rewritten += 1
            self.last_sent_seq = seq
            index = self.packets
            self.packets += 1
            if self._lose is not None and index % self._lose[0] == self._lose[1]:
                self.lost += 1
                return
            if self._reorder is not None and index % self._reorder[0] == self._reorder[1] and self._held is None:
                self._held = data
                return
            held, self._held = self._held, None
            await self._send(data)
            if held is not None:
                self.reordered += 1
                await self._send(held)
            return
        await self._send(data)
