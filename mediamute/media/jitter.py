"""The adaptive jitter buffer: encoded packets in, one playout decision per 20 ms tick out. Standard library only.

Where it sits: after the mute gate and RTP sequence validation, before the Opus decoder (rtc's `ReceivePath` runs
the decoder on what this buffer decides). Packets go in at arrival (`insert`, on the event loop); the playout clock
pulls at each mixer tick (`next`): the call's `Mixer` pulls every participant's receive path at the start of its
tick, the Python client's playout clock pulls its own at 20 ms. The mixer's bounded inbox stays the only other
buffer, and holds at most the frame pulled for that tick.

**The plan.** A packet with RTP timestamp ts is due at `ts / 48000 + m + target`: `m` is the least transit
(arrival − media time) of the last `window` packets, so `ts / 48000 + m` is when the packet would have arrived on
the best path seen lately, and `target` is how much later than that we choose to play it. The playout position
follows wall time frame by frame; `lag = tick − due(position)` says whether we play late (lag > one frame: the buffer
is deeper than it needs to be) or early (lag < 0: shallower).

**The target.** Each packet's relative delay `r = transit − m` (how much later than the best path it came, RFC 3550
A.8's transit difference against the fastest recent packet, as NetEQ measures it) enters a ring of `window`
values. The target follows the ring's `quantile` (0.95: 95 % of recent packets on time; plus `MARGIN` once it is
above that): up at once when the quantile rises, down by at most `release` seconds per second; always within [min_delay, max_delay]. A single late
packet (a spike, or a stall of this process's own loop) does not move it: that packet is waited for or concealed,
and the latency of everything after it is not raised for seconds. The RFC 3550 interarrival jitter J is kept as a
statistic.

**Each tick** (`next`) plays, in order of preference:
- the packet at the position (reordered packets included, if they arrived before their turn). When the buffer
  plays more than a frame late and the next packet is there, it catches up by one frame (at most one per tick): the
  packet is decoded but not played (the decoder stays in step); preferably a quiet one (the last frame played was
  quiet), else after `PATIENCE` ticks of standing lag, at once when two frames late. More than `max_delay` late, it
  skips at once.
- a lost packet (a later one has arrived and this one is due): rebuilt from the next packet's in-band FEC when that
  packet follows it and carries LBRR data; else concealed (PLC), or skipped when the buffer is late anyway.
- nothing has arrived (underrun): wait for it, concealing (PLC) while the position stays put, so a late packet
  still plays and the delay grows by the wait; the target follows (the late packet's r).
Concealment is bounded: after `max_concealed` consecutive concealed frames (the last one faded out), the participant
contributes nothing until a packet comes; after such a stall the buffer re-anchors and prebuffers like a new stream.

**Mute and unmute.** `flush()` (called by the gate's close listener, synchronously) drops every held packet and the
anchor, so nothing is concealed into a later mix; the first packet after the gate reopens anchors a fresh playout,
which starts once that packet is due (prebuffering its target), or as far ahead of that as the stream played before
the mute (it may play ahead of the plan when the target rose without an underrun), so a mute does not move latency. The delay statistics (m, the r ring, the target)
describe the network, not the talker, and are kept across a mute.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, fields
from enum import Enum
from typing import NamedTuple

SAMPLE_RATE = 48_000
FRAME = 960
"""Samples in one 20 ms frame: the mixer's tick and the default packet duration."""
FRAME_TIME = FRAME / SAMPLE_RATE
HYSTERESIS = 0.004
"""Seconds of lag beyond one frame before the buffer catches up (the ideal lag lies in [0, 20 ms))."""
PATIENCE = 25
"""Ticks of standing lag (half a second) after which a frame is dropped to catch up even if it is not quiet."""
URGENT = 2 * FRAME_TIME + HYSTERESIS
"""Lag at which a frame is dropped at once, quiet or not."""
MARGIN = 0.005
"""Seconds added to a target above it: packets at the quantile itself arrive a little after it (none on a calm network)."""
QUANTILE_EVERY = 5
"""Packets between two recomputations of the delay quantile (a sort of `window` floats)."""
TIMEBASE_JUMP = 1.0
"""Seconds of transit change (beyond max_delay) that mean the sender's timestamps jumped, not the network."""
RTP_TS_MOD = 1 << 32


