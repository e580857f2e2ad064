"""Network impairment on a participant's ICE connection: where the datagram-level model meets aioice and aiortc.

Both directions are impaired at the boundary between aioice (ICE, UDP) and aiortc (DTLS, SRTP, RTP), so RTCP on
both sides sees exactly what a real network would have done:

- **uplink** (participant → server), before any SRTP/RTP processing: aioice's `StunProtocol.datagram_received`
  hands every datagram that is not STUN to `Connection.data_received(data, component)`, which queues it for
  aiortc's DTLS transport (`RTCDtlsTransport._recv_next` awaits `RTCIceTransport._recv`, i.e. `Connection.recv`).
  The impairment replaces `data_received` on this participant's `Connection` object;
- **downlink** (server → participant), after SRTP: aiortc's `RTCIceTransport.__init__` binds `self._send =
  self._connection.send`, and `RTCDtlsTransport` sends every protected RTP/RTCP packet and DTLS record through
  `self.transport._send(data)`. The impairment replaces `_send` on this participant's `RTCIceTransport` object.

Both are attributes of one participant's objects: aioice's and aiortc's classes are untouched, and other
participants' datagrams never meet this code.

**What is impaired:** media only, i.e. SRTP and SRTCP, whose first byte is 128..191 (RFC 7983; the same test
`RTCDtlsTransport._recv_next` makes). So RTP is lost, delayed and reordered, and RTCP sender and receiver reports
are too, as on a real network, and the receiver reports tell the loss and jitter the impairment made. **Not
impaired:** STUN (connectivity checks and consent freshness never reach these two points: aioice answers STUN in
`datagram_received` and sends it from its own protocol) and DTLS (first byte 20..63, passed on at once and
counted as `passed`). A lossy profile therefore never makes a join fail or time out, nor ends a call through lost
consent checks: it impairs the media the call is about.

**Cost:** nothing while a direction is perfect: no hook is installed (a perfect profile set after an impaired one
removes the hook as soon as nothing is in flight). A datagram the profile does not delay goes on inside the hook
(into aioice's queue; through aioice's `send`, awaited in aiortc's own sender). A delayed one waits in the
direction's delivery line; the line's timer (`loop.call_at`) hands the uplink's straight to aioice's queue and
the downlink's to one sender task per participant, which awaits aioice's `send` for each in order (a TURN relay's
`send` may suspend, so sends are never fired without waiting).

`check_impairment_seam()` fails loudly if aioice or aiortc move what this relies on (tests/test_impairment_seam.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable

import aioice
import aioice.ice
import aiortc
from aiortc import RTCIceTransport, RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport

from ..media.netem import (
    Batch,
    DeliveryLine,
    Direction,
    DirectionModel,
    DirectionState,
    NetworkProfile,
    NetworkSpec,
    NetworkState,
)
from .ice import AIOICE_DATAGRAM_RECEIVED

log = logging.getLogger(__name__)

SUPPORTED_AIORTC = "1.16.0"
SUPPORTED_AIOICE = "0.13.0"


class ImpairmentSeamError(RuntimeError):
    """aioice or aiortc no longer hand datagrams over where the impairment is installed."""


def is_media(data: bytes) -> bool:
    """SRTP or SRTCP by RFC 7983's first-byte ranges (128..191); STUN is 0..3, DTLS 20..63."""
    return bool(data) and 127 < data[0] < 192


