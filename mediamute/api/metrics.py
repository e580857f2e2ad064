"""Prometheus metrics at `/metrics`: the calls' live numbers, read at scrape time, and the API's requests.

Nothing here runs per packet or per tick. A scrape walks the call registry once, on the event loop (the handler is
`async`, so every number of one scrape is read between two ticks: a call's tick count and its tick-duration
histogram's count are equal), through the domain's typed records (`calls.stats`: gate, mixer slot, RTP sequence
counters, jitter buffer, each participant's network impairment per direction, clock and its tick-duration buckets),
the call's encoding counters, the notification hub's callback counters and aioice's process-wide datagram guard. The
only work outside a scrape is one counter increment per HTTP request, in an ASGI middleware.

Each app has its own `CollectorRegistry` (never prometheus_client's global one), so several servers in one process
(the tests, the demo) do not collide.

Cardinality stays bounded by what is live, never by what a client sends:
- `call_id` labels exist only for live calls (established, not yet terminated): when a call ends its series vanish
  (its final numbers stay readable at `/ext/calls/{id}/stats`); `mediamute_calls_ended_total` counts ended calls.
- `participant_id` labels exist only for participants in a live call's roster: when one leaves, its series vanish.
  So the per-participant series are at most (live participants) x (metrics), as on the stats page.
- HTTP requests are labelled by the matched route's path template (`/v1.0/communications/calls/{call_id}/...`,
  never the raw path), the method (the seven standard ones, else "other") and the status. A path no route matches
  is counted as route "unmatched", so garbage URLs cannot grow the series. WebSocket connections (the event
  stream) are not counted here.
- `reason`, `stream`, `kind`, `direction`, `preset` and `parameter` labels take a fixed handful of values.

No authentication: a Prometheus scraper has no Graph token, and the server binds 127.0.0.1 by default. A server
bound to another address exposes these numbers (call and participant ids, no tokens, no audio) to its network.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..calls.call import Call, CallRegistry
from ..calls.stats import CallStats, ParticipantStats, call_stats
from ..media.netem import DirectionState
from ..rtc.ice import DATAGRAM_GUARD
from .faults import FAULT_STATUSES
from .notifications import NotificationHub
from .routes import RouteTemplates

router = APIRouter(include_in_schema=False)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CALL = ["call_id"]
PARTICIPANT = ["call_id", "participant_id"]
DIRECTION = [*PARTICIPANT, "direction"]
CALLBACK_FAULTS = (
    ("delayed", "faults_delayed"),
    ("duplicated", "faults_duplicated"),
    ("reordered", "faults_reordered"),
    ("first_attempt_failed", "faults_first_attempt_failed"),
)
"""(label value, DeliveryCounters field) for every fault injected in callback deliveries."""
NETWORK_DROP_REASONS = (("random", "dropped_random"), ("burst", "dropped_burst"), ("queue", "dropped_queue"))
"""(label value, NetworkCounters field) for every reason the network impairment drops a datagram."""
RTP_DROP_REASONS = (("duplicate", "duplicates"), ("jump_pending", "jumps_pending"), ("ssrc_pending", "ssrcs_pending"))
"""(label value, SequenceCounters field) for every reason sequence validation drops a packet."""
JITTER_FRAME_KINDS = (
    ("decoded", "decoded"), ("recovered", "recovered"), ("concealed", "concealed"), ("accelerated", "accelerated"),
    ("skipped", "skipped"),
)
"""(label value, JitterCounters field) for every way the jitter buffer accounts for a frame of the stream."""
JITTER_DROP_REASONS = (
    ("late", "late"), ("duplicate", "duplicates"), ("overflow", "overflow"), ("timestamp_jump", "timestamp_jumps"),
    ("malformed", "malformed"),
)
"""(label value, JitterCounters field) for every reason the receive path drops a packet past sequence validation."""
DTMF_DROP_REASONS = ("empty", "late", "unsupported", "malformed")
"""ToneCounters fields (and label values) of the telephone-event reports or packets that made no press."""
OUTBOUND_DROP_REASONS = (("not_connected", "dropped_not_connected"), ("overflow", "dropped_overflow"), ("error", "dropped_errors"))
"""(label value, OutboundCounters field) for every reason a mix packet is not sent."""
JITTER_LOSS_RUNS = (("single", "single_losses"), ("burst", "burst_losses"))
"""(label value, JitterCounters field): lost frames, alone (FEC can rebuild them) or in a run of two or more."""


def _counter(name: str, documentation: str, labels: Sequence[str]) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, labels=labels)


def _gauge(name: str, documentation: str, labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


class CallCollector(Collector):
    """Reads every live call's numbers when Prometheus scrapes; holds no state of its own."""

    def __init__(self, registry: CallRegistry, hub: NotificationHub) -> None:
        self.registry = registry
        self.hub = hub

    def describe(self) -> Iterable[Metric]:
        return ()  # the names depend on nothing; no collect() at registration

    def collect(self) -> Iterable[Metric]:
        calls = list(self.registry.calls.values())
        live = [call for call in calls if not call.terminated]
        yield GaugeMetricFamily("mediamute_calls", "Live calls (established, not ended).", value=len(live))
        yield CounterMetricFamily("mediamute_calls_created", "Calls this server has created.", value=len(calls))
        yield CounterMetricFamily("mediamute_calls_ended", "Calls that have ended.", value=len(calls) - len(live))
        injected = _counter("mediamute_api_faults_injected", "API requests refused by an injected fault (faults.api), by status.", ["status"])
        for status in FAULT_STATUSES:
            injected.add_metric([str(status)], self.hub.faults.refused_total.get(status, 0))
        yield injected
        guard = DATAGRAM_GUARD.counters()
        refused = _counter("mediamute_ice_datagrams_refused", "UDP datagrams the ICE guard dropped, by reason.", ["reason"])
        refused.add_metric(["empty"], guard.empty)
        refused.add_metric(["malformed"], guard.malformed)
        yield refused
        families = CallFamilies()
        for call in live:
            families.add(call, call_stats(call, audit_limit=0), self.hub)
        yield from families.all()