@dataclass(frozen=True, slots=True)
class JitterBufferSettings:
    """How a receiver's jitter buffer adapts; one object shared by the server and the Python client."""

    min_delay: float = 0.0
    """Seconds: the least target delay (0: a perfect network adds nothing but the wait for the next tick)."""
    max_delay: float = 0.3
    """Seconds: the largest target delay; playing later than that is caught up at once."""
    quantile: float = 0.95
    """Share of recent packets the target delay must cover."""
    window: int = 100
    """Packets (2 s at 20 ms) over which the least transit and the delay quantile are taken."""
    release: float = 0.1
    """Seconds per second: how fast the target may fall once the jitter is gone."""
    max_concealed: int = 5
    """Consecutive concealed frames (PLC) before the participant goes quiet rather than conceal on."""
    capacity: int = 128
    """Packets held at most (2.56 s at 20 ms); the oldest goes, counted, beyond that."""

    def __post_init__(self) -> None:
        checks = (
            ("min_delay", 0.0 <= self.min_delay <= 2.0, "between 0 and 2 seconds"),
            ("max_delay", self.min_delay <= self.max_delay <= 2.0, "between min_delay and 2 seconds"),
            ("quantile", 0.5 <= self.quantile < 1.0, "in [0.5, 1)"),
            ("window", 10 <= self.window <= 10_000, "between 10 and 10000 packets"),
            ("release", 0.0 < self.release <= 10.0, "above 0 and at most 10 seconds per second"),
            ("max_concealed", 0 <= self.max_concealed <= 50, "between 0 and 50 frames"),
            ("capacity", 4 <= self.capacity <= 10_000, "between 4 and 10000 packets"),
        )
        for name, ok, expected in checks:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok or value != value:
                raise ValueError(f"jitter buffer {name} must be {expected}, not {value!r}")


class PlayoutKind(Enum):
    """What a playout step asks of the decoder."""

    DECODE = "decode"
    """Decode `packet` (and play it, unless `discard`)."""
    RECOVER = "recover"
    """Rebuild the `samples` before `packet` from its in-band FEC (LBRR) data."""
    CONCEAL = "conceal"
    """Invent `samples` of audio (packet-loss concealment), faded out if `fade`."""


@dataclass(slots=True)
class BufferedPacket:
    """One encoded packet waiting for its turn."""

    timestamp: int
    """Extended RTP timestamp (48 kHz, no 32-bit wrap)."""
    payload: bytes
    samples: int
    """How many samples it decodes to (960 for 20 ms)."""
    arrived: float
    """Monotonic seconds at arrival."""
    fec: bool
    """Whether it carries in-band FEC (LBRR) data for the packet before it."""


class PlayoutStep(NamedTuple):
    kind: PlayoutKind
    packet: BufferedPacket | None
    samples: int
    discard: bool = False
    """DECODE only: decode to keep the decoder in step, but do not play (catching up)."""
    fade: bool = False
    """CONCEAL only: the last concealed frame allowed; fade it out."""


@dataclass(slots=True)
class JitterCounters:
    """What the buffer did with every packet and frame since it was made (kept across mutes)."""

    packets: int = 0
    """Packets accepted into the buffer."""
    fec_packets: int = 0
    """Accepted packets that carried in-band FEC (LBRR) data for the frame before them: how much FEC the sender sends."""
    late: int = 0
    """Packets that arrived after their playout time had passed: dropped."""
    duplicates: int = 0
    """Packets whose timestamp was already held: dropped."""
    reordered: int = 0
    """Packets that came behind a newer one yet before their turn: played in order (reordering repaired)."""
    overflow: int = 0
    """Oldest packets dropped from a full buffer."""
    timestamp_jumps: int = 0
    """Packets whose timestamp fell far off the stream's timebase and were dropped (not, or not yet, confirmed)."""
    restarts: int = 0
    """New streams: an SSRC change or renumbering, or a confirmed timestamp jump (the playout re-anchors)."""
    decoded: int = 0
    """Frames played from their own packet."""
    recovered: int = 0
    """Lost frames rebuilt from the next packet's in-band FEC."""
    concealed: int = 0
    """Frames invented by packet-loss concealment (PLC)."""
    accelerated: int = 0
    """Frames decoded but not played, to bring the delay back to the target."""
    skipped: int = 0
    """Frames never played to bring the delay back: held packets dropped far behind, lost frames not concealed."""
    flushed: int = 0
    """Packets discarded because the gate closed (mute) or the stream restarted."""
    malformed: int = 0
    """Packets that were not Opus, or that libopus refused (their frame concealed): set by the decoding side."""
    single_losses: int = 0
    """Lost frames whose neighbours both came (one packet lost alone): what in-band FEC can rebuild. A frame is lost
    when its turn comes, its packet is not here and a later one is (a packet that comes after its turn is late and
    its frame lost too)."""
    single_recovered: int = 0
    """Single losses rebuilt from the next packet's in-band FEC (the others were concealed or skipped: that packet
    carried no LBRR data, or came too late)."""
    burst_losses: int = 0
    """Lost frames in runs of two or more: FEC can rebuild only the last frame of a run, the others are concealed."""