def check_impairment_seam() -> None:
    """Raise `ImpairmentSeamError` unless aioice and aiortc still pass datagrams through the two attributes the
    impairment replaces, in the way this module describes."""
    if aiortc.__version__ != SUPPORTED_AIORTC or aioice.__version__ != SUPPORTED_AIOICE:
        raise ImpairmentSeamError(
            f"aiortc {aiortc.__version__} / aioice {aioice.__version__} are installed; the impairment seam was "
            f"verified against aiortc {SUPPORTED_AIORTC} / aioice {SUPPORTED_AIOICE}: re-check mediamute/rtc/impairment.py"
        )
    ice_init = inspect.getsource(RTCIceTransport.__init__)
    if "self._recv = self._connection.recv" not in ice_init or "self._send = self._connection.send" not in ice_init:
        raise ImpairmentSeamError("RTCIceTransport no longer binds _recv/_send to its aioice Connection in __init__")
    if inspect.getsource(RTCDtlsTransport._send_rtp).count("await self.transport._send(data)") != 1:
        raise ImpairmentSeamError("RTCDtlsTransport._send_rtp no longer sends protected packets through transport._send")
    recv_next = inspect.getsource(RTCDtlsTransport._recv_next)
    if "await self.transport._recv()" not in recv_next or "first_byte > 127 and first_byte < 192" not in recv_next:
        raise ImpairmentSeamError(
            "RTCDtlsTransport._recv_next no longer reads transport._recv() and tells SRTP by RFC 7983's 128..191"
        )
    parameters = list(inspect.signature(aioice.Connection.data_received).parameters)
    if parameters != ["self", "data", "component"] or "self._queue.put_nowait((data, component))" not in inspect.getsource(
        aioice.Connection.data_received
    ):
        raise ImpairmentSeamError("aioice Connection.data_received(data, component) no longer queues the datagram")
    if "self._queue.get()" not in inspect.getsource(aioice.Connection.recvfrom):
        raise ImpairmentSeamError("aioice Connection.recvfrom no longer reads the queue data_received fills")
    stun_entry = inspect.getsource(AIOICE_DATAGRAM_RECEIVED)
    if "self.receiver.data_received(data, self.local_candidate.component)" not in stun_entry:
        raise ImpairmentSeamError("aioice StunProtocol.datagram_received no longer hands non-STUN data to data_received")
    if "StunProtocol(self)" not in inspect.getsource(aioice.ice.Connection):
        raise ImpairmentSeamError("aioice's StunProtocol no longer has its Connection as receiver")


class _Direction:
    """One direction: its model and delivery line, and the hook that is on the packet path while it is engaged."""

    def __init__(self, name: Direction, deliver: Callable[[Batch], None], loop: asyncio.AbstractEventLoop) -> None:
        self.name = name
        self.model = DirectionModel(name)
        self.line = DeliveryLine(self.model, deliver, loop)
        self.engaged = False

    def state(self) -> DirectionState:
        return DirectionState(self.name, self.model.profile, self.engaged, self.model.counters.snapshot())


