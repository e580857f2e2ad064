"""What RTCP knows about a peer connection's audio reception, from aiortc's public `getStats()`: the stream this
side receives (`inbound-rtp`, its own RFC 3550 receive statistics) and the stream it sends as the other side's
receiver reports describe it (`remote-inbound-rtp`). On the server the first is the participant's uplink and the
second its downlink; on a client, the other way round."""

from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc.stats import RTCInboundRtpStreamStats, RTCRemoteInboundRtpStreamStats

from ..media.audio import SAMPLE_RATE
from ..media.netem import ReceptionReport

RTP_UNITS_PER_MS = SAMPLE_RATE / 1000
"""aiortc gives jitter in RTP timestamp units: Opus's clock is 48 kHz."""


async def reception_reports(pc: RTCPeerConnection) -> tuple[ReceptionReport | None, ReceptionReport | None]:
    """(what this side receives, what the other side reports receiving); None where nothing is known yet."""
    received = reported = None
    for stats in (await pc.getStats()).values():
        if isinstance(stats, RTCInboundRtpStreamStats) and stats.kind == "audio":
            received = ReceptionReport(
                packets_lost=stats.packetsLost,
                jitter_ms=stats.jitter / RTP_UNITS_PER_MS,
                packets_received=stats.packetsReceived,
            )
        elif isinstance(stats, RTCRemoteInboundRtpStreamStats) and stats.kind == "audio":
            reported = ReceptionReport(
                packets_lost=stats.packetsLost,
                jitter_ms=stats.jitter / RTP_UNITS_PER_MS,
                packets_received=stats.packetsReceived,
                fraction_lost=stats.fractionLost / 256,
                round_trip_ms=None if stats.roundTripTime is None else 1000 * stats.roundTripTime,
            )
    return received, reported