class CallFamilies:
    """The per-call and per-participant metric families of one scrape, filled call by call."""

    def __init__(self) -> None:
        self.participants = _gauge("mediamute_call_participants", "Participants in a live call's roster, by kind.", [*CALL, "kind"])
        self.ticks = _counter("mediamute_mix_ticks", "Mixer clock ticks.", CALL)
        self.late_ticks = _counter("mediamute_mix_late_ticks", "Ticks that woke more than a period late (the clock resynchronised).", CALL)
        self.max_lateness = _gauge("mediamute_mix_max_lateness_seconds", "The worst wake-up after a tick's deadline so far.", CALL)
        self.tick_duration = HistogramMetricFamily(
            "mediamute_mix_tick_duration_seconds", "How long each tick's mix (and its encodes and sends) took.", labels=CALL
        )
        self.encoded_ticks = _counter("mediamute_encode_ticks", "Ticks whose mixes were encoded.", CALL)
        self.encodes = _counter("mediamute_encodes", "Opus encodes of mixes: shared (one per tick for every non-contributor) or own.", [*CALL, "stream"])
        self.shared_deliveries = _counter("mediamute_encode_shared_deliveries", "Packets of the shared encode handed to listeners.", CALL)
        self.encodes_per_tick = _gauge("mediamute_encodes_per_tick", "Encodes per encoded tick, over the call so far.", CALL)
        self.encode_ticks_by_mode = _counter("mediamute_encode_ticks_by_mode", "Ticks encoded on the encode pool's threads (pool) or on the event loop (inline).", [*CALL, "mode"])
        self.decode_ticks_by_mode = _counter("mediamute_decode_ticks_by_mode", "Ticks whose receive paths decoded on the pool's threads (pool) or on the event loop (inline).", [*CALL, "mode"])
        self.encode_dropped_ticks = _counter("mediamute_encode_dropped_ticks", "Ticks whose packets were dropped because the encode pool fell behind.", CALL)
        callback = "Callback (callbackUri) deliveries: "
        self.cb_enqueued = _counter("mediamute_callback_notifications_enqueued", callback + "notifications queued.", CALL)
        self.cb_posts = _counter("mediamute_callback_posts", callback + "POST attempts.", CALL)
        self.cb_delivered = _counter("mediamute_callback_batches_delivered", callback + "batches accepted (2xx).", CALL)
        self.cb_delivered_n = _counter("mediamute_callback_notifications_delivered", callback + "notifications in accepted batches.", CALL)
        self.cb_retries = _counter("mediamute_callback_retries", callback + "attempts retried after a failure.", CALL)
        self.cb_failed = _counter("mediamute_callback_batches_failed", callback + "batches given up (refused or every attempt failed).", CALL)
        self.cb_dropped = _counter("mediamute_callback_notifications_dropped", callback + "oldest notifications dropped from a full queue.", CALL)
        self.faults = _counter(
            "mediamute_call_faults_injected",
            "Faults injected on request in a call: callback batches delayed, duplicated, reordered, first attempts "
            "failed; API requests on its paths refused (api_429, api_503).",
            [*CALL, "fault"],
        )
        self.server_muted = _gauge("mediamute_participant_server_muted", "1 while the participant's gate is closed (server mute).", PARTICIPANT)
        self.passed = _counter("mediamute_gate_passed_packets", "RTP packets the mute gate let through.", PARTICIPANT)
        self.passed_bytes = _counter("mediamute_gate_passed_bytes", "RTP payload bytes the mute gate let through.", PARTICIPANT)
        self.dropped = _counter("mediamute_gate_dropped_packets", "RTP packets the closed mute gate dropped before decode.", PARTICIPANT)
        self.dropped_bytes = _counter("mediamute_gate_dropped_bytes", "RTP payload bytes the closed mute gate dropped.", PARTICIPANT)
        self.frames_in = _counter("mediamute_mixer_frames_in", "Frames queued in the participant's mixer inbox.", PARTICIPANT)
        self.frames_mixed = _counter("mediamute_mixer_frames_mixed", "Frames of the participant that entered a mix.", PARTICIPANT)
        self.overflow = _counter("mediamute_mixer_inbox_overflow", "Frames dropped (oldest) from a full inbox.", PARTICIPANT)
        self.underruns = _counter("mediamute_mixer_underruns", "Ticks that found the participant's inbox empty while its gate was open.", PARTICIPANT)
        self.flushed = _counter("mediamute_mixer_flushed_frames", "Queued frames discarded when the gate closed.", PARTICIPANT)
        self.discarded = _counter("mediamute_mixer_discarded_closed_frames", "Decoded frames refused at the inbox because the gate was closed.", PARTICIPANT)
        self.trimmed = _counter("mediamute_mixer_trimmed_frames", "Frames dropped to trim a standing inbox backlog.", PARTICIPANT)
        self.held = _counter("mediamute_mixer_held_frames", "Frames refused at the inbox while the participant was on hold (hold music).", PARTICIPANT)
        self.in_flight = _counter("mediamute_mixer_discarded_in_flight_frames", "Frames decoded on another thread and discarded on their return because the gate closed (or closed and reopened) meanwhile.", PARTICIPANT)
        self.depth = _gauge("mediamute_mixer_inbox_depth", "Frames waiting in the participant's inbox.", PARTICIPANT)
        self.rtp_accepted = _counter("mediamute_rtp_packets_accepted", "Packets past the gate that RTP sequence validation accepted.", PARTICIPANT)
        self.rtp_dropped = _counter("mediamute_rtp_packets_dropped", "Packets past the gate that RTP sequence validation dropped, by reason.", [*PARTICIPANT, "reason"])
        self.rtp_restarts = _counter("mediamute_rtp_restarts", "Confirmed sequence-number restarts in the same SSRC.", PARTICIPANT)
        self.rtp_ssrc_changes = _counter("mediamute_rtp_ssrc_changes", "Confirmed switches to another SSRC.", PARTICIPANT)
        self.network = NetworkFamilies()
        self.rtp_misordered = _counter("mediamute_rtp_packets_misordered", "Accepted packets that came behind a newer one (handed to the jitter buffer).", PARTICIPANT)
        jb = "Jitter buffer: "
        self.jb_packets = _counter("mediamute_jitter_packets", jb + "packets accepted into the buffer.", PARTICIPANT)
        self.jb_fec_packets = _counter("mediamute_jitter_fec_packets", jb + "accepted packets that carried in-band FEC data for the frame before them.", PARTICIPANT)
        self.jb_dropped = _counter("mediamute_jitter_packets_dropped", jb + "packets dropped, by reason.", [*PARTICIPANT, "reason"])
        self.jb_reordered = _counter("mediamute_jitter_reordered_packets", jb + "packets that came out of order yet in time: played in order.", PARTICIPANT)
        self.jb_flushed = _counter("mediamute_jitter_flushed_packets", jb + "packets discarded when the gate closed (mute) or the stream restarted.", PARTICIPANT)
        self.jb_restarts = _counter("mediamute_jitter_restarts", jb + "new streams (SSRC change, renumbering, timestamp jump): playout re-anchored.", PARTICIPANT)
        self.jb_frames = _counter("mediamute_jitter_frames", jb + "frames by what became of them: decoded, recovered (FEC), concealed (PLC), accelerated (dropped to catch up), skipped.", [*PARTICIPANT, "kind"])
        self.jb_lost = _counter("mediamute_jitter_lost_frames", jb + "frames whose packet was missing at their turn, lost alone (single) or in a run (burst).", [*PARTICIPANT, "run"])
        self.jb_single_recovered = _counter("mediamute_jitter_single_losses_recovered", jb + "single losses rebuilt from the next packet's in-band FEC.", PARTICIPANT)
        self.jb_depth = _gauge("mediamute_jitter_depth_packets", jb + "packets held now.", PARTICIPANT)
        self.jb_target = _gauge("mediamute_jitter_target_delay_seconds", jb + "the target delay now.", PARTICIPANT)
        self.jb_delay = _gauge("mediamute_jitter_delay_seconds", jb + "arrival to playout of the last 250 played packets, by quantile.", [*PARTICIPANT, "quantile"])
        self.jb_jitter = _gauge("mediamute_jitter_interarrival_seconds", jb + "RFC 3550 interarrival jitter estimate.", PARTICIPANT)
        self.talking = _gauge("mediamute_participant_talking_while_muted", "1 while a server-muted participant's packet levels say it is talking.", PARTICIPANT)
        self.talking_episodes = _counter("mediamute_talking_while_muted_episodes", "Times a server-muted participant started talking.", PARTICIPANT)
        self.dtmf_packets = _counter("mediamute_dtmf_packets", "Telephone-event (DTMF) packets received; never decoded nor mixed.", PARTICIPANT)
        self.dtmf_presses = _counter("mediamute_dtmf_presses", "Key presses read from telephone-event packets.", PARTICIPANT)
        self.dtmf_repeats = _counter("mediamute_dtmf_repeats", "Event reports of a press already read (updates, redundant ends, retransmissions).", PARTICIPANT)
        self.dtmf_dropped = _counter("mediamute_dtmf_dropped", "Telephone-event reports or packets dropped, by reason.", [*PARTICIPANT, "reason"])
        self.out_packets = _counter("mediamute_outbound_packets", "RTP packets of the mix sent to the participant.", PARTICIPANT)
        self.out_bytes = _counter("mediamute_outbound_payload_bytes", "Opus payload bytes of the mix sent to the participant.", PARTICIPANT)
        self.out_dropped = _counter("mediamute_outbound_dropped_packets", "Mix packets not sent to the participant, by reason.", [*PARTICIPANT, "reason"])
        self.out_lean = _gauge("mediamute_outbound_lean_path", "1 while the participant's mix leaves through the lean send path.", PARTICIPANT)

    def add(self, call: Call, stats: CallStats, hub: NotificationHub) -> None:
        labels = [call.id]
        kinds = {"remote": 0, "application": 0}
        for entry in stats.participants:
            kinds[entry.kind] += 1
        for kind, count in kinds.items():
            self.participants.add_metric([*labels, kind], count)
        self.ticks.add_metric(labels, stats.clock.ticks)
        self.late_ticks.add_metric(labels, stats.clock.late_ticks)
        self.max_lateness.add_metric(labels, stats.clock.max_lateness)
        durations = stats.tick_durations
        buckets = [(floatToGoString(bound), count) for bound, count in durations.cumulative()]
        self.tick_duration.add_metric(labels, buckets, durations.total)
        self._add_encoding(labels, call.encoding_counters())
        self._add_callbacks(labels, hub, call.id)
        self._add_faults(labels, hub, call.id)
        for entry in stats.participants:
            self._add_participant([call.id, entry.id], entry)

    def _add_encoding(self, labels: list[str], counters: dict[str, float] | None) -> None:
        if counters is None:  # no encoding, or no mix handed to a listener yet
            return
        self.encoded_ticks.add_metric(labels, counters["ticks"])
        self.encodes.add_metric([*labels, "shared"], counters["shared"])
        self.encodes.add_metric([*labels, "own"], counters["own"])
        self.shared_deliveries.add_metric(labels, counters["shared_deliveries"])
        self.encodes_per_tick.add_metric(labels, counters["per_tick"])
        self.encode_ticks_by_mode.add_metric([*labels, "pool"], counters["pooled_ticks"])
        self.encode_ticks_by_mode.add_metric([*labels, "inline"], counters["inline_ticks"])
        self.decode_ticks_by_mode.add_metric([*labels, "pool"], counters["decode_pooled_ticks"])
        self.decode_ticks_by_mode.add_metric([*labels, "inline"], counters["decode_inline_ticks"])
        self.encode_dropped_ticks.add_metric(labels, counters["dropped_ticks"])

    def _add_faults(self, labels: list[str], hub: NotificationHub, call_id: str) -> None:
        report = hub.faults.call_report(call_id)
        if report is None:  # no faults for this call
            return
        counters = hub.delivery_counters(call_id)
        for fault, field in CALLBACK_FAULTS:
            self.faults.add_metric([*labels, fault], getattr(counters, field) if counters is not None else 0)
        for status, count in report["apiRefused"].items():
            self.faults.add_metric([*labels, f"api_{status}"], count)

    def _add_callbacks(self, labels: list[str], hub: NotificationHub, call_id: str) -> None:
        counters = hub.delivery_counters(call_id)
        if counters is None:  # no callbackUri, or nothing published to it yet
            return
        self.cb_enqueued.add_metric(labels, counters.enqueued)
        self.cb_posts.add_metric(labels, counters.posts)
        self.cb_delivered.add_metric(labels, counters.delivered_batches)
        self.cb_delivered_n.add_metric(labels, counters.delivered_notifications)
        self.cb_retries.add_metric(labels, counters.retries)
        self.cb_failed.add_metric(labels, counters.failed_batches)
        self.cb_dropped.add_metric(labels, counters.dropped_overflow)

    def _add_participant(self, labels: list[str], entry: ParticipantStats) -> None:
        gate = entry.gate
        self.server_muted.add_metric(labels, 1 if entry.server_muted else 0)
        self.passed.add_metric(labels, gate.passed_packets)
        self.passed_bytes.add_metric(labels, gate.passed_bytes)
        self.dropped.add_metric(labels, gate.dropped_packets)
        self.dropped_bytes.add_metric(labels, gate.dropped_bytes)
        slot = entry.mixer
        if slot is not None:
            self.frames_in.add_metric(labels, slot.frames_in)
            self.frames_mixed.add_metric(labels, slot.frames_mixed)
            self.overflow.add_metric(labels, slot.inbox_overflow)
            self.underruns.add_metric(labels, slot.underruns)
            self.flushed.add_metric(labels, slot.flushed)
            self.discarded.add_metric(labels, slot.discarded_closed)
            self.trimmed.add_metric(labels, slot.trimmed)
            self.held.add_metric(labels, slot.held_frames)
            self.in_flight.add_metric(labels, slot.discarded_in_flight)
            self.depth.add_metric(labels, slot.inbox_depth)
        rtp = entry.rtp
        if rtp is not None:
            self.rtp_accepted.add_metric(labels, rtp.accepted)
            for reason, field in RTP_DROP_REASONS:
                self.rtp_dropped.add_metric([*labels, reason], getattr(rtp, field))
            self.rtp_restarts.add_metric(labels, rtp.restarts)
            self.rtp_ssrc_changes.add_metric(labels, rtp.ssrc_changes)
            self.rtp_misordered.add_metric(labels, rtp.misordered)
        if entry.network is not None:
            self.network.add(labels, entry.network.uplink)
            self.network.add(labels, entry.network.downlink)
        jitter = entry.jitter
        if jitter is not None:
            counters = jitter.counters
            self.jb_packets.add_metric(labels, counters.packets)
            self.jb_fec_packets.add_metric(labels, counters.fec_packets)
            for reason, field in JITTER_DROP_REASONS:
                self.jb_dropped.add_metric([*labels, reason], getattr(counters, field))
            self.jb_reordered.add_metric(labels, counters.reordered)
            self.jb_flushed.add_metric(labels, counters.flushed)
            self.jb_restarts.add_metric(labels, counters.restarts)
            for kind, field in JITTER_FRAME_KINDS:
                self.jb_frames.add_metric([*labels, kind], getattr(counters, field))
            for run, field in JITTER_LOSS_RUNS:
                self.jb_lost.add_metric([*labels, run], getattr(counters, field))
            self.jb_single_recovered.add_metric(labels, counters.single_recovered)
            self.jb_depth.add_metric(labels, jitter.depth)
            self.jb_target.add_metric(labels, jitter.target_delay)
            for quantile, value in (("0.5", jitter.delay_p50), ("0.95", jitter.delay_p95)):
                if value is not None:
                    self.jb_delay.add_metric([*labels, quantile], value)
            self.jb_jitter.add_metric(labels, jitter.jitter)
        self.talking.add_metric(labels, 1 if entry.talking.talking else 0)
        self.talking_episodes.add_metric(labels, entry.talking.episodes)
        tones = entry.tones
        if tones is not None:
            self.dtmf_packets.add_metric(labels, tones.packets)
            self.dtmf_presses.add_metric(labels, tones.presses)
            self.dtmf_repeats.add_metric(labels, tones.repeats)
            for reason in DTMF_DROP_REASONS:
                self.dtmf_dropped.add_metric([*labels, reason], getattr(tones, reason))
        out = entry.outbound
        if out is not None:
            self.out_packets.add_metric(labels, out.packets)
            self.out_bytes.add_metric(labels, out.payload_bytes)
            for reason, field in OUTBOUND_DROP_REASONS:
                self.out_dropped.add_metric([*labels, reason], getattr(out, field))
            self.out_lean.add_metric(labels, 1 if out.path == "lean" else 0)

    def all(self) -> Iterable[Metric]:
        return [value for value in vars(self).values() if isinstance(value, Metric)] + self.network.all()