class ParticipantNetwork:
    """Both directions of one participant's network, installed on its ICE transport (see the module's doc)."""

    def __init__(self, ice_transport: RTCIceTransport, name: str = "", loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.name = name
        """Whose network this is (for the log)."""
        self._loop = loop or asyncio.get_running_loop()
        self._ice = ice_transport
        self._connection: aioice.Connection = ice_transport._connection
        self._receive: Callable[[bytes, int], None] = self._connection.data_received
        """aioice's own `data_received` of this connection: where an uplink datagram goes when delivered."""
        self._send: Callable[[bytes], Awaitable[None]] = ice_transport._send
        """aioice's `send` as aiortc bound it: where a downlink datagram goes when delivered."""
        self.uplink = _Direction("uplink", self._deliver_uplink, self._loop)
        self.downlink = _Direction("downlink", self._deliver_downlink, self._loop)
        self._outbox: asyncio.Queue[Batch] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        """Held while downlink datagrams are being sent, so they leave in order even if a send waits."""
        self._send_errors = 0
        self.closed = False

    # the hooks, while engaged ----------------------------------------------------------------------------------
    def _uplink_hook(self, data: bytes, component: int) -> None:
        if not is_media(data):
            self.uplink.model.counters.passed += 1
            self._receive(data, component)
            return
        due = self.uplink.line.submit(data, component)
        if due:
            self._deliver_uplink(due)

    async def _downlink_hook(self, data: bytes) -> None:
        if not is_media(data):
            self.downlink.model.counters.passed += 1
            await self._send(data)
            return
        due = self.downlink.line.submit(data)
        if not due:
            return
        if self._lock.locked() or not self._outbox.empty():
            self._deliver_downlink(due)  # behind what the sender task still has to send
            return
        async with self._lock:  # sent here, in aiortc's own send, with nothing ahead of it
            for datagram, _ in due:
                await self._send(datagram)
        self._settle(self.downlink)

    def _deliver_uplink(self, batch: Batch) -> None:
        receive = self._receive
        for data, component in batch:
            receive(data, component)
        self._settle(self.uplink)

    def _deliver_downlink(self, batch: Batch) -> None:
        self._outbox.put_nowait(batch)
        if self._sender is None:
            self._sender = self._loop.create_task(self._send_batches(), name="netem-downlink")

    async def _send_batches(self) -> None:
        """Send the downlink's batches the timer handed over, in order, awaiting each send (the socket send never
        blocks; a TURN relay's may wait for a channel binding, and the lock keeps the order meanwhile)."""
        while True:
            batch = await self._outbox.get()
            async with self._lock:
                try:
                    for data, _ in batch:
                        await self._send(data)
                except (ConnectionError, OSError) as exc:  # the connection is going away: the rest is lost with it
                    log.debug("downlink impairment: send failed: %s", exc)
                except Exception:  # never let the sender die: later batches would pile up unsent
                    self._send_errors += 1
                    if self._send_errors == 1:
                        log.exception("downlink impairment: send failed (later failures are not logged)")
            self._settle(self.downlink)

    # engaging and settling ---------------------------------------------------------------------------------------
    def _idle(self, direction: _Direction) -> bool:
        if direction is self.downlink:
            return direction.line.idle and self._outbox.empty() and not self._lock.locked()
        return direction.line.idle

    def _settle(self, direction: _Direction) -> None:
        """Take a direction's hook off the packet path once it is perfect and has nothing in flight."""
        if direction.engaged and direction.model.profile.is_perfect and self._idle(direction):
            self._hook(direction, False)

    @property
    def wrapped_send(self) -> Callable[[bytes], Awaitable[None]]:
        """What the downlink hook wraps (aiortc's bound `RTCIceTransport._send`): the lean send path
        (rtc/rtp_send.py) checks it is aioice's own and sends through the hook while it is installed."""
        return self._send

    def _hook(self, direction: _Direction, on: bool) -> None:
        if direction is self.uplink:
            if on:
                self._connection.data_received = self._uplink_hook  # type: ignore[method-assign]
            else:
                vars(self._connection).pop("data_received", None)  # the class's own method again
        else:
            self._ice._send = self._downlink_hook if on else self._send  # type: ignore[method-assign]
        direction.engaged = on

    def apply(self, spec: NetworkSpec) -> NetworkState:
        """Set the profile(s) the spec gives, from the next datagram on; a direction it leaves out is unchanged."""
        if self.closed:
            return self.state()
        for direction, profile in ((self.uplink, spec.uplink), (self.downlink, spec.downlink)):
            if profile is None:
                continue
            direction.model.apply(profile)
            if not profile.is_perfect and not direction.engaged:
                self._hook(direction, True)
            self._settle(direction)
            log.info("%s network %s: %s", self.name, direction.name, describe(direction.model.profile))
        return self.state()

    def state(self) -> NetworkState:
        return NetworkState(uplink=self.uplink.state(), downlink=self.downlink.state())

    async def close(self) -> None:
        """The participant leaves: cancel what is in flight, take the hooks off, stop the sender."""
        if self.closed:
            return
        self.closed = True
        for direction in (self.uplink, self.downlink):
            direction.line.close()
            if direction.engaged:
                self._hook(direction, False)
        if self._sender is not None:  # a batch it still holds was handed over (counted delivered) this very moment
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender


def describe(profile: NetworkProfile) -> str:
    """A profile in one line for the log: its preset and the fields that are not a perfect network's."""
    perfect = NetworkProfile().wire()
    changed = ", ".join(f"{k}={v:g}" for k, v in profile.wire().items() if k not in ("preset", "seed") and v != perfect[k])
    return f"{profile.preset or 'custom'} [{changed or 'perfect'}] seed {profile.seed}"


def attach_network(pc: RTCPeerConnection, spec: NetworkSpec | None = None, name: str = "") -> ParticipantNetwork:
    """The impairment of `pc`'s (bundled) transport, with `spec`'s profiles set (none: perfect, nothing installed).

    Call it once the local description is set, so the transport is the one ICE connects: no media can flow before
    DTLS-SRTP is up, and DTLS is never impaired, so nothing the impairment should see has passed yet."""
    transceiver = next(t for t in pc.getTransceivers() if t.receiver.transport is not None)
    network = ParticipantNetwork(transceiver.receiver.transport.transport, name)
    if spec is not None:
        network.apply(spec)
    return network
