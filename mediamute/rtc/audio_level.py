"""The RFC 6464 audio-level header on packets we encode ourselves: aiortc computes it only for frames it encodes.

A sender handed a pre-encoded `av.Packet` (mediamute's FEC-on `SourceTrack`) sends no `ssrc-audio-level` extension,
yet the server reads that header to show how loud a (muted) participant talks. In `RTCRtpSender._run_rtp`
(aiortc 1.16.0) each packet's level comes from the `RTCEncodedFrame` that `self._next_encoded_frame(codec)` returns;
`send_audio_levels` wraps that method on one sender instance so a frame without a level gets the track's.
`check_level_seam()` fails loudly if aiortc moves either; tests/test_aiortc_seam.py calls it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from aiortc import RTCRtpSender

from .gate_adapter import SUPPORTED_AIORTC, ReceiverSeamError


def check_level_seam() -> None:
    """Raise `ReceiverSeamError` unless the sender still takes each packet's level from `_next_encoded_frame`."""
    run = inspect.getsource(RTCRtpSender._run_rtp)
    if "await self._next_encoded_frame(codec)" not in run or "enc_frame.audio_level" not in run:
        raise ReceiverSeamError(
            "aiortc RTCRtpSender._run_rtp no longer takes the audio level from _next_encoded_frame; pre-encoded "
            f"audio would go without its RFC 6464 level (supported aiortc: {SUPPORTED_AIORTC})"
        )


def send_audio_levels(sender: RTCRtpSender, level_dbov: Callable[[], float | None]) -> None:
    """Give every packet `sender` sends without a level the one `level_dbov()` says (dBov, -127..0)."""
    check_level_seam()
    encoded = sender._next_encoded_frame

    async def with_level(codec):  # type: ignore[no-untyped-def]
        frame = await encoded(codec)
        if frame is not None and frame.audio_level is None:
            level = level_dbov()
            if level is not None:
                frame.audio_level = int(round(max(-127.0, min(0.0, level))))
        return frame

    sender._next_encoded_frame = with_level  # type: ignore[method-assign]  # an instance attribute shadows it
