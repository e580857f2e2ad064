"""In-band FEC sized to the loss the receiver reports, as a WebRTC sender does.

libwebrtc's Opus encoder (`AudioEncoderOpusImpl`) starts with an expected loss of 0 — libopus then codes no LBRR
data at all — and feeds every RTCP receiver report's fraction lost into an exponential filter with a 10 s time
constant (the first report is taken as it is), clamped to 20 %, which it hands to libopus
(`OPUS_SET_PACKET_LOSS_PERC`). So a browser on a clean network sends no FEC, and on a lossy one sends FEC sized to
the loss within a report or two. `LossEstimate` is that filter; `LiveOpusEncoder` is a mono Opus encoder whose
expected loss can change between two packets, which PyAV's encoder cannot (its options are fixed when it opens), so
it runs on the system's libopus through opuslib-next, the binding the receive path decodes with. `follow_reports`
keeps a sender's encoder in step with the receiver reports of its peer connection.

Why it matters beyond realism: LBRR data costs bits the encoder takes from the rest of the frame, and with FEC on
libopus codes speech as hybrid SILK + CELT, whose thin CELT layer smears faint content above 8 kHz (the demo's pilot
tones) into noise across its band. A sender with FEC always on makes a clean network sound worse than it does with
a real browser.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

import av

from ..media.audio import Frame
from ..media.netem import ReceptionReport
from .codec import MIX_BITRATE, MIX_COMPLEXITY, opus_av_packet
from .opus import encode_frame, new_voip_encoder

log = logging.getLogger(__name__)

TIME_CONSTANT = 10.0
"""Seconds: libwebrtc's loss smoother (`kAlphaForPacketLossFractionSmoother` = 0.9999 per ms)."""
MAX_EXPECTED_LOSS = 0.2
"""libwebrtc's `kMaxPacketLossFraction`: more FEC than this only takes bits from the audio."""
REPORT_POLL = 1.0
"""Seconds between two looks at the peer connection's receiver reports (aiortc sends one every 0.5-1.5 s)."""


class LossEstimate:
    """The expected loss a sender sizes its FEC to, from the receiver reports' fraction lost (see the module)."""

    def __init__(self, time_constant: float = TIME_CONSTANT, ceiling: float = MAX_EXPECTED_LOSS) -> None:
        self.time_constant = time_constant
        self.ceiling = ceiling
        self._value: float | None = None
        self._at = 0.0
        self.reports = 0

    def add(self, fraction_lost: float, at: float) -> None:
        """One receiver report's fraction lost (0-1) received at monotonic time `at`."""
        self.reports += 1
        if self._value is None:
            self._value = fraction_lost
        else:
            keep = math.exp(-max(0.0, at - self._at) / self.time_constant)
            self._value = keep * self._value + (1.0 - keep) * fraction_lost
        self._at = at

    @property
    def fraction(self) -> float:
        """The smoothed loss, within [0, ceiling] (0 before any report)."""
        return min(self.ceiling, max(0.0, self._value or 0.0))

    @property
    def percent(self) -> int:
        """What libopus is told (`OPUS_SET_PACKET_LOSS_PERC`), rounded as libwebrtc rounds it."""
        return int(self.fraction * 100 + 0.5)


class LiveOpusEncoder:
    """Mono VoIP Opus with in-band FEC enabled and an expected loss that can change live (libopus via opuslib-next).

    Same bitrate, complexity and (unconstrained) VBR as the mix encoder (`codec.MonoOpusEncoder`); hands aiortc an
    `av.Packet`.
    """

    __slots__ = ("_encoder", "_percent", "encoded")

    def __init__(self, expected_loss_percent: int = 0, bitrate: int = MIX_BITRATE, complexity: int = MIX_COMPLEXITY) -> None:
        encoder = new_voip_encoder(bitrate, complexity)
        encoder.vbr_constraint = 0  # unconstrained VBR, as PyAV's (FFmpeg's) libopus encoder runs the mixes
        encoder.inband_fec = 1  # negotiated (useinbandfec=1); libopus codes LBRR only while the expected loss is > 0
        self._encoder = encoder
        self._percent = -1
        self.expected_loss_percent = expected_loss_percent
        self.encoded = 0

    @property
    def expected_loss_percent(self) -> int:
        return self._percent

    @expected_loss_percent.setter
    def expected_loss_percent(self, percent: int) -> None:
        percent = min(100, max(0, int(percent)))
        if percent != self._percent:
            self._encoder.packet_loss_perc = percent
            self._percent = percent

    def encode(self, mono: Frame, pts: int) -> av.Packet:
        """One 960-sample frame as a packet with the given pts (1/48000 s)."""
        payload = encode_frame(self._encoder, mono)
        self.encoded += 1
        return opus_av_packet(payload, pts)


ReportSource = Callable[[], Awaitable[ReceptionReport | None]]
"""Reads the latest receiver report about the stream we send (None before the first)."""


async def follow_reports(read: ReportSource, encoder: LiveOpusEncoder, estimate: LossEstimate | None = None,
                         period: float = REPORT_POLL, clock: Callable[[], float] = time.monotonic) -> None:
    """Until cancelled: size `encoder`'s FEC to the loss each new receiver report tells (a report is new when the
    counts it carries changed; aiortc keeps only the latest)."""
    estimate = estimate or LossEstimate()
    seen: tuple[int, int | None] | None = None
    while True:
        await asyncio.sleep(period)
        try:
            report = await read()
        except Exception:  # noqa: BLE001 - a closing connection: keep the last setting, try again next period
            log.debug("receiver report unavailable", exc_info=True)
            continue
        if report is None or report.fraction_lost is None:
            continue
        key = (report.packets_lost, report.packets_received)
        if key == seen:
            continue
        seen = key
        estimate.add(report.fraction_lost, clock())
        encoder.expected_loss_percent = estimate.percent