@dataclass(frozen=True, slots=True)
class JitterStats:
    """A buffer now: its counters, its depth, the target and actual delays and the RFC 3550 jitter, in seconds."""

    counters: JitterCounters
    depth: int
    """Packets held now."""
    target_delay: float
    delay_p50: float | None
    """Arrival → playout of the last `DELAY_SAMPLES` played packets: median (None before any)."""
    delay_p95: float | None
    jitter: float
    """RFC 3550 A.8 interarrival jitter."""
    playing: bool

    def as_dict(self) -> dict[str, float | int | bool | None]:
        out: dict[str, float | int | bool | None] = {f.name: getattr(self.counters, f.name) for f in fields(self.counters)}
        out.update(depth=self.depth, target_delay=self.target_delay, delay_p50=self.delay_p50,
                   delay_p95=self.delay_p95, jitter=self.jitter, playing=self.playing)
        return out


DELAY_SAMPLES = 250
"""Played packets (5 s at 20 ms) over which the actual delay's percentiles are taken."""


class _State(Enum):
    EMPTY = 0
    """No anchor: nothing to play until a packet comes."""
    PREBUFFER = 1
    """Anchored at `cursor`: waiting until that packet is due."""
    PLAYING = 2
    STALLED = 3
    """Concealment ran out: quiet until a packet comes, then prebuffer again."""


