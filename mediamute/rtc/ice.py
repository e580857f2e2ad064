"""aioice at its seams: which local addresses ICE offers, which ICE servers a peer uses, and a guard on the UDP
datagrams that reach an ICE port.

aioice leaves 127.0.0.1 out when it gathers host candidates, so a call on one machine would find no candidate
pair. mediamute therefore chooses the host addresses itself: by default 127.0.0.1 only (a local test call never
touches the machine's other interfaces); the machine's own interfaces only when asked ("auto", for LAN calls).
The setting is process-wide because aioice reads it from a module function; `configure_ice` is the one place
that replaces it.

Anyone who can reach an ICE UDP port can send it anything. aioice (0.13.0) parses every datagram as STUN in
`StunProtocol.datagram_received` and catches only `ValueError`: a malformed attribute (e.g. a 1-byte
XOR-MAPPED-ADDRESS) raises `struct.error` out of the protocol callback, which asyncio logs with a traceback
("Exception in callback"), once per datagram. A datagram that is not STUN goes to the connection's queue, and an
empty one there kills aiortc's DTLS transport (`data[0]` in `RTCDtlsTransport._recv_next` raises IndexError: the
call ends with a traceback). `guard_datagrams()` wraps that one method (aioice's files are untouched): an empty
datagram is dropped, any exception is contained; both are counted in `DATAGRAM_GUARD` and logged at most once
per source address per interval. `check_ice_seam()` fails loudly if aioice's internals move.
"""

from __future__ import annotations

import inspect
import ipaddress
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aioice
import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

from ..ratelimit import PerSourceLimiter

log = logging.getLogger(__name__)

SUPPORTED_AIOICE = "0.13.0"

LOOPBACK_ONLY: tuple[str, ...] = ("127.0.0.1",)
AUTO = "auto"

_original_get_host_addresses = aioice.ice.get_host_addresses


def parse_ice_addresses(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """`None`/"" → loopback only; "auto" → the machine's interfaces (None); else a comma list of IPs."""
    if value is None or value == "" or value == ():
        return LOOPBACK_ONLY
    items = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    if items == [AUTO]:
        return None
    for item in items:
        try:
            ipaddress.ip_address(item)
        except ValueError as exc:
            raise ValueError(f"ICE address {item!r} is not an IP address (or 'auto')") from exc
    return tuple(items)


def configure_ice(addresses: str | Sequence[str] | None = None) -> tuple[str, ...] | None:
    """Make every later ICE gathering in this process offer exactly `addresses` as host candidates."""
    chosen = parse_ice_addresses(addresses)
    if chosen is None:
        aioice.ice.get_host_addresses = _original_get_host_addresses
    else:

        def fixed_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            result = []
            for address in chosen:
                version = ipaddress.ip_address(address).version
                if (version == 4 and use_ipv4) or (version == 6 and use_ipv6):
                    result.append(address)
            return result

        aioice.ice.get_host_addresses = fixed_host_addresses
    return chosen


def rtc_configuration(ice_servers: Sequence[str] = ()) -> RTCConfiguration:
    """An RTCConfiguration with exactly the given STUN/TURN URLs: none by default, so no public STUN is asked."""
    return RTCConfiguration(iceServers=[RTCIceServer(urls=url) for url in ice_servers])


class IceSeamError(RuntimeError):
    """aioice no longer looks the way mediamute's ICE seams expect."""


@dataclass(frozen=True, slots=True)
class DatagramCounters:
    """Datagrams refused at the ICE ports since the process started, by reason."""

    empty: int
    """Zero-length datagrams (they would kill aiortc's DTLS transport)."""
    malformed: int
    """Datagrams whose handling raised (a STUN message aioice cannot parse)."""
    log_lines: int
    """Warning lines written about them (at most one per source address per interval)."""

    @property
    def dropped(self) -> int:
        return self.empty + self.malformed


class DatagramGuard:
    """Counts refused datagrams and rate-limits the log lines about them, per source address."""

    def __init__(self, interval: float = 10.0, max_sources: int = 1024, clock: Callable[[], float] = time.monotonic):
        self.empty = 0
        self.malformed = 0
        self.limiter = PerSourceLimiter(interval, max_sources, clock)

    @property
    def log_lines(self) -> int:
        return self.limiter.lines

    def counters(self) -> DatagramCounters:
        return DatagramCounters(empty=self.empty, malformed=self.malformed, log_lines=self.log_lines)

    def refuse(self, addr: tuple[Any, ...], reason: str, exc: BaseException | None = None) -> None:
        """Count one refused datagram from `addr`; log it unless this source was logged within the interval."""
        if exc is None:
            self.empty += 1
        else:
            self.malformed += 1
        suppressed = self.limiter.allow(addr)
        if suppressed is None:
            return
        detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
        log.warning(
            "dropped %s datagram from %s:%s at an ICE port%s (%d more from it since the last line)",
            reason, addr[0], addr[1], detail, suppressed,
        )


DATAGRAM_GUARD = DatagramGuard()
"""The process-wide guard (aioice's protocol class is process-wide too); `DATAGRAM_GUARD.counters()` for metrics."""

AIOICE_DATAGRAM_RECEIVED = aioice.ice.StunProtocol.datagram_received
"""aioice's own datagram entry, which the guard wraps (the impairment's seam check reads it too)."""


def _guarded_datagram_received(self: aioice.ice.StunProtocol, data: bytes | str, addr: tuple[Any, ...]) -> None:
    if not data:
        DATAGRAM_GUARD.refuse(addr, "an empty")
        return
    try:
        AIOICE_DATAGRAM_RECEIVED(self, data, addr)
    except Exception as exc:  # aioice lets struct.error (and whatever else garbage provokes) escape the callback
        DATAGRAM_GUARD.refuse(addr, "a malformed", exc)


def guard_datagrams() -> None:
    """Install the guard on aioice's StunProtocol (idempotent; done at import)."""
    aioice.ice.StunProtocol.datagram_received = _guarded_datagram_received  # type: ignore[method-assign]


def check_ice_seam() -> None:
    """Raise `IceSeamError` unless aioice still has the functions and the datagram path these seams rely on."""
    if aioice.__version__ != SUPPORTED_AIOICE:
        raise IceSeamError(
            f"aioice {aioice.__version__} is installed, the ICE seams were verified against {SUPPORTED_AIOICE}: "
            "re-check StunProtocol.datagram_received and get_host_addresses in aioice/ice.py"
        )
    if not callable(getattr(aioice.ice, "get_host_addresses", None)):
        raise IceSeamError("aioice.ice.get_host_addresses is gone: host candidates cannot be chosen")
    source = inspect.getsource(AIOICE_DATAGRAM_RECEIVED)
    parse_at = source.find("message = stun.parse_message(data)")
    except_at = source.find("except ValueError:")
    queue_at = source.find("self.receiver.data_received(data")
    if min(parse_at, except_at, queue_at) < 0 or not parse_at < except_at < queue_at:
        raise IceSeamError(
            "aioice StunProtocol.datagram_received no longer parses STUN, catches ValueError, then queues other "
            f"data: the datagram guard must be re-checked (supported aioice: {SUPPORTED_AIOICE})"
        )
    if aioice.ice.StunProtocol.datagram_received is not _guarded_datagram_received:
        raise IceSeamError("the datagram guard is not installed on aioice.ice.StunProtocol")


configure_ice(None)
guard_datagrams()
