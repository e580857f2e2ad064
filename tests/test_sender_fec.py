"""The senders mediamute owns size their in-band FEC to the loss the receiver reports, as WebRTC's Opus encoder does:
the smoothing on crafted reports, the live encoder on real Opus, and over real WebRTC a client on a lossy uplink that
starts without FEC and sends it once the server's reports tell the loss, next to one on a clean network that never
does (libopus codes no LBRR data at an expected loss of 0)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mediamute.client import CallParticipant
from mediamute.rtc.fec import MAX_EXPECTED_LOSS, LiveOpusEncoder, LossEstimate
from mediamute.rtc.opus import OpusDecoder, has_lbrr
from mediamute.sources import SAMPLES_DIR, WavSource

from .helpers import admin_token, leave_all, wait_until

SEED = 16  # an uplink seed whose first draws lose close to the nominal rate (tests/test_network_integration.py)


def test_the_first_report_is_taken_as_it_is_then_reports_are_smoothed_over_ten_seconds():
    estimate = LossEstimate()
    assert estimate.percent == 0  # no report yet: no FEC
    estimate.add(0.1, at=0.0)
    assert estimate.fraction == pytest.approx(0.1) and estimate.percent == 10
    for second in range(1, 11):  # ten clean reports a second apart
        estimate.add(0.0, at=float(second))
    assert estimate.fraction == pytest.approx(0.1 * math.exp(-1.0))  # one time constant later
    estimate.add(0.9, at=11.0)
    assert estimate.fraction <= MAX_EXPECTED_LOSS  # never sized for more than 20 %


def test_the_live_encoder_adds_fec_data_only_while_it_expects_loss_and_changes_without_a_new_stream():
    source = WavSource(SAMPLES_DIR / "carol.wav")
    encoder, decoder = LiveOpusEncoder(0), OpusDecoder()
    frames = [source.next_frame() for _ in range(300)]
    packets = []
    for index, frame in enumerate(frames):
        if index == 150:
            encoder.expected_loss_percent = 5
        packets.append(bytes(encoder.encode(frame, index * 960)))
    assert not any(has_lbrr(p) for p in packets[:150])
    assert np.mean([has_lbrr(p) for p in packets[160:]]) > 0.5  # speech (pauses carry none)
    assert all(decoder.decode(p) is not None for p in packets) and decoder.errors == 0  # one continuous stream
    assert encoder.encoded == 300 and encoder.expected_loss_percent == 5


@pytest.mark.integration
async def test_a_client_sends_fec_once_its_uplink_loss_is_reported_and_not_on_a_clean_network(server, call_id):
    token = admin_token(server)
    lossy = CallParticipant(server.base_url, call_id, WavSource(SAMPLES_DIR / "carol.wav"), display_name="lossy",
                            token=token, network={"uplink": {"loss": 0.1, "seed": SEED}})
    clean = CallParticipant(server.base_url, call_id, WavSource(SAMPLES_DIR / "dave.wav"), display_name="clean",
                            token=token)
    participants = [lossy, clean]
    for p in participants:
        await p.join()
    call = server.registry.get(call_id)
    try:
        assert lossy.track.encoder.expected_loss_percent == 0  # no report yet: no FEC, as a browser starts
        lossy_path = call.participant(lossy.participant_id).media.receive_path
        clean_path = call.participant(clean.participant_id).media.receive_path
        await wait_until(lambda: lossy.track.encoder.expected_loss_percent > 0, timeout=6)
        assert 5 <= lossy.track.encoder.expected_loss_percent <= 15  # what the server's receiver reported
        # from then on its speech carries FEC data, and the server rebuilds single losses from it
        # (both counts are awaited: how many FEC packets precede the third rebuilt loss depends on when the first
        # receiver report came, which aiortc draws at random between 0.5 and 1.5 s)
        await wait_until(lambda: lossy_path.buffer.counters.single_recovered >= 3
                         and lossy_path.buffer.counters.fec_packets >= 40, timeout=10)
        # a clean network reports no loss: that sender never sends any
        assert clean.track.encoder.expected_loss_percent == 0 and clean.loss_estimate.reports >= 1
        assert clean_path.buffer.counters.fec_packets == 0 and clean_path.buffer.counters.packets > 100
    finally:
        await leave_all(participants)