class NetworkFamilies:
    """Per participant and direction: the network impairment's profile and what it did (`direction` is uplink or
    downlink, `reason` one of three, `parameter` one of the profile table's fields: all bounded)."""

    def __init__(self) -> None:
        media = "Media datagrams (SRTP/SRTCP) of the participant's network impairment: "
        self.engaged = _gauge("mediamute_network_engaged", "1 while the impairment is on the direction's packet path.", DIRECTION)
        self.preset = _gauge("mediamute_network_profile_info", "The direction's profile: its preset ('custom' without one).", [*DIRECTION, "preset"])
        self.parameter = _gauge("mediamute_network_profile", "The direction's profile, one series per field, in the unit its name says (ms, ratio, kbit/s, packets).", [*DIRECTION, "parameter"])
        self.datagrams = _counter("mediamute_network_datagrams", media + "that came in.", DIRECTION)
        self.delivered = _counter("mediamute_network_delivered", media + "handed on (duplicates included).", DIRECTION)
        self.dropped = _counter("mediamute_network_dropped", media + "dropped, by reason (random, burst, queue).", [*DIRECTION, "reason"])
        self.duplicated = _counter("mediamute_network_duplicated", media + "copies made.", DIRECTION)
        self.reordered = _counter("mediamute_network_reordered", media + "delivered after one sent later.", DIRECTION)
        self.cancelled = _counter("mediamute_network_cancelled", media + "in flight when the participant left.", DIRECTION)
        self.passed = _counter("mediamute_network_passed", "Datagrams passed on untouched (DTLS: the handshake is never impaired).", DIRECTION)
        self.pending = _gauge("mediamute_network_pending", media + "in flight now.", DIRECTION)
        self.jitter = _gauge("mediamute_network_added_jitter_seconds", "RFC 3550's jitter estimate over the delays the impairment added.", DIRECTION)
        self.delay = HistogramMetricFamily("mediamute_network_added_delay_seconds", "Delay the impairment added to each delivered datagram.", labels=DIRECTION)

    def add(self, labels: list[str], state: DirectionState) -> None:
        labels = [*labels, state.direction]
        counters, profile = state.counters, state.profile
        self.engaged.add_metric(labels, 1 if state.engaged else 0)
        self.preset.add_metric([*labels, profile.preset or "custom"], 1)
        for name, value in profile.wire().items():
            if name not in ("preset", "seed"):
                self.parameter.add_metric([*labels, name], value)
        self.datagrams.add_metric(labels, counters.datagrams)
        self.delivered.add_metric(labels, counters.delivered)
        for reason, field in NETWORK_DROP_REASONS:
            self.dropped.add_metric([*labels, reason], getattr(counters, field))
        self.duplicated.add_metric(labels, counters.duplicated)
        self.reordered.add_metric(labels, counters.reordered)
        self.cancelled.add_metric(labels, counters.cancelled)
        self.passed.add_metric(labels, counters.passed)
        self.pending.add_metric(labels, counters.pending)
        self.jitter.add_metric(labels, counters.jitter_ms / 1000.0)
        histogram = counters.delay_histogram
        buckets = [(floatToGoString(bound), count) for bound, count in histogram.cumulative()]
        self.delay.add_metric(labels, buckets, histogram.total)

    def all(self) -> list[Metric]:
        return [value for value in vars(self).values() if isinstance(value, Metric)]


