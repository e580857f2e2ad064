"""Test support: what a real peer receives on the wire, after SRTP, byte for byte and in arrival order.

aiortc's `RTCDtlsTransport._recv_next` unprotects each SRTP/SRTCP datagram and hands the plain bytes to
`self._handle_rtp_data` / `self._handle_rtcp_data`. `WireTap` shadows those two methods on one transport instance
(aiortc's files are untouched), records the plain RTP and RTCP bytes, and passes them on unchanged. The tests use it
to hold the lean send path to aiortc's own packetizer and its RTCP sender reports to what was sent.
`check_wire_tap_seam()` fails loudly if aiortc moves these internals; tests/test_aiortc_seam.py calls it.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from typing import Literal

from aiortc import RTCDtlsTransport

from .gate_adapter import SUPPORTED_AIORTC
from .rtp_send import SendSeamError


@dataclass(frozen=True, slots=True)
class TappedDatagram:
    kind: Literal["rtp", "rtcp"]
    data: bytes
    """The datagram after SRTP/SRTCP unprotect."""
    at: float
    """Wall-clock time (time.time) it was handed on."""


def check_wire_tap_seam() -> None:
    source = inspect.getsource(RTCDtlsTransport._recv_next)
    rtp = ("data = self._rx_srtp.unprotect(data)", "await self._handle_rtp_data(data, arrival_time_ms=arrival_time_ms)")
    rtcp = ("data = self._rx_srtp.unprotect_rtcp(data)", "await self._handle_rtcp_data(data)")
    for before, after in (rtp, rtcp):
        if before not in source or after not in source or source.find(before) > source.find(after):
            raise SendSeamError(
                "aiortc RTCDtlsTransport._recv_next no longer hands unprotected packets to _handle_rtp_data / "
                f"_handle_rtcp_data; WireTap cannot see them (supported aiortc: {SUPPORTED_AIORTC})"
            )


class WireTap:
    """Records every plain RTP and RTCP packet a DTLS transport receives (installed once, before media flows)."""

    def __init__(self, transport: RTCDtlsTransport) -> None:
        check_wire_tap_seam()
        self.datagrams: list[TappedDatagram] = []
        rtp, rtcp = transport._handle_rtp_data, transport._handle_rtcp_data

        async def on_rtp(data: bytes, arrival_time_ms: int) -> None:
            self.datagrams.append(TappedDatagram("rtp", data, time.time()))
            await rtp(data, arrival_time_ms=arrival_time_ms)

        async def on_rtcp(data: bytes) -> None:
            self.datagrams.append(TappedDatagram("rtcp", data, time.time()))
            await rtcp(data)

        transport._handle_rtp_data = on_rtp  # type: ignore[method-assign]  # an instance attribute shadows it
        transport._handle_rtcp_data = on_rtcp  # type: ignore[method-assign]

    def rtp(self) -> list[bytes]:
        return [d.data for d in self.datagrams if d.kind == "rtp"]
