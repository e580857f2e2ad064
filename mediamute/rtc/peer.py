"""One participant's RTCPeerConnection on the server: offer/answer, the gate in its receiver, the inbound reader
that always drains the remote track into the mixer, and the outbound path of its N-1 mix: the call's `MixEncoding`
hands each packet to `peer.outlet` (the mixer sink is `MixEncoding.listener(peer.outlet)`), which sends it through
the lean send path (`rtp_send.py`) once connected, or through aiortc's sender and the `MixTrack` if it cannot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import SessionDescription

from ..media.audio import Reframer
from ..media.gate import MuteGate
from ..media.mixer import Mixer
from ..media.outbound import OutboundCounters
from ..media.sequence import SequenceCounters
from .gate_adapter import InlineDecoder, install_inline_decoder
from .ice import rtc_configuration
from .rtp_send import MixOutlet
from .tracks import MixTrack

log = logging.getLogger(__name__)

MAX_OFFER_BYTES = 64 * 1024


class OfferError(ValueError):
    """The SDP offer cannot be accepted; the message says why, for a 400/422 answer."""


def check_offer(sdp: str) -> None:
    """Accept only an offer with exactly one audio section that can send and receive Opus."""
    if not sdp or not sdp.strip():
        raise OfferError("the SDP offer is empty")
    if len(sdp) > MAX_OFFER_BYTES:
        raise OfferError(f"the SDP offer is larger than {MAX_OFFER_BYTES} bytes")
    if not sdp.lstrip().startswith("v=0"):
        raise OfferError("the body is not an SDP offer: it must start with 'v=0'")
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises assorted errors on garbage
        raise OfferError(f"the SDP offer cannot be parsed: {exc}") from exc
    audio = [m for m in parsed.media if m.kind == "audio"]
    if not audio:
        raise OfferError("the SDP offer has no audio section (m=audio)")
    if len(audio) > 1:
        raise OfferError("the SDP offer has more than one audio section; mediamute takes one")
    section = audio[0]
    if not any(codec.mimeType.lower() == "audio/opus" for codec in section.rtp.codecs):
        raise OfferError("the audio section offers no Opus codec")
    if section.direction not in (None, "sendrecv"):
        raise OfferError(f"the audio section must be sendrecv, not {section.direction}")
    if not section.ice.usernameFragment or not section.ice.password:
        raise OfferError("the SDP offer has no ICE credentials (a=ice-ufrag / a=ice-pwd)")
    if section.dtls is None or not section.dtls.fingerprints:
        raise OfferError("the SDP offer has no DTLS fingerprint")


class ParticipantPeer:
    """The server end of one participant's WebRTC session."""

    def __init__(
        self,
        participant_id: str,
        gate: MuteGate,
        mixer: Mixer,
        ice_servers: Sequence[str] = (),
        on_gone: Callable[[str], Awaitable[None] | None] | None = None,
        lean_send: bool = True,
    ) -> None:
        self.participant_id = participant_id
        self.gate = gate
        self.mixer = mixer
        self.mix_track = MixTrack()
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers))
        self.outlet = MixOutlet(self._audio_transceiver, self.mix_track, lean=lean_send)
        """The listener's packet sink: what the call's encoding sends this participant's mix packets to."""
        self.inline_decoder: InlineDecoder | None = None
        """What sits in place of aiortc's jitter buffer: the gate, sequence validation and the Opus decode."""
        self._reader: asyncio.Task[None] | None = None
        self._reframer = Reframer()
        self._on_gone = on_gone
        self._closed = False
        self.frames_received = 0
        gate.on_close(lambda _gate: self._reframer.clear())
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_connection_state)

    async def accept(self, offer_sdp: str) -> str:
        """Apply the participant's offer and return the server's answer (ICE gathering complete)."""
        check_offer(offer_sdp)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:
            await self.close()
            raise OfferError(f"the SDP offer was rejected: {exc}") from exc
        transceiver = self._audio_transceiver()
        if transceiver is None:
            await self.close()
            raise OfferError("the SDP offer has no audio section (m=audio)")
        self.inline_decoder = install_inline_decoder(transceiver.receiver, self.gate, self._on_frame)
        transceiver.direction = "sendrecv"
        transceiver.sender.replaceTrack(self.mix_track)
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        return self.pc.localDescription.sdp

    @property
    def received_audio_level_dbov(self) -> float | None:
        """`calls.model.MediaSession`: the sender's RFC 6464 level on its latest packet (dropped or not), in dBov."""
        decoder = self.inline_decoder
        if decoder is None or decoder.last_audio_level is None:
            return None
        return -float(decoder.last_audio_level)

    @property
    def sequence_counters(self) -> SequenceCounters | None:
        """`calls.model.MediaSession`: the inline decoder's RTP sequence validation counters (None before accept)."""
        decoder = self.inline_decoder
        return decoder.sequence_counters if decoder is not None else None

    @property
    def outbound_counters(self) -> OutboundCounters:
        """`calls.model.MediaSession`: how the mix is sent to this participant, what was sent and dropped."""
        return self.outlet.counters()

    def _audio_transceiver(self) -> RTCRtpTransceiver | None:
        return next((t for t in self.pc.getTransceivers() if t.kind == "audio"), None)

    def _on_frame(self, mono, arrived: float) -> None:
        """A decoded frame, at its packet's arrival (the gate was open): into the mixer, in 20 ms pieces."""
        self.frames_received += 1
        push = self.mixer.push
        for piece in self._reframer.push(mono):
            push(self.participant_id, piece, arrived)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio" or self._reader is not None:
            return
        self._reader = asyncio.get_running_loop().create_task(
            self._read(track), name=f"reader-{self.participant_id}"
        )

    async def _read(self, track: MediaStreamTrack) -> None:
        """Wait for the remote track to end (RTCP BYE, transport gone): the participant left.

        Audio does not come this way: the inline decoder hands it to the mixer at packet arrival, so aiortc's
        decoder thread and track queue stay empty. Anything that still arrives is drained, never mixed.
        """
        pid = self.participant_id
        while True:
            try:
                await track.recv()
            except MediaStreamError:
                break
        if not self._closed:  # the remote track ended (RTCP BYE, transport gone): the participant left
            log.info("participant %s: remote audio track ended", pid)
            await self._gone()

    async def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state in ("failed", "closed") and not self._closed:
            log.info("participant %s: peer connection %s", self.participant_id, state)
            await self._gone()

    async def _gone(self) -> None:
        callback, self._on_gone = self._on_gone, None  # report a vanished participant once
        if callback is not None:
            result = callback(self.participant_id)
            if asyncio.iscoroutine(result):
                await result

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.outlet.close()
        self.mix_track.stop()
        await self.pc.close()
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, MediaStreamError):
                pass