class RequestCounter:
    """ASGI middleware: counts each HTTP request by method, matched route template and status, once it is answered."""

    def __init__(self, app: ASGIApp, requests: Counter, templates: RouteTemplates) -> None:
        self.app = app
        self.requests = requests
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before answering

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.requests.labels(method, self.templates.template(scope), str(status)).inc()


class AppMetrics:
    """One app's Prometheus registry: the call collector and the HTTP request counter."""

    def __init__(self, registry: CallRegistry, hub: NotificationHub) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(CallCollector(registry, hub))
        self.requests = Counter(
            "mediamute_http_requests",
            "HTTP requests answered, by method, route template and status (WebSocket streams not counted).",
            ["method", "route", "status"],
            registry=self.registry,
        )

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The registry in the format the scraper asked for (Prometheus text, or OpenMetrics) and its media type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


def install_metrics(app: FastAPI, registry: CallRegistry, hub: NotificationHub, templates: RouteTemplates) -> AppMetrics:
    """Serve `/metrics` on `app` and count its requests by the routes in `templates` (call it after the app's other
    middleware: this one is then the outermost, and sees every answer, a 415 or a 500 included)."""
    metrics = AppMetrics(registry, hub)
    app.state.metrics = metrics
    app.include_router(router)
    templates.add(router.routes)
    templates.add(app.router.routes)  # the app's own (OpenAPI, docs); included routers have no path of their own
    app.add_middleware(RequestCounter, requests=metrics.requests, templates=templates)
    return metrics


@router.get("/metrics", summary="Prometheus metrics (no authentication: the server binds 127.0.0.1)")
async def metrics(request: Request) -> Response:
    """Async on purpose: the collector reads the calls on the event loop, between ticks, never from a thread."""
    body, content_type = request.app.state.metrics.exposition(request.headers.get("accept"))
    return Response(content=body, media_type=content_type)