class PlayoutBuffer:
    """One participant's jitter buffer (see the module docstring). All times are monotonic seconds."""

    def __init__(self, settings: JitterBufferSettings | None = None) -> None:
        self.settings = settings or JitterBufferSettings()
        self.counters = JitterCounters()
        self._packets: dict[int, BufferedPacket] = {}
        self._state = _State.EMPTY
        self._cursor = 0
        """Extended timestamp of the next audio to take from the buffer."""
        self._frame = FRAME
        """The stream's packet duration (samples) as last seen: what a concealment step lasts."""
        self._concealed_run = 0
        self._lost_run = 0
        """Lost frames passed in a row since the last frame played from its own packet (0: the last one was)."""
        self._behind_ticks = 0
        self._resume_lag = 0.0
        """How far ahead of the plan (≤ 0) the stream played when it last played: a re-anchored stream (after a mute or
        a stall) resumes at that same offset, so a short mute leaves the latency where it was."""
        self._accelerated_at: float | None = None
        """The tick that last dropped a frame to catch up: at most one such drop per tick."""
        # the timebase: timestamp unwrapping and its plausibility
        self._ts_raw: int | None = None
        self._ts_ext = 0
        self._candidate_transit: float | None = None
        # delay statistics (kept across a mute: they describe the network)
        window = self.settings.window
        self._transits: deque[tuple[int, float]] = deque()
        """(arrival index, transit), increasing transits: the front is the least of the last `window`."""
        self._arrivals = 0
        self._relative: deque[float] = deque(maxlen=window)
        self._quantile = 0.0
        self._raw_target = self.settings.min_delay
        self._last_at: float | None = None
        self._last_transit: float | None = None
        self.jitter = 0.0
        """RFC 3550 A.8 interarrival jitter, seconds."""
        self._delays: deque[float] = deque(maxlen=DELAY_SAMPLES)

    # --- arrival ------------------------------------------------------------------------------------------------
    def insert(self, timestamp: int, payload: bytes, samples: int, arrived: float, fec: bool = False,
               misordered: bool = False, stalled: bool = False) -> bool:
        """Hold one packet (RTP timestamp as on the wire); False if it was dropped (late, duplicate, implausible).

        `stalled`: the packet was read late because this process's own loop stalled, not because the network
        delayed it: it is played as usual but left out of the delay statistics the target follows."""
        counters = self.counters
        ext = self._unwrap(timestamp)
        transit = arrived - ext / SAMPLE_RATE
        if self._transits and abs(transit - self._transits[0][1]) > TIMEBASE_JUMP + self.settings.max_delay:
            candidate = self._candidate_transit
            if candidate is None or abs(transit - candidate) > 0.5:
                self._candidate_transit = transit  # one stray timestamp is dropped; a second like it confirms
                counters.timestamp_jumps += 1
                return False
            self.restart()
            ext = self._unwrap(timestamp)
            transit = arrived - ext / SAMPLE_RATE
        self._candidate_transit = None
        if ext > self._ts_ext or self._ts_raw is None:
            self._ts_raw, self._ts_ext = timestamp, ext
        state = self._state
        if (state is _State.PLAYING or state is _State.STALLED) and ext < self._cursor:
            counters.late += 1
            self._measure(arrived, transit, stalled)
            return False
        packets = self._packets
        if ext in packets:
            counters.duplicates += 1
            return False
        if len(packets) >= self.settings.capacity:
            del packets[min(packets)]
            counters.overflow += 1
        packets[ext] = BufferedPacket(ext, payload, samples, arrived, fec)
        counters.packets += 1
        counters.fec_packets += fec
        if misordered:
            counters.reordered += 1
        if state is _State.EMPTY or (state is _State.PREBUFFER and ext < self._cursor):
            self._cursor = ext
            self._state = _State.PREBUFFER
        self._measure(arrived, transit, stalled)
        return True

    def _unwrap(self, timestamp: int) -> int:
        if self._ts_raw is None:
            return timestamp
        delta = (timestamp - self._ts_raw) % RTP_TS_MOD
        if delta >= RTP_TS_MOD // 2:
            delta -= RTP_TS_MOD
        return self._ts_ext + delta

    def _measure(self, arrived: float, transit: float, stalled: bool = False) -> None:
        """Feed the least-transit window, the relative-delay ring (and the target's rise) and the RFC 3550 jitter."""
        if stalled and self._transits:  # our own delay, not the network's: it says nothing of the jitter to cover
            self._last_transit = None  # (a stream's first packet is measured all the same: playout needs an anchor)
            return
        if self._last_transit is not None:
            self.jitter += (abs(transit - self._last_transit) - self.jitter) / 16
        self._last_transit = transit
        index = self._arrivals
        self._arrivals += 1
        transits = self._transits
        while transits and transits[-1][1] >= transit:
            transits.pop()
        transits.append((index, transit))
        if transits[0][0] <= index - self.settings.window:
            transits.popleft()
        self._relative.append(transit - transits[0][1])
        if index % QUANTILE_EVERY == 0:
            ordered = sorted(self._relative)
            self._quantile = ordered[int(self.settings.quantile * (len(ordered) - 1))]
            if self._quantile > MARGIN:  # jitter: cover it, with a margin for the packets right at the quantile
                self._quantile += MARGIN
            if self._quantile > self._raw_target:
                self._raw_target = self._quantile

    # --- the target -----------------------------------------------------------------------------------------------
    @property
    def target_delay(self) -> float:
        s = self.settings
        return min(s.max_delay, max(s.min_delay, self._raw_target))

    def _release(self, at: float) -> None:
        last, self._last_at = self._last_at, at
        if last is not None and at > last:
            self._raw_target = max(self._quantile, self._raw_target - self.settings.release * (at - last))

    def _due(self, position: int) -> float:
        return position / SAMPLE_RATE + self._transits[0][1] + self.target_delay

    # --- playout --------------------------------------------------------------------------------------------------
    def next(self, at: float, now: float | None = None, queued: int = 0, quiet: bool = False) -> PlayoutStep | None:
        """The next playout step at the tick due at `at` (None: nothing to play).

        `now` is when the tick runs (for the delay statistics; default `at`), `queued` how many decoded samples
        the caller still holds from an earlier step, `quiet` whether the last frame it played was quiet (a good
        frame to drop when catching up). Call again after a `discard` step: it stands for no audio.
        """
        self._release(at)
        state = self._state
        if state is _State.EMPTY:
            return None
        packets = self._packets
        if state is _State.STALLED:
            if not packets:
                return None
            self._cursor = min(packets)
            self._state = state = _State.PREBUFFER
        lag = at - self._due(self._cursor - queued)
        if state is _State.PREBUFFER:
            if lag < self._resume_lag:
                return None
            self._state = _State.PLAYING
            self._concealed_run = 0
        if lag > self.settings.max_delay + FRAME_TIME and packets:
            self._skip_to(self._cursor - queued + int((lag - FRAME_TIME) * SAMPLE_RATE))
            lag = at - self._due(self._cursor - queued)
        packet = packets.get(self._cursor)
        if packet is not None:
            return self._play(packet, lag, quiet, at, at if now is None else now)
        ahead = min(packets) if packets else None
        if ahead is not None and lag >= 0:  # the frame at the position is due and a later one is here: lost
            gap = ahead - self._cursor
            following = packets[ahead]
            single = gap <= self._frame and self._lost_run == 0
            self._lost_run += 1
            counters = self.counters
            if single:
                counters.single_losses += 1
            else:
                counters.burst_losses += 1
            if gap <= self._frame and following.fec:
                self._cursor = ahead
                self._concealed_run = 0
                counters.recovered += 1
                counters.single_recovered += single
                return PlayoutStep(PlayoutKind.RECOVER, following, gap)
            step = min(gap, self._frame)
            self._cursor += step
            if lag >= step / SAMPLE_RATE + HYSTERESIS:  # late anyway: let it go rather than invent it
                counters.skipped += 1
                return self.next(at, now, queued, quiet)
            return self._conceal(step)
        return self._conceal(self._frame)  # underrun, or not due yet: wait for it, position held

    def _play(self, packet: BufferedPacket, lag: float, quiet: bool, at: float, now: float) -> PlayoutStep:
        packets = self._packets
        del packets[packet.timestamp]
        self._cursor = packet.timestamp + packet.samples
        self._frame = packet.samples
        self._concealed_run = 0
        self._lost_run = 0
        behind = lag >= packet.samples / SAMPLE_RATE + HYSTERESIS and self._accelerated_at != at
        self._behind_ticks = self._behind_ticks + 1 if behind else 0
        if behind and self._cursor in packets and (quiet or lag >= URGENT or self._behind_ticks >= PATIENCE):
            self._behind_ticks = 0
            self._accelerated_at = at
            self.counters.accelerated += 1
            return PlayoutStep(PlayoutKind.DECODE, packet, packet.samples, discard=True)
        self.counters.decoded += 1
        self._resume_lag = min(0.0, lag)
        self._delays.append(now - packet.arrived)
        return PlayoutStep(PlayoutKind.DECODE, packet, packet.samples)

    def _conceal(self, samples: int) -> PlayoutStep | None:
        limit = self.settings.max_concealed
        if self._concealed_run >= limit:
            self._state = _State.STALLED
            return None
        self._concealed_run += 1
        self.counters.concealed += 1
        return PlayoutStep(PlayoutKind.CONCEAL, None, samples, fade=self._concealed_run == limit)

    def _skip_to(self, position: int) -> None:
        """Far behind the plan: drop the held packets before `position`, but never the newest one held.

        The cursor never moves past what has arrived: after a stall of this process's own loop, packets already in
        the socket are read only after the tick that finds the buffer late, and must still find their turn ahead.
        """
        packets = self._packets
        newest = max(packets)
        behind = [ts for ts in packets if ts < position and ts != newest]
        for ts in behind:
            del packets[ts]
        self.counters.skipped += len(behind)
        self._cursor = min(packets)

    # --- mute, restart --------------------------------------------------------------------------------------------
    def flush(self) -> int:
        """The gate closed: drop every held packet and the playout anchor; the next packet starts afresh."""
        count = len(self._packets)
        self._packets.clear()
        self.counters.flushed += count
        self._state = _State.EMPTY
        self._concealed_run = 0
        self._lost_run = 0
        self._behind_ticks = 0
        return count

    def restart(self) -> None:
        """A new stream (another SSRC, renumbered packets, a confirmed timestamp jump): flush and re-anchor, and
        forget the transit history (the new stream's timestamps have another origin; the delay ring and the target,
        which describe the network, stay)."""
        self.counters.restarts += 1
        self.flush()
        self._ts_raw = None
        self._candidate_transit = None
        self._transits.clear()
        self._last_transit = None
        self._resume_lag = 0.0

    # --- reading ----------------------------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self._packets)

    @property
    def playing(self) -> bool:
        return self._state is _State.PLAYING

    def stats(self) -> JitterStats:
        delays = sorted(self._delays)
        return JitterStats(
            counters=JitterCounters(**{f.name: getattr(self.counters, f.name) for f in fields(self.counters)}),
            depth=len(self._packets),
            target_delay=self.target_delay,
            delay_p50=_percentile(delays, 0.5),
            delay_p95=_percentile(delays, 0.95),
            jitter=self.jitter,
            playing=self._state is _State.PLAYING,
        )


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


__all__ = [
    "BufferedPacket",
    "JitterBufferSettings",
    "JitterCounters",
    "JitterStats",
    "PlayoutBuffer",
    "PlayoutKind",
    "PlayoutStep",
]
