"""Which local addresses ICE offers as host candidates, and which ICE servers a peer connection uses.

aioice leaves 127.0.0.1 out when it gathers host candidates, so a call on one machine would find no candidate
pair. mediamute therefore chooses the host addresses itself: by default 127.0.0.1 only (a local test call never
touches the machine's other interfaces); the machine's own interfaces only when asked ("auto", for LAN calls).
The setting is process-wide because aioice reads it from a module function; `configure_ice` is the one place
that replaces it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

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


configure_ice(None)
