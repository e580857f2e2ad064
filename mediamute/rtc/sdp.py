"""SDP for Opus with in-band FEC: `useinbandfec=1` on every Opus payload type of a description we send.

RFC 7587 6.1: `useinbandfec=1` in a receiver's fmtp says it can decode Opus in-band FEC, and browsers turn their
encoder's FEC on only when the remote description says so. aiortc writes no fmtp for Opus, so the description is
amended as text before it is set as the local one (aiortc parses it back and keeps the parameter).
"""

from __future__ import annotations

import re

_RTPMAP = re.compile(r"^a=rtpmap:(\d+) opus/48000(?:/\d+)?$", re.IGNORECASE)


def with_opus_fec(sdp: str) -> str:
    """`sdp` with `useinbandfec=1` in the fmtp line of every Opus payload type (added, or a line created)."""
    newline = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.split(newline)
    opus_types = {m.group(1) for line in lines if (m := _RTPMAP.match(line))}
    if not opus_types:
        return sdp
    has_fmtp: set[str] = set()
    out: list[str] = []
    for line in lines:
        if line.startswith("a=fmtp:"):
            payload_type, _, params = line[len("a=fmtp:"):].partition(" ")
            if payload_type in opus_types:
                has_fmtp.add(payload_type)
                names = {p.split("=", 1)[0].strip().lower() for p in params.split(";") if p.strip()}
                if "useinbandfec" not in names:
                    line = f"a=fmtp:{payload_type} {params + ';' if params.strip() else ''}useinbandfec=1"
        out.append(line)
    result: list[str] = []
    for line in out:
        result.append(line)
        match = _RTPMAP.match(line)
        if match and match.group(1) not in has_fmtp:
            result.append(f"a=fmtp:{match.group(1)} useinbandfec=1")
    return newline.join(result)
