"""One participant's RTCPeerConnection on the server: offer/answer (Opus with in-band FEC asked for), its receive
path in the receiver (gate → sequence validation → jitter buffer → decoder, pulled by the call's mixer through
`frame_source`), the reader that notices the remote track end, and the outbound path of its N-1 mix: the call's
`MixEncoding` hands each packet to `peer.outlet` (the mixer sink is `MixEncoding.listener(peer.outlet)`), which
sends it through the lean send path (`rtp_send.py`) once connected, or through aiortc's sender and the `MixTrack`
if it cannot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import SessionDescription

from ..media.gate import MuteGate
from ..media.jitter import JitterBufferSettings, JitterStats
from ..media.mixer import FrameSource
from ..media.netem import NetworkSpec, NetworkState, ReceptionReport
from ..media.outbound import OutboundCounters
from ..media.sequence import SequenceCounters
from ..media.telephone_event import KeyPress, ToneCounters
from .dtmf import ToneTap, install_tone_tap, prefer_voice_codec, register_telephone_event
from .gate_adapter import install_receive_path
from .ice import rtc_configuration
from .impairment import ParticipantNetwork, attach_network
from .receive import ReceivePath
from .reception import reception_reports
from .rtp_send import MixOutlet
from .sdp import with_opus_fec
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
        ice_servers: Sequence[str] = (),
        on_gone: Callable[[str], Awaitable[None] | None] | None = None,
        jitter: JitterBufferSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_tone: Callable[[str], None] | None = None,
        on_muted_level: Callable[[int], None] | None = None,
        lean_send: bool = True,
    ) -> None:
        self.participant_id = participant_id
        self.gate = gate
        self.mix_track = MixTrack()
        register_telephone_event()  # so the answer accepts the participant's DTMF
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers))
        self.outlet = MixOutlet(self._audio_transceiver, self.mix_track, lean=lean_send)
        """The listener's packet sink: what the call's encoding sends this participant's mix packets to."""
        self.receive_path: ReceivePath | None = None
        """What sits in place of aiortc's jitter buffer: the gate, sequence validation, the jitter buffer, the decoder."""
        self._jitter = jitter
        self._clock = clock
        """Monotonic seconds for packet arrivals: the call's clock (tests and simulations inject theirs)."""
        self.tone_tap: ToneTap | None = None
        """In front of the receive path: reads the participant's DTMF (telephone-event) packets, keeps them out."""
        self._on_tone = on_tone
        """Called with Graph's tone name of each key press (whether the gate is open or not)."""
        self._on_muted_level = on_muted_level
        """Called with the RFC 6464 level (-dBov) of each packet the closed gate drops: talking while muted."""
        self._reader: asyncio.Task[None] | None = None
        self._on_gone = on_gone
        self._closed = False
        self.impairment: ParticipantNetwork | None = None
        """This participant's network impairment, both directions (set up in `accept`; perfect unless asked)."""
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_connection_state)

    async def accept(self, offer_sdp: str, network: NetworkSpec | None = None) -> str:
        """Apply the participant's offer and return the server's answer (ICE gathering complete); `network`
        impairs its datagrams (see rtc/impairment.py) from the first media packet on."""
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
        self.receive_path = install_receive_path(transceiver.receiver, ReceivePath(self.gate, self._jitter, self._clock))
        self.receive_path.on_dropped_level = self._on_muted_level
        self.tone_tap = install_tone_tap(transceiver, self._on_press, self.participant_id)
        prefer_voice_codec(transceiver)
        transceiver.direction = "sendrecv"
        transceiver.sender.replaceTrack(self.mix_track)
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(RTCSessionDescription(sdp=with_opus_fec(answer.sdp), type="answer"))
        self.impairment = attach_network(self.pc, network, f"participant {self.participant_id}")
        return self.pc.localDescription.sdp

    @property
    def outbound_counters(self) -> OutboundCounters:
        """`calls.model.MediaSession`: how the mix is sent to this participant, what was sent and dropped."""
        return self.outlet.counters()

    @property
    def received_audio_level_dbov(self) -> float | None:
        """`calls.model.MediaSession`: the sender's RFC 6464 level on its latest packet (dropped or not), in dBov."""
        path = self.receive_path
        if path is None or path.last_audio_level is None:
            return None
        return -float(path.last_audio_level)

    @property
    def sequence_counters(self) -> SequenceCounters | None:
        """`calls.model.MediaSession`: the receive path's RTP sequence validation counters (None before accept)."""
        path = self.receive_path
        return path.sequence_counters if path is not None else None

    @property
    def frame_source(self) -> FrameSource | None:
        """`calls.model.MediaSession`: the receive path the call's mixer pulls each tick (None before accept)."""
        return self.receive_path

    def jitter_stats(self) -> JitterStats | None:
        """`calls.model.MediaSession`: the jitter buffer's numbers now (None before accept)."""
        path = self.receive_path
        return path.jitter_stats() if path is not None else None

    # network impairment (calls.model.MediaSession) ---------------------------------------------------------------
    @property
    def network(self) -> NetworkState | None:
        """`calls.model.MediaSession`: both directions' profiles and counters (None before accept)."""
        return self.impairment.state() if self.impairment is not None else None

    def set_network(self, spec: NetworkSpec) -> NetworkState:
        """`calls.model.MediaSession`: new profile(s), from the next datagram on."""
        if self.impairment is None:
            raise RuntimeError("the participant's transport is not set up yet")
        return self.impairment.apply(spec)

    async def reception(self) -> tuple[ReceptionReport | None, ReceptionReport | None]:
        """`calls.model.MediaSession`: (uplink as this server's receiver measured it, downlink as the participant's
        RTCP receiver reports told it)."""
        return await reception_reports(self.pc)
    @property
    def tone_counters(self) -> ToneCounters | None:
        """`calls.model.MediaSession`: the participant's telephone-event packets and presses (None before accept)."""
        return self.tone_tap.counters if self.tone_tap is not None else None

    @property
    def tone_formats(self) -> list[int]:
        """`calls.model.MediaSession`: the clock rates of the telephone-event formats negotiated (empty: no DTMF)."""
        return sorted(set(self.tone_tap.event_types.values()), reverse=True) if self.tone_tap is not None else []

    def _on_press(self, press: KeyPress) -> None:
        if self._on_tone is not None and not self._closed:
            self._on_tone(press.tone)

    def _audio_transceiver(self) -> RTCRtpTransceiver | None:
        return next((t for t in self.pc.getTransceivers() if t.kind == "audio"), None)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio" or self._reader is not None:
            return
        self._reader = asyncio.get_running_loop().create_task(
            self._read(track), name=f"reader-{self.participant_id}"
        )

    async def _read(self, track: MediaStreamTrack) -> None:
        """Wait for the remote track to end (RTCP BYE, transport gone): the participant left.

        Audio does not come this way: the mixer pulls the receive path at each tick, so aiortc's decoder thread and
        track queue stay empty. Anything that still arrives is drained, never mixed.
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
        self.mix_track.stop()
        self.outlet.close()
        if self.impairment is not None:
            await self.impairment.close()  # nothing in flight is delivered after the participant left
        await self.pc.close()
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, MediaStreamError):
                pass
