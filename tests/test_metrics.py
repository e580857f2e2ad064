"""/metrics against a real call: Prometheus' text, parsed by prometheus_client, agrees with /ext/calls/{id}/stats read
just before and just after the scrape, per-participant series vanish when the participant leaves, per-call ones when
the call ends, and request labels stay bounded whatever URLs clients send."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mediamute.rtc.ice import DATAGRAM_GUARD

from .helpers import CALLS, CallbackReceiver, create_call, hear_for, join_all, leave_all, tones, wait_until

pytestmark = pytest.mark.integration

MUTE_ROUTE = "/v1.0/communications/calls/{call_id}/participants/{participant_id}/mute"


class Scrape:
    """One scrape's samples, looked up by sample name and labels."""

    def __init__(self, text: str) -> None:
        self.samples = [s for family in text_string_to_metric_families(text) for s in family.samples]

    def value(self, name: str, **labels: str) -> float:
        found = [s.value for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
        assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
        return found[0]

    def series(self, name: str | None = None, **labels: str) -> list[dict[str, str]]:
        return [
            s.labels for s in self.samples
            if (name is None or s.name == name) and all(s.labels.get(k) == v for k, v in labels.items())
        ]


async def scrape(base_url: str) -> Scrape:
    """GET /metrics as a Prometheus scraper does: no token."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as scraper:
        response = await scraper.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.text)


def between(before: float, metric: float, after: float, what: str) -> None:
    assert before <= metric <= after, f"{what}: {before} <= {metric} <= {after} does not hold"


def by_id(stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in stats["participants"]}


GATE = {"mediamute_gate_passed_packets_total": "passedPackets", "mediamute_gate_dropped_packets_total": "droppedPackets",
        "mediamute_gate_dropped_bytes_total": "droppedBytes"}
MIXER = {f"mediamute_mixer_{name}_total": key for name, key in (
    ("frames_in", "frames_in"), ("frames_mixed", "frames_mixed"), ("inbox_overflow", "inbox_overflow"),
    ("underruns", "underruns"), ("flushed_frames", "flushed"), ("discarded_closed_frames", "discarded_closed"),
    ("trimmed_frames", "trimmed"), ("held_frames", "held_frames"), ("discarded_in_flight_frames", "discarded_in_flight"))}
RTP_DROPS = {"duplicate": "duplicates", "jump_pending": "jumps_pending", "ssrc_pending": "ssrcs_pending"}
JITTER_DROPS = {"late": "late", "duplicate": "duplicates", "overflow": "overflow", "timestamp_jump": "timestamp_jumps",
                "malformed": "malformed"}
CALLBACKS = {"mediamute_callback_posts_total": "posts", "mediamute_callback_retries_total": "retries",
             "mediamute_callback_notifications_delivered_total": "delivered_notifications",
             "mediamute_callback_notifications_enqueued_total": "enqueued"}


async def test_metrics_agree_with_the_stats_of_a_real_call_and_vanish_with_it(server, http):
    async with CallbackReceiver(fail_first=1) as receiver:  # the first POST fails: one retry to count
        call_id = await create_call(http, callbackUri=receiver.url)
        call = server.registry.get(call_id)
        a, b, c = await join_all(server, call_id, tones(440, 660, 880))
        try:
            await hear_for([a, b, c], 1.0)
            response = await http.post(f"{CALLS}/{call_id}/participants/{b.participant_id}/mute", json={})
            assert response.status_code == 200, response.text
            gate_b = call.participant(b.participant_id).gate
            await wait_until(lambda: gate_b.dropped_packets >= 25, timeout=5)
            await receiver.wait_for(lambda r: len(r.accepted) >= 1)

            before = (await http.get(f"/ext/calls/{call_id}/stats", params={"limit": 0})).json()
            metrics = await scrape(server.base_url)
            after = (await http.get(f"/ext/calls/{call_id}/stats", params={"limit": 0})).json()
            guard = DATAGRAM_GUARD.counters()

            # calls and roster
            assert metrics.value("mediamute_calls") == 1
            assert metrics.value("mediamute_calls_created_total") == 1
            assert metrics.value("mediamute_call_participants", call_id=call_id, kind="remote") == 3
            assert metrics.value("mediamute_call_participants", call_id=call_id, kind="application") == 1

            # every participant's gate, mixer slot and RTP sequence counters, between the two stats reads
            first, last = by_id(before), by_id(after)
            assert set(first) == set(last) == {s["participant_id"] for s in metrics.series("mediamute_gate_dropped_packets_total")}
            for pid, entry in first.items():
                labels = {"call_id": call_id, "participant_id": pid}
                for name, key in GATE.items():
                    between(entry["gate"][key], metrics.value(name, **labels), last[pid]["gate"][key], f"{name} {pid}")
                for name, key in MIXER.items():
                    between(entry["mixer"][key], metrics.value(name, **labels), last[pid]["mixer"][key], f"{name} {pid}")
                assert metrics.value("mediamute_participant_server_muted", **labels) == (1 if pid == b.participant_id else 0)
                if entry["rtp"] is None:  # the application's own participant has no media session
                    assert entry["kind"] == "application"
                    assert not metrics.series("mediamute_rtp_packets_accepted_total", **labels)
                    continue
                rtp = metrics.value("mediamute_rtp_packets_accepted_total", **labels)
                between(entry["rtp"]["accepted"], rtp, last[pid]["rtp"]["accepted"], f"rtp accepted {pid}")
                for reason, key in RTP_DROPS.items():
                    dropped = metrics.value("mediamute_rtp_packets_dropped_total", reason=reason, **labels)
                    between(entry["rtp"][key], dropped, last[pid]["rtp"][key], f"rtp {reason} {pid}")
                # the jitter buffer: packets in, frames out by kind, drops by reason, its target and delays
                jb, jb_last = entry["jitterBuffer"], last[pid]["jitterBuffer"]
                between(jb["packets"], metrics.value("mediamute_jitter_packets_total", **labels), jb_last["packets"], f"jb {pid}")
                fec = metrics.value("mediamute_jitter_fec_packets_total", **labels)
                between(jb["fec_packets"], fec, jb_last["fec_packets"], f"jb fec {pid}")
                for kind in ("decoded", "recovered", "concealed", "accelerated", "skipped"):
                    frames = metrics.value("mediamute_jitter_frames_total", kind=kind, **labels)
                    between(jb[kind], frames, jb_last[kind], f"jb {kind} {pid}")
                for run, key in (("single", "single_losses"), ("burst", "burst_losses")):
                    lost = metrics.value("mediamute_jitter_lost_frames_total", run=run, **labels)
                    between(jb[key], lost, jb_last[key], f"jb lost {run} {pid}")
                recovered = metrics.value("mediamute_jitter_single_losses_recovered_total", **labels)
                between(jb["single_recovered"], recovered, jb_last["single_recovered"], f"jb single recovered {pid}")
                for reason, key in JITTER_DROPS.items():
                    dropped = metrics.value("mediamute_jitter_packets_dropped_total", reason=reason, **labels)
                    between(jb[key], dropped, jb_last[key], f"jb {reason} {pid}")
                assert 0 <= metrics.value("mediamute_jitter_target_delay_seconds", **labels) <= 0.3
                assert metrics.value("mediamute_jitter_delay_seconds", quantile="0.95", **labels) >= 0
                assert metrics.value("mediamute_jitter_interarrival_seconds", **labels) >= 0
            # b's buffer was flushed by its mute and holds nothing since: nothing of b is played or concealed
            assert last[b.participant_id]["jitterBuffer"]["depth"] == 0
            assert last[b.participant_id]["jitterBuffer"]["decoded"] == first[b.participant_id]["jitterBuffer"]["decoded"]
            assert last[b.participant_id]["jitterBuffer"]["concealed"] == first[b.participant_id]["jitterBuffer"]["concealed"]
            muted = {"call_id": call_id, "participant_id": b.participant_id}
            assert metrics.value("mediamute_gate_dropped_packets_total", **muted) >= 25
            # a closed gate passes nothing: its passed count is frozen across both reads and the scrape
            assert first[b.participant_id]["gate"]["passedPackets"] == last[b.participant_id]["gate"]["passedPackets"]
            assert metrics.value("mediamute_gate_passed_packets_total", **muted) == last[b.participant_id]["gate"]["passedPackets"] > 0
            assert metrics.value("mediamute_gate_dropped_packets_total", call_id=call_id, participant_id=a.participant_id) == 0

            # the clock: ticks between the reads, and the tick-duration histogram counts exactly those ticks
            on_call = {"call_id": call_id}
            ticks = metrics.value("mediamute_mix_ticks_total", **on_call)
            between(before["clock"]["ticks"], ticks, after["clock"]["ticks"], "ticks")
            between(before["clock"]["late_ticks"], metrics.value("mediamute_mix_late_ticks_total", **on_call), after["clock"]["late_ticks"], "late ticks")
            assert metrics.value("mediamute_mix_tick_duration_seconds_count", **on_call) == ticks > 50
            buckets = [(float(s["le"]), metrics.value("mediamute_mix_tick_duration_seconds_bucket", **s))
                       for s in metrics.series("mediamute_mix_tick_duration_seconds_bucket", **on_call)]
            counts = [count for _, count in sorted(buckets)]
            assert counts == sorted(counts) and counts[-1] == ticks  # cumulative, +Inf holds every tick
            assert 0 < metrics.value("mediamute_mix_tick_duration_seconds_sum", **on_call) < ticks * 0.02

            # encodes: each tick encodes at least one mix (the shared one or a talker's own), at most one per listener
            assert 1 <= metrics.value("mediamute_encodes_per_tick", **on_call) <= 3
            encodes = sum(metrics.value("mediamute_encodes_total", stream=s, **on_call) for s in ("shared", "own"))
            assert encodes >= metrics.value("mediamute_encode_ticks_total", **on_call) > 0

            # callback deliveries, the failed first attempt retried
            for name, key in CALLBACKS.items():
                between(before["callbacks"][key], metrics.value(name, **on_call), after["callbacks"][key], name)
            assert metrics.value("mediamute_callback_retries_total", **on_call) >= 1

            # the ICE guard (process-wide) and the API's requests, by route template
            assert metrics.value("mediamute_ice_datagrams_refused_total", reason="empty") == guard.empty
            assert metrics.value("mediamute_ice_datagrams_refused_total", reason="malformed") == guard.malformed
            requests = "mediamute_http_requests_total"
            assert metrics.value(requests, method="POST", route=MUTE_ROUTE, status="200") == 1
            assert metrics.value(requests, method="POST", route="/v1.0/communications/calls", status="201") == 1
            assert metrics.value(requests, method="POST", route="/whip/{call_id}", status="201") == 3
            assert metrics.value(requests, method="GET", route="/ext/calls/{call_id}/stats", status="200") == 1
            assert not [s for s in metrics.series(requests) if call_id in s["route"] or b.participant_id in s["route"]]

            # a participant leaves: its series are gone, the others' stay
            await c.leave()
            await wait_until(lambda: c.participant_id not in call.participants, timeout=5)
            left = await scrape(server.base_url)
            assert not left.series(participant_id=c.participant_id)
            assert left.series("mediamute_gate_passed_packets_total", participant_id=a.participant_id)
            assert left.value("mediamute_call_participants", call_id=call_id, kind="remote") == 2
        finally:
            await leave_all([a, b, c])
        # the call ends: every series of it is gone
        assert (await http.delete(f"{CALLS}/{call_id}")).status_code == 204
        ended = await scrape(server.base_url)
        assert not ended.series(call_id=call_id)
        assert ended.value("mediamute_calls") == 0
        assert ended.value("mediamute_calls_ended_total") == 1
        assert ended.value("mediamute_http_requests_total", method="GET", route="/metrics", status="200") == 2


async def test_request_labels_stay_bounded_whatever_the_urls(api, api_http):
    call_id = await create_call(api_http)
    for _ in range(40):
        assert (await api_http.get(f"/no/such/{uuid.uuid4()}")).status_code == 404
        assert (await api_http.get(f"{CALLS}/{uuid.uuid4()}")).status_code == 404
    await api_http.request("BREW", f"{CALLS}/{call_id}")
    response = await api_http.post(f"{CALLS}/{call_id}/mute", content=b"x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415  # answered before routing, still labelled by its route

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url=api.base_url) as scraper:
        metrics = Scrape((await scraper.get("/metrics")).text)
    requests = metrics.series("mediamute_http_requests_total")
    assert {s["route"] for s in requests} == {
        "/v1.0/communications/calls", "unmatched", "/v1.0/communications/calls/{call_id}", "/v1.0/communications/calls/{call_id}/mute"
    }
    assert metrics.value("mediamute_http_requests_total", method="GET", route="unmatched", status="404") == 40
    assert metrics.value("mediamute_http_requests_total", method="GET", route="/v1.0/communications/calls/{call_id}", status="404") == 40
    assert metrics.value("mediamute_http_requests_total", method="other", route="/v1.0/communications/calls/{call_id}", status="405") == 1
    assert metrics.value("mediamute_http_requests_total", method="POST", route="/v1.0/communications/calls/{call_id}/mute", status="415") == 1


async def test_metrics_are_not_in_the_openapi_document(api_http):
    document = (await api_http.get("/openapi.json")).json()
    assert "/metrics" not in document["paths"]
    assert (await api_http.get("/metrics")).status_code == 200
